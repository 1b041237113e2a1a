import { eq } from 'drizzle-orm';
import { opsEvents } from '../db/schema/index.js';
import type { Deps } from '../deps.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { deliveryTimeoutMs } from './deliver.js';
import { isPermanent } from './email.js';
import { isSuccess } from './retry.js';
import { signedHeaders } from './signing.js';

/**
 * The two ways an operational event (ops-events.ts) reaches the operator, one job each. A
 * failure throws and graphile-worker tries again with its backoff; the same event is sent
 * each time, under the same id (`webhook-id`, Message-ID), so a receiver can tell a repeat.
 */

const loadEvent = async (deps: Deps, id: string) => (await deps.db.select().from(opsEvents).where(eq(opsEvents.id, id)))[0];

/** send_ops_webhook — POST `{type, timestamp, data}` to OPS_WEBHOOK_URL, signed as customer webhooks are. */
export const sendOpsWebhook: JobHandlerFactory<'send_ops_webhook'> = (deps) => async ({ eventId }) => {
  const { webhookUrl, webhookSecret } = deps.config.ops;
  const client = deps.notify.ops;
  if (!webhookUrl || !webhookSecret || !client) return; // unset since the event was recorded
  const e = await loadEvent(deps, eventId);
  if (!e) return;
  const body = JSON.stringify({ type: e.type, timestamp: e.createdAt.toISOString(), data: e.data });
  const result = await client.post(webhookUrl, body, signedHeaders(e.id, new Date(), body, [webhookSecret]), { timeoutMs: deliveryTimeoutMs });
  if (!isSuccess(result.status)) throw new Error(`operator webhook: ${result.error ?? `HTTP ${result.status}`}`);
};

/** send_ops_email — mail the event to OPS_EMAIL through the service's SMTP transport. */
export const sendOpsEmail: JobHandlerFactory<'send_ops_email'> = (deps) => async ({ eventId }) => {
  const to = deps.config.ops.email;
  const mailer = deps.notify.mailer;
  if (!to || !mailer) return;
  const e = await loadEvent(deps, eventId);
  if (!e) return;
  try {
    await mailer.sendMail({ from: deps.config.mailFrom, to, messageId: `<${e.id}@docrelay>`, ...composeOpsMail(e.type, e.data as OpsEventData, deps.config.publicUrl) });
  } catch (err) {
    // A 5xx is a refusal that no retry mends (a bad address): say so once, in the log.
    if (!isPermanent(err)) throw err;
    deps.log.warn({ eventId, error: err instanceof Error ? err.message : String(err) }, 'operator mail refused');
  }
};

interface OpsEventData {
  endpoint: { id: string; url: string; description: string | null };
  failing_since: string | null;
  disabled_at_the_latest?: string;
  success_rate: number | null;
  last_success_at: string | null;
  consecutive_failures: number;
  disabled_reason: string | null;
}

/** The operator's mail (pure). */
export function composeOpsMail(type: string, d: OpsEventData, publicUrl: string) {
  const name = d.endpoint.description ? `${d.endpoint.id} (${d.endpoint.description})` : d.endpoint.id;
  const subject = type === 'endpoint.disabled' ? `docrelay: webhook endpoint ${name} was disabled (${d.disabled_reason})` : `docrelay: webhook endpoint ${name} is failing`;
  const lines = [
    type === 'endpoint.disabled'
      ? 'A customer webhook endpoint was disabled: it gets no more messages until it is enabled again (its messages wait, failed, for a replay).'
      : `A customer webhook endpoint has been failing for over an hour. Without a success it is disabled at ${d.disabled_at_the_latest ?? 'the end of 5 days'}.`,
    '',
    `Endpoint: ${name}`,
    `URL: ${d.endpoint.url}`,
    `Failing since: ${d.failing_since ?? '-'}`,
    `Consecutive failures: ${d.consecutive_failures}`,
    `Last success: ${d.last_success_at ?? 'never'}`,
    `Success rate (24 h): ${d.success_rate === null ? '-' : `${Math.round(d.success_rate * 100)} %`}`,
    d.disabled_reason && `Disabled: ${d.disabled_reason}`,
    '',
    `The operator page: ${publicUrl}/ (enable and replay are there, or POST /webhook-endpoints/${d.endpoint.id}/enable).`,
  ].filter((l): l is string => typeof l === 'string');
  return { subject, text: lines.join('\n') + '\n' };
}
