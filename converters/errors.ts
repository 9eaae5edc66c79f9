/**
 * Typed errors of the conversion library.
 *
 * Every error carries a stable machine `code` (the key of its catalogue entry) and the HTTP
 * status the server answers it with, as fastify's `createError` does. Permanent failures
 * (a malformed file, an unsupported layer) are separate from transient ones (an upstream
 * that timed out, defined in `zoo/errors.ts`), so callers know what is worth a retry.
 */

/** One entry of an error catalogue: the code is the key, the status and title go with it. */
export interface ErrorSpec {
  readonly status: number;
  readonly title: string;
}

/** Base class of every error this project throws on purpose. */
export class AcsHubError extends Error {
  /** Stable machine-readable code, documented in openapi.yaml. */
  readonly code: string;
  /** HTTP status the server answers with. */
  readonly status: number;
  /** Short human title of the error kind (RFC 9457 `title`). */
  readonly title: string;

  constructor(code: string, spec: ErrorSpec, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.status = spec.status;
    this.title = spec.title;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/** The codes thrown by `converters/`, with their status and title. */
export const CONVERTER_ERRORS = {
  CHECKPOINT_FORMAT: { status: 422, title: 'Malformed checkpoint file' },
  UNSAFE_PICKLE: { status: 422, title: 'Checkpoint pickle refused' },
  LIMIT_EXCEEDED: { status: 413, title: 'Checkpoint exceeds a safety limit' },
  UNSUPPORTED: { status: 422, title: 'Unsupported model or layer' },
  INVALID_ARGUMENT: { status: 400, title: 'Invalid argument' },
  CONVERSION_FAILED: { status: 422, title: 'Conversion failed' },
} as const satisfies Record<string, ErrorSpec>;

/** A file that is not what it claims to be: truncated, inconsistent, out of bounds. Never retry. */
export class CheckpointFormatError extends AcsHubError {
  /** The file (or entry inside an archive) the problem was found in, when known. */
  readonly file: string | undefined;
  constructor(message: string, options?: ErrorOptions & { file?: string }) {
    super('CHECKPOINT_FORMAT', CONVERTER_ERRORS.CHECKPOINT_FORMAT, message, options);
    this.file = options?.file;
  }
}

/** A pickle that asks for something a state dict never needs (a global outside the allow-list). */
export class UnsafePickleError extends AcsHubError {
  /** The refused global, as `module.name`. */
  readonly global: string | undefined;
  constructor(message: string, options?: ErrorOptions & { global?: string }) {
    super('UNSAFE_PICKLE', CONVERTER_ERRORS.UNSAFE_PICKLE, message, options);
    this.global = options?.global;
  }
}

/** A declared size (header, element count, dimension count) beyond what a reader will allocate. */
export class LimitExceededError extends AcsHubError {
  constructor(message: string, options?: ErrorOptions) {
    super('LIMIT_EXCEEDED', CONVERTER_ERRORS.LIMIT_EXCEEDED, message, options);
  }
}

/** A well-formed input this project cannot handle (an unknown dtype, a non-square convolution). */
export class UnsupportedError extends AcsHubError {
  constructor(message: string, options?: ErrorOptions) {
    super('UNSUPPORTED', CONVERTER_ERRORS.UNSUPPORTED, message, options);
  }
}

/** A caller's option that is out of range or inconsistent. */
export class InvalidArgumentError extends AcsHubError {
  constructor(message: string, options?: ErrorOptions) {
    super('INVALID_ARGUMENT', CONVERTER_ERRORS.INVALID_ARGUMENT, message, options);
  }
}

/** A graph or state dict that cannot be converted; the message names the node or tensor. */
export class ConversionError extends AcsHubError {
  constructor(message: string, options?: ErrorOptions) {
    super('CONVERSION_FAILED', CONVERTER_ERRORS.CONVERSION_FAILED, message, options);
  }
}
