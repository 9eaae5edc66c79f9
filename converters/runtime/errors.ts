/** Errors of the inference runtime, in the project's catalogue style. */
import { AcsHubError, type ErrorSpec } from '../errors.js';

export const RUNTIME_ERRORS = {
  ENGINE_BUSY: { status: 503, title: 'Inference queue is full' },
  INVALID_INPUT: { status: 400, title: 'Input does not fit the network' },
  INFERENCE_FAILED: { status: 500, title: 'Inference failed' },
} as const satisfies Record<string, ErrorSpec>;

/** Too many requests are waiting; retry later. */
export class EngineBusyError extends AcsHubError {
  constructor(message: string) {
    super('ENGINE_BUSY', RUNTIME_ERRORS.ENGINE_BUSY, message);
  }
}

/** The input's shape or type does not fit the network. */
export class InvalidInputError extends AcsHubError {
  constructor(message: string, options?: ErrorOptions) {
    super('INVALID_INPUT', RUNTIME_ERRORS.INVALID_INPUT, message, options);
  }
}

/** The runtime failed for another reason (named in the message). */
export class InferenceFailedError extends AcsHubError {
  constructor(message: string, options?: ErrorOptions) {
    super('INFERENCE_FAILED', RUNTIME_ERRORS.INFERENCE_FAILED, message, options);
  }
}
