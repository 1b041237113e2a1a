import type { Tx } from '../db/client.js';
import { enqueueMany } from './enqueue.js';

/**
 * How the documents to fetch are queued: one fetch_document_files batch job per
 * FILE_BATCH_SIZE documents of a sync, instead of a keyed job per document. A sync of
 * 10,000 new documents adds 100 jobs, and a backfill of a million leaves 10,000 in the
 * queue, which graphile-worker's job fetch walks quickly (with a million, it took ~1 s).
 */
export const FILE_BATCH_SIZE = 100;

/**
 * The priority of the file jobs of a sync that brings `count` documents to fetch, and of
 * the announcements that follow them (graphile-worker runs smaller numbers first): 0 for a
 * sync of up to one batch — the fresh bills of a daily sync — then one more per tenfold
 * (1 up to 1,000 documents, 2 up to 10,000…), so that the bills of a small sync queued
 * after a backfill go ahead of it. Deliveries and mails keep 0.
 */
export function filePriority(count: number): number {
  return Math.max(0, Math.ceil(Math.log10(count / FILE_BATCH_SIZE)));
}

/**
 * Lanes of backfill work: the batches of large syncs (priority above 0) run in these
 * graphile-worker named queues, one batch at a time in each, so that however many are
 * queued they hold at most this many slots of the file pools — the others stay free for
 * the batches of fresh syncs, which otherwise wait for a backfill batch to end.
 */
export const BACKFILL_LANES = 2;
export const backfillQueue = (lane: number) => `files:backfill:${lane % BACKFILL_LANES}`;

/**
 * Queue the fetch of these pending files, on the caller's transaction (files/tasks.ts
 * settles them), by default at the priority of a sync of their number.
 */
export async function enqueueFileFetches(tx: Tx, documentIds: readonly number[], priority = filePriority(documentIds.length)): Promise<void> {
  const batches: { payload: number[]; priority: number; queueName?: string }[] = [];
  for (let i = 0; i < documentIds.length; i += FILE_BATCH_SIZE) {
    const payload = documentIds.slice(i, i + FILE_BATCH_SIZE);
    batches.push({ payload, priority, ...(priority > 0 ? { queueName: backfillQueue(i / FILE_BATCH_SIZE) } : {}) });
  }
  await enqueueMany(tx, 'fetch_document_files', batches);
}
