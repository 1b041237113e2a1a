import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for Svix's hosted API on 127.0.0.1 — the one remote SaaS we cannot run. It
 * follows the published API shapes (api.svix.com/docs) for the calls docrelay makes:
 * applications (get_if_exists), event types, endpoints (create, delete, secret rotation)
 * and messages, with Svix's idempotency-key replay and 409 on a known eventId.
 */
export interface SvixCall {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: any;
}

export interface FakeSvix {
  url: string;
  token: string;
  calls: SvixCall[];
  apps: Map<string, any>;
  endpoints: Map<string, any>;
  messages: any[];
  /** Make the next `n` message creations fail with 500 (after Svix's own client retries). */
  failMessages: number;
  close(): Promise<void>;
}

const id = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;

export async function startFakeSvix(token = 'testsk_fake.eu'): Promise<FakeSvix> {
  const fake: FakeSvix = { url: '', token, calls: [], apps: new Map(), endpoints: new Map(), messages: [], failMessages: 0, close: async () => {} };
  const eventTypes = new Map<string, any>();
  const idempotent = new Map<string, { status: number; body: unknown }>();
  const now = () => new Date().toISOString();

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : null;
      fake.calls.push({ method: req.method!, path: url.pathname, headers: req.headers, body });
      const reply = (status: number, out?: unknown) => {
        res.writeHead(status, out === undefined ? {} : { 'content-type': 'application/json' }).end(out === undefined ? '' : JSON.stringify(out));
      };
      if (req.headers.authorization !== `Bearer ${token}`) return reply(401, { code: 'authentication_failed', detail: 'Invalid token' });
      const key = req.headers['idempotency-key'] as string | undefined;
      const scope = `${req.method} ${url.pathname} ${key}`;
      if (key && idempotent.has(scope)) {
        const prior = idempotent.get(scope)!;
        return reply(prior.status, prior.body);
      }
      const done = (status: number, out?: unknown) => {
        if (key && status < 500) idempotent.set(scope, { status, body: out });
        reply(status, out);
      };
      const p = url.pathname.replace(/\/+$/, '');
      let m: RegExpExecArray | null;
      if (req.method === 'POST' && p === '/api/v1/app') {
        const existing = [...fake.apps.values()].find((a) => a.uid && a.uid === body.uid);
        if (existing) return url.searchParams.get('get_if_exists') === 'true' ? done(200, existing) : done(409, { code: 'conflict', detail: 'uid exists' });
        const app = { id: id('app'), uid: body.uid ?? null, name: body.name, metadata: {}, createdAt: now(), updatedAt: now() };
        fake.apps.set(app.id, app);
        return done(201, app);
      }
      if (req.method === 'POST' && p === '/api/v1/event-type') {
        if (eventTypes.has(body.name)) return done(409, { code: 'event_type_exists', detail: 'An event_type with this name already exists' });
        const et = { name: body.name, description: body.description, archived: false, deprecated: false, createdAt: now(), updatedAt: now() };
        eventTypes.set(body.name, et);
        return done(201, et);
      }
      const app = (ref: string) => fake.apps.get(ref) ?? [...fake.apps.values()].find((a) => a.uid === ref);
      if ((m = /^\/api\/v1\/app\/([^/]+)\/endpoint$/.exec(p)) && req.method === 'POST') {
        if (!app(decodeURIComponent(m[1]))) return done(404, { code: 'not_found', detail: 'Application not found' });
        for (const t of body.filterTypes ?? []) if (!eventTypes.has(t)) return done(422, { detail: [{ loc: ['body', 'filterTypes'], msg: `unknown event type ${t}`, type: 'value_error' }] });
        const ep = { id: id('ep'), uid: body.uid ?? null, url: body.url, description: body.description ?? '', filterTypes: body.filterTypes ?? null, secret: body.secret, metadata: {}, version: 1, disabled: false, createdAt: now(), updatedAt: now() };
        fake.endpoints.set(ep.id, ep);
        const { secret: _s, ...out } = ep;
        return done(201, out);
      }
      if ((m = /^\/api\/v1\/app\/([^/]+)\/endpoint\/([^/]+)$/.exec(p)) && req.method === 'DELETE') {
        if (!fake.endpoints.delete(decodeURIComponent(m[2]))) return done(404, { code: 'not_found', detail: 'Endpoint not found' });
        return done(204);
      }
      if ((m = /^\/api\/v1\/app\/([^/]+)\/endpoint\/([^/]+)\/secret\/rotate$/.exec(p)) && req.method === 'POST') {
        const ep = fake.endpoints.get(decodeURIComponent(m[2]));
        if (!ep) return done(404, { code: 'not_found', detail: 'Endpoint not found' });
        ep.previousSecret = ep.secret;
        ep.secret = body.key ?? `whsec_${randomBytes(24).toString('base64')}`;
        return done(204);
      }
      if ((m = /^\/api\/v1\/app\/([^/]+)\/msg$/.exec(p)) && req.method === 'POST') {
        if (!app(decodeURIComponent(m[1]))) return done(404, { code: 'not_found', detail: 'Application not found' });
        if (fake.failMessages > 0) {
          fake.failMessages--;
          return reply(500, { code: 'internal', detail: 'try again' });
        }
        if (body.eventId && fake.messages.some((x) => x.eventId === body.eventId)) return done(409, { code: 'conflict', detail: 'eventId already exists' });
        const msg = { id: id('msg'), eventType: body.eventType, eventId: body.eventId ?? null, payload: body.payload, timestamp: now() };
        fake.messages.push(msg);
        return done(202, msg);
      }
      reply(404, { code: 'not_found', detail: `no route ${req.method} ${p}` });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return fake;
}
