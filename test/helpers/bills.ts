import { expect } from 'vitest';
import type { TestContext } from './context.js';

export interface Bill {
  number: string;
  amount: number;
}

/**
 * A signed sync of one new connection with one subscription listing these bills (number,
 * amount) under fresh ids drawn from `nextId`, without urls: their files are settled as
 * `none`, and each document queues its announcement.
 */
export async function syncBills(ctx: TestContext, userId: number, bills: Bill[], nextId: () => number): Promise<{ connectionId: number; ids: number[] }> {
  const connectionId = nextId();
  const subscriptionId = nextId();
  const ids = bills.map(() => nextId());
  const res = await ctx.sendWebhook('CONNECTION_SYNCED', {
    user: { id: userId },
    connection: {
      id: connectionId, id_user: userId, id_connector: 40, state: null, error_message: null,
      last_update: '2026-11-20T08:00:00Z', next_try: null, active: true,
      subscriptions: [{
        id: subscriptionId, id_connection: connectionId, id_user: userId, number: 'EZ4225', label: 'Contrat',
        subscriber: null, validity: null, renewdate: null,
        documents: bills.map((b, i) => ({
          id: ids[i], id_subscription: subscriptionId, name: `Facture ${b.number}`, type: 'bill', date: '2026-11-01',
          duedate: null, number: b.number, issuer: 'Acme', total_amount: b.amount, currency: 'EUR', url: null,
        })),
      }],
    },
  });
  expect(res.status).toBe(200);
  return { connectionId, ids };
}
