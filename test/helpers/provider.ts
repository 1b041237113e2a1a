import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { constants, deflateRawSync } from 'node:zlib';
import { concatTransformationMatrix, drawObject, PDFDocument, PDFName, popGraphicsState, pushGraphicsState, StandardFonts } from 'pdf-lib';

/**
 * A provider's website on loopback (node:http), playing the bill download pages that
 * document URLs point to. Each path has a handler that also gets how many times that path
 * was hit, so "500 then success" is a handler away; every TCP connection is counted.
 */
export type ProviderHandler = (req: IncomingMessage, res: ServerResponse, hit: number) => unknown;

export interface ProviderSite {
  /** http://127.0.0.1:port (or http://[::1]:port) */
  origin: string;
  port: number;
  url(path: string): string;
  route(path: string, handler: ProviderHandler): void;
  hits(path: string): number;
  /** TCP connections accepted since start. */
  connections(): number;
  close(): Promise<void>;
}

export async function startProviderSite(host = '127.0.0.1'): Promise<ProviderSite> {
  const routes = new Map<string, ProviderHandler>();
  const hitCount = new Map<string, number>();
  let connections = 0;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const n = (hitCount.get(path) ?? 0) + 1;
    hitCount.set(path, n);
    const handler = routes.get(path);
    if (!handler) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    Promise.resolve(handler(req, res, n)).catch((err) => {
      res.destroy(err as Error);
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  const origin = host.includes(':') ? `http://[${host}]:${port}` : `http://${host}:${port}`;
  return {
    origin,
    port,
    url: (path) => `${origin}${path}`,
    route: (path, handler) => void routes.set(path, handler),
    hits: (path) => hitCount.get(path) ?? 0,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A real PDF with one line of text per page, padded to about `padTo` bytes if asked. */
export async function makePdf(lines: string[], opts: { padTo?: number } = {}): Promise<Buffer> {
  const doc = await PDFDocument.create();
  const font = await doc.embedFont(StandardFonts.Helvetica);
  for (const line of lines) {
    const page = doc.addPage([595, 842]);
    page.drawText(line, { x: 50, y: 780, size: 20, font });
  }
  if (opts.padTo) {
    // Filler in an unreferenced stream object: written out as is, still a valid PDF.
    const base = (await doc.save({ useObjectStreams: false })).length;
    const filler = new Uint8Array(Math.max(0, opts.padTo - base - 40));
    for (let i = 0; i < filler.length; i++) filler[i] = 0x41 + ((i * 7919) % 26);
    doc.context.register(doc.context.stream(filler));
  }
  return Buffer.from(await doc.save({ useObjectStreams: false }));
}

/**
 * A small PDF (a few MB) whose one page holds one `side` × `side` RGB image of zeros, which
 * a reader decodes to `3 × side²` bytes (2.7 GB at 30000 px), then more to draw it.
 */
export async function makeHugeImagePdf(side = 30_000): Promise<Buffer> {
  const doc = await PDFDocument.create();
  const page = doc.addPage([595, 842]);
  const image = doc.context.register(
    doc.context.stream(zerosFlate(side * side * 3), {
      Type: 'XObject',
      Subtype: 'Image',
      Width: side,
      Height: side,
      ColorSpace: 'DeviceRGB',
      BitsPerComponent: 8,
      Filter: 'FlateDecode',
    }),
  );
  page.node.setXObject(PDFName.of('Huge'), image);
  page.pushOperators(pushGraphicsState(), concatTransformationMatrix(595, 0, 0, 842, 0, 0), drawObject('Huge'), popGraphicsState());
  return Buffer.from(await doc.save({ useObjectStreams: false }));
}

/**
 * A zlib stream of `n` zero bytes, built without compressing them all: one MiB of zeros is
 * deflated once, ending on a full flush (byte-aligned, no reference to earlier data), and
 * that block is repeated; then an empty final block and the Adler-32 of n zeros.
 */
function zerosFlate(n: number): Buffer {
  const MiB = 1 << 20;
  const raw = (len: number) => {
    const d = deflateRawSync(Buffer.alloc(len), { level: 9, finishFlush: constants.Z_FULL_FLUSH });
    return d;
  };
  const block = raw(MiB);
  const parts: Buffer[] = [Buffer.from([0x78, 0xda])];
  for (let i = 0; i < Math.floor(n / MiB); i++) parts.push(block);
  if (n % MiB) parts.push(raw(n % MiB));
  parts.push(Buffer.from([0x03, 0x00])); // final, empty, fixed-Huffman block
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE((((n % 65521) << 16) | 1) >>> 0); // a = 1, b = n: the sum of n ones
  parts.push(adler);
  return Buffer.concat(parts);
}

/** Answer with a body and a Content-Type (which may lie on purpose). */
export const send =
  (body: Buffer | string, contentType: string, extra: Record<string, string> = {}): ProviderHandler =>
  (_req, res) => {
    res.writeHead(200, { 'content-type': contentType, 'content-length': String(Buffer.byteLength(body)), ...extra });
    res.end(body);
  };
