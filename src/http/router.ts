import { OpenAPIHono, type Hook } from '@hono/zod-openapi';
import type { AuthEnv } from './auth.js';
import { AppError } from '../errors.js';

/** Zod validation failures of any route become one `400` with the issues as details. */
const validationHook: Hook<unknown, AuthEnv, string, unknown> = (result) => {
  if (!result.success) {
    const details = result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
    throw new AppError(result.target === 'json' ? 'invalid_payload' : 'invalid_query', 'invalid request', details);
  }
};

/** A router of one feature; app.ts mounts them all, and their OpenAPI definitions merge. */
export function newRouter() {
  return new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
}
