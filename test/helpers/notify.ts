import { sql } from 'drizzle-orm';
import type { TestContext } from './context.js';
import { rescheduleNow } from './jobs.js';

/** Notification test helpers: endpoints through the API, and time travel through run_at. */
export async function createEndpoint(ctx: TestContext, body: { url: string; events?: string[]; description?: string }) {
  const res = await ctx.request('POST', '/webhook-endpoints', { body });
  if (res.status !== 201) throw new Error(`endpoint not created: ${res.status} ${await res.text()}`);
  return (await res.json()) as { id: string; url: string; events: string[]; disabled: boolean; secret: string };
}

/** "Time passes": every waiting job of `task` becomes due now (no real waits in tests). */
export async function makeDueNow(ctx: TestContext, task = 'deliver_message') {
  await rescheduleNow(ctx.deps.db, sql`task_identifier = ${task} and run_at > now()`);
}

export async function pendingJobs(ctx: TestContext, task = 'deliver_message') {
  return ctx.deps.db.execute<{ payload: { messageId: string; attempt: number }; run_at: string; queue_name: string | null; locked_at: string | null }>(sql`
    select p.payload, j.run_at::text, j.queue_name, j.locked_at::text
    from graphile_worker.jobs j
    join graphile_worker._private_jobs p using (id) -- the public view has no payload
    where j.task_identifier = ${task} order by j.id`);
}
