import { createRoute, z } from '@hono/zod-openapi';
import { desc, eq } from 'drizzle-orm';
import { requireAdmin } from '../http/auth.js';
import { bearer, errorResponses, jsonResponse as json } from '../http/openapi.js';
import type { Deps } from '../deps.js';
import { deliveryAttempts, events, messages, webhookEndpoints } from '../db/schema/index.js';
import { notFound } from '../errors.js';
import { newRouter } from '../http/router.js';
import { EndpointIdParam, EndpointSchema, presentEndpointWithHealth, svixCall } from './endpoint-routes.js';
import { responseForLog } from './http.js';
import type { SvixAttempt } from './svix.js';
import { enableEndpoint, parseSince, resendUndelivered, SinceQuery } from './resend.js';

/** An endpoint's delivery log and the replay of its failed messages. */
const DeliverySchema = z
  .object({
    message_id: z.string(),
    event_type: z.string(),
    attempt: z.number().int(),
    status_code: z.number().int().nullable(),
    error: z.string().nullable(),
    duration_ms: z.number().int(),
    response: z.string().nullable(),
    at: z.string(),
  })
  .openapi('Delivery');

const deliveries = createRoute({
  method: 'get',
  path: '/webhook-endpoints/{id}/deliveries',
  summary: "An endpoint's delivery attempts, newest first (admin)",
  security: bearer,
  request: {
    params: EndpointIdParam,
    query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }),
  },
  responses: {
    200: { description: 'attempts', content: { 'application/json': { schema: z.object({ deliveries: z.array(DeliverySchema) }) } } },
    ...errorResponses,
  },
});

const replay = createRoute({
  method: 'post',
  path: '/webhook-endpoints/{id}/replay',
  summary: 'Send the undelivered messages of an endpoint now — failed ones and those waiting for a retry — optionally only those since a time (admin); re-enables a disabled endpoint',
  security: bearer,
  request: {
    params: EndpointIdParam,
    query: z.object({ since: SinceQuery }),
  },
  responses: {
    202: { description: 'queued', content: { 'application/json': { schema: z.object({ replayed: z.number().int() }) } } },
    ...errorResponses,
  },
});

const enable = createRoute({
  method: 'post',
  path: '/webhook-endpoints/{id}/enable',
  summary:
    'Enable an endpoint (admin): messages waiting for a retry are sent now; with replay_since, also every message it missed (failed, or recorded while disabled) since then',
  security: bearer,
  request: { params: EndpointIdParam, query: z.object({ replay_since: SinceQuery }) },
  responses: {
    200: json(EndpointSchema.extend({ replayed: z.number().int() }).openapi('EnabledWebhookEndpoint'), 'the endpoint, and how many messages were queued'),
    ...errorResponses,
  },
});

async function endpointRow(deps: Deps, id: string) {
  const [row] = await deps.db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id));
  if (!row) throw notFound('webhook endpoint');
  return row;
}

/**
 * Svix API mode: the log is Svix's message attempts (newest first); an attempt's number
 * counts that message's attempts in the page, oldest first.
 */
function presentSvixAttempts(attempts: SvixAttempt[]) {
  const seen = new Map<string, number>();
  const numbers = [...attempts].reverse().map((a) => {
    const n = (seen.get(a.msgId) ?? 0) + 1;
    seen.set(a.msgId, n);
    return n;
  }).reverse();
  return attempts.map((a, i) => ({
    message_id: a.msgId,
    event_type: a.eventType ?? 'unknown',
    attempt: numbers[i],
    status_code: a.statusCode,
    error: a.succeeded ? null : a.statusCode === null ? 'no response' : `HTTP ${a.statusCode}`,
    duration_ms: a.durationMs,
    response: responseForLog(Buffer.from(a.response, 'utf8'), {}),
    at: a.at.toISOString(),
  }));
}

export function deliveryRoutes(deps: Deps) {
  return newRouter()
    .openapi(deliveries, async (c) => {
      requireAdmin(c);
      const { id } = c.req.valid('param');
      const { limit } = c.req.valid('query');
      const endpoint = await endpointRow(deps, id);
      const svix = deps.notify.svix;
      if (svix && endpoint.svixEndpointId) {
        return c.json({ deliveries: presentSvixAttempts(await svixCall(() => svix.attempts(endpoint.svixEndpointId!, limit))) }, 200);
      }
      const rows = await deps.db
        .select({ a: deliveryAttempts, type: events.type })
        .from(deliveryAttempts)
        .innerJoin(messages, eq(messages.id, deliveryAttempts.messageId))
        .innerJoin(events, eq(events.id, messages.eventId))
        .where(eq(deliveryAttempts.endpointId, id))
        .orderBy(desc(deliveryAttempts.at), desc(deliveryAttempts.id))
        .limit(limit);
      return c.json(
        {
          deliveries: rows.map(({ a, type }) => ({
            message_id: a.messageId,
            event_type: type,
            attempt: a.attempt,
            status_code: a.statusCode,
            error: a.error,
            duration_ms: a.durationMs,
            response: a.response,
            at: a.at.toISOString(),
          })),
        },
        200,
      );
    })
    .openapi(replay, async (c) => {
      requireAdmin(c);
      const { id } = c.req.valid('param');
      const { since } = c.req.valid('query');
      const svix = deps.notify.svix;
      const endpoint = await endpointRow(deps, id);
      if (svix && endpoint.svixEndpointId) {
        // Svix API mode: Svix keeps the messages; its `recover` re-sends the failed ones.
        const from = parseSince(since) ?? endpoint.createdAt;
        const replayed = await svixCall(() => svix.recover(endpoint.svixEndpointId!, from));
        await deps.db.transaction((tx) => enableEndpoint(tx, id));
        return c.json({ replayed }, 202);
      }
      const replayed = await deps.db.transaction(async (tx) => {
        // Replaying is the operator saying the receiver is fixed: the endpoint delivers again.
        if (!(await enableEndpoint(tx, id))) throw notFound('webhook endpoint');
        return resendUndelivered(tx, id, { since: parseSince(since), failed: true });
      });
      return c.json({ replayed }, 202);
    })
    .openapi(enable, async (c) => {
      requireAdmin(c);
      const { id } = c.req.valid('param');
      const { replay_since } = c.req.valid('query');
      const svix = deps.notify.svix;
      const endpoint = await endpointRow(deps, id);
      if (svix && endpoint.svixEndpointId) {
        const from = parseSince(replay_since);
        const replayed = from ? await svixCall(() => svix.recover(endpoint.svixEndpointId!, from)) : (await svixCall(() => svix.enable(endpoint.svixEndpointId!)), 0);
        const row = await deps.db.transaction((tx) => enableEndpoint(tx, id));
        if (!row) throw notFound('webhook endpoint');
        return c.json({ ...(await presentEndpointWithHealth(deps, row)), replayed }, 200);
      }
      const [row, replayed] = await deps.db.transaction(async (tx) => {
        const ep = await enableEndpoint(tx, id);
        if (!ep) throw notFound('webhook endpoint');
        return [ep, await resendUndelivered(tx, id, { since: parseSince(replay_since), failed: replay_since !== undefined })] as const;
      });
      return c.json({ ...(await presentEndpointWithHealth(deps, row)), replayed }, 200);
    });
}
