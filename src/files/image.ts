import { createCanvas, loadImage } from '@napi-rs/canvas';
import { thumbnailSize } from './pdf.js';

/**
 * PNG and JPEG thumbnails, drawn with @napi-rs/canvas (which decodes both; not TIFF). The
 * decoded image lives in native memory, out of reach of the thumbnail thread's heap cap, so
 * the size an image *declares* in its header is checked first: one over the limit is
 * refused before a byte of it is decoded (a 100 kB PNG may declare 100000 × 100000 pixels).
 * Runs in the thumbnail thread (thumbnails.ts), like the PDF one.
 */

export interface Dimensions {
  width: number;
  height: number;
}

/** The width and height a PNG (IHDR) or JPEG (its SOF segment) declares; null if none is found. */
export function declaredDimensions(data: Uint8Array): Dimensions | null {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (data.length >= 24 && PNG.every((b, i) => data[i] === b)) {
    if (String.fromCharCode(...data.subarray(12, 16)) !== 'IHDR') return null;
    return { width: view.getUint32(16), height: view.getUint32(20) };
  }
  if (data.length >= 4 && data[0] === 0xff && data[1] === 0xd8) {
    let i = 2;
    while (i + 3 < data.length) {
      if (data[i] !== 0xff) return null;
      const marker = data[i + 1];
      if (marker === 0xff) {
        i += 1; // fill byte
        continue;
      }
      if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
        i += 2; // markers without a length
        continue;
      }
      if (marker === 0xda || marker === 0xd9) return null; // image data (or the end) before any frame header
      const length = view.getUint16(i + 2);
      // Start of frame, any coding (C0–CF but DHT C4, JPG C8 and DAC CC): precision, height, width.
      if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
        if (i + 9 > data.length) return null;
        return { height: view.getUint16(i + 5), width: view.getUint16(i + 7) };
      }
      i += 2 + length;
    }
  }
  return null;
}

/** A PNG thumbnail of a PNG or JPEG, as large as the PDF ones; refuses more than `maxImageSize` pixels. */
export async function imageThumbnail(data: Uint8Array, maxImageSize: number): Promise<Buffer> {
  const dims = declaredDimensions(data);
  if (!dims || dims.width === 0 || dims.height === 0) throw new Error('not a PNG or JPEG with a size');
  if (dims.width * dims.height > maxImageSize) {
    throw new Error(`the image declares ${dims.width} × ${dims.height} pixels, more than ${maxImageSize}`);
  }
  const image = await loadImage(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  const { width, height } = thumbnailSize(image.width, image.height, { upscale: false });
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff'; // a transparent PNG on white, like a page
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(image, 0, 0, width, height);
  return canvas.toBuffer('image/png');
}
