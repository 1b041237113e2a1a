import { createCanvas, loadImage } from '@napi-rs/canvas';
import type { JobHelpers } from 'graphile-worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { HtmlRenderer } from '../src/files/chromium.js';
import { declaredDimensions } from '../src/files/image.js';
import { createFileServices, type FileServices } from '../src/files/services.js';
import { fetchDocumentFile } from '../src/files/tasks.js';
import { renderThumbnails } from '../src/files/thumbnail-job.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { send, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { syncedPayload } from './helpers/webhooks.js';

// PNG and JPEG documents get a thumbnail, drawn in the thumbnail thread with its limits;
// an image that declares more pixels than the limit is refused before it is decoded.

/** A real image: red left half, blue right half. */
function picture(width: number, height: number, mime: 'image/png' | 'image/jpeg'): Buffer {
  const canvas = createCanvas(width, height);
  const c = canvas.getContext('2d');
  c.fillStyle = '#ff0000';
  c.fillRect(0, 0, width / 2, height);
  c.fillStyle = '#0000ff';
  c.fillRect(width / 2, 0, width / 2, height);
  return mime === 'image/png' ? canvas.toBuffer('image/png') : canvas.toBuffer('image/jpeg', 90);
}

/** A PNG of a few hundred bytes whose header declares `side` × `side` pixels. */
function bombPng(side: number): Buffer {
  const png = picture(4, 4, 'image/png');
  png.writeUInt32BE(side, 16);
  png.writeUInt32BE(side, 20);
  return png;
}

/** A JPEG whose frame header (SOF) declares `side` × `side` pixels. */
function bombJpeg(side: number): Buffer {
  const jpeg = Buffer.from(picture(16, 16, 'image/jpeg'));
  for (let i = 2; i < jpeg.length; ) {
    const marker = jpeg[i + 1];
    if (marker >= 0xc0 && marker <= 0xc3) {
      jpeg.writeUInt16BE(side, i + 5);
      jpeg.writeUInt16BE(side, i + 7);
      return jpeg;
    }
    i += 2 + jpeg.readUInt16BE(i + 2);
  }
  throw new Error('no SOF in the JPEG');
}

async function pixel(png: Buffer, x: number, y: number) {
  const img = await loadImage(png);
  const canvas = createCanvas(img.width, img.height);
  canvas.getContext('2d').drawImage(img, 0, 0);
  return [...canvas.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3)];
}

describe('declaredDimensions', () => {
  it('reads the size from a PNG IHDR and a JPEG frame header', () => {
    expect(declaredDimensions(picture(640, 480, 'image/png'))).toEqual({ width: 640, height: 480 });
    expect(declaredDimensions(picture(640, 480, 'image/jpeg'))).toEqual({ width: 640, height: 480 });
    expect(declaredDimensions(bombJpeg(60_000))).toEqual({ width: 60_000, height: 60_000 });
    expect(declaredDimensions(Buffer.from('%PDF-1.4'))).toBeNull();
    expect(declaredDimensions(Buffer.from([0xff, 0xd8, 0xff, 0xd9]))).toBeNull();
  });
});

describe('image thumbnails in the thumbnail thread', () => {
  let files: FileServices;
  let small: FileServices;
  beforeAll(() => {
    const config = loadConfig({ ADMIN_TOKEN: 'x'.repeat(20), LINK_SECRET: 'y'.repeat(20), DATA_DIR: '/tmp/docrelay-image-thumbs' });
    // No page is rendered here: the renderers are never started.
    files = createFileServices(config, new HtmlRenderer(undefined));
    small = createFileServices(config, new HtmlRenderer(undefined), { maxImageSize: 10_000, maxHeapMb: 256, timeoutMs: 30_000 });
  });
  afterAll(async () => {
    await files.close();
    await small.close();
  });

  it.each(['image/png', 'image/jpeg'] as const)('draws a %s 300 wide, keeping its proportions and its picture', async (mime) => {
    const png = await files.imageThumbnail(picture(1200, 900, mime));
    expect(declaredDimensions(png)).toEqual({ width: 300, height: 225 });
    const [red, blue] = [await pixel(png, 40, 100), await pixel(png, 260, 100)];
    expect(red[0]).toBeGreaterThan(200);
    expect(red[2]).toBeLessThan(50);
    expect(blue[2]).toBeGreaterThan(200);
    expect(blue[0]).toBeLessThan(50);
  });

  it('does not enlarge a small image', async () => {
    expect(declaredDimensions(await files.imageThumbnail(picture(120, 80, 'image/png')))).toEqual({ width: 120, height: 80 });
  });

  it('refuses, before decoding, an image that declares more pixels than the limit', async () => {
    await expect(files.imageThumbnail(bombPng(100_000))).rejects.toThrow('declares 100000 × 100000 pixels');
    await expect(files.imageThumbnail(bombJpeg(60_000))).rejects.toThrow('declares 60000 × 60000 pixels');
    // The limit is the thumbnailer's: a real 200 × 200 image is over 10,000 pixels.
    await expect(small.imageThumbnail(picture(200, 200, 'image/png'))).rejects.toThrow('more than 10000');
    expect(declaredDimensions(await small.imageThumbnail(picture(100, 100, 'image/png')))).toEqual({ width: 100, height: 100 });
    // The thread is still there for the next one.
    expect(declaredDimensions(await files.imageThumbnail(picture(600, 600, 'image/jpeg')))).toEqual({ width: 300, height: 300 });
  });
});

describe('an image document', () => {
  let ctx: TestContext;
  let site: ProviderSite;
  beforeAll(async () => {
    ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
    site = await startProviderSite();
  });
  afterAll(async () => {
    await ctx.close();
    await site.close();
  });

  let nextId = 31_000;
  const id = () => ++nextId;
  async function settle(path: string, body: Buffer, mime: string) {
    site.route(path, send(body, mime));
    const u = id(), d = id();
    const res = await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: u, connectionId: id(), subscriptions: [{ id: id(), documents: [{ id: d, url: site.url(path) }] }] }));
    expect(res.status).toBe(200);
    await fetchDocumentFile(ctx.deps)({ documentId: d }, { job: { attempts: 1, max_attempts: 25 } } as unknown as JobHelpers);
    await renderThumbnails(ctx.deps)([d], {} as JobHelpers); // drawn after the file is ready
    return (await (await ctx.request('GET', `/users/${u}/documents/${d}`)).json()) as {
      thumb_url: string | null;
      file: { status: string; content_type: string };
    };
  }

  it.each([['/scan.png', 'image/png'], ['/receipt.jpg', 'image/jpeg']] as const)('%s is ready with a PNG thumbnail', async (path, mime) => {
    const doc = await settle(path, picture(1000, 1400, mime), mime);
    expect(doc.file).toMatchObject({ status: 'ready', content_type: mime });
    expect(doc.thumb_url).not.toBeNull();
    const thumb = await ctx.app.request(doc.thumb_url!.slice(ctx.config.publicUrl.length));
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/png');
    expect(declaredDimensions(Buffer.from(await thumb.arrayBuffer()))).toEqual({ width: 300, height: 420 });
  });

  it('that declares too many pixels is ready without a thumbnail', async () => {
    const doc = await settle('/bomb.png', bombPng(100_000), 'image/png');
    expect(doc.file).toMatchObject({ status: 'ready', content_type: 'image/png' });
    expect(doc.thumb_url).toBeNull();
  });
});
