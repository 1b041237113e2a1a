import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { getDocument } from 'pdfjs-dist/legacy/build/pdf.mjs';

/**
 * PDF reading with pdf.js: a PNG thumbnail of the first page (drawn on @napi-rs/canvas,
 * which pdf.js 5 uses in Node through `doc.canvasFactory`), and the text of a page (tests
 * use it to prove a conversion holds the page's words).
 */

const require = createRequire(import.meta.url);
// The 14 standard PDF fonts are not embedded in many PDFs: pdf.js draws them from these files.
const standardFontDataUrl = join(dirname(require.resolve('pdfjs-dist/package.json')), 'standard_fonts') + '/';

const THUMB_WIDTH = 300;
/** A thumbnail is not worth more than this many pixels, whatever the page's proportions. */
const MAX_THUMB_HEIGHT = 1200;

/** The thumbnail of a page or an image of this size: 300 wide, at most 1200 high. */
export function thumbnailSize(width: number, height: number, opts: { upscale: boolean }): { width: number; height: number; scale: number } {
  let scale = Math.min(THUMB_WIDTH / width, MAX_THUMB_HEIGHT / height);
  if (!opts.upscale) scale = Math.min(scale, 1);
  return { width: Math.max(1, Math.ceil(width * scale)), height: Math.max(1, Math.ceil(height * scale)), scale };
}

interface CanvasAndContext {
  canvas: { toBuffer(mime: 'image/png'): Buffer };
  context: unknown;
}

/** pdf.js's own default: images of more pixels are left out of a drawing (-1: no limit). */
const NO_IMAGE_LIMIT = -1;

async function open(data: Uint8Array, opts: { maxImageSize?: number; verbosity?: number } = {}) {
  const { maxImageSize = NO_IMAGE_LIMIT, verbosity = 0 } = opts;
  // pdf.js may transfer (detach) the buffer it is given: hand it a copy.
  return getDocument({ data: new Uint8Array(data), standardFontDataUrl, isEvalSupported: false, verbosity, maxImageSize }).promise;
}

/**
 * Draw the first page. Runs on the calling thread with no memory or time limit: the file
 * job calls it through thumbnails.ts, in a worker thread with limits.
 */
export async function pdfThumbnail(data: Uint8Array, opts: { maxImageSize?: number; verbosity?: number } = {}): Promise<Buffer> {
  const doc = await open(data, opts);
  try {
    const page = await doc.getPage(1);
    const unit = page.getViewport({ scale: 1 });
    const size = thumbnailSize(unit.width, unit.height, { upscale: true });
    const viewport = page.getViewport({ scale: size.scale });
    const factory = (doc as unknown as { canvasFactory: { create(w: number, h: number): CanvasAndContext } }).canvasFactory;
    const cc = factory.create(size.width, size.height);
    await page.render({ canvasContext: cc.context, canvas: cc.canvas, viewport } as never).promise;
    return cc.canvas.toBuffer('image/png');
  } finally {
    await doc.destroy();
  }
}

/** The text of one page, its items joined by spaces. */
export async function pdfPageText(data: Uint8Array, pageNumber = 1): Promise<string> {
  const doc = await open(data);
  try {
    const page = await doc.getPage(pageNumber);
    const content = await page.getTextContent();
    return content.items.map((i) => ('str' in i ? i.str : '')).join(' ');
  } finally {
    await doc.destroy();
  }
}
