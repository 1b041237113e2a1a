import type { z } from '@hono/zod-openapi';
import type { InferSelectModel } from 'drizzle-orm';
import type { LinkSigner } from '../config.js';
import type { connections, documentFiles, documents, subscriptions } from '../db/schema/index.js';
import { signedFileUrl } from '../lib/file-links.js';
import type { ConnectionSchema, DocumentSchema, SubscriptionSchema } from './schemas.js';

/**
 * Rows → the Powens-shaped objects of the read API (present/schemas.ts). Events carry the
 * same objects, so this is the one place that decides how they look.
 */

type ConnectionRow = InferSelectModel<typeof connections>;
type SubscriptionRow = InferSelectModel<typeof subscriptions>;
type DocumentRow = InferSelectModel<typeof documents>;
type FileRow = InferSelectModel<typeof documentFiles>;

export type ConnectionJson = z.infer<typeof ConnectionSchema>;
export type SubscriptionJson = z.infer<typeof SubscriptionSchema>;
export type DocumentJson = z.infer<typeof DocumentSchema>;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export type CaptchaStatus = 'disabled' | 'retrying' | 'gave_up';
export type FileStatus = 'pending' | 'ready' | 'failed' | 'none';

export function presentConnection(c: ConnectionRow) {
  return {
    id: c.id,
    id_user: c.userId,
    id_connector: c.idConnector,
    state: c.state,
    error_message: c.errorMessage,
    last_update: iso(c.lastUpdate),
    next_try: iso(c.nextTry),
    active: c.active,
    captcha: c.captchaStatus
      ? {
          status: c.captchaStatus as CaptchaStatus,
          attempts: c.captchaAttempts,
          next_retry_at: iso(c.captchaNextRetryAt),
          upstream_errors: c.captchaUpstreamErrors,
          upstream_error: c.captchaUpstreamError,
        }
      : null,
  } satisfies ConnectionJson;
}

export function presentSubscription(s: SubscriptionRow) {
  return {
    id: s.id,
    id_connection: s.connectionId,
    id_user: s.userId,
    number: s.number,
    label: s.label,
    subscriber: s.subscriber,
    validity: s.validity,
    renewdate: s.renewdate,
    last_update: iso(s.lastUpdate),
    deleted: iso(s.deleted),
  } satisfies SubscriptionJson;
}

export function presentDocument(d: DocumentRow, f: FileRow | null, links: LinkSigner) {
  const ready = f?.status === 'ready';
  return {
    id: d.id,
    id_subscription: d.subscriptionId,
    id_user: d.userId,
    name: d.name,
    type: d.type,
    date: d.date,
    rdate: iso(d.rdate),
    duedate: d.duedate,
    number: d.number,
    issuer: d.issuer,
    total_amount: d.totalAmount,
    untaxed_amount: d.untaxedAmount,
    vat: d.vat,
    currency: d.currency,
    income: d.income,
    has_file_on_website: d.hasFileOnWebsite,
    url: ready ? signedFileUrl(links, 'file', d.id) : null,
    thumb_url: ready && f?.thumbnailSha256 ? signedFileUrl(links, 'thumbnail', d.id) : null,
    file: {
      status: (f?.status ?? 'none') as FileStatus,
      content_type: f?.contentType ?? null,
      size: f?.size ?? null,
      sha256: f?.sha256 ?? null,
      error: f?.error ?? null,
    },
    last_update: iso(d.lastUpdate),
    // A repeat of an announced bill (dedupe/): the earlier document, or "erased" once it is gone.
    duplicate_of: d.duplicateReason === null ? null : (d.duplicateOf ?? 'erased'),
    duplicate_reason: d.duplicateReason as 'file' | 'fields' | null,
  } satisfies DocumentJson;
}
