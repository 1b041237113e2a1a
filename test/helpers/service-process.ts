import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/db/embedded.js';
import { ADMIN_TOKEN, INBOUND_SECRET } from './context.js';
import { waitUntil } from './receiver.js';

/** The real service (src/main.ts) in a process of its own, as it runs in production. */
export interface ServiceProcess {
  child: ChildProcess;
  /** http://127.0.0.1:port, for `web` and `all` */
  baseUrl: string;
  output(): string;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

const main = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

/** `built`: the path of a main.js (helpers/built-service.ts) to run instead of src/main.ts through tsx. */
export async function startServiceProcess(databaseUrl: string, role: 'web' | 'worker' | 'all', env: Record<string, string> = {}, built?: string): Promise<ServiceProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [...(built ? [built] : ['--import', 'tsx', main]), `--role=${role}`], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      DATA_DIR: mkdtempSync(join(tmpdir(), 'docrelay-proc-')),
      ADMIN_TOKEN,
      INBOUND_WEBHOOK_SECRET: INBOUND_SECRET,
      LINK_SECRET: 'test-link-secret-0123456789',
      FETCH_ALLOW_PRIVATE_NETWORKS: '1',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = (o: string) => (role === 'worker' || o.includes('API listening')) && (role === 'web' || o.includes('worker started'));
  await Promise.race([
    waitUntil(async () => ready(output), 60_000, `the ${role} process to start`),
    exited.then((code) => { throw new Error(`${role} process exited ${code}: ${output.slice(-2000)}`); }),
  ]);
  return {
    child,
    baseUrl: `http://127.0.0.1:${port}`,
    output: () => output,
    exited,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
