import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';

// Issue 14, deploy: no Docker daemon here, so the files are read. `docker build` and
// `fly deploy` send the build context minus .dockerignore; the Dockerfile's COPY lines take
// from it. Neither may bring secrets, the embedded database or this machine's node_modules.
const repo = fileURLToPath(new URL('..', import.meta.url));
const dockerfile = readFileSync(join(repo, 'Dockerfile'), 'utf8');

/** .dockerignore as Docker reads it: Go path patterns (`*`, `?`, `**`), `!` exceptions, last match wins, a match on a folder covers what is inside. */
function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
      const source = pattern
        .split(/(\*\*\/?|\*|\?)/)
        .map((part) => (part === '**/' ? '(?:.*/)?' : part === '**' ? '.*' : part === '*' ? '[^/]*' : part === '?' ? '[^/]' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
        .join('');
      return { negate, re: new RegExp(`^${source}$`) };
    });
  return (path) => {
    const parts = path.split('/');
    const selfAndParents = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let ignored = false;
    for (const { negate, re } of rules) if (selfAndParents.some((p) => re.test(p))) ignored = !negate;
    return ignored;
  };
}

/** Sources of every COPY that reads the build context (not `--from=` another stage). */
function contextCopies(): string[] {
  const sources: string[] = [];
  for (const line of dockerfile.replace(/\\\n/g, ' ').split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0]?.toUpperCase() !== 'COPY' && words[0]?.toUpperCase() !== 'ADD') continue;
    const args = words.slice(1).filter((w) => !w.startsWith('--'));
    if (words.some((w) => w.startsWith('--from='))) continue;
    sources.push(...args.slice(0, -1).map((s) => s.replace(/^\.\//, '').replace(/\/$/, '') || '.'));
  }
  return sources;
}

const brings = (source: string, path: string) => source === '.' || path === source || path.startsWith(`${source}/`) || dockerignore(source)(path);

const NEVER = [
  '.data/secrets/admin_token',
  '.data/secrets/link_secret',
  '.data/postgres/pgdata/PG_VERSION',
  '.env',
  '.env.production',
  'src/.env',
  'src/.env.local',
  'node_modules/hono/package.json',
  'src/node_modules/x/index.js',
  '.git/config',
  'dist/src/main.js',
  'npm-debug.log',
  'coverage/index.html',
];

describe('the image build', () => {
  const ignored = dockerignore(readFileSync(join(repo, '.dockerignore'), 'utf8'));

  it('sends no secret, database, node_modules or history to the builder', () => {
    expect(NEVER.filter((p) => !ignored(p))).toEqual([]);
  });

  it("whose COPY lines bring nothing of that, and find everything they name", () => {
    const sources = contextCopies();
    expect(sources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'src', 'drizzle']));
    for (const source of sources) {
      expect(existsSync(join(repo, source)), source).toBe(true);
      expect(ignored(source), `${source} is in .dockerignore`).toBe(false);
      expect(NEVER.filter((p) => brings(source, p) && !ignored(p)), source).toEqual([]);
    }
    // What the build reads inside src/ is sent (a pattern too broad would break the build).
    expect(['src/main.ts', 'drizzle/meta/_journal.json', 'tsconfig.build.json'].filter(ignored)).toEqual([]);
  });

  it('copies each file: dependency before npm ci, and into the runtime image its link points to', () => {
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const local = Object.values(pkg.dependencies).filter((v) => v.startsWith('file:')).map((v) => v.slice('file:'.length).split('/')[0]);
    expect(local.length).toBeGreaterThan(0);
    const stages = dockerfile.split(/^FROM\s/m).slice(1);
    for (const dir of new Set(local)) {
      for (const stage of stages.filter((s) => /^RUN npm ci/m.test(s))) {
        const copied = stage.search(new RegExp(`^COPY\\s+${dir}\\s`, 'm'));
        expect(copied, `${dir} copied in a stage that runs npm ci`).toBeGreaterThan(-1);
        expect(copied).toBeLessThan(stage.search(/^RUN npm ci/m));
      }
      expect(stages.at(-1)).toMatch(new RegExp(`^COPY --from=\\w+ /app/${dir} `, 'm'));
    }
  });

  it('runs on the Node major the suite runs on', () => {
    const majors = [...dockerfile.matchAll(/^FROM\s+node:(\d+)/gim)].map((m) => Number(m[1]));
    expect(majors.length).toBeGreaterThan(0);
    expect(new Set(majors)).toEqual(new Set([Number(process.versions.node.split('.')[0])]));
  });

  it('the matcher reads .dockerignore as Docker does', () => {
    const m = dockerignore('*.log\n**/secret\nlogs\n!logs/keep.txt\n/build/');
    expect([m('a.log'), m('sub/a.log'), m('x/y/secret'), m('secret'), m('logs/a'), m('logs/keep.txt'), m('build/x')]).toEqual([true, false, true, true, true, false, true]);
  });
});

describe('shutdown', () => {
  it("gives up on running jobs (SHUTDOWN_TIMEOUT_S, then at most 15 s more) before fly.toml's kill_timeout", () => {
    const killTimeoutS = Number(/^kill_timeout\s*=\s*"(\d+)s"/m.exec(readFileSync(join(repo, 'fly.toml'), 'utf8'))![1]);
    const { shutdownTimeoutS } = loadConfig({ DATA_DIR: mkdtempSync(join(tmpdir(), 'docrelay-deploy-')) });
    expect(shutdownTimeoutS + 15).toBeLessThan(killTimeoutS);
  });
});

describe('production start', () => {
  it('refuses to start without PUBLIC_URL: exit 78 and a message naming it', () => {
    const main = join(repo, 'src', 'main.ts');
    const run = spawnSync(process.execPath, ['--import', 'tsx', main], {
      env: { PATH: process.env.PATH, NODE_ENV: 'production', ADMIN_TOKEN: 'a'.repeat(24), LINK_SECRET: 'b'.repeat(24), INBOUND_WEBHOOK_SECRET: 'c'.repeat(24), DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status, run.stderr).toBe(78);
    expect(run.stderr).toContain('PUBLIC_URL must be set when NODE_ENV=production');
  });
});
