import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/db/embedded.js';
import { powensSignature } from '../src/inbound/signature.js';
import { startMailCatcher, startProviderSite, startReceiver, type Say } from './parts.js';

/**
 * `npm run demo` — docrelay end to end on this machine, every part real: a provider's site
 * serving a PDF bill and an HTML contract, a webhook receiver that verifies svix
 * signatures, a mail server, and the service itself (src/main.ts, API and worker) on the
 * embedded database (or DATABASE_URL). Through the API it creates a webhook endpoint and an
 * email recipient, then sends three signed Powens syncs (the shared fixtures): a new bill,
 * a sync that archives a subscription, a captcha failure. It prints what each party sees,
 * then the operator page's address and token, and runs until Ctrl-C (DEMO_EXIT_AFTER=1:
 * it stops once the bill was delivered and mailed, for the test).
 *
 * FETCH_ALLOW_PRIVATE_NETWORKS=1 is given to this service only: the provider and receiver
 * are on loopback, which a real deployment refuses.
 */
const say: Say = (who, line) => console.log(`${who.padEnd(8)} ${line}`);
const exitAfter = process.env.DEMO_EXIT_AFTER === '1';
const dataDir = resolve(process.env.DATA_DIR ?? '.data/demo');
mkdirSync(dataDir, { recursive: true });
const tokenFile = join(dataDir, 'demo_admin_token');
if (!existsSync(tokenFile)) writeFileSync(tokenFile, randomBytes(24).toString('base64url'), { mode: 0o600 });
const token = readFileSync(tokenFile, 'utf8').trim();

const [provider, receiver, mail] = await Promise.all([startProviderSite(say), startReceiver(say), startMailCatcher(say)]);
const port = process.env.PORT ? Number(process.env.PORT) : await freePort();
const base = `http://127.0.0.1:${port}`;
const logFile = join(dataDir, 'service.log');
say('demo', `starting docrelay on ${base} (${process.env.DATABASE_URL ? 'DATABASE_URL' : `embedded PostgreSQL in ${dataDir}`}); its log: ${logFile}`);
const service = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../src/main.ts', import.meta.url)), '--role=all'], {
  env: {
    ...process.env,
    DATA_DIR: dataDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: base,
    ADMIN_TOKEN: token,
    INBOUND_WEBHOOK_SECRET: token,
    SMTP_URL: mail.url,
    MAIL_FROM: 'docrelay demo <docrelay@demo.test>',
    FETCH_ALLOW_PRIVATE_NETWORKS: '1',
    LOG_LEVEL: 'info',
  },
  stdio: ['ignore', 'pipe', 'pipe'],
  // A process group of its own: Ctrl-C in the terminal signals the whole foreground group,
  // and would stop the embedded PostgreSQL under the service's feet while it drains. Ctrl-C
  // reaches the demo only, which stops the service with SIGTERM.
  detached: true,
});
process.on('exit', () => service.exitCode === null && service.kill('SIGKILL'));
let output = '';
const keep = (d: Buffer) => ((output += d), appendFileSync(logFile, d));
service.stdout.on('data', keep);
service.stderr.on('data', keep);
let stopping = false;
service.on('exit', (code) => {
  if (stopping) return;
  say('demo', `docrelay exited (${code}); the end of its log:\n${output.slice(-3000)}`);
  process.exit(1);
});

const stop = async (code: number) => {
  stopping = true;
  const exited = new Promise((resolve) => (service.exitCode !== null ? resolve(null) : service.once('exit', resolve)));
  service.kill('SIGTERM');
  const killer = setTimeout(() => service.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(killer);
  await Promise.all([provider.close(), receiver.close(), mail.close()]);
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

const until = async (what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 120_000) => {
  for (const end = Date.now() + timeoutMs; !(await ok()); ) {
    if (Date.now() > end) {
      say('demo', `gave up waiting for ${what}; see ${logFile}`);
      return stop(1);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
};
const api = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json().catch(() => null)) as any };
};

await until('docrelay to start', () => output.includes('worker started') && output.includes('API listening'));

// Ids not used yet in this database: a second run (same DATABASE_URL or data) gets its own.
const fixtures = fileURLToPath(new URL('../test/fixtures/powens/', import.meta.url));
let offset = 0;
while ((await api('GET', `/users/${7 + offset}/connections/${31 + offset}`)).status !== 404) offset += 1000;
const userId = 7 + offset;
const fixture = (name: string) => {
  const text = readFileSync(join(fixtures, `${name}.json`), 'utf8').replaceAll('https://provider.example', provider.origin);
  const shift = (k: string, v: unknown) => (/^(id|id_user|id_connection|id_subscription|id_webhook_data)$/.test(k) && typeof v === 'number' ? v + offset : v);
  return JSON.parse(text, shift);
};

say('demo', `captcha tracking on, webhook endpoint, email recipient for user ${userId} — through the API`);
await api('POST', '/config', { 'captcha.enabled': '1' });
// The receiver of an earlier run is gone with it: its endpoint would only fail.
for (const e of (await api('GET', '/webhook-endpoints')).body.endpoints) if (e.description === 'demo receiver') await api('DELETE', `/webhook-endpoints/${e.id}`);
const endpoint = await api('POST', '/webhook-endpoints', { url: receiver.url, description: 'demo receiver' });
receiver.state.secret = endpoint.body.secret;
await api('PUT', `/users/${userId}/email-delivery`, { to: 'john.doe@demo.test' });

const send = async (what: string, event: string, payload: unknown) => {
  const path = `/webhooks/powens/${event}`;
  const raw = JSON.stringify(payload);
  const date = new Date().toISOString();
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'bi-signature-date': date, 'bi-signature': powensSignature(token, 'POST', path, date, Buffer.from(raw)) },
    body: raw,
  });
  say('powens', `${event} (${what}) → ${res.status} ${await res.text()}`);
};

const synced = fixture('CONNECTION_SYNCED');
await send('a new bill and a contract', 'CONNECTION_SYNCED', synced);
const later = structuredClone(synced);
later.id_webhook_data += 1;
later.connection.last_update = '2026-11-20 18:00:00';
later.connection.subscriptions = [{ ...later.connection.subscriptions[0], documents: [] }];
await send('subscription "Compte joint" is gone', 'CONNECTION_SYNCED', later);
await send('a captcha stopped the sync', 'CONNECTION_SYNCED', fixture('CONNECTION_SYNCED_captcha'));

const got = (type: string) => receiver.state.deliveries.some((d) => d.verified && d.type === type);
await until('the bill to be delivered and mailed', () => got('document.created') && got('subscription.deleted') && mail.mails.length > 0);
const conn = await api('GET', `/users/${userId}/connections/${31 + offset}`);
say('demo', `connection ${31 + offset}: captcha ${JSON.stringify(conn.body.captcha)}`);

console.log(`
Operator page: ${base}/   (sign in with the admin token below)
Admin token:   ${token}
Try:           curl -s ${base}/users/${userId}/documents -H "Authorization: Bearer ${token}"
${exitAfter ? '' : 'Ctrl-C stops the demo.'}`);
if (exitAfter) await stop(0);
