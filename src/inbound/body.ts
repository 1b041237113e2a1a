import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { AppError } from '../errors.js';

const gunzipAsync = promisify(gunzip);
export const INBOUND_BODY_LIMIT = 64 * 1024 * 1024;

/**
 * Read a request body as raw bytes, refusing more than `limit` while reading (not after),
 * and the decompressed bytes when it is gzipped (the limit holds there too: no gzip bomb).
 */
export async function readRawBody(req: Request, limit = INBOUND_BODY_LIMIT): Promise<{ wire: Buffer; decoded: Buffer }> {
  const declared = Number(req.headers.get('content-length') ?? '0');
  if (declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  if (req.body) {
    for await (const chunk of req.body as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > limit) throw tooLarge(limit);
      chunks.push(Buffer.from(chunk));
    }
  }
  const wire = Buffer.concat(chunks);
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

const tooLarge = (limit: number) =>
  new AppError('payload_too_large', `body larger than ${Math.round(limit / 1024 / 1024)} MiB`);
