import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

// `npm run demo` end to end (issue 13, "See it work in one command"): the demo, as a child
// process, starts its provider site, receiver, mail server and the real service, sends the
// three syncs, and (DEMO_EXIT_AFTER=1) stops once the bill was delivered and mailed.
let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});

it('npm run demo delivers the bill to a verifying receiver and by mail, then prints the operator page', async () => {
  const run = fileURLToPath(new URL('../demo/run.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', run], {
    env: { ...process.env, DATABASE_URL: database.url, DATA_DIR: mkdtempSync(join(tmpdir(), 'docrelay-demo-')), DEMO_EXIT_AFTER: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code, out).toBe(0);

  const lines = out.split('\n');
  const received = (type: string) => lines.find((l) => l.startsWith('receiver') && l.includes(`signature verified`) && l.includes(` ${type}: `));
  expect(received('document.created')).toMatch(/document 9001 "Facture Acme 023315" \(bill\) 42.5 EUR, file ready: http:\/\/127\.0\.0\.1:\d+\/files\//);
  expect(received('subscription.deleted')).toMatch(/subscription 502 "Compte joint"/);
  expect(lines.find((l) => l.startsWith('mail'))).toMatch(/to john\.doe@demo\.test: ".*Facture Acme 023315.*" — .*\.pdf \(application\/pdf, \d+ bytes\)/);
  expect(lines.filter((l) => l.startsWith('provider'))).toEqual(expect.arrayContaining([
    expect.stringMatching(/GET \/bills\/023315\.pdf → 200 application\/pdf/),
    expect.stringMatching(/GET \/contracts\/EZ4225\.html → 200 text\/html/),
  ]));
  expect(out).toMatch(/captcha \{"status":"retrying","attempts":1/);
  expect(out).toMatch(/Operator page: http:\/\/127\.0\.0\.1:\d+\//);
  expect(out).toMatch(/Admin token: +\S{20,}/);
  expect(out).not.toMatch(/SIGNATURE REFUSED/);
}, 180_000);
