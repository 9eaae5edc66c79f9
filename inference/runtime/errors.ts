/** Errors of the inference runtime (codes and titles in the catalogue, `converters/errors.ts`). */
import { defineError } from '../../converters/errors.js';

/** Too many requests are waiting; retry later. */
export const EngineBusyError = defineError('EngineBusyError', 'ENGINE_BUSY');
/** An instance of `EngineBusyError`. */
export type EngineBusyError = InstanceType<typeof EngineBusyError>;

/** The input's shape or type does not fit the network. */
export const InvalidInputError = defineError('InvalidInputError', 'INVALID_INPUT');
/** An instance of `InvalidInputError`. */
export type InvalidInputError = InstanceType<typeof InvalidInputError>;

/** The runtime failed for another reason (named in the message). */
export const InferenceFailedError = defineError('InferenceFailedError', 'INFERENCE_FAILED');
/** An instance of `InferenceFailedError`. */
export type InferenceFailedError = InstanceType<typeof InferenceFailedError>;
