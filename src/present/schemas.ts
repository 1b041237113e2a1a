import { z } from '@hono/zod-openapi';

/**
 * The Powens-shaped objects of the read API and of event payloads, as published in
 * /openapi.json. present/presenters.ts builds each of them and is checked against these
 * shapes, so the JSON and the OpenAPI cannot drift apart.
 */

const isoDate = z.string().nullable();
export const ConnectionSchema = z
  .object({
    id: z.number().int(),
    id_user: z.number().int(),
    id_connector: z.number().int().nullable(),
    state: z.string().nullable(),
    error_message: z.string().nullable(),
    last_update: isoDate,
    next_try: isoDate,
    active: z.boolean(),
    captcha: z
      .object({
        status: z.enum(['disabled', 'retrying', 'gave_up']),
        /** Captcha-induced failures of this run (the count captcha.max_retries bounds). */
        attempts: z.number().int(),
        next_retry_at: isoDate,
        upstream_errors: z.number().int().openapi({ description: "re-sync requests in a row that the aggregator's API refused or did not answer; retried, never counted as attempts" }),
        upstream_error: z.string().nullable().openapi({ description: 'the last of them, until a request is accepted' }),
      })
      .nullable(),
  })
  .openapi('Connection');

export const SubscriptionSchema = z
  .object({
    id: z.number().int(),
    id_connection: z.number().int(),
    id_user: z.number().int(),
    number: z.string().nullable(),
    label: z.string().nullable(),
    subscriber: z.string().nullable(),
    validity: isoDate,
    renewdate: isoDate,
    last_update: isoDate,
    deleted: isoDate,
  })
  .openapi('Subscription');

export const DocumentSchema = z
  .object({
    id: z.number().int(),
    id_subscription: z.number().int(),
    id_user: z.number().int(),
    name: z.string().nullable(),
    type: z.string().nullable(),
    date: isoDate,
    rdate: isoDate,
    duedate: isoDate,
    number: z.string().nullable(),
    issuer: z.string().nullable(),
    total_amount: z.number().nullable(),
    untaxed_amount: z.number().nullable(),
    vat: z.number().nullable(),
    currency: z.string().nullable(),
    income: z.boolean().nullable(),
    has_file_on_website: z.boolean().nullable(),
    url: z.string().nullable(),
    thumb_url: z.string().nullable(),
    file: z.object({
      status: z.enum(['pending', 'ready', 'failed', 'none']),
      content_type: z.string().nullable(),
      size: z.number().int().nullable(),
      sha256: z.string().nullable(),
      error: z.string().nullable(),
    }),
    last_update: isoDate,
    duplicate_of: z
      .union([z.number().int(), z.literal('erased')])
      .nullable()
      .openapi({ description: 'The earlier document this one repeats (its id, or "erased"); null for an original. A repeat is not announced.' }),
    duplicate_reason: z
      .enum(['file', 'fields'])
      .nullable()
      .openapi({ description: '"file": the same file sha256; "fields": the same issuer (else subscription number), number, date, total amount and currency' }),
  })
  .openapi('Document');
