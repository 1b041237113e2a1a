import { z } from '@hono/zod-openapi';

/**
 * OpenAPI shapes of the read API (CONTRACT.md §5). Requests are validated by the route
 * definitions that use these; responses are built by archive/present.ts.
 */
export const ErrorSchema = z
  .object({
    error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
  })
  .openapi('Error');

export const UserParam = z.object({ u: z.string().openapi({ param: { name: 'u', in: 'path' }, example: 'me' }) });
export const IdParam = z.object({
  id: z
    .string()
    .regex(/^\d{1,16}$/, 'a numeric id')
    .refine((v) => Number.isSafeInteger(Number(v)), 'an id up to 2^53 − 1')
    .openapi({ param: { name: 'id', in: 'path' } }),
});

/** `?all` is present (any value) or absent. */
export const allFlag = z.string().optional().transform((v) => v !== undefined);

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
      .object({ status: z.enum(['disabled', 'retrying', 'gave_up']), attempts: z.number().int(), next_retry_at: isoDate })
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
  })
  .openapi('Document');

export const errorResponses = {
  400: { description: 'Bad input', content: { 'application/json': { schema: ErrorSchema } } },
  401: { description: 'Missing or unknown token', content: { 'application/json': { schema: ErrorSchema } } },
  404: { description: 'Not found (or not yours)', content: { 'application/json': { schema: ErrorSchema } } },
} as const;

export const bearer = [{ bearerAuth: [] }];

/** A JSON response of a route definition. */
export const jsonResponse = <T extends z.ZodType>(schema: T, description = 'ok') => ({
  description,
  content: { 'application/json': { schema } },
});
