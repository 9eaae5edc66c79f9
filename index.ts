/**
 * The library API of acs-hub (the package's main entry point): converting checkpoints, reading
 * and writing their formats, and running converted networks on volumes. The HTTP client is
 * the `acs-hub/client` entry point; the server and the command line are `acs-hub serve` and
 * the other subcommands.
 */
export { convert, normaliseOptions, CONVERTER_VERSION, type Card, type ConvertOptions, type ConvertResult, type ConvertSource } from './converters/convert.js';
export { convertFile, convertToFiles, loadSource, type ConvertToFilesParams, type ConvertedFiles } from './converters/convert-file.js';
export { encodeOutput, encodeCard, outputFormat, type OutputFormat } from './converters/outputs.js';
export {
  decodeCheckpoint,
  detectFormat,
  encodeCheckpoint,
  readCheckpointFile,
  writeCheckpointFile,
  type CheckpointFormat,
  type LoadedCheckpoint,
} from './converters/formats/index.js';
export { inspectCheckpoint, type CheckpointSummary } from './converters/inspect-checkpoint.js';
export { countParametersAndBuffers, type ParameterCount, type StateDict, type Tensor } from './converters/tensor.js';
export { DEFAULT_BUDGETS, type Budgets } from './converters/budgets.js';
export { AcsHubError, ERRORS, type ErrorCode } from './converters/errors.js';
export { readVolume, type ReadVolumeParams } from './inference/volumes/read-volume.js';
export { infer, type InferOptions, type InferResult, type LoadedModel } from './inference/runtime/pipeline.js';
export { loadModelFile } from './inference/runtime/model-file.js';
export { InferenceEngine } from './inference/runtime/engine.js';
export { createAcsHubClient, type AcsHubClient, type ClientOptions, type Schemas } from './server/api/client.js';
