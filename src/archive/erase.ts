import { eq, sql, type SQL } from 'drizzle-orm';
import type { Tx } from '../db/client.js';
import { connections, erasures, users } from '../db/schema/index.js';
import { AppError } from '../errors.js';
import { deleteUnreferencedBlobs } from '../blobs/store.js';
import { captchaJobKey, removeJobs } from '../jobs/keys.js';

/**
 * Erasure for good (CONNECTION_DELETED, USER_DELETED, and the API's
 * `DELETE /users/{u}/connections/{id}`): rows go by cascade, then the blobs no one
 * references any more. Jobs already queued for erased rows find nothing and end as no-ops; pending captcha
 * re-syncs are removed outright so that no request is sent upstream for a connection that
 * is gone. The erased id is kept (and nothing else), so that a late sync of it is refused
 * (archive/diff.ts, startSync and refusals).
 */
export async function eraseConnection(tx: Tx, connectionId: number, owner?: number): Promise<boolean> {
  // A CONNECTION_DELETED naming another user than the connection's erases
  // nothing (two Powens domains feeding one docrelay can share ids).
  if (owner !== undefined) {
    const [row] = await tx.select({ userId: connections.userId }).from(connections).where(eq(connections.id, connectionId)).for('update');
    if (row && row.userId !== owner) {
      throw new AppError('id_conflict', `connection ${connectionId} belongs to another user than ${owner}`, { connections: [connectionId] });
    }
  }
  await tx.insert(erasures).values({ kind: 'connection', id: connectionId }).onConflictDoNothing();
  const blobs = await blobsOfDocuments(tx, sql`d.subscription_id in (select id from subscriptions where connection_id = ${connectionId})`);
  const gone = await tx.delete(connections).where(eq(connections.id, connectionId)).returning({ id: connections.id });
  // Its events go too: messages not yet delivered are never sent (their jobs find nothing).
  await tx.execute(sql`delete from events where connection_id = ${connectionId}`);
  await cancelCaptchaResyncs(tx, [connectionId]);
  await deleteUnreferencedBlobs(tx, blobs);
  return gone.length > 0;
}

export async function eraseUser(tx: Tx, userId: number): Promise<boolean> {
  await tx.insert(erasures).values({ kind: 'user', id: userId }).onConflictDoNothing();
  const conns = await tx.select({ id: connections.id }).from(connections).where(eq(connections.userId, userId));
  const blobs = await blobsOfDocuments(tx, sql`d.user_id = ${userId}`);
  const gone = await tx.delete(users).where(eq(users.id, userId)).returning({ id: users.id });
  await tx.execute(sql`delete from events where user_id = ${userId}`);
  await cancelCaptchaResyncs(tx, conns.map((c) => c.id));
  await deleteUnreferencedBlobs(tx, blobs);
  return gone.length > 0;
}

/** The blobs (file, original, thumbnail) of the documents about to be erased. */
async function blobsOfDocuments(tx: Tx, where: SQL): Promise<string[]> {
  const rows = await tx.execute<{ sha256: string }>(sql`
    select distinct h.sha256
    from documents d
    join document_files f on f.document_id = d.id
    cross join lateral unnest(array[f.sha256, f.original_sha256, f.thumbnail_sha256]) as h(sha256)
    where h.sha256 is not null and ${where}`);
  return rows.map((r) => r.sha256);
}

async function cancelCaptchaResyncs(tx: Tx, connectionIds: number[]): Promise<void> {
  await removeJobs(tx, connectionIds.map(captchaJobKey));
}
