import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Agent, buildConnector, request, type Dispatcher } from 'undici';
import { BLOCKED_ADDRESS as BLOCKED, guardedLookup, isPublicAddress, refusedLiteral, type AddressPolicy } from '../net/address.js';

export interface FetchLimits {
  maxBytes: number;
  allowPrivateNetworks: boolean;
  maxRedirects: number;
  connectTimeoutMs: number;
  /** Until the response headers arrive. */
  headersTimeoutMs: number;
  /** Longest pause between two body chunks. */
  bodyIdleTimeoutMs: number;
  /** The whole download, redirects included. */
  totalTimeoutMs: number;
}

export const defaultFetchLimits = (maxBytes: number, allowPrivateNetworks: boolean, totalTimeoutMs = 120_000): FetchLimits => ({
  maxBytes,
  allowPrivateNetworks,
  maxRedirects: 5,
  connectTimeoutMs: 10_000,
  headersTimeoutMs: 30_000,
  bodyIdleTimeoutMs: 30_000,
  // A provider that trickles its bytes (each under the idle timeout) holds a slot of the
  // file pool until this: FILE_DOWNLOAD_TIMEOUT_S. A timeout is retried with backoff.
  totalTimeoutMs,
});

/**
 * Why a download failed. `permanent` failures (4xx, refused address, too large, bad URL)
 * are final; the others (network errors, timeouts, 5xx) are worth a retry.
 */
export class FetchError extends Error {
  constructor(
    readonly code:
      | 'bad_url'
      | 'blocked_address'
      | 'too_large'
      | 'too_many_redirects'
      | 'http_error'
      | 'timeout'
      | 'network_error',
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
    this.name = 'FetchError';
  }
}

export interface Downloaded {
  path: string;
  size: number;
  sha256: string;
  /** The provider's Content-Type header, for information only: the type is sniffed. */
  declaredType: string | undefined;
  finalUrl: string;
}

/**
 * An undici dispatcher whose connector checks the destination at connect time. Node skips
 * `lookup` for literal IPs, so those are checked here before the socket is created.
 */
export function createFetchDispatcher(
  limits: Pick<FetchLimits, 'allowPrivateNetworks' | 'connectTimeoutMs'>,
  /** The address policy; tests narrow it to show that a redirect hop is checked again. */
  allowed: AddressPolicy = isPublicAddress,
): Dispatcher {
  const base = buildConnector({
    timeout: limits.connectTimeoutMs,
    ...(limits.allowPrivateNetworks ? {} : { lookup: guardedLookup(allowed) as never }),
  });
  const connect: buildConnector.connector = (opts, callback) => {
    const refused = limits.allowPrivateNetworks ? null : refusedLiteral(opts.hostname, allowed);
    if (refused) return callback(refused, null);
    base(opts, callback);
  };
  return new Agent({ connect, connections: 16, keepAliveTimeout: 4_000 });
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Provider-side conditions that pass with time: retried like 5xx. */
const TRANSIENT_4XX = new Set([408, 425, 429]);

function parseUrl(raw: string, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(raw, base);
  } catch {
    throw new FetchError('bad_url', 'the document URL is not a valid URL', true);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FetchError('bad_url', `unsupported URL scheme ${url.protocol}`, true);
  }
  if (url.username || url.password) url.username = url.password = '';
  return url;
}

/**
 * Download a document's file from the provider: stream `source` into `path` (the caller
 * deletes it), safely:
 * - every connection goes through one connector that refuses non-public addresses, both
 *   for literal IPs and for every address a name resolves to, *before* a socket is
 *   opened (so that a check cannot be raced by a second DNS answer, and no packet leaves);
 * - redirects are followed by hand, a few times, each hop through the same connector;
 * - the byte limit is enforced while streaming to a file, hashing on the way, so memory
 *   does not grow with the size of the file.
 */
export async function download(
  source: string,
  path: string,
  limits: FetchLimits,
  dispatcher: Dispatcher,
): Promise<Downloaded> {
  const deadline = AbortSignal.timeout(limits.totalTimeoutMs);
  let url = parseUrl(source);
  try {
    for (let hop = 0; ; hop++) {
      const res = await request(url, {
        method: 'GET',
        dispatcher,
        signal: deadline,
        headersTimeout: limits.headersTimeoutMs,
        bodyTimeout: limits.bodyIdleTimeoutMs,
        headers: { 'user-agent': 'docrelay/1 (+document fetcher)', accept: '*/*' },
      });
      const { statusCode, headers, body } = res;
      if (REDIRECTS.has(statusCode)) {
        discard(body);
        const location = headers.location;
        if (typeof location !== 'string' || !location) {
          throw new FetchError('http_error', `provider answered ${statusCode} without a Location`, true);
        }
        if (hop >= limits.maxRedirects) {
          throw new FetchError('too_many_redirects', `more than ${limits.maxRedirects} redirects`, true);
        }
        url = parseUrl(location, url);
        continue;
      }
      if (statusCode < 200 || statusCode > 299) {
        discard(body);
        const permanent = statusCode < 500 && !TRANSIENT_4XX.has(statusCode);
        throw new FetchError('http_error', `provider answered HTTP ${statusCode}`, permanent);
      }
      const declaredLength = Number(headers['content-length']);
      if (Number.isFinite(declaredLength) && declaredLength > limits.maxBytes) {
        discard(body);
        throw tooLarge(limits.maxBytes);
      }
      const hash = createHash('sha256');
      let size = 0;
      const meter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          size += chunk.length;
          if (size > limits.maxBytes) return done(tooLarge(limits.maxBytes));
          hash.update(chunk);
          done(null, chunk);
        },
      });
      await pipeline(body, meter, createWriteStream(path));
      const ct = headers['content-type'];
      return {
        path,
        size,
        sha256: hash.digest('hex'),
        declaredType: typeof ct === 'string' ? ct : undefined,
        finalUrl: url.toString(),
      };
    }
  } catch (err) {
    throw asFetchError(err, deadline);
  }
}

/** Drop a body we will not read (a small one is drained so the connection can be reused). */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.dump({ limit: 64 * 1024 }).catch(() => {});
}

const tooLarge = (max: number) => new FetchError('too_large', `file larger than FILE_MAX_BYTES (${max} bytes)`, true);

function asFetchError(err: unknown, deadline: AbortSignal): FetchError {
  if (err instanceof FetchError) return err;
  const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.code === BLOCKED || e.cause?.code === BLOCKED) {
    return new FetchError('blocked_address', `refused: ${e.code === BLOCKED ? e.message : e.cause?.message}`, true);
  }
  if (deadline.aborted || e.name === 'TimeoutError' || /TIMEOUT/.test(e.code ?? '')) {
    return new FetchError('timeout', `download timed out (${e.code ?? e.name})`, false);
  }
  const code = e.code ?? e.cause?.code;
  // NXDOMAIN is an answer, not an outage (that is EAI_AGAIN): the URL names no host.
  if (code === 'ENOTFOUND') return new FetchError('network_error', 'host not found (ENOTFOUND)', true);
  return new FetchError('network_error', `network error${code ? ` ${code}` : ''}: ${e.message ?? String(err)}`, false);
}
