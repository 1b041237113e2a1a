import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestContext, fixture, ADMIN_TOKEN, INBOUND_SECRET, type TestContext } from './helpers/context.js';
import { powensHeaders } from './helpers/webhooks.js';

/**
 * CONTRACT.md §2: no input, however malformed, answers a 5xx, and a refused request writes
 * nothing. This walks every route of the app's own /openapi.json (so a new route is walked
 * without anyone adding it here) and sends, as the admin, one hostile value at a time in each
 * path parameter, each query parameter and each JSON body field (nested ones included), the
 * rest of the request being a valid baseline built from the schema's examples. Inbound
 * webhooks are signed over the hostile bodies, so they get past the signature check.
 *
 * For every answer: not a 5xx; a 4xx has the one error shape and, for a field, names it; a
 * refusal or a GET leaves every row of every table (and the job queue) as it was.
 */
let ctx: TestContext;
const SEED_USER = '7';
const stats = { routes: 0, cases: 0 };

beforeAll(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1', INBOUND_SIGNATURE_TOLERANCE_S: '0' });
  // A user with a connection, a subscription and a document, so that hostile queries reach SQL.
  expect((await ctx.sendWebhook('CONNECTION_SYNCED', fixture('CONNECTION_SYNCED'))).status).toBe(200);
  const [row] = await ctx.database.sql`select user_id from connections limit 1`;
  expect(String(row.user_id)).toBe(SEED_USER);
});
afterAll(() => ctx.close());

// ---------------------------------------------------------------------------------------
// The corpus. A JSON value is written into the body as raw JSON text, so that values JSON.stringify
// cannot produce (1e400, -0, deep nesting, 30-digit integers) arrive as a client would send them.
const MB = 'x'.repeat(1 << 20);
const deep = (n: number, open: string, close: string, inner = '1') => open.repeat(n) + inner + close.repeat(n);
const str = (s: string) => JSON.stringify(s);
const hostileJson: [name: string, raw: string][] = [
  ['NUL', str('a\u0000b')],
  ['lone high surrogate', '"\\ud800"'],
  ['lone low surrogate', '"x\\udfff"'],
  ['1 MB string', str(MB)],
  ['empty string', str('')],
  ['impossible date', str('2026-02-30')],
  ['date 0000-00-00', str('0000-00-00')],
  ['year 0000', str('0000-01-01')],
  ['year 0000 datetime', str('0000-01-01T00:00:00Z')],
  ['naive year 0000', str('0000-06-01 12:00:00')],
  ['year 10000 once in UTC', str('9999-12-31T23:30:00-01:00')],
  ['year 275760', str('+275760-09-13T00:00:00Z')],
  ['month 13', str('2026-13-01')],
  ['"NaN"', str('NaN')],
  ['"1e999"', str('1e999')],
  ['numeric string past 2^53', str('9007199254740993')],
  ['zero', '0'],
  ['negative', '-1'],
  ['negative zero', '-0'],
  ['fraction', '1.5'],
  ['2^53', '9007199254740992'],
  ['2^63', '9223372036854775808'],
  ['30 digits', '123456789012345678901234567890'],
  ['1e308', '1e308'],
  ['1e400 (Infinity)', '1e400'],
  ['1e-400', '1e-400'],
  ['null', 'null'],
  ['empty array', '[]'],
  ['empty object', '{}'],
  ['array of NUL', `[${str('\u0000')}]`],
  ['deep array', deep(5000, '[', ']')],
  ['deep object', deep(5000, '{"a":', '}')],
  ['__proto__ object', '{"__proto__":{"polluted":1}}'],
];

/** Path and query values, URL-encoded as they would be on the wire. */
const hostileUrl: [name: string, raw: string][] = [
  ['NUL', '%00'],
  ['embedded NUL', 'a%00b'],
  ['lone surrogate (CESU-8 bytes)', '%ED%A0%80'],
  ['truncated UTF-8', '%F0%9F%98'],
  ['%u escape', '%uD800'],
  ['bare %', '%'],
  ['bad escape', '%zz'],
  ['empty', ''],
  ['zero', '0'],
  ['negative', '-1'],
  ['fraction', '1.5'],
  ['exponent', '1e3'],
  ['hex', '0x10'],
  ['leading space', '%201'],
  ['trailing newline', '1%0A'],
  ['NaN', 'NaN'],
  ['Infinity', 'Infinity'],
  ['2^53', '9007199254740992'],
  ['2^63', '9223372036854775808'],
  ['23 digits', '99999999999999999999999'],
  ['1 MB', MB],
  ['impossible date', '2026-02-30'],
  ['date 0000-00-00', '0000-00-00'],
  ['year 0000', '0000-01-01'],
  ['year 0000 datetime', '0000-01-01T00%3A00%3A00Z'],
  ['year 10000 once in UTC', '9999-12-31T23%3A30%3A00-01%3A00'],
  ['encoded traversal', '..%2F..%2Fetc'],
  ['dot segments', '%2e%2e'],
  ['brackets', '%5B%5D'],
  ['constructor', 'constructor'],
];

// ---------------------------------------------------------------------------------------
// Has anything been written? Every public table counts the rows it writes (a row trigger, so
// a statement that matches nothing does not count, and a rolled-back write is rolled back with
// its count), and graphile-worker's jobs are compared whole. A checksum of every row would say
// the same, at 20 ms a case instead of one.
async function installWriteCounter(): Promise<void> {
  const sql = ctx.database.sql;
  await sql.unsafe(`
    create schema hostile_walk;
    create table hostile_walk.writes (n bigint not null);
    insert into hostile_walk.writes values (0);
    create function hostile_walk.count_write() returns trigger language plpgsql as
      $$ begin update hostile_walk.writes set n = n + 1; return null; end $$;`);
  const tables = await sql<{ name: string }[]>`
    select format('%I.%I', table_schema, table_name) as name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE'`;
  expect(tables.length).toBeGreaterThan(10);
  for (const t of tables) {
    await sql.unsafe(`create trigger hostile_walk_count after insert or update or delete on ${t.name}
      for each row execute function hostile_walk.count_write()`);
  }
}
async function checksum(): Promise<string> {
  const [row] = await ctx.database.sql<{ sum: string }[]>`
    select (select n from hostile_walk.writes) || ':' ||
      (select md5(coalesce(string_agg(j::text, ',' order by j.id), '')) from graphile_worker.jobs j) as sum`;
  return row.sum;
}

// ---------------------------------------------------------------------------------------
// OpenAPI → baseline requests.
type Schema = Record<string, any>;
let spec: Schema;
const deref = (s: Schema | undefined): Schema | undefined => (s?.$ref ? spec.components.schemas[s.$ref.split('/').pop()] : s);

/** A valid value of a schema: its example, else one built from its type. */
function example(s0: Schema | undefined): unknown {
  const s = deref(s0) ?? {};
  if (s.example !== undefined) return s.example;
  if (s.default !== undefined && !(Array.isArray(s.default) && s.default.length === 0)) return s.default;
  if (s.enum) return s.enum[0];
  const alt = s.anyOf ?? s.oneOf;
  if (alt) return example(alt.find((a: Schema) => !(a.nullable && Object.keys(a).length === 1)));
  switch (s.type) {
    case 'object':
      return Object.fromEntries(Object.entries(s.properties ?? {}).map(([k, v]) => [k, example(v as Schema)]));
    case 'array':
      return [example(s.items)];
    case 'integer':
      return Math.max(1, s.minimum ?? 1);
    case 'number':
      return 1.5;
    case 'boolean':
      return true;
    case 'string':
      if (s.format === 'email') return 'someone@example.com';
      if (s.format === 'uri') return 'http://127.0.0.1:9/hook';
      return 'text';
    default:
      return 'text';
  }
}

/** Every field of a body, as a path of keys (array items as index 0), nested ones included. */
function fieldPaths(s0: Schema | undefined, prefix: (string | number)[] = []): (string | number)[][] {
  const s = deref(s0) ?? {};
  const alt = s.anyOf ?? s.oneOf;
  // The alternative example() chose: the first that is not just `null`.
  if (alt) return fieldPaths(alt.find((a: Schema) => !(a.nullable && Object.keys(a).length === 1)), prefix);
  if (s.type === 'object' && s.properties) {
    return Object.entries(s.properties).flatMap(([k, v]) => [[...prefix, k], ...fieldPaths(v as Schema, [...prefix, k])]);
  }
  if (s.type === 'array') return fieldPaths(s.items, [...prefix, 0]);
  return [];
}

const MARK = '"\u0001hostile\u0001"';
function withHostile(body: unknown, path: (string | number)[], raw: string): string {
  const copy = structuredClone(body) as any;
  let node = copy;
  for (const k of path.slice(0, -1)) node = node[k];
  node[path.at(-1)!] = '\u0001hostile\u0001';
  return JSON.stringify(copy).replace(MARK, () => raw);
}

interface Case {
  route: string;
  what: string;
  field?: string;
  method: string;
  url: string;
  body?: string;
}

/** Sends one request as the admin; webhooks are signed over whatever body they carry. */
async function send(c: Omit<Case, 'route' | 'what' | 'field'>): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` };
  if (c.body !== undefined) headers['content-type'] = 'application/json';
  const pathOnly = c.url.split('?')[0];
  if (pathOnly.startsWith('/webhooks/')) Object.assign(headers, powensHeaders(INBOUND_SECRET, pathOnly, c.body ?? ''));
  return ctx.app.request(`http://localhost${c.url}`, { method: c.method.toUpperCase(), headers, body: c.body });
}

function casesOf(path: string, method: string, op: Schema): { baseline: Case[]; hostile: Case[] } {
  const route = `${method.toUpperCase()} ${path}`;
  const params = ((op.parameters ?? []) as Schema[]).filter((p) => p.in === 'path' || p.in === 'query');
  const pathParams = params.filter((p) => p.in === 'path');
  const queryParams = params.filter((p) => p.in === 'query');
  const bodySchema = op.requestBody?.content?.['application/json']?.schema;
  const body = bodySchema ? example(bodySchema) : undefined;
  // The admin has no user behind `me`: the seeded user's id instead, so requests reach its rows.
  const baseValue = (p: Schema) => (p.name === 'u' ? SEED_USER : String(example(p.schema)));
  // A path parameter that is an enum (the webhook's event) is walked once per value.
  const variants: Record<string, string>[] = [{}];
  for (const p of pathParams) {
    const values = deref(p.schema)?.enum ?? [baseValue(p)];
    const next = variants.flatMap((v) => values.map((x: string) => ({ ...v, [p.name]: encodeURIComponent(x) })));
    variants.splice(0, variants.length, ...next);
  }
  const fill = (values: Record<string, string>) => path.replace(/\{(\w+)\}/g, (_, n) => values[n]);
  const bodyText = body === undefined ? undefined : JSON.stringify(body);

  const baseline: Case[] = [];
  const hostile: Case[] = [];
  for (const v of variants) {
    const base = { route, method, body: bodyText };
    baseline.push({ ...base, what: 'baseline', url: fill(v) });
    for (const p of pathParams) {
      for (const [name, raw] of hostileUrl) hostile.push({ ...base, what: `path ${p.name}: ${name}`, field: p.name, url: fill({ ...v, [p.name]: raw }) });
    }
    for (const p of queryParams) {
      for (const [name, raw] of hostileUrl) hostile.push({ ...base, what: `query ${p.name}: ${name}`, field: p.name, url: `${fill(v)}?${p.name}=${raw}` });
      hostile.push({ ...base, what: `query ${p.name}: repeated`, field: p.name, url: `${fill(v)}?${p.name}=1&${p.name}=%00` });
    }
    if (body !== undefined) {
      for (const fp of fieldPaths(bodySchema)) {
        for (const [name, raw] of hostileJson) {
          hostile.push({ ...base, what: `body ${fp.join('.')}: ${name}`, field: String([...fp].reverse().find((k) => typeof k === 'string')), url: fill(v), body: withHostile(body, fp, raw) });
        }
      }
      // Keys an object should not have: inherited names, NUL, surrogates.
      if (deref(bodySchema)?.type === 'object') {
        for (const key of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'a\u0000b', '\ud800']) {
          // JSON.stringify writes a lone surrogate as its \u escape: the body stays valid JSON.
          const raw = bodyText === '{}' ? `{${JSON.stringify(key)}:"1"}` : `{${JSON.stringify(key)}:"1",${bodyText!.slice(1)}`;
          hostile.push({ ...base, what: `body key ${JSON.stringify(key)}`, url: fill(v), body: raw });
        }
      }
      // Whole bodies that are not what the route reads.
      const wholes: [string, string][] = [
        ['not JSON', '{"a":'],
        ['NUL bytes', '\u0000\u0000'],
        ['array', '[]'],
        ['string', '"x"'],
        ['null', 'null'],
        ['deep nesting', deep(100_000, '[', ']')],
        ['1 MB of garbage', MB],
      ];
      for (const [name, raw] of wholes) hostile.push({ ...base, what: `whole body: ${name}`, url: fill(v), body: raw });
    }
  }
  return { baseline, hostile };
}

it('no hostile value in any path, query or body field of any route answers a 5xx or writes anything', async () => {
  spec = await (await ctx.request('GET', '/openapi.json')).json();
  const routes = Object.entries(spec.paths as Record<string, Schema>).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({ path, method, op: op as Schema })),
  );
  // The inbound webhooks last: their baselines erase what the others read.
  routes.sort((a, b) => Number(a.path.startsWith('/webhooks/')) - Number(b.path.startsWith('/webhooks/')));
  expect(routes.length).toBeGreaterThan(20);

  const failures: string[] = [];
  await installWriteCounter();
  let reference = await checksum();
  for (const { path, method, op } of routes) {
    stats.routes++;
    const { baseline, hostile } = casesOf(path, method, op);
    // The baselines must be accepted, else the hostile values would be refused for another reason.
    for (const b of baseline) {
      const res = await send(b);
      if (res.status >= 500 || (b.body !== undefined && res.status >= 300)) failures.push(`${b.route} baseline ${b.url}: ${res.status} ${await res.text()}`);
      reference = await checksum();
    }
    for (const c of hostile) {
      stats.cases++;
      const res = await send(c);
      const text = await res.text();
      const after = await checksum();
      const label = `${c.route} ${c.what}: ${res.status}`;
      if (res.status >= 500) failures.push(`${label} ${text.slice(0, 300)}`);
      else if (res.status >= 400) {
        let error: { code?: unknown; message?: unknown } | undefined;
        try {
          error = JSON.parse(text).error;
        } catch {
          /* reported below */
        }
        if (typeof error?.code !== 'string' || typeof error?.message !== 'string') failures.push(`${label} not the error shape: ${text.slice(0, 200)}`);
        else if (res.status === 400 && c.field && !text.includes(c.field)) failures.push(`${label} does not name ${c.field}: ${text.slice(0, 300)}`);
        if (after !== reference) failures.push(`${label} refused but wrote to the database`);
      } else if (c.method === 'get' && after !== reference) failures.push(`${label} a GET wrote to the database`);
      reference = after;
    }
  }
  console.log(`hostile-input walk: ${stats.routes} routes, ${stats.cases} cases`);
  if (failures.length) console.log(`${failures.length} failures:\n${failures.map((f) => f.slice(0, 400)).join('\n')}`);
  expect(failures.length, failures.slice(0, 20).join('\n')).toBe(0);
}, 600_000);
