import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildService } from './helpers/built-service.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { startServiceProcess, type ServiceProcess } from './helpers/service-process.js';

/**
 * Issue 9: 30 concurrent unsigned uploads of 60 MiB each must not take the service's
 * memory. The real web process (`--role=web`, as Fly runs the API apart from the worker),
 * run as the image runs it (built JavaScript, helpers/built-service.ts: no TypeScript
 * loader in the figure) in a child process; its peak resident set (VmHWM of
 * /proc/<pid>/status) is read after the uploads. Each upload is streamed from a
 * generator: the test holds no body in memory either.
 */
const UPLOADS = 30;
const UPLOAD_BYTES = 60 * 1024 * 1024;
/** The target: the process's peak resident set, all included. */
const MAX_PEAK = 200 * 1024 * 1024;
/**
 * What the uploads may add to the idle process (unbounded reads took ~1.9 GiB). The bodies
 * Node discards after an early 401 are garbage V8 collects in bursts: the growth is that
 * garbage, some 20 to 60 MiB depending on when the collector runs.
 */
const MAX_GROWTH = 64 * 1024 * 1024;

let ctx: TestContext;
let service: ServiceProcess;
let port: number;
beforeAll(async () => {
  ctx = await createTestContext();
  // The web role neither imports nor builds the worker's file services (main.ts).
  service = await startServiceProcess(ctx.database.url, 'web', {}, buildService());
  port = Number(new URL(service.baseUrl).port);
});
afterAll(async () => {
  await service?.kill();
  await ctx.close();
});

const memory = (pid: number) => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
};

/** 60 MiB of JSON-looking bytes, 64 KiB at a time, made as they are sent. */
async function* sixtyMiB() {
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  yield Buffer.from('{"connection": "');
  for (let sent = 0; sent < UPLOAD_BYTES; sent += chunk.length) yield chunk;
  yield Buffer.from('"}');
}

/** One upload: the status of the answer (the upload is dropped as soon as it comes), or the error. */
function upload(): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/webhooks/powens/CONNECTION_SYNCED',
      headers: { 'content-type': 'application/json', 'content-length': String(UPLOAD_BYTES + 18) },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode!);
      req.destroy();
    });
    req.on('error', (err) => resolve(`error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    Readable.from(sixtyMiB()).on('error', () => {}).pipe(req);
  });
}

it(`${UPLOADS} concurrent unsigned 60 MiB uploads: all 401, the web process's peak RSS under 200 MiB and at most 64 MiB over its idle RSS`, async () => {
  const before = memory(service.child.pid!);
  const statuses = await Promise.all(Array.from({ length: UPLOADS }, upload));
  const after = memory(service.child.pid!);
  console.log(`web process RSS: ${mib(before.rss)} idle, ${mib(after.rss)} after, peak ${mib(after.peak)} (limits: peak ${mib(MAX_PEAK)}, growth ${mib(MAX_GROWTH)})`);
  expect(statuses).toEqual(Array(UPLOADS).fill(401));
  expect(after.peak).toBeLessThan(MAX_PEAK);
  expect(after.peak - before.rss).toBeLessThan(MAX_GROWTH);
  // Still serving.
  expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
}, 120_000);

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
