import { randomBytes } from 'node:crypto';
import { createRoute, z } from '@hono/zod-openapi';
import { and, desc, eq, sql } from 'drizzle-orm';
import type { InferSelectModel } from 'drizzle-orm';
import { requireAdmin } from '../http/auth.js';
import { bearer, errorResponses, jsonResponse as json } from '../http/openapi.js';
import type { Deps } from '../deps.js';
import { webhookEndpoints } from '../db/schema/index.js';
import { AppError, notFound } from '../errors.js';
import { text } from '../lib/input.js';
import { eventTypes } from '../events/record.js';
import { newRouter } from '../http/router.js';
import { endpointHealth, HealthSchema, noHealthYet, type Health } from './health.js';
import { newEndpointSecret } from './signing.js';
import { endpointUrlProblem } from './url.js';

/** Customer webhook endpoints (`/webhook-endpoints` in /openapi.json), admin only. */
type EndpointRow = InferSelectModel<typeof webhookEndpoints>;

export const rotationGraceMs = 24 * 3600 * 1000;

export const EndpointSchema = z
  .object({
    id: z.string(),
    url: z.string(),
    events: z.array(z.string()),
    description: z.string().nullable(),
    disabled: z.boolean(),
    disabled_reason: z.string().nullable(),
    created_at: z.string(),
    health: HealthSchema,
  })
  .openapi('WebhookEndpoint');
const EndpointWithSecret = EndpointSchema.extend({ secret: z.string().openapi({ example: 'whsec_…' }) }).openapi('WebhookEndpointWithSecret');

export const presentEndpoint = (e: EndpointRow, health: Health = noHealthYet(e.disabledReason)) =>
  ({
    id: e.id,
    url: e.url,
    events: e.events,
    description: e.description,
    disabled: e.disabled,
    disabled_reason: e.disabledReason,
    created_at: e.createdAt.toISOString(),
    health,
  }) satisfies z.infer<typeof EndpointSchema>;

/** One endpoint as the API shows it, with its health. */
export async function presentEndpointWithHealth(deps: Deps, e: EndpointRow) {
  return presentEndpoint(e, (await endpointHealth(deps.db, [e])).get(e.id));
}

export const EndpointIdParam = z.object({
  id: z.string().regex(/^ep_[A-Za-z0-9]{1,64}$/, 'an endpoint id (ep_…)').openapi({ param: { name: 'id', in: 'path' }, example: 'ep_0123456789abcdef01234567' }),
});

const CreateBody = z.object({
  url: text.max(2048).openapi({ format: 'uri', example: 'https://hooks.example.com/docrelay' }),
  events: z.array(z.enum(eventTypes as [string, ...string[]])).max(eventTypes.length).optional(),
  description: text.max(500).optional(),
});

const create = createRoute({
  method: 'post',
  path: '/webhook-endpoints',
  summary: 'Register a customer webhook endpoint (admin); the secret is shown here and on rotation only',
  security: bearer,
  request: { body: { content: { 'application/json': { schema: CreateBody } }, required: true } },
  responses: { 201: json(EndpointWithSecret, 'the endpoint with its signing secret'), ...errorResponses },
});
const list = createRoute({
  method: 'get',
  path: '/webhook-endpoints',
  summary: 'Webhook endpoints (admin)',
  security: bearer,
  responses: { 200: json(z.object({ endpoints: z.array(EndpointSchema) }), 'every endpoint, without secrets'), ...errorResponses },
});
const remove = createRoute({
  method: 'delete',
  path: '/webhook-endpoints/{id}',
  summary: 'Delete a webhook endpoint (admin); its pending messages are dropped',
  security: bearer,
  request: { params: EndpointIdParam },
  responses: { 204: { description: 'deleted' }, ...errorResponses },
});
const rotate = createRoute({
  method: 'post',
  path: '/webhook-endpoints/{id}/rotate-secret',
  summary: 'New signing secret (admin); the old one keeps signing beside it for 24 h',
  security: bearer,
  request: { params: EndpointIdParam },
  responses: { 200: json(EndpointWithSecret, 'the endpoint with its new secret'), ...errorResponses },
});

/** A failed Svix call as our error: 502, and the change was not made. */
export function svixFailure(err: unknown): AppError {
  const status = (err as { code?: unknown }).code;
  return new AppError('svix_unavailable', `Svix did not accept the change${typeof status === 'number' ? ` (HTTP ${status})` : ''}; nothing was changed, try again`);
}
export async function svixCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw svixFailure(err);
  }
}

const newEndpointId = () => `ep_${randomBytes(12).toString('hex')}`;

export function endpointRoutes(deps: Deps) {
  const mirror = deps.notify.svix;
  return newRouter()
    .openapi(create, async (c) => {
      requireAdmin(c);
      const body = c.req.valid('json');
      const problem = await endpointUrlProblem(body.url, deps.config.fetchAllowPrivateNetworks);
      if (problem) throw new AppError('invalid_payload', `invalid url: ${problem}`, [{ path: 'url', message: problem }]);
      const id = newEndpointId();
      const secret = newEndpointSecret();
      const events = [...new Set(body.events ?? [])];
      const svixEndpointId = mirror ? await svixCall(() => mirror.createEndpoint({ id, url: body.url, events, description: body.description ?? null, secret })) : null;
      try {
        const [row] = await deps.db
          .insert(webhookEndpoints)
          .values({ id, url: body.url, events, description: body.description ?? null, secret, svixEndpointId })
          .returning();
        return c.json({ ...presentEndpoint(row), secret }, 201);
      } catch (err) {
        // Our insert failed after Svix made the endpoint: take it back, so nothing receives
        // webhooks that we do not know of (a failure here leaves it for the log to tell).
        if (mirror && svixEndpointId) await mirror.deleteEndpoint(svixEndpointId).catch((e) => deps.log.error({ err: e, svixEndpointId }, 'orphan Svix endpoint not deleted'));
        throw err;
      }
    })
    .openapi(list, async (c) => {
      requireAdmin(c);
      const rows = await deps.db.select().from(webhookEndpoints).orderBy(desc(webhookEndpoints.createdAt), desc(webhookEndpoints.id));
      const health = await endpointHealth(deps.db, rows);
      // Svix API mode: Svix delivers, and disables an endpoint that keeps failing; say so.
      if (mirror) {
        await Promise.all(
          rows.map(async (e) => {
            if (!e.svixEndpointId || e.disabled) return;
            if (await mirror.isDisabled(e.svixEndpointId)) Object.assign(e, { disabled: true, disabledReason: e.disabledReason ?? 'disabled_by_svix' });
          }),
        );
      }
      return c.json({ endpoints: rows.map((e) => presentEndpoint(e, health.get(e.id))) }, 200);
    })
    .openapi(remove, async (c) => {
      requireAdmin(c);
      const { id } = c.req.valid('param');
      const [current] = await deps.db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id));
      if (!current) throw notFound('webhook endpoint');
      // Svix first: if it fails, the endpoint is still ours to delete again, and never an
      // endpoint that keeps receiving with no row of ours behind it (Svix's 404 counts as done).
      if (mirror && current.svixEndpointId) await svixCall(() => mirror.deleteEndpoint(current.svixEndpointId!));
      await deps.db.delete(webhookEndpoints).where(eq(webhookEndpoints.id, id));
      return c.body(null, 204);
    })
    .openapi(rotate, async (c) => {
      requireAdmin(c);
      const { id } = c.req.valid('param');
      const secret = newEndpointSecret();
      const [before, row] = await deps.db.transaction(async (tx) => {
        const [current] = await tx.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id)).for('update');
        if (!current) throw notFound('webhook endpoint');
        // Every secret replaced less than 24 h ago keeps signing: the previous one joins the
        // older ones still within their grace, however many rotations that day brought.
        const now = Date.now();
        const olderSecrets = [
          ...current.olderSecrets,
          ...(current.previousSecret && current.previousSecretExpiresAt ? [{ secret: current.previousSecret, expiresAt: current.previousSecretExpiresAt.toISOString() }] : []),
        ].filter((o) => Date.parse(o.expiresAt) > now);
        const [updated] = await tx
          .update(webhookEndpoints)
          .set({
            secret,
            olderSecrets,
            previousSecret: current.secret,
            previousSecretExpiresAt: sql`now() + ${`${rotationGraceMs / 1000} seconds`}::interval`,
          })
          .where(eq(webhookEndpoints.id, id))
          .returning();
        return [current, updated] as const;
      });
      // Svix API mode: Svix rotates only once the new secret is committed here, so Svix never
      // signs with a secret that no one was shown; if Svix refuses, our row goes back.
      if (mirror && row.svixEndpointId) {
        try {
          await mirror.rotateSecret(row.svixEndpointId, secret);
        } catch (err) {
          const { secret: s, previousSecret, previousSecretExpiresAt, olderSecrets } = before;
          await deps.db.update(webhookEndpoints).set({ secret: s, previousSecret, previousSecretExpiresAt, olderSecrets }).where(and(eq(webhookEndpoints.id, id), eq(webhookEndpoints.secret, secret)));
          throw svixFailure(err);
        }
      }
      return c.json({ ...(await presentEndpointWithHealth(deps, row)), secret }, 200);
    });
}
