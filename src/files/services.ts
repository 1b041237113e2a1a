import type { Dispatcher } from 'undici';
import type { Config } from '../config.js';
import { HtmlRenderer } from './chromium.js';
import { createFetchDispatcher, defaultFetchLimits, type FetchLimits } from './fetch.js';

/**
 * What the file job holds open between jobs: the headless Chromium and the download agent
 * (its pooled connections to providers). Built once in main.ts, or by a test for itself,
 * and closed on shutdown.
 */
export interface FileServices {
  renderer: HtmlRenderer;
  /** Every connection to a provider goes through this agent's address check. */
  downloads: Dispatcher;
  limits: FetchLimits;
  close(): Promise<void>;
}

export function createFileServices(config: Config, renderer = new HtmlRenderer(config.chromiumPath)): FileServices {
  const limits = defaultFetchLimits(config.fileMaxBytes, config.fetchAllowPrivateNetworks);
  const downloads = createFetchDispatcher(limits);
  return {
    renderer,
    downloads,
    limits,
    close: async () => {
      await Promise.all([renderer.close(), downloads.close()]);
    },
  };
}
