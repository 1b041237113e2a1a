import type { JobHelpers } from 'graphile-worker';
import type { Deps } from '../deps.js';
import type { JobName, JobPayload } from './catalog.js';

/**
 * A task's code: gets its payload already checked against the catalog (worker.ts). A batch
 * job's (array payload) may return one promise per entry: graphile-worker then retries the
 * job with only the entries whose promise rejected.
 */
export type JobHandler<N extends JobName> = (payload: JobPayload<N>, helpers: JobHelpers) => Promise<void | Promise<void>[]>;
export type JobHandlerFactory<N extends JobName> = (deps: Deps) => JobHandler<N>;
