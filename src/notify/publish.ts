import { eq } from 'drizzle-orm';
import { events } from '../db/schema/index.js';
import type { JobHandlerFactory } from '../jobs/handler.js';

/**
 * publish_event (Svix API mode) — hand one event to Svix. A failure throws, so
 * graphile-worker retries with its backoff; the event id as idempotency key makes the
 * retry harmless.
 */
export const publishEvent: JobHandlerFactory<'publish_event'> = (deps) => async ({ eventId }) => {
  const mirror = deps.notify.svix;
  if (!mirror) {
    deps.log.warn({ eventId }, 'publish_event without SVIX_API_KEY: event not published');
    return;
  }
  const [e] = await deps.db.select().from(events).where(eq(events.id, eventId));
  if (!e) return;
  await mirror.publish({ id: e.id, type: e.type, timestamp: e.createdAt.toISOString(), data: e.data });
};
