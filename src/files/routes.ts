import { createRoute, z } from '@hono/zod-openapi';
import { and, eq } from 'drizzle-orm';
import { resolveUser } from '../http/auth.js';
import { bearer, ErrorSchema, errorResponses, IdParam, UserParam } from '../http/openapi.js';
import type { Deps } from '../deps.js';
import { documentFiles, documents } from '../db/schema/index.js';
import { AppError, notFound, type ErrorBody } from '../errors.js';
import { text } from '../lib/input.js';
import { newRouter } from '../http/router.js';
import { contentDisposition, downloadName } from './disposition.js';
import { verifyFileLink, type FileVariant } from '../lib/file-links.js';
import { matchesIfNoneMatch, parseRange } from './range.js';
import { PgBlobStore, type BlobStore } from '../blobs/store.js';

/**
 * The bytes of a document's file (its `url` and `thumb_url`): through a signed, expiring link
 * (`/files/{id}?exp&sig`, no token — the link is the credential) or, for an authenticated
 * client, `/users/{u}/documents/{id}/file`. Served chunk by chunk from the blob store.
 */
// A link's id is checked with its signature: any malformed link is one 403 invalid_link.
const LinkId = z.object({ id: text.openapi({ param: { name: 'id', in: 'path' }, example: '9001' }) });
const LinkQuery = z.object({
  exp: text.optional().openapi({ description: 'expiry, unix seconds' }),
  sig: text.optional().openapi({ description: 'HMAC-SHA256 signature (base64url)' }),
});
const bytes = (description: string, types: string[]) => ({
  description,
  content: Object.fromEntries(types.map((t) => [t, { schema: z.string().openapi({ format: 'binary' }) }])),
});
const invalidLink = { description: 'Bad, tampered or expired link', content: { 'application/json': { schema: ErrorSchema } } };
const missing = { description: 'No ready file', content: { 'application/json': { schema: ErrorSchema } } };
/** What a cached or partial read of an immutable file can get. */
const conditional = {
  206: { description: 'The byte range asked for with `Range: bytes=…` (one range)' },
  304: { description: 'Not modified: the `If-None-Match` ETag is this file\'s' },
  416: { description: 'The range starts past the end of the file', content: { 'application/json': { schema: ErrorSchema } } },
};

const fileByLink = createRoute({
  method: 'get',
  path: '/files/{id}',
  summary: "A document's file through a signed link (the document's `url`)",
  request: { params: LinkId, query: LinkQuery },
  responses: { 200: bytes('The file, with its sniffed Content-Type', ['application/pdf', 'application/octet-stream']), ...conditional, 403: invalidLink, 404: missing },
});
const thumbnailByLink = createRoute({
  method: 'get',
  path: '/files/{id}/thumbnail',
  summary: "A PNG of the file's first page through a signed link (the document's `thumb_url`)",
  request: { params: LinkId, query: LinkQuery },
  responses: { 200: bytes('PNG thumbnail', ['image/png']), ...conditional, 403: invalidLink, 404: missing },
});
const fileOfUser = createRoute({
  method: 'get',
  path: '/users/{u}/documents/{id}/file',
  summary: "A document's file, for an authenticated client",
  security: bearer,
  request: { params: UserParam.merge(IdParam) },
  responses: { 200: bytes('The file, with its sniffed Content-Type', ['application/pdf', 'application/octet-stream']), ...conditional, ...errorResponses },
});

const DOC_ID = /^\d{1,16}$/;

export function fileRoutes(deps: Deps) {
  const store: BlobStore = new PgBlobStore(deps.db);

  const readyFile = async (documentId: number, userId?: number) => {
    const [row] = await deps.db
      .select({ name: documents.name, f: documentFiles })
      .from(documents)
      .innerJoin(documentFiles, eq(documentFiles.documentId, documents.id))
      .where(userId === undefined ? eq(documents.id, documentId) : and(eq(documents.id, documentId), eq(documents.userId, userId)));
    return row && row.f.status === 'ready' && row.f.sha256 ? row : undefined;
  };

  /**
   * One streamed response; HEAD gets the same headers (Hono drops the body). The file is
   * content-addressed, so it never changes under its ETag: clients may keep it for as long
   * as a link lives (`immutable`), revalidate it with If-None-Match (304), and read byte
   * ranges of it (PDF viewers do). Its Content-Type is this document's (`contentType`),
   * not the one stored with the first copy of the same bytes.
   */
  const serve = async (req: Request, sha256: string, name: string, thumbnail: boolean, contentType?: string | null) => {
    const blob = await store.stat(sha256);
    if (!blob) throw notFound('file');
    const type = contentType || blob.contentType;
    const inline = thumbnail || type === 'application/pdf' || type.startsWith('image/');
    const etag = `"${blob.sha256}"`;
    const headers: Record<string, string> = {
      'content-type': type,
      'content-disposition': contentDisposition(inline ? 'inline' : 'attachment', downloadName(name, type, thumbnail)),
      etag,
      'cache-control': `private, max-age=${deps.config.linkTtlS}, immutable`,
      'accept-ranges': 'bytes',
      // Provider HTML must never run as a page of ours.
      'x-content-type-options': 'nosniff',
      'content-security-policy': "sandbox; default-src 'none'",
    };
    if (matchesIfNoneMatch(req.headers.get('if-none-match') ?? undefined, etag)) {
      return new Response(null, { status: 304, headers });
    }
    // A Range under an If-Range that names another version gets the whole file (§13.1.5).
    const ifRange = req.headers.get('if-range');
    const range = ifRange && ifRange !== etag ? undefined : parseRange(req.headers.get('range') ?? undefined, blob.size);
    if (range === 'unsatisfiable') {
      const body: ErrorBody = { error: { code: 'range_not_satisfiable', message: `the file has ${blob.size} bytes` } };
      return Response.json(body, { status: 416, headers: { 'content-range': `bytes */${blob.size}` } });
    }
    const chunks = store.read(sha256, range)[Symbol.asyncIterator]();
    const stream = new ReadableStream<Uint8Array>({
      // Pulled one chunk at a time: a slow client holds one chunk in memory, not the file.
      async pull(controller) {
        const next = await chunks.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      async cancel() {
        await chunks.return?.();
      },
    });
    if (range) {
      headers['content-range'] = `bytes ${range.start}-${range.end}/${blob.size}`;
      headers['content-length'] = String(range.end - range.start + 1);
      return new Response(stream, { status: 206, headers });
    }
    headers['content-length'] = String(blob.size);
    return new Response(stream, { status: 200, headers });
  };

  const byLink = (variant: FileVariant) => async (req: Request, id: string, exp?: string, sig?: string) => {
    if (!DOC_ID.test(id) || !verifyFileLink(deps.config.linkSecret, variant, Number(id), exp, sig)) {
      throw new AppError('invalid_link', 'this file link is invalid or has expired');
    }
    const row = await readyFile(Number(id));
    const sha = variant === 'file' ? row?.f.sha256 : row?.f.thumbnailSha256;
    if (!row || !sha) throw notFound('file');
    const thumb = variant === 'thumbnail';
    return serve(req, sha, row.name ?? `document-${id}`, thumb, thumb ? undefined : row.f.contentType);
  };
  const file = byLink('file');
  const thumbnail = byLink('thumbnail');

  return newRouter()
    .openapi(fileByLink, async (c) => {
      const { exp, sig } = c.req.valid('query');
      return file(c.req.raw, c.req.valid('param').id, exp, sig);
    })
    .openapi(thumbnailByLink, async (c) => {
      const { exp, sig } = c.req.valid('query');
      return thumbnail(c.req.raw, c.req.valid('param').id, exp, sig);
    })
    .openapi(fileOfUser, async (c) => {
      const { u, id } = c.req.valid('param');
      const userId = await resolveUser(deps, c, u);
      if (!DOC_ID.test(id)) throw notFound('document');
      const row = await readyFile(Number(id), userId);
      if (!row) throw notFound('file');
      return serve(c.req.raw, row.f.sha256!, row.name ?? `document-${id}`, false, row.f.contentType);
    });
}
