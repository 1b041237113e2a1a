import { z } from '@hono/zod-openapi';
import { idString, text } from '../lib/input.js';

/**
 * The OpenAPI pieces every route definition shares: the error body and its responses, the
 * bearer security, the `{u}` and `{id}` path parameters. The shapes of the resources
 * themselves sit beside their presenters (present/).
 */

export const ErrorSchema = z
  .object({
    error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
  })
  .openapi('Error');

/** `{u}`: `me`, or a user id. */
export const UserParam = z.object({
  u: z.union([z.literal('me'), idString]).openapi({ param: { name: 'u', in: 'path' }, example: 'me' }),
});
export const IdParam = z.object({ id: idString.openapi({ param: { name: 'id', in: 'path' } }) });

/** `?all` is present (any value) or absent. */
export const allFlag = text.optional().transform((v) => v !== undefined);

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
