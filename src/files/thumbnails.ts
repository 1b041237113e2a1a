import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * PDF and image thumbnails drawn away from the job's thread. A small PDF can hold an image
 * of 30000 × 30000 pixels that decodes to gigabytes, or a page that takes minutes to draw;
 * pdf.js on the worker's main thread would take the whole service down with it. So each
 * thumbnail is drawn in a worker thread, with
 * - `maxImageSize`: pdf.js leaves a larger image out of the drawing, never decoded, and a
 *   PNG or JPEG declaring more pixels is refused before decoding (image.ts);
 * - a memory cap (`resourceLimits`): past it the thread dies, not the process;
 * - a time limit: past it the thread is terminated.
 * Any of those ends in a rejection, and the file is kept without a thumbnail.
 */
export interface ThumbnailLimits {
  /** Pixels of the largest image decoded (width × height), in a PDF or as a PNG/JPEG document. */
  maxImageSize: number;
  /** The thread's V8 heap (MiB). */
  maxHeapMb: number;
  timeoutMs: number;
}

/** A scan of an A4 page at 600 dpi is 35 Mpx: anything larger is not a bill's page. */
export const defaultThumbnailLimits: ThumbnailLimits = { maxImageSize: 40_000_000, maxHeapMb: 256, timeoutMs: 30_000 };

export class ThumbnailError extends Error {
  override name = 'ThumbnailError';
}

// The worker is a sibling module: .js once built; .ts when run through tsx (dev, tests),
// whose loader a worker thread does not inherit on Node 20, so it registers it first.
const workerFile = new URL(`./thumbnail-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);
const workerSource: [string | URL, { eval?: boolean }] = workerFile.pathname.endsWith('.ts')
  ? [`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(workerFile.href)}); });`, { eval: true }]
  : [workerFile, {}];

/**
 * One long-lived thread, started on first use, draws the thumbnails one after the other;
 * a thread that dies (memory cap) or is stopped (time limit) is replaced for the next.
 */
export type ThumbnailKind = 'pdf' | 'image';
/** The image types drawn as 'image' (files/image.ts); TIFF, which @napi-rs/canvas cannot decode, is not one. */
export const IMAGE_TYPES: ReadonlySet<string> = new Set(['image/png', 'image/jpeg']);

export class Thumbnailer {
  private worker?: { thread: Worker; ready: Promise<void> };
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly limits: ThumbnailLimits = defaultThumbnailLimits) {}

  thumbnail(kind: ThumbnailKind, data: Uint8Array): Promise<Buffer> {
    const drawn = this.queue.then(() => this.draw(kind, data));
    this.queue = drawn.catch(() => {});
    return drawn;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.thread.terminate();
  }

  private async draw(kind: ThumbnailKind, data: Uint8Array): Promise<Buffer> {
    const current = (this.worker ??= this.start());
    const worker = current.thread;
    try {
      await current.ready; // loading pdf.js is not the document's time
    } catch (err) {
      if (this.worker === current) this.worker = undefined;
      throw new ThumbnailError(`thumbnail thread did not start: ${(err as Error).message}`);
    }
    return new Promise<Buffer>((resolve, reject) => {
      const done = (err: Error | null, png?: Buffer) => {
        clearTimeout(timer);
        worker.off('message', onMessage).off('error', onError).off('exit', onExit);
        if (err) reject(err);
        else resolve(png!);
      };
      const retire = () => {
        if (this.worker === current) this.worker = undefined;
        void worker.terminate();
      };
      const onMessage = (m: { png?: Uint8Array; error?: string }) =>
        m.png ? done(null, Buffer.from(m.png.buffer, m.png.byteOffset, m.png.byteLength)) : done(new ThumbnailError(`thumbnail failed: ${m.error}`));
      const onError = (err: Error) => {
        retire();
        done(new ThumbnailError(`thumbnail failed: ${err.message}`)); // ERR_WORKER_OUT_OF_MEMORY among others
      };
      const onExit = (code: number) => {
        retire();
        done(new ThumbnailError(`thumbnail thread exited with code ${code}`));
      };
      const timer = setTimeout(() => {
        retire();
        done(new ThumbnailError(`thumbnail took longer than ${this.limits.timeoutMs} ms`));
      }, this.limits.timeoutMs);
      worker.on('message', onMessage).once('error', onError).once('exit', onExit);
      worker.postMessage({ kind, data, maxImageSize: this.limits.maxImageSize });
    });
  }

  private start(): { thread: Worker; ready: Promise<void> } {
    const worker = new Worker(workerSource[0], {
      ...workerSource[1],
      resourceLimits: { maxOldGenerationSizeMb: this.limits.maxHeapMb, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
      stdout: true, // pdf.js's other warnings stay out of the service's log lines
      stderr: true,
    });
    worker.unref(); // an idle thread does not keep the process alive
    const ready = new Promise<void>((resolve, reject) => {
      const onReady = (m: { ready?: boolean }) => {
        if (!m.ready) return;
        worker.off('message', onReady).off('error', reject).off('exit', onExit);
        resolve();
      };
      const onExit = (code: number) => reject(new Error(`exited with code ${code}`));
      worker.on('message', onReady).once('error', reject).once('exit', onExit);
    });
    ready.catch(() => {});
    return { thread: worker, ready };
  }
}
