import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { isPublicAddress } from '../files/address.js';

export interface PostResult {
  status: number | null;
  retryAfter: string | null;
  /** The start of the response body, for the delivery log. */
  response: string | null;
  error: string | null;
  durationMs: number;
}

export const responseLogBytes = 2048;

export function publicOnlyLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = (addresses as unknown as LookupAddress[]).filter((a) => allowPrivate || isPublicAddress(a.address));
      if (list.length === 0) {
        const e = Object.assign(new Error(`${hostname} resolves to a private address`), { code: 'EPRIVATEADDRESS' });
        return callback(e, '', 0);
      }
      if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
      callback(null, list[0].address, list[0].family);
    });
  };
}

/**
 * Keep-alive agents: a busy endpoint gets its messages over a few warm connections rather
 * than a TCP (and TLS) handshake each. A pooled socket was checked when it connected and
 * its address cannot change; every new connection goes through the checking lookup.
 */
const agents = new Map<string, http.Agent>();
function agentFor(protocol: string, allowPrivate: boolean): http.Agent {
  const key = `${protocol}${allowPrivate}`;
  let a = agents.get(key);
  if (!a) {
    const options = { keepAlive: true, maxFreeSockets: 64, scheduling: 'lifo' as const, lookup: publicOnlyLookup(allowPrivate) };
    a = protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
    agents.set(key, a);
  }
  return a;
}

/**
 * One POST to a customer's endpoint. Written on node:http rather than fetch because it
 * must control four things exactly: redirects are never followed (a 3xx is an answer like
 * any other, and a redirect could point inside our network); the whole exchange has one
 * deadline; only the first few KB of the answer are kept for the log; and the address is
 * checked after DNS resolution, on the very connection, so that a name re-pointed to
 * 127.0.0.1 after the endpoint was created (DNS rebinding) is still refused.
 */
export async function postJson(
  url: string,
  body: string,
  headers: Record<string, string>,
  opts: { timeoutMs: number; allowPrivate: boolean },
): Promise<PostResult> {
  const first = await postOnce(url, body, headers, opts);
  // The receiver closed an idle pooled connection just as we reused it: that says nothing
  // about the receiver, so try once more on a fresh connection before calling it a failure.
  if (first.staleSocket) return postOnce(url, body, headers, opts);
  return first;
}

function postOnce(
  url: string,
  body: string,
  headers: Record<string, string>,
  opts: { timeoutMs: number; allowPrivate: boolean },
): Promise<PostResult & { staleSocket?: boolean }> {
  const started = performance.now();
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  // node:net connects to an IP literal without calling `lookup`: check those here.
  const literal = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(literal) && !opts.allowPrivate && !isPublicAddress(literal)) {
    return Promise.resolve({ status: null, retryAfter: null, response: null, error: `EPRIVATEADDRESS: ${literal} is a private address`, durationMs: 0 });
  }
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
        agent: agentFor(u.protocol, opts.allowPrivate),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        const done = () => {
          if (settled) return;
          const text = Buffer.concat(chunks).toString('utf8');
          const ra = res.headers['retry-after'];
          finish({ status: res.statusCode ?? null, retryAfter: Array.isArray(ra) ? ra[0] : ra ?? null, response: text, error: null });
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
      finish({ status: null, retryAfter: null, response: null, error: `timeout after ${opts.timeoutMs} ms` });
    }, opts.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      const staleSocket = req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
      finish({ status: null, retryAfter: null, response: null, error: err.code ? `${err.code}: ${err.message}` : err.message, staleSocket });
    });
    req.end(body);
  });
}
