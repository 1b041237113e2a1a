import type { IncomingMessage } from 'node:http';
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { AppError } from '../errors.js';

const gunzipAsync = promisify(gunzip);
export const INBOUND_BODY_LIMIT = 64 * 1024 * 1024;

/**
 * Read a request body as raw bytes, refusing more than `limit` while reading (not after),
 * and the decompressed bytes when it is gzipped (the limit holds there too: no gzip bomb).
 *
 * `incoming`: the Node request behind `req` when there is one (@hono/node-server's
 * `c.env.incoming`). Its bytes are read from it directly: `req.body` would first build a
 * WHATWG Request and a web stream over it, which cost more than the read itself for a
 * webhook of a few dozen KiB (bench/ingest.ts). Both ways stop at the same byte.
 */
export async function readRawBody(req: Request, limit = INBOUND_BODY_LIMIT, incoming?: IncomingMessage): Promise<{ wire: Buffer; decoded: Buffer }> {
  const declared = Number(req.headers.get('content-length') ?? '0');
  if (declared > limit) throw tooLarge(limit);
  const wire = incoming ? await readIncoming(incoming, limit) : await readStream(req, limit);
  const encoding = (req.headers.get('content-encoding') ?? '').trim().toLowerCase();
  if (encoding === '' || encoding === 'identity') return { wire, decoded: wire };
  if (encoding !== 'gzip' && encoding !== 'x-gzip') {
    throw new AppError('unsupported_media_type', `Content-Encoding ${encoding} is not supported (gzip is)`);
  }
  try {
    return { wire, decoded: await gunzipAsync(wire, { maxOutputLength: limit }) };
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(limit);
    throw new AppError('invalid_payload', 'body is not valid gzip');
  }
}

async function readStream(req: Request, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  if (req.body) {
    for await (const chunk of req.body as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > limit) throw tooLarge(limit);
      chunks.push(Buffer.from(chunk));
    }
  }
  return Buffer.concat(chunks);
}

/**
 * The same from a Node request. Past the limit it stops listening and leaves the rest
 * unread: @hono/node-server drains (or closes) what the sender still sends once the answer
 * is out, as for a request refused before its body.
 */
function readIncoming(incoming: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      incoming.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done();
        incoming.pause();
        reject(tooLarge(limit));
      } else chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (e: Error) => {
      done();
      reject(e);
    };
    // Closed before its end: the sender went away in the middle of the body.
    const onClose = () => onError(new Error('request closed before the end of its body'));
    incoming.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

const tooLarge = (limit: number) =>
  new AppError('payload_too_large', `body larger than ${Math.round(limit / 1024 / 1024)} MiB`);

/**
 * How many inbound bodies are read (and inflated, and checked) at once. Each may hold up to
 * twice the body limit while it is read, so this bounds what webhooks can take from memory
 * whatever the number of senders. Excess requests wait for a slot rather than fail at once:
 * a burst of Powens deliveries (small bodies, read in milliseconds) then goes through
 * without being bounced to the aggregator's retry schedule, and a waiting request costs a
 * socket and its kernel buffers only (Node stops reading a body nobody consumes). A request
 * that has waited `waitMs` gets `503` with `Retry-After`, so a flood cannot queue for ever.
 */
export class BodySlots {
  private free: number;
  private readonly queue: (() => void)[] = [];

  constructor(
    readonly size = 4,
    readonly waitMs = 10_000,
  ) {
    this.free = size;
  }

  /** Requests waiting for a slot now. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Run `fn` holding a slot; AppError('server_busy') when none came free within waitMs. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const grant = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.queue.splice(this.queue.indexOf(grant), 1);
        reject(new AppError('server_busy', 'too many webhook bodies being read; retry later'));
      }, this.waitMs);
      this.queue.push(grant);
    });
  }

  private release(): void {
    // The slot passes straight to the first waiter, or becomes free.
    const next = this.queue.shift();
    if (next) next();
    else this.free++;
  }
}
