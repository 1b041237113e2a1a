import { sql } from 'drizzle-orm';
import type { TestContext } from './context.js';

/** Notification test helpers: endpoints through the API, and time travel through run_at. */
export async function createEndpoint(ctx: TestContext, body: { url: string; events?: string[]; description?: string }) {
  const res = await ctx.request('POST', '/webhook-endpoints', { body });
  if (res.status !== 201) throw new Error(`endpoint not created: ${res.status} ${await res.text()}`);
  return (await res.json()) as { id: string; url: string; events: string[]; disabled: boolean; secret: string };
}

/** "Time passes": every waiting job of `task` becomes due now (no real waits in tests). */
export async function makeDueNow(ctx: TestContext, task = 'deliver_message') {
  await ctx.deps.db.execute(sql`
    update graphile_worker._private_jobs set run_at = now()
    where locked_at is null and run_at > now()
      and task_id = (select id from graphile_worker._private_tasks where identifier = ${task})`);
}

export async function pendingJobs(ctx: TestContext, task = 'deliver_message') {
  return ctx.deps.db.execute<{ payload: { messageId: string; attempt: number }; run_at: string; queue_name: string | null; locked_at: string | null }>(sql`
    select j.payload, j.run_at::text, q.queue_name, j.locked_at::text
    from graphile_worker._private_jobs j
    join graphile_worker._private_tasks t on t.id = j.task_id
    left join graphile_worker._private_job_queues q on q.id = j.job_queue_id
    where t.identifier = ${task} order by j.id`);
}
