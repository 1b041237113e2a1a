import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Config } from '../config.js';
import type { Tx } from '../db/client.js';
import { enqueue } from '../jobs/enqueue.js';
import { opsEmailJobKey, opsWebhookJobKey } from '../jobs/keys.js';
import { endpointHealth } from './health.js';
import { disableAfterFailingMs } from './retry.js';

/**
 * Operational events: the operator hears that an endpoint is failing before the 5-day rule
 * disables it (`endpoint.failing`), and when it is disabled (`endpoint.disabled`), at
 * OPS_WEBHOOK_URL and/or OPS_EMAIL (ops-send.ts). They are recorded on the transaction that
 * records the failed attempt (deliver.ts), with their jobs, so none is lost and none is
 * sent twice.
 *
 * "Failing": a failed attempt while the endpoint has had no success for an hour or more —
 * consecutive failures spanning at least an hour (one failure that its 5 s retry mends is
 * not worth a message; an endpoint that passes an hour without a single 2xx is). Announced
 * at most once in 24 hours per endpoint: the row's key is per UTC day, and a day's row is
 * not added when the previous one is younger than 24 h. The attempt's transaction holds
 * the endpoint's row lock, so two workers decide one after the other.
 */
export const failingAfterMs = 3600_000;

export type OpsEventType = 'endpoint.failing' | 'endpoint.disabled';

/** Whether a failure run that began at `failingSince` has lasted long enough to warn about (pure). */
export const isFailingLongEnough = (failingSince: Date | null, now: number) =>
  failingSince !== null && now - failingSince.getTime() >= failingAfterMs;

/** Whether operational events go anywhere: with neither OPS_WEBHOOK_URL nor OPS_EMAIL, none is recorded. */
const wanted = (ops: Config['ops']) => Boolean(ops.webhookUrl || ops.email);

/** A failed attempt of an endpoint whose failure run began at `failingSince`: warn if it has lasted. */
export async function warnIfFailing(tx: Tx, config: Config, endpointId: string, failingSince: Date | null): Promise<void> {
  if (!wanted(config.ops) || !isFailingLongEnough(failingSince, Date.now())) return;
  const day = new Date().toISOString().slice(0, 10);
  await recordOpsEvent(tx, config, 'endpoint.failing', endpointId, `endpoint.failing:${endpointId}:${day}`);
}

/** This attempt disabled the endpoint (`attemptKey` names the attempt, so a re-run records it once). */
export async function warnDisabled(tx: Tx, config: Config, endpointId: string, attemptKey: string): Promise<void> {
  if (!wanted(config.ops)) return;
  await recordOpsEvent(tx, config, 'endpoint.disabled', endpointId, `endpoint.disabled:${endpointId}:${attemptKey}`);
}

async function recordOpsEvent(tx: Tx, config: Config, type: OpsEventType, endpointId: string, dedupeKey: string) {
  const [e] = await tx.execute<{ id: string; url: string; description: string | null; disabled_reason: string | null; failing_since_ms: string | null }>(sql`
    select id, url, description, disabled_reason, extract(epoch from failing_since) * 1000 as failing_since_ms
    from webhook_endpoints where id = ${endpointId}`);
  if (!e) return;
  const health = (await endpointHealth(tx, [{ id: e.id, disabledReason: e.disabled_reason }])).get(e.id)!;
  const failingSince = e.failing_since_ms === null ? null : Number(e.failing_since_ms);
  const data = {
    endpoint: { id: e.id, url: urlWithoutQuery(e.url), description: e.description },
    failing_since: failingSince === null ? null : new Date(failingSince).toISOString(),
    ...(type === 'endpoint.failing' && failingSince !== null ? { disabled_at_the_latest: new Date(failingSince + disableAfterFailingMs).toISOString() } : {}),
    ...health,
  };
  const once = type === 'endpoint.failing' ? sql`and not exists (
      select 1 from ops_events o where o.endpoint_id = ${endpointId} and o.type = ${type} and o.created_at > now() - interval '24 hours')` : sql``;
  const rows = await tx.execute<{ id: string }>(sql`
    insert into ops_events (id, dedupe_key, type, endpoint_id, data)
    select ${`ops_${randomBytes(12).toString('hex')}`}, ${dedupeKey}, ${type}, ${endpointId}, ${JSON.stringify(data)}::jsonb
    where true ${once}
    on conflict (dedupe_key) do nothing
    returning id`);
  if (rows.length === 0) return;
  const eventId = rows[0].id;
  if (config.ops.webhookUrl) await enqueue(tx, 'send_ops_webhook', { eventId }, { jobKey: opsWebhookJobKey(eventId) });
  if (config.ops.email) await enqueue(tx, 'send_ops_email', { eventId }, { jobKey: opsEmailJobKey(eventId) });
}

/** The endpoint's URL without its query string and fragment, where a receiver's token may sit. */
function urlWithoutQuery(raw: string): string {
  try {
    const u = new URL(raw);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '';
  }
}
