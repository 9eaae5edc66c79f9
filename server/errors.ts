/**
 * The HTTP edge's errors: the server's own catalogue (key = code, status attached), and the
 * one middleware that answers every error as RFC 9457 `application/problem+json` with the
 * stable `code` and the request id. Unknown errors are logged with their stack and answered
 * as a plain 500 without internals.
 */
import type { ErrorRequestHandler, Response } from 'express';
import type {} from 'pino-http';
import { AcsHubError, CONVERTER_ERRORS, type ErrorSpec } from '../converters/errors.js';
import { FENCE_ERRORS } from '../converters/fence/errors.js';
import { RUNTIME_ERRORS } from '../converters/runtime/errors.js';
import { VOLUME_ERRORS } from '../converters/volumes/errors.js';
import { ZOO_ERRORS } from '../zoo/errors.js';

export const SERVER_ERRORS = {
  VALIDATION_FAILED: { status: 400, title: 'Request does not match the API contract' },
  UNAUTHORIZED: { status: 401, title: 'Missing or wrong API key' },
  URL_NOT_ALLOWED: { status: 403, title: 'URL source not allowed' },
  NOT_FOUND: { status: 404, title: 'No such resource' },
  CHECKPOINT_NOT_FOUND: { status: 404, title: 'No such checkpoint' },
  JOB_NOT_FOUND: { status: 404, title: 'No such conversion job' },
  UPLOAD_NOT_FOUND: { status: 404, title: 'No such upload' },
  JOB_FINISHED: { status: 409, title: 'The job has already finished' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'Request body too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported media type' },
  NOT_ACCEPTABLE: { status: 406, title: 'No acceptable representation' },
  RANGE_NOT_SATISFIABLE: { status: 416, title: 'Range not satisfiable' },
  SHUTTING_DOWN: { status: 503, title: 'The server is shutting down' },
  INTERNAL: { status: 500, title: 'Internal server error' },
} as const satisfies Record<string, ErrorSpec>;

/** Every error code the API can answer with, by catalogue. */
export const ALL_ERROR_CODES: Record<string, Record<string, ErrorSpec>> = {
  server: SERVER_ERRORS,
  converters: CONVERTER_ERRORS,
  runtime: RUNTIME_ERRORS,
  fence: FENCE_ERRORS,
  volumes: VOLUME_ERRORS,
  zoo: ZOO_ERRORS,
  config: { CONFIG_INVALID: { status: 500, title: 'Invalid configuration' } },
};

export type ServerErrorCode = keyof typeof SERVER_ERRORS;

/** An error of the HTTP edge. */
export class HttpError extends AcsHubError {
  constructor(
    code: ServerErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(code, SERVER_ERRORS[code], message);
  }
}

/** The RFC 9457 document of an error. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  code: string;
  requestId?: string;
  instance?: string;
  errors?: { path: string; message: string }[];
}

/** The problem document of any error (unknown ones become an opaque 500). */
export function toProblem(err: unknown, requestId: string | undefined, instance?: string): Problem {
  if (err instanceof AcsHubError) {
    return {
      type: `https://acs-hub.dev/problems/${err.code.toLowerCase().replace(/_/g, '-')}`,
      title: err.title,
      status: err.status,
      detail: err.message,
      code: err.code,
      requestId,
      instance,
    };
  }
  const v = err as { status?: number; errors?: { path?: string; message?: string }[]; message?: string; type?: string };
  if (typeof v?.status === 'number' && Array.isArray(v.errors)) {
    // express-openapi-validator
    const code: ServerErrorCode =
      v.status === 404 ? 'NOT_FOUND' : v.status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : v.status === 413 ? 'PAYLOAD_TOO_LARGE' : v.status === 401 ? 'UNAUTHORIZED' : v.status === 405 ? 'NOT_FOUND' : 'VALIDATION_FAILED';
    const spec = SERVER_ERRORS[code];
    const errors = v.errors.map((e) => ({ path: e.path ?? '', message: e.message ?? '' }));
    return {
      type: `https://acs-hub.dev/problems/${code.toLowerCase().replace(/_/g, '-')}`,
      title: spec.title,
      status: spec.status,
      detail: errors.map((e) => `${e.path} ${e.message}`.trim()).join('; ') || v.message,
      code,
      requestId,
      instance,
      errors,
    };
  }
  if (v?.type === 'entity.too.large') return toProblem(new HttpError('PAYLOAD_TOO_LARGE', 'the JSON body is larger than the limit'), requestId, instance);
  if (v?.type === 'entity.parse.failed') return toProblem(new HttpError('VALIDATION_FAILED', 'the body is not valid JSON'), requestId, instance);
  return { type: 'about:blank', title: SERVER_ERRORS.INTERNAL.title, status: 500, code: 'INTERNAL', requestId, instance };
}

/** The headers an error's answer carries: its own (`HttpError`), `Retry-After` when it asks for a retry. */
export function problemHeaders(err: unknown): Record<string, string> {
  if (err instanceof HttpError) return err.headers;
  const retry = (err as { retryAfterSeconds?: unknown } | undefined)?.retryAfterSeconds;
  return err instanceof AcsHubError && typeof retry === 'number' ? { 'Retry-After': String(retry) } : {};
}

/** Send a problem document. */
export function sendProblem(res: Response, problem: Problem, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.status(problem.status).set(headers).type('application/problem+json').send(JSON.stringify(problem));
}

/** The last middleware: every error as problem+json; unknown ones logged with their stack. */
export function problemMiddleware(): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const requestId = typeof req.id === 'string' || typeof req.id === 'number' ? String(req.id) : undefined;
    const problem = toProblem(err, requestId, req.originalUrl);
    if (problem.code === 'INTERNAL') req.log?.error({ err, requestId }, 'unhandled error');
    else req.log?.info({ code: problem.code, status: problem.status, requestId }, problem.detail ?? problem.title);
    sendProblem(res, problem, problemHeaders(err));
  };
}
