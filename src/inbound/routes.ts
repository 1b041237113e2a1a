import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { sql, type SQL } from 'drizzle-orm';
import { z } from '@hono/zod-openapi';
import { newRouter } from '../http/router.js';
import { applyConnectionSync, ErasedMeanwhile } from '../archive/diff.js';
import { eraseConnection, eraseUser } from '../archive/erase.js';
import { holdCaptchaSwitch, trackCaptcha } from '../archive/captcha/track.js';
import type { Tx } from '../db/client.js';
import type { Deps } from '../deps.js';
import { AppError } from '../errors.js';
import { BodySlots, readRawBody } from './body.js';
import { connectionSyncOf, fastConnectionSynced, inboundSchemas } from './payloads.js';
import { checkSignatureHeaders, verifyPowensSignature } from './signature.js';

const EVENTS = ['CONNECTION_SYNCED', 'CONNECTION_DELETED', 'USER_DELETED'] as const;
/** What a `503 server_busy` tells the sender to wait before trying again. */
const RETRY_AFTER_S = 5;
type InboundEvent = (typeof EVENTS)[number];

/**
 * `POST /webhooks/powens/{EVENT}`. The signature covers the exact bytes,
 * so the body is read raw before anything parses it; then the signature, then the schema,
 * and only then one transaction that claims the delivery key and applies the change.
 *
 * What can be refused without the body is refused first: a request without both signature
 * headers, or dated outside the tolerance, is answered before its body is read; Node then
 * discards whatever the sender still sends (it keeps nothing of it). The connection is not
 * closed under a sender still writing: its TCP reset could destroy the answer before the
 * sender reads it. The others read their body in one of a few slots.
 */
export function inboundRoutes(deps: Deps, opts: { bodySlots?: BodySlots } = {}) {
  const app = newRouter();
  const schemas = inboundSchemas(deps.config.webhookTimezone);
  const slots = opts.bodySlots ?? new BodySlots();

  app.post('/webhooks/powens/:event', async (c) => {
    const event = c.req.param('event');
    if (!(EVENTS as readonly string[]).includes(event)) {
      throw new AppError('unknown_event', `unknown event ${event}; expected one of ${EVENTS.join(', ')}`);
    }
    const signed = {
      date: c.req.header('bi-signature-date'),
      signature: c.req.header('bi-signature'),
      toleranceS: deps.config.inboundSignatureToleranceS,
    };
    const early = checkSignatureHeaders(signed);
    if (!early.ok) throw new AppError('invalid_signature', early.reason);

    const read = async () => {
      const { wire, decoded } = await readRawBody(c.req.raw, undefined, (c.env as { incoming?: IncomingMessage } | undefined)?.incoming);
      const check = verifyPowensSignature({
        ...signed,
        secret: deps.config.inboundWebhookSecret,
        path: c.req.path,
        bodies: wire === decoded ? [wire] : [decoded, wire],
      });
      if (!check.ok) throw new AppError('invalid_signature', check.reason);
      try {
        return { decoded, json: JSON.parse(decoded.toString('utf8')) as unknown };
      } catch {
        throw new AppError('invalid_payload', 'body is not valid JSON');
      }
    };
    let body: Awaited<ReturnType<typeof read>>;
    try {
      body = await slots.run(read);
    } catch (e) {
      if (e instanceof AppError && e.code === 'server_busy') {
        c.header('retry-after', String(RETRY_AFTER_S));
      }
      throw e;
    }
    const key = deliveryKey(event as InboundEvent, body.json, body.decoded);
    const result = await applyInboundWebhook(deps, event as InboundEvent, body.json, key, schemas);
    deps.log.info({ event, key: key.key, status: result.status }, 'inbound webhook');
    return c.json(result, 200);
  });

  // One description per event, each with the body it reads (the route itself is one).
  const bodies = { CONNECTION_SYNCED: schemas.connectionSynced, CONNECTION_DELETED: schemas.connectionDeleted, USER_DELETED: schemas.userDeleted };
  for (const event of EVENTS) {
    app.openAPIRegistry.registerPath({
      method: 'post',
      path: `/webhooks/powens/${event}`,
      summary: `Powens ${event} webhook, HMAC-signed`,
      request: {
        headers: z.object({ 'bi-signature': z.string(), 'bi-signature-date': z.string() }),
        body: { content: { 'application/json': { schema: bodies[event] } } },
      },
      responses: {
        200: {
          description: 'processed, duplicate or stale',
          content: { 'application/json': { schema: z.object({ status: z.enum(['processed', 'duplicate', 'stale']), summary: z.unknown().optional() }) } },
        },
        400: { description: 'invalid_payload' },
        401: { description: 'invalid_signature' },
        409: { description: 'id_conflict: an id of the payload belongs to another user or connection; nothing written' },
        413: { description: 'payload_too_large' },
        503: { description: 'server_busy: too many bodies being read at once; retry after Retry-After seconds' },
      },
    });
  }
  return app;
}

/**
 * The event with Powens' `id_webhook_data`, else with the sha256 of the body:
 * USER_DELETED and CONNECTION_DELETED of one body `{"id": 74}` are two deliveries.
 */
function deliveryKey(event: InboundEvent, json: unknown, body: Buffer): DeliveryKey {
  const id = (json as { id_webhook_data?: unknown } | null)?.id_webhook_data;
  const legacy = typeof id === 'number' && Number.isSafeInteger(id) ? `id:${id}` : `sha256:${createHash('sha256').update(body).digest('hex')}`;
  return { key: `${event}:${legacy}`, legacy };
}

/** `legacy`: the key as it was stored before it named the event (kept for Powens' retries of older deliveries). */
type DeliveryKey = { key: string; legacy: string };

function parse<T>(schema: z.ZodType<T>, json: unknown): T {
  const r = schema.safeParse(json);
  if (!r.success) {
    const details = r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
    throw new AppError('invalid_payload', 'payload does not match the schema', details);
  }
  return r.data;
}

async function applyInboundWebhook(
  deps: Deps,
  event: InboundEvent,
  json: unknown,
  key: DeliveryKey,
  schemas: ReturnType<typeof inboundSchemas>,
): Promise<Record<string, unknown>> {
  // Parse before the transaction: bad input writes nothing, not even the delivery key.
  const body =
    event === 'CONNECTION_SYNCED'
      ? { event, payload: fastConnectionSynced(schemas, deps.config.webhookTimezone, json) ?? parse(schemas.connectionSynced, json) }
      : event === 'CONNECTION_DELETED'
        ? { event, payload: parse(schemas.connectionDeleted, json) }
        : { event, payload: parse(schemas.userDeleted, json) };

  const apply = () =>
    deps.db.transaction(async (tx): Promise<Record<string, unknown>> => {
      switch (body.event) {
        case 'CONNECTION_SYNCED': {
          const conn = body.payload.connection;
          // Before the connection row lock, which the sync's first statement takes together
          // with the delivery's claim: see archive/captcha/track.ts.
          await holdCaptchaSwitch(tx, conn);
          const { outcome, settings, captcha } = await applyConnectionSync(tx, connectionSyncOf(conn), { claim: claimStatement(key, event) });
          if (outcome.status === 'stale') await markOutcome(tx, key, 'stale');
          else if (outcome.status === 'processed') await trackCaptcha(tx, conn, settings, { log: deps.log, tracking: captcha ?? undefined });
          return outcome;
        }
        case 'CONNECTION_DELETED': {
          if (!(await claimDelivery(tx, key, event))) return { status: 'duplicate' };
          await eraseConnection(tx, body.payload.id, body.payload.id_user);
          return { status: 'processed' };
        }
        case 'USER_DELETED': {
          if (!(await claimDelivery(tx, key, event))) return { status: 'duplicate' };
          await eraseUser(tx, body.payload.id);
          return { status: 'processed' };
        }
      }
    });
  // A sync that met an erasure committing under it was rolled back (archive/diff.ts,
  // ErasedMeanwhile); applied again, it finds the erasure at once and is stale. Erasures are
  // never undone, so the second pass cannot meet a new one that the first did not see.
  try {
    return await apply();
  } catch (e) {
    if (e instanceof ErasedMeanwhile) return apply();
    throw e;
  }
}

/**
 * Claim a delivery key: the statement returns a row when the key is new. The primary key
 * does the work: a concurrent copy of the same delivery waits on the first one's
 * uncommitted row, then finds it and stands down.
 */
function claimStatement({ key, legacy }: DeliveryKey, event: string): SQL {
  return sql`
    insert into inbound_deliveries (key, event, outcome)
    select ${key}, ${event}, 'processed'
    where not exists (select 1 from inbound_deliveries where key = ${legacy} and event = ${event})
    on conflict (key) do nothing returning key`;
}

async function claimDelivery(tx: Tx, key: DeliveryKey, event: string): Promise<boolean> {
  return (await tx.execute(claimStatement(key, event))).length > 0;
}

async function markOutcome(tx: Tx, { key }: DeliveryKey, outcome: string): Promise<void> {
  await tx.execute(sql`update inbound_deliveries set outcome = ${outcome} where key = ${key}`);
}
