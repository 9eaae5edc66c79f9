/**
 * The HTTP edge of the error mechanism: the status of every code of the catalogue
 * (`converters/errors.ts`), and the one middleware that answers every error as RFC 9457
 * `application/problem+json` with the stable `code`, whether a retry may succeed, and the
 * request id. Unknown errors are logged with their stack and answered as a plain 500 without
 * internals.
 */
import type { ErrorRequestHandler, Response } from 'express';
import type {} from 'pino-http';
import { AcsHubError, ERRORS, type ErrorCode } from '../converters/errors.js';

/** The HTTP status of every code of the catalogue: decided here, at the edge, and nowhere else. */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  CHECKPOINT_FORMAT: 422,
  UNSAFE_PICKLE: 422,
  LIMIT_EXCEEDED: 413,
  UNSUPPORTED: 422,
  INVALID_ARGUMENT: 400,
  CONVERSION_FAILED: 422,
  WORKER_UNAVAILABLE: 503,
  ENGINE_BUSY: 503,
  INVALID_INPUT: 400,
  INFERENCE_FAILED: 500,
  VOLUME_FORMAT: 422,
  VOLUME_UNSUPPORTED: 422,
  VOLUME_MIXED_SERIES: 422,
  MODEL_NOT_FOUND: 404,
  CATALOGUE_INVALID: 500,
  UPSTREAM_UNAVAILABLE: 502,
  UPSTREAM_REFUSED: 502,
  INTEGRITY_FAILED: 502,
  DOWNLOAD_TOO_LARGE: 413,
  OFFLINE: 503,
  OBJECT_NOT_FOUND: 404,
  STORAGE_FAILED: 503,
  CLAIM_TIMEOUT: 503,
  CONFIG_INVALID: 500,
  VALIDATION_FAILED: 400,
  UNAUTHORIZED: 401,
  URL_NOT_ALLOWED: 403,
  NOT_FOUND: 404,
  CHECKPOINT_NOT_FOUND: 404,
  JOB_NOT_FOUND: 404,
  UPLOAD_NOT_FOUND: 404,
  JOB_FINISHED: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  NOT_ACCEPTABLE: 406,
  RANGE_NOT_SATISFIABLE: 416,
  SHUTTING_DOWN: 503,
  INTERNAL: 500,
};

/** The code the request validator's statuses stand for (anything else is `VALIDATION_FAILED`). */
const VALIDATOR_CODES: Readonly<Record<number, ErrorCode>> = {
  401: 'UNAUTHORIZED',
  404: 'NOT_FOUND',
  405: 'NOT_FOUND',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
};

/** An error of the HTTP edge, with the headers its answer carries. */
export function httpError(code: ErrorCode, message: string, headers: Record<string, string> = {}): AcsHubError {
  return new AcsHubError(code, message, { headers });
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
  /** Whether the same request may succeed later. */
  retryable: boolean;
  errors?: { path: string; message: string }[];
}

function problemOf(code: ErrorCode, detail: string | undefined, retryable: boolean, requestId: string | undefined, instance: string | undefined): Problem {
  return {
    type: `https://acs-hub.dev/problems/${code.toLowerCase().replace(/_/g, '-')}`,
    title: ERRORS[code].title,
    status: HTTP_STATUS[code],
    detail,
    code,
    retryable,
    requestId,
    instance,
  };
}

/** An error's message as a client reads it: the store's location (a server path, a bucket) as `<store>`. */
function clientDetail(err: AcsHubError): string {
  const store = (err as { store?: unknown }).store;
  return typeof store === 'string' && store !== '' ? err.message.replaceAll(store, '<store>') : err.message;
}

/** What the log says of an error answered as a problem: the message the client did not get whole. */
export function logMessage(err: unknown, problem: Problem): string {
  return err instanceof AcsHubError ? err.message : (problem.detail ?? problem.title);
}

/** The problem document of any error (unknown ones become an opaque 500). */
export function toProblem(err: unknown, requestId: string | undefined, instance?: string): Problem {
  if (err instanceof AcsHubError) return problemOf(err.code, clientDetail(err), err.retryable, requestId, instance);
  const v = err as { status?: number; errors?: { path?: string; message?: string }[]; message?: string; type?: string };
  if (typeof v?.status === 'number' && Array.isArray(v.errors)) {
    // express-openapi-validator
    const errors = v.errors.map((e) => ({ path: e.path ?? '', message: e.message ?? '' }));
    const detail = errors.map((e) => `${e.path} ${e.message}`.trim()).join('; ') || v.message;
    return { ...problemOf(VALIDATOR_CODES[v.status] ?? 'VALIDATION_FAILED', detail, false, requestId, instance), errors };
  }
  if (v?.type === 'entity.too.large') return problemOf('PAYLOAD_TOO_LARGE', 'the JSON body is larger than the limit', false, requestId, instance);
  if (v?.type === 'entity.parse.failed') return problemOf('VALIDATION_FAILED', 'the body is not valid JSON', false, requestId, instance);
  // The router's: a path parameter that is not valid percent-encoding (`/web/app.js%`).
  if (err instanceof URIError && v.status === 400) return problemOf('VALIDATION_FAILED', `the path is not valid percent-encoding (a '%' takes two hex digits): ${err.message.slice(0, 200)}`, false, requestId, instance);
  return { ...problemOf('INTERNAL', undefined, false, requestId, instance), type: 'about:blank' };
}

/** The headers an error's answer carries: its own (`httpError`), `Retry-After` when it asks for a retry. */
export function problemHeaders(err: unknown): Record<string, string> {
  if (!(err instanceof AcsHubError)) return {};
  const { headers, retryAfterSeconds } = err as { headers?: Record<string, string>; retryAfterSeconds?: unknown };
  return { ...(typeof retryAfterSeconds === 'number' ? { 'Retry-After': String(retryAfterSeconds) } : {}), ...headers };
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
    else req.log?.info({ code: problem.code, status: problem.status, requestId }, logMessage(err, problem));
    sendProblem(res, problem, problemHeaders(err));
  };
}
