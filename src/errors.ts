import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/**
 * Every error the API can answer with. The code is part of the contract
 * (the `code` of every error in /openapi.json): clients switch on it, so never rename one.
 */
export const errorStatus = {
  bad_request: 400,
  invalid_payload: 400,
  invalid_config: 400,
  invalid_query: 400,
  unauthorized: 401,
  invalid_signature: 401,
  invalid_link: 403,
  not_found: 404,
  unknown_event: 404,
  conflict: 409,
  id_conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  range_not_satisfiable: 416,
  internal_error: 500,
  /** Svix API mode: Svix did not confirm a change; nothing was changed on our side either. */
  svix_unavailable: 502,
  database_unavailable: 503,
  smtp_not_configured: 503,
  server_busy: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof errorStatus;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

/** The one error type of the service; `onError` turns it into the one JSON shape. */
export class AppError extends HTTPException {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(errorStatus[code], { message });
  }

  toBody(): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}

export const notFound = (what = 'resource') => new AppError('not_found', `${what} not found`);
