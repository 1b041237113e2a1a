import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { BLOCKED_ADDRESS, guardedLookup, isPublicAddress, refusedLiteral, type AddressPolicy, type Resolver } from '../net/address.js';

export interface PostResult {
  status: number | null;
  retryAfter: string | null;
  /** The start of the response body, for the delivery log. */
  response: string | null;
  error: string | null;
  durationMs: number;
}

export const responseLogBytes = 2048;

// C0 controls but tab, LF and CR, and DEL: NUL cannot be stored in a PostgreSQL text (nor
// sent as a \u0000 JSON escape), the others only garble a log reader's terminal.
const controls = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g;

/**
 * The start of a receiver's answer as text that can always be stored and shown: whatever a
 * receiver sends (NUL bytes, binary, gzip, invalid UTF-8) must never make the attempt
 * impossible to record — a delivery that cannot be recorded is re-sent for ever. Text is
 * kept as text (invalid sequences and control characters become U+FFFD); an encoded or
 * binary answer is kept as its bytes, in base64, behind a short description.
 */
export function responseForLog(bytes: Buffer, headers: { 'content-type'?: string; 'content-encoding'?: string }): string {
  const type = headers['content-type']?.replace(controls, '\uFFFD');
  const encoding = headers['content-encoding']?.replace(controls, '\uFFFD');
  const text = bytes.toString('utf8');
  const invalid = text.match(/\uFFFD/g)?.length ?? 0;
  const binary = bytes.includes(0) || invalid > Math.max(4, text.length / 10);
  if ((encoding && encoding !== 'identity') || binary) {
    const what = [`${bytes.length} bytes`, type, encoding && `content-encoding ${encoding}`].filter(Boolean).join(', ');
    return `[binary response: ${what}] base64:${bytes.toString('base64')}`;
  }
  return text.replace(controls, '\uFFFD');
}

/** Posts to customer endpoints over its own keep-alive agents; built in main.ts (or a test), closed on shutdown. */
export interface WebhookClient {
  post(url: string, body: string, headers: Record<string, string>, opts: { timeoutMs: number }): Promise<PostResult>;
  close(): void;
}

/**
 * One POST to a customer's endpoint. Written on node:http rather than fetch because it
 * must control four things exactly: redirects are never followed (a 3xx is an answer like
 * any other, and a redirect could point inside our network); the whole exchange has one
 * deadline; only the first few KB of the answer are kept for the log; and the address is
 * checked after DNS resolution, on the very connection, with the same rule as downloads
 * (net/address.ts), so that a name re-pointed to 127.0.0.1 after the endpoint was created
 * (DNS rebinding) is still refused.
 */
export function createWebhookClient(opts: {
  allowPrivate: boolean;
  /** The address policy (net/address.ts); tests narrow it, as loopback is all they reach. */
  allowed?: AddressPolicy;
  resolve?: Resolver;
}): WebhookClient {
  const allowed = opts.allowPrivate ? () => true : opts.allowed ?? isPublicAddress;
  /**
   * Keep-alive agents: a busy endpoint gets its messages over a few warm connections rather
   * than a TCP (and TLS) handshake each. A pooled socket was checked when it connected and
   * its address cannot change; every new connection goes through the checking lookup.
   */
  const agentOptions = { keepAlive: true, maxFreeSockets: 64, scheduling: 'lifo' as const, lookup: guardedLookup(allowed, opts.resolve) as LookupFunction };
  const agents = { 'http:': new http.Agent(agentOptions), 'https:': new https.Agent(agentOptions) };
  const send = (url: URL, body: string, headers: Record<string, string>, timeoutMs: number) => {
    const refused = refusedLiteral(url.hostname, allowed);
    if (refused) return Promise.resolve({ status: null, retryAfter: null, response: null, error: `${BLOCKED_ADDRESS}: ${refused.message}`, durationMs: 0 });
    return postOnce(url, body, headers, timeoutMs, url.protocol === 'https:' ? agents['https:'] : agents['http:']);
  };
  return {
    async post(raw, body, headers, { timeoutMs }) {
      const url = new URL(raw);
      const first = await send(url, body, headers, timeoutMs);
      // The receiver closed an idle pooled connection just as we reused it: that says nothing
      // about the receiver, so try once more on a fresh connection before calling it a failure.
      if ('staleSocket' in first && first.staleSocket) return send(url, body, headers, timeoutMs);
      return first;
    },
    close() {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}

function postOnce(
  u: URL,
  body: string,
  headers: Record<string, string>,
  timeoutMs: number,
  agent: http.Agent,
): Promise<PostResult & { staleSocket?: boolean }> {
  const started = performance.now();
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: Omit<PostResult, 'durationMs'> & { staleSocket?: boolean }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...r, durationMs: Math.round(performance.now() - started) });
    };
    const req = mod.request(
      u,
      {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': 'docrelay-webhooks/1' },
        agent,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        const done = () => {
          if (settled) return;
          const response = responseForLog(Buffer.concat(chunks), res.headers);
          const ra = res.headers['retry-after'];
          finish({ status: res.statusCode ?? null, retryAfter: Array.isArray(ra) ? ra[0] : ra ?? null, response, error: null });
        };
        res.on('data', (c: Buffer) => {
          if (kept < responseLogBytes) {
            chunks.push(c.subarray(0, responseLogBytes - kept));
            kept += Math.min(c.length, responseLogBytes - kept);
          }
          // Enough for the log: stop reading a large answer rather than wait for all of it.
          if (kept >= responseLogBytes) {
            done();
            res.destroy();
          }
        });
        res.on('end', done);
        res.on('error', done);
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      finish({ status: null, retryAfter: null, response: null, error: `timeout after ${timeoutMs} ms` });
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      const staleSocket = req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
      finish({ status: null, retryAfter: null, response: null, error: err.code ? `${err.code}: ${err.message}` : err.message, staleSocket });
    });
    req.end(body);
  });
}
