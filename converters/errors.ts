/**
 * The project's one error mechanism.
 *
 * `ERRORS` is the catalogue: every stable code any part of the project throws, with its title
 * and whether repeating the same call may succeed (`retryable`). An error is an `AcsHubError`
 * made from its code; `defineError` makes a named class for a code that callers catch by type
 * (`CheckpointFormatError`, `UpstreamError`, ...), with the extra fields it carries. Nothing
 * here knows about HTTP: the status of each code is chosen at the server edge
 * (`server/errors.ts`), and the documented list in `openapi.yaml` is checked against this
 * table by a test.
 */

/** One entry of the catalogue. */
export interface ErrorKind {
  /** Short human title of the kind (RFC 9457 `title`). */
  readonly title: string;
  /** Whether the same call may succeed later (a transient failure). */
  readonly retryable: boolean;
}

/** Every error code of the project, with its title and whether it is worth a retry. */
export const ERRORS = {
  // Conversion (converters/)
  CHECKPOINT_FORMAT: { title: 'Malformed checkpoint file', retryable: false },
  UNSAFE_PICKLE: { title: 'Checkpoint pickle refused', retryable: false },
  LIMIT_EXCEEDED: { title: 'Input exceeds a safety limit', retryable: false },
  UNSUPPORTED: { title: 'Unsupported model or layer', retryable: false },
  INVALID_ARGUMENT: { title: 'Invalid argument', retryable: false },
  CONVERSION_FAILED: { title: 'Conversion failed', retryable: false },
  WORKER_UNAVAILABLE: { title: 'No worker available', retryable: true },
  // Inference (inference/)
  ENGINE_BUSY: { title: 'Inference queue is full', retryable: true },
  INVALID_INPUT: { title: 'Input does not fit the network', retryable: false },
  INFERENCE_FAILED: { title: 'Inference failed', retryable: false },
  VOLUME_FORMAT: { title: 'Malformed volume file', retryable: false },
  VOLUME_UNSUPPORTED: { title: 'Unsupported volume encoding', retryable: false },
  VOLUME_MIXED_SERIES: { title: 'Several image series in one input', retryable: false },
  // The zoo: catalogue, downloads, storage (zoo/)
  MODEL_NOT_FOUND: { title: 'Unknown zoo model', retryable: false },
  CATALOGUE_INVALID: { title: 'Invalid zoo catalogue', retryable: false },
  UPSTREAM_UNAVAILABLE: { title: 'Upstream source unavailable', retryable: true },
  UPSTREAM_REFUSED: { title: 'Upstream source refused the request', retryable: false },
  INTEGRITY_FAILED: { title: 'Downloaded file failed verification', retryable: false },
  DOWNLOAD_TOO_LARGE: { title: 'Download exceeds the size limit', retryable: false },
  OFFLINE: { title: 'Not cached, and offline mode forbids fetching', retryable: false },
  OBJECT_NOT_FOUND: { title: 'Object not in storage', retryable: false },
  STORAGE_FAILED: { title: 'Storage backend failed', retryable: true },
  CLAIM_TIMEOUT: { title: 'Timed out waiting for another worker', retryable: true },
  // The service and its HTTP edge (server/)
  CONFIG_INVALID: { title: 'Invalid configuration', retryable: false },
  VALIDATION_FAILED: { title: 'Request does not match the API contract', retryable: false },
  UNAUTHORIZED: { title: 'Missing or wrong API key', retryable: false },
  URL_NOT_ALLOWED: { title: 'URL source not allowed', retryable: false },
  NOT_FOUND: { title: 'No such resource', retryable: false },
  CHECKPOINT_NOT_FOUND: { title: 'No such checkpoint', retryable: false },
  JOB_NOT_FOUND: { title: 'No such conversion job', retryable: false },
  UPLOAD_NOT_FOUND: { title: 'No such upload', retryable: false },
  JOB_FINISHED: { title: 'The job has already finished', retryable: false },
  PAYLOAD_TOO_LARGE: { title: 'Request body too large', retryable: false },
  UNSUPPORTED_MEDIA_TYPE: { title: 'Unsupported media type', retryable: false },
  NOT_ACCEPTABLE: { title: 'No acceptable representation', retryable: false },
  RANGE_NOT_SATISFIABLE: { title: 'Range not satisfiable', retryable: false },
  SHUTTING_DOWN: { title: 'The server is shutting down', retryable: true },
  INTERNAL: { title: 'Internal server error', retryable: false },
} as const satisfies Record<string, ErrorKind>;

/** A code of the catalogue. */
export type ErrorCode = keyof typeof ERRORS;

/** Whether a string is a code of the catalogue. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERRORS, code);
}

/** What an error is made with besides its message: a cause, a `retryable` override, its fields. */
export type ErrorInit<F extends object = Record<string, unknown>> = ErrorOptions & { retryable?: boolean } & F;

/** Every error this project throws on purpose: a code of the catalogue, a message, and fields. */
export class AcsHubError extends Error {
  /** Stable machine-readable code (a key of `ERRORS`, documented in openapi.yaml). */
  readonly code: ErrorCode;
  /** Short human title of the kind (RFC 9457 `title`). */
  readonly title: string;
  /** Whether the same call may succeed later; the catalogue's default unless the thrower knows better. */
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, init?: ErrorInit) {
    super(message, init?.cause === undefined ? undefined : { cause: init.cause });
    const { cause: _cause, retryable, ...fields } = init ?? {};
    Object.assign(this, fields);
    this.code = code;
    this.title = ERRORS[code].title;
    this.retryable = retryable ?? ERRORS[code].retryable;
  }

  override get name(): string {
    return this.constructor.name;
  }

  /** The fields the error carries besides code, title, retryable and message. */
  fields(): Record<string, unknown> {
    const { code: _c, title: _t, retryable: _r, ...rest } = { ...this } as Record<string, unknown>;
    return rest;
  }
}

/** A class made by `defineError`: constructed from a message (and its fields, when it has required ones). */
export interface ErrorClass<F extends object = object> {
  new (message: string, ...init: object extends F ? [init?: ErrorInit<F & Record<string, unknown>>] : [init: ErrorInit<F>]): AcsHubError & Readonly<F>;
  /** The code every instance carries. */
  readonly code: ErrorCode;
}

const CLASSES = new Map<ErrorCode, ErrorClass<never>>();

/**
 * The named class of one code, for callers that catch it by type; `F` is the fields it carries
 * (a file name, a URL). One class per code; the class is found again by its code with `errorClassOf`.
 */
export function defineError<F extends object = object>(name: string, code: ErrorCode): ErrorClass<F> {
  const cls = class extends AcsHubError {
    static readonly code = code;
    constructor(message: string, init?: ErrorInit) {
      super(code, message, init);
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  if (CLASSES.has(code)) throw new Error(`error code ${code} already has a class`);
  CLASSES.set(code, cls as unknown as ErrorClass<never>);
  return cls as unknown as ErrorClass<F>;
}

/** The error of a code: an instance of its named class when there is one, else a plain `AcsHubError`. */
export function makeError(code: ErrorCode, message: string, init?: ErrorInit): AcsHubError {
  const cls = CLASSES.get(code) as (new (message: string, init?: ErrorInit) => AcsHubError) | undefined;
  return cls ? new cls(message, init) : new AcsHubError(code, message, init);
}

/** Whether an error is worth a retry: one of ours that says so. */
export function isRetryable(err: unknown): boolean {
  return err instanceof AcsHubError && err.retryable;
}

/** A file that is not what it claims to be: truncated, inconsistent, out of bounds. Never retry. */
export const CheckpointFormatError = defineError<{ file?: string }>('CheckpointFormatError', 'CHECKPOINT_FORMAT');
/** An instance of `CheckpointFormatError`. */
export type CheckpointFormatError = InstanceType<typeof CheckpointFormatError>;

/** A pickle that asks for something a state dict never needs (a global outside the allow-list). */
export const UnsafePickleError = defineError<{ global?: string }>('UnsafePickleError', 'UNSAFE_PICKLE');
/** An instance of `UnsafePickleError`. */
export type UnsafePickleError = InstanceType<typeof UnsafePickleError>;

/** A declared or counted size beyond a budget; the message names the setting (`budgets.*`). */
export const LimitExceededError = defineError('LimitExceededError', 'LIMIT_EXCEEDED');
/** An instance of `LimitExceededError`. */
export type LimitExceededError = InstanceType<typeof LimitExceededError>;

/** A well-formed input this project cannot handle (an unknown dtype, an operator without a rule). */
export const UnsupportedError = defineError('UnsupportedError', 'UNSUPPORTED');
/** An instance of `UnsupportedError`. */
export type UnsupportedError = InstanceType<typeof UnsupportedError>;

/** A caller's option that is out of range or inconsistent. */
export const InvalidArgumentError = defineError('InvalidArgumentError', 'INVALID_ARGUMENT');
/** An instance of `InvalidArgumentError`. */
export type InvalidArgumentError = InstanceType<typeof InvalidArgumentError>;

/** A graph or state dict that cannot be converted; the message names the node or tensor. */
export const ConversionError = defineError('ConversionError', 'CONVERSION_FAILED');
/** An instance of `ConversionError`. */
export type ConversionError = InstanceType<typeof ConversionError>;
