import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for Svix's hosted API on 127.0.0.1 — the one remote SaaS we cannot run. It
 * follows the published API shapes (api.svix.com/docs) for the calls docrelay makes:
 * applications (get_if_exists), event types, endpoints (create, get, patch, delete, secret
 * rotation, recover), message attempts by endpoint and messages, with Svix's
 * idempotency-key replay and 409 on a known eventId. Faults are injected per call.
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
  /** Injected faults: a status to answer a call with (before it does anything), or null to serve it. */
  fault: (call: { method: string; path: string }) => number | null;
  /** Message attempts by Svix endpoint id, oldest first (tests add them: the fake delivers nothing itself). */
  attempts: Map<string, any[]>;
  /** Record an attempt of message `msg` to endpoint `endpointId`, as Svix's dispatcher would. */
  attempt(endpointId: string, msg: any, statusCode: number): void;
  close(): Promise<void>;
}

const id = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;

export async function startFakeSvix(token = 'testsk_fake.eu'): Promise<FakeSvix> {
  const fake: FakeSvix = {
    url: '', token, calls: [], apps: new Map(), endpoints: new Map(), messages: [], failMessages: 0,
    fault: () => null,
    attempts: new Map(),
    attempt: (endpointId, msg, statusCode) => {
      const ep = fake.endpoints.get(endpointId);
      const list = fake.attempts.get(endpointId) ?? [];
      const ok = statusCode >= 200 && statusCode < 300;
      list.push({
        id: id('atmpt'), msgId: msg.id, endpointId, url: ep?.url ?? '', response: ok ? 'ok' : 'down', responseStatusCode: statusCode,
        responseDurationMs: 12, status: ok ? 0 : 2, statusText: ok ? 'success' : 'fail', triggerType: 0, timestamp: now(),
        msg: { id: msg.id, eventType: msg.eventType, eventId: msg.eventId, payload: msg.payload, timestamp: msg.timestamp },
      });
      fake.attempts.set(endpointId, list);
    },
    close: async () => {},
  };
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
      const injected = fake.fault({ method: req.method!, path: url.pathname });
      if (injected !== null) return reply(injected, { code: 'injected_fault', detail: 'injected by the test' });
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
      if ((m = /^\/api\/v1\/app\/([^/]+)\/endpoint\/([^/]+)$/.exec(p)) && (req.method === 'GET' || req.method === 'PATCH')) {
        const ep = fake.endpoints.get(decodeURIComponent(m[2]));
        if (!ep) return done(404, { code: 'not_found', detail: 'Endpoint not found' });
        if (req.method === 'PATCH') for (const k of ['disabled', 'url', 'description', 'filterTypes']) if (body && k in body) ep[k] = body[k];
        const { secret: _s, previousSecret: _p, ...out } = ep;
        return done(200, out);
      }
      if ((m = /^\/api\/v1\/app\/([^/]+)\/endpoint\/([^/]+)\/recover$/.exec(p)) && req.method === 'POST') {
        const epId = decodeURIComponent(m[2]);
        if (!fake.endpoints.has(epId)) return done(404, { code: 'not_found', detail: 'Endpoint not found' });
        // Every message whose last attempt since `since` failed is sent again (a manual attempt).
        const since = Date.parse(body.since);
        const last = new Map<string, any>();
        for (const a of fake.attempts.get(epId) ?? []) if (Date.parse(a.timestamp) >= since) last.set(a.msgId, a);
        for (const a of last.values()) {
          if (a.status !== 2) continue;
          fake.attempt(epId, a.msg, 200);
          fake.attempts.get(epId)!.at(-1).triggerType = 1;
        }
        return done(202, { id: id('qtask'), status: 'finished', task: 'endpoint.recover', updatedAt: now() });
      }
      if ((m = /^\/api\/v1\/app\/([^/]+)\/attempt\/endpoint\/([^/]+)$/.exec(p)) && req.method === 'GET') {
        const epId = decodeURIComponent(m[2]);
        if (!fake.endpoints.has(epId)) return done(404, { code: 'not_found', detail: 'Endpoint not found' });
        const status = url.searchParams.get('status');
        const after = url.searchParams.get('after');
        const limit = Number(url.searchParams.get('limit') ?? 50);
        const withMsg = url.searchParams.get('with_msg') === 'true';
        const data = [...(fake.attempts.get(epId) ?? [])]
          .reverse()
          .filter((a) => (status === null || String(a.status) === status) && (after === null || Date.parse(a.timestamp) > Date.parse(after)))
          .slice(0, limit)
          .map(({ msg, ...a }) => (withMsg ? { ...a, msg } : a));
        return done(200, { data, iterator: null, prevIterator: null, done: true });
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
