/**
 * Errors of the fence, and errors on their way across it: an error thrown by a task in a
 * worker goes back as plain data (`WireError`) and is made again on the caller's side with
 * its class (for the project's error classes), code, status, message and fields, so that the
 * HTTP edge answers it exactly as if the task had run in the request's own thread.
 */
import { AcsHubError, CheckpointFormatError, ConversionError, InvalidArgumentError, LimitExceededError, UnsafePickleError, UnsupportedError, type ErrorSpec } from '../errors.js';
import { EngineBusyError, InferenceFailedError, InvalidInputError } from '../runtime/errors.js';
import { MixedSeriesError, VolumeFormatError, VolumeUnsupportedError } from '../volumes/errors.js';

/** The codes thrown by the fence, with their status and title. */
export const FENCE_ERRORS = {
  WORKER_UNAVAILABLE: { status: 503, title: 'No worker available' },
} as const satisfies Record<string, ErrorSpec>;

/** Seconds a client is asked to wait before it retries a refused task. */
export const RETRY_AFTER_SECONDS = 2;

/** Every worker is busy and the queue is full, or the worker running a task died; retry later. */
export class WorkerUnavailableError extends AcsHubError {
  /** Seconds to wait before a retry (HTTP `Retry-After`). */
  readonly retryAfterSeconds: number;
  constructor(message: string, options?: ErrorOptions) {
    super('WORKER_UNAVAILABLE', FENCE_ERRORS.WORKER_UNAVAILABLE, message, options);
    this.retryAfterSeconds = RETRY_AFTER_SECONDS;
  }
}

/** An error as it crosses the fence. */
export interface WireError {
  name: string;
  message: string;
  stack?: string;
  /** For the project's errors: code, status, title and the class's own fields. */
  code?: string;
  status?: number;
  title?: string;
  fields?: Record<string, unknown>;
}

type ErrorClass = abstract new (...args: never[]) => Error;

/** The classes made again by name; another `AcsHubError` comes back as one with its code and status. */
const CLASSES = new Map<string, ErrorClass>(
  [
    CheckpointFormatError,
    UnsafePickleError,
    LimitExceededError,
    UnsupportedError,
    InvalidArgumentError,
    ConversionError,
    EngineBusyError,
    InvalidInputError,
    InferenceFailedError,
    VolumeFormatError,
    VolumeUnsupportedError,
    MixedSeriesError,
    WorkerUnavailableError,
  ].map((c) => [c.name, c]),
);

const BUILTIN: Record<string, ErrorConstructor> = { Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError };

/** An error as plain data. */
export function toWireError(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const wire: WireError = { name: err.name, message: err.message, stack: err.stack };
  if (err instanceof AcsHubError) {
    const { code, status, title, ...fields } = { ...err };
    Object.assign(wire, { code, status, title, fields });
  }
  return wire;
}

/** The error a `WireError` stands for (see the module comment). */
export function fromWireError(w: WireError): Error {
  let err: Error;
  if (w.code !== undefined && w.status !== undefined) {
    const cls = CLASSES.get(w.name);
    // Made without running the constructor, whose arguments differ from class to class.
    err = cls ? (Reflect.construct(Error, [w.message], cls) as Error) : new AcsHubError(w.code, { status: w.status, title: w.title ?? '' }, w.message);
    Object.assign(err, w.fields, { code: w.code, status: w.status, title: w.title ?? '' });
    if (!cls) Object.defineProperty(err, 'name', { value: w.name });
  } else {
    err = new (BUILTIN[w.name] ?? Error)(w.message);
    if (!BUILTIN[w.name]) Object.defineProperty(err, 'name', { value: w.name });
  }
  if (w.stack !== undefined) err.stack = w.stack;
  return err;
}
