/**
 * Errors of the fence, and errors on their way across it: an error thrown by a task in a
 * worker goes back as plain data (`WireError`) and is made again on the caller's side from its
 * code (`makeError`: its named class when the caller has loaded it), with its message, fields
 * and `retryable`, so that the caller answers it exactly as if the task had run in its own thread.
 */
import { AcsHubError, defineError, isErrorCode, makeError } from '../errors.js';

/** Seconds a client is asked to wait before it retries a refused task. */
export const RETRY_AFTER_SECONDS = 2;

/** Every worker is busy and the queue is full, or the worker running a task died; retry later. */
export const WorkerUnavailableError = defineError<{ retryAfterSeconds?: number }>('WorkerUnavailableError', 'WORKER_UNAVAILABLE');
/** An instance of `WorkerUnavailableError`. */
export type WorkerUnavailableError = InstanceType<typeof WorkerUnavailableError>;

/** A `WorkerUnavailableError` that asks for a retry after `RETRY_AFTER_SECONDS`. */
export function workerUnavailable(message: string): WorkerUnavailableError {
  return new WorkerUnavailableError(message, { retryAfterSeconds: RETRY_AFTER_SECONDS });
}

/** An error as it crosses the fence. */
export interface WireError {
  name: string;
  message: string;
  stack?: string;
  /** For the project's errors: the code, whether it is retryable, and the error's own fields. */
  code?: string;
  retryable?: boolean;
  fields?: Record<string, unknown>;
}

const BUILTIN: Record<string, ErrorConstructor> = { Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError };

/** An error as plain data. */
export function toWireError(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const wire: WireError = { name: err.name, message: err.message, stack: err.stack };
  if (err instanceof AcsHubError) Object.assign(wire, { code: err.code, retryable: err.retryable, fields: err.fields() });
  return wire;
}

/** The error a `WireError` stands for (see the module comment). */
export function fromWireError(w: WireError): Error {
  let err: Error;
  if (w.code !== undefined && isErrorCode(w.code)) {
    err = makeError(w.code, w.message, { ...w.fields, retryable: w.retryable });
  } else {
    err = new (BUILTIN[w.name] ?? Error)(w.message);
    if (!BUILTIN[w.name]) Object.defineProperty(err, 'name', { value: w.name });
  }
  if (w.stack !== undefined) err.stack = w.stack;
  return err;
}
