import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'svix';

/**
 * A customer's webhook receiver on 127.0.0.1 (a real HTTP server). `respond` decides each
 * answer; by default 200. Every request is recorded with its raw body, and — given the
 * endpoint's secret(s) — checked with svix's own `Webhook.verify`, as a customer would.
 */
export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
  /** For each secret given to `verifyWith`, whether svix's Webhook.verify accepted the request. */
  verified: boolean[];
}

export type Responder = (req: Received, n: number, res: ServerResponse) => void | { status: number; headers?: Record<string, string>; body?: string } | 'hang';

export interface Receiver {
  url: string;
  received: Received[];
  /** Requests being handled right now, and the most ever at once. */
  inFlight: number;
  maxInFlight: number;
  respond: Responder;
  verifyWith: string[];
  /** TCP connections open right now. */
  connections(): number;
  /** Answer every hanging request, and any later one, with 500 so the server can close. */
  release(): void;
  close(): Promise<void>;
  waitFor(n: number, timeoutMs?: number): Promise<Received[]>;
}

export async function startReceiver(respond: Responder = () => ({ status: 200 })): Promise<Receiver> {
  const hanging = new Set<ServerResponse>();
  let released = false;
  const r: Receiver = {
    url: '',
    received: [],
    inFlight: 0,
    maxInFlight: 0,
    respond,
    verifyWith: [],
    connections: () => sockets.size,
    release: () => {
      released = true;
      for (const res of hanging) res.writeHead(500).end('released');
      hanging.clear();
    },
    close: async () => {
      r.release();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    waitFor: async (n, timeoutMs = 20_000) => {
      const until = Date.now() + timeoutMs;
      while (r.received.length < n) {
        if (Date.now() > until) throw new Error(`receiver got ${r.received.length} requests, expected ${n}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      return r.received;
    },
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const verified = r.verifyWith.map((secret) => {
        try {
          new Webhook(secret).verify(body, req.headers as Record<string, string>);
          return true;
        } catch {
          return false;
        }
      });
      const rec: Received = { headers: req.headers, body, at: Date.now(), verified };
      r.received.push(rec);
      r.inFlight++;
      r.maxInFlight = Math.max(r.maxInFlight, r.inFlight);
      res.on('close', () => r.inFlight--);
      const out = r.respond(rec, r.received.length, res);
      if (out === 'hang') {
        if (released) return void res.writeHead(500).end('released');
        hanging.add(res);
        return;
      }
      if (out) res.writeHead(out.status, out.headers).end(out.body ?? '');
    });
  });
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return r;
}

export async function waitUntil<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
