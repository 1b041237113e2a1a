import type { Dispatcher } from 'undici';
import type { Config } from '../config.js';
import { HtmlRenderer } from './chromium.js';
import { createFetchDispatcher, defaultFetchLimits, type FetchLimits } from './fetch.js';
import { defaultThumbnailLimits, Thumbnailer, type ThumbnailLimits } from './thumbnails.js';

/**
 * What the file job holds open between jobs: the headless Chromium, the thumbnail thread
 * and the download agent (its pooled connections to providers). Built once in main.ts, or
 * by a test for itself, and closed on shutdown.
 */
export interface FileServices {
  renderer: HtmlRenderer;
  /** Every connection to a provider goes through this agent's address check. */
  downloads: Dispatcher;
  limits: FetchLimits;
  /** A PNG of a PDF's first page, drawn in a worker thread with limits. */
  pdfThumbnail(data: Uint8Array): Promise<Buffer>;
  /** A PNG thumbnail of a PNG or JPEG (files/image.ts), in the same thread, with the same limits. */
  imageThumbnail(data: Uint8Array): Promise<Buffer>;
  /** Fails every download in flight at once (a shutdown past its timeout); no new one starts. */
  abortDownloads(): Promise<void>;
  close(): Promise<void>;
}

export function createFileServices(
  config: Config,
  renderer = new HtmlRenderer(config.chromiumPath),
  thumbnailLimits: ThumbnailLimits = defaultThumbnailLimits,
): FileServices {
  const limits = defaultFetchLimits(config.fileMaxBytes, config.fetchAllowPrivateNetworks, config.fileDownloadTimeoutS * 1000);
  const downloads = createFetchDispatcher(limits);
  const thumbnailer = new Thumbnailer(thumbnailLimits);
  let aborted = false;
  return {
    renderer,
    downloads,
    limits,
    pdfThumbnail: (data) => thumbnailer.thumbnail('pdf', data),
    imageThumbnail: (data) => thumbnailer.thumbnail('image', data),
    abortDownloads: () => {
      aborted = true;
      return downloads.destroy(new Error('shutting down')).catch(() => {});
    },
    close: async () => {
      await Promise.all([renderer.close(), aborted ? undefined : downloads.close(), thumbnailer.close()]);
    },
  };
}
