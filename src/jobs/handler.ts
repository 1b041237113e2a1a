import type { JobHelpers } from 'graphile-worker';
import type { Deps } from '../deps.js';
import type { JobName, JobPayload } from './catalog.js';

/** A task's code: gets its payload already checked against the catalog (worker.ts). */
export type JobHandler<N extends JobName> = (payload: JobPayload<N>, helpers: JobHelpers) => Promise<void>;
export type JobHandlerFactory<N extends JobName> = (deps: Deps) => JobHandler<N>;
