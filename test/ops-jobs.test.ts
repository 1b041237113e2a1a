import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.js';
import { waitUntil } from './helpers/receiver.js';

/**
 * README "Operating it": jobs that failed for good are listed, retried and discarded through the
 * API. A job is failed for good by graphile-worker's own admin function, as it is after its
 * last attempt; the real worker then runs the retried one.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

async function addJob(task: string, payload: unknown): Promise<string> {
  const [row] = await ctx.deps.db.execute<{ id: string }>(sql`select (graphile_worker.add_job(${task}, ${JSON.stringify(payload)}::json, max_attempts := 3)).id::text as id`);
  return row.id;
}
async function failForGood(id: string, error: string) {
  await ctx.deps.db.execute(sql`select graphile_worker.permanently_fail_jobs(array[${id}::bigint], ${error})`);
}
const jobExists = async (id: string) =>
  (await ctx.deps.db.execute(sql`select 1 from graphile_worker.jobs where id = ${id}::bigint`)).length > 0;

describe('failed jobs', () => {
  it('lists the jobs that failed for good, with their last error, and not the others', async () => {
    const failed = await addJob('sweep_stranded_messages', {});
    const queued = await addJob('sweep_stranded_messages', {});
    await failForGood(failed, 'Error: upstream said no');
    const res = await ctx.request('GET', '/jobs/failed');
    expect(res.status).toBe(200);
    const { jobs } = await res.json();
    const mine = jobs.find((j: any) => j.id === failed);
    expect(mine).toMatchObject({ id: failed, task: 'sweep_stranded_messages', attempts: 3, last_error: 'Error: upstream said no' });
    expect(new Date(mine.failed_at).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(jobs.some((j: any) => j.id === queued)).toBe(false);
    await ctx.request('DELETE', `/jobs/${queued}`);
  });

  it('refuses to retry a job that has not failed (409) and leaves it as it was', async () => {
    const id = await addJob('sweep_stranded_messages', {});
    await ctx.deps.db.execute(sql`select graphile_worker.reschedule_jobs(array[${id}::bigint], run_at := now() + interval '1 day', attempts := 1)`);
    const res = await ctx.request('POST', `/jobs/${id}/retry`);
    expect(res.status).toBe(409);
    expect((await res.json()).error.code).toBe('conflict');
    const [row] = await ctx.deps.db.execute<{ attempts: number }>(sql`select attempts from graphile_worker.jobs where id = ${id}::bigint`);
    expect(row.attempts).toBe(1);
    await ctx.request('DELETE', `/jobs/${id}`);
  });

  it('discards a job: 204, then it is gone and a second delete is a 404', async () => {
    const id = await addJob('sweep_stranded_messages', {});
    await failForGood(id, 'Error: boom');
    expect((await ctx.request('DELETE', `/jobs/${id}`)).status).toBe(204);
    expect(await jobExists(id)).toBe(false);
    const again = await ctx.request('DELETE', `/jobs/${id}`);
    expect(again.status).toBe(404);
    expect((await again.json()).error.code).toBe('not_found');
  });

  it('refuses to retry or discard a job a worker holds (409)', async () => {
    const id = await addJob('sweep_stranded_messages', {});
    await failForGood(id, 'Error: boom');
    // A worker that has locked the job (the state graphile-worker's get_job leaves it in).
    await ctx.database.sql`update graphile_worker._private_jobs set locked_at = now(), locked_by = 'test-worker' where id = ${id}::bigint`;
    expect((await ctx.request('POST', `/jobs/${id}/retry`)).status).toBe(409);
    expect((await ctx.request('DELETE', `/jobs/${id}`)).status).toBe(409);
    expect(await jobExists(id)).toBe(true);
    await ctx.deps.db.execute(sql`select graphile_worker.force_unlock_workers(array['test-worker'])`);
    expect((await ctx.request('DELETE', `/jobs/${id}`)).status).toBe(204);
  });

  it('404 for unknown ids, 400 naming the id for malformed ones', async () => {
    for (const [method, path] of [['POST', '/jobs/987654321/retry'], ['DELETE', '/jobs/987654321']]) {
      const res = await ctx.request(method, path);
      expect(res.status).toBe(404);
      expect((await res.json()).error.code).toBe('not_found');
    }
    for (const bad of ['abc', '-1', '1e3', '9999999999999999999', '%00', '1.5']) {
      for (const [method, path] of [['POST', `/jobs/${bad}/retry`], ['DELETE', `/jobs/${bad}`]]) {
        const res = await ctx.request(method, path);
        expect(res.status, `${method} ${path}`).toBe(400);
        const body = await res.json();
        expect(body.error.code).toBe('invalid_query');
        expect(JSON.stringify(body.error.details)).toContain('id');
      }
    }
  });

  it('is admin only: 401 without a token, 404 with a user token', async () => {
    const token = (await (await ctx.request('POST', '/users/5/token')).json()).token as string;
    for (const [method, path] of [['GET', '/jobs/failed'], ['POST', '/jobs/1/retry'], ['DELETE', '/jobs/1']]) {
      expect((await ctx.request(method, path, { token: null })).status).toBe(401);
      expect((await ctx.request(method, path, { token })).status).toBe(404);
    }
  });

  it('retries a failed job: the worker runs it again', async () => {
    const id = await addJob('sweep_stranded_messages', {});
    await failForGood(id, 'Error: boom');
    const res = await ctx.request('POST', `/jobs/${id}/retry`);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ id, task: 'sweep_stranded_messages' });
    expect((await (await ctx.request('GET', '/jobs/failed')).json()).jobs.some((j: any) => j.id === id)).toBe(false);
    // Last test of the file: the worker started here runs until close().
    await ctx.startWorker();
    await waitUntil(async () => !(await jobExists(id)), 20_000, 'the retried job to run');
  });
});
