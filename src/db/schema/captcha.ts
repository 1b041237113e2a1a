import { bigint, bigserial, index, integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { connections } from './archive.js';

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/**
 * History of captcha-induced failures and of what was done about them.
 * The counter on `connections` is what the API shows; this is the why behind it.
 */
export const captchaAttempts = pgTable(
  'captcha_attempts',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    connectionId: bigint('connection_id', { mode: 'number' })
      .notNull()
      .references(() => connections.id, { onDelete: 'cascade' }),
    /** 'failure' | 'resync_requested' | 'resync_error' | 'gave_up' | 'recovered' | 'scheduled' */
    kind: text('kind').notNull(),
    attempt: integer('attempt'),
    detail: text('detail'),
    at: ts('at').notNull().defaultNow(),
  },
  (t) => [index('captcha_attempts_connection_idx').on(t.connectionId, t.at), index('captcha_attempts_at_idx').on(t.at)],
);
