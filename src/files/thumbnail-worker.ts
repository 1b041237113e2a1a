import { parentPort } from 'node:worker_threads';
import { imageThumbnail } from './image.js';
import { pdfThumbnail } from './pdf.js';
import type { ThumbnailKind } from './thumbnails.js';

/**
 * The thread that draws thumbnails (see thumbnails.ts): one request at a time, a PDF's or
 * an image's bytes and the image limit in, the PNG (or why not) out.
 *
 * pdf.js leaves an image larger than `maxImageSize` out of the drawing and says so only
 * as a warning on the console (console.warn, this thread's own): a page drawn without its
 * image is not a thumbnail of it, so that warning fails the thumbnail.
 */
let imageLeftOut = false;
console.warn = (...args: unknown[]) => {
  if (String(args[0]).includes('Image exceeded maximum allowed size')) imageLeftOut = true;
};

parentPort!.on('message', async ({ kind, data, maxImageSize }: { kind: ThumbnailKind; data: Uint8Array; maxImageSize: number }) => {
  imageLeftOut = false;
  try {
    const png = kind === 'image' ? await imageThumbnail(data, maxImageSize) : await pdfThumbnail(data, { maxImageSize, verbosity: 1 });
    if (imageLeftOut) throw new Error(`the page holds an image of more than ${maxImageSize} pixels`);
    parentPort!.postMessage({ png: new Uint8Array(png) });
  } catch (err) {
    parentPort!.postMessage({ error: (err as Error).message });
  }
});
parentPort!.postMessage({ ready: true }); // loaded: the time limit counts from the next request
