/**
 * Encoding the outputs of a conversion: the converted state dict as safetensors or `.pth`,
 * the 3D network as ONNX (weights as views, external data beyond protobuf's 2 GiB limit),
 * the network as PyTorch source (`model.py`), and the card as JSON.
 */
import { basename } from 'node:path';
import type { ConvertResult } from './convert.js';
import { InvalidArgumentError } from './errors.js';
import { encodeOnnxChunks, encodeOnnxExternal } from './formats/onnx.js';
import { encodePth } from './formats/pth.js';
import { encodeSafetensors } from './formats/safetensors.js';
import { graphToModel } from './graph/ir.js';
import { generateModelPy } from './model-py/generate-model-py.js';

/** The file kinds a conversion writes. */
export type OutputFormat = 'safetensors' | 'pth' | 'onnx' | 'py';

/** Models larger than this go to ONNX with an external data file. */
const ONNX_INLINE_LIMIT = 1.8 * 2 ** 30;

/** Files to write: name (relative to the output folder) -> chunks. */
export type EncodedFiles = Map<string, Uint8Array[]>;

/** The output format of a file name, or an error naming the choices. */
export function outputFormat(path: string): OutputFormat {
  const m = /\.(safetensors|pth|onnx|py)$/i.exec(path);
  if (!m) throw new InvalidArgumentError(`cannot tell the output format from '${path}': use .safetensors, .pth, .onnx or .py`);
  return m[1]!.toLowerCase() as OutputFormat;
}

/** Encode one output of a conversion under the file name `name`. */
export function encodeOutput(result: ConvertResult, format: OutputFormat, name: string): EncodedFiles {
  const files: EncodedFiles = new Map();
  switch (format) {
    case 'safetensors':
      files.set(name, encodeSafetensors(result.stateDict, { metadata: result.metadata }));
      break;
    case 'pth':
      files.set(name, encodePth(result.stateDict));
      break;
    case 'py':
      files.set(name, [Buffer.from(generateModelPy(result), 'utf8')]);
      break;
    case 'onnx': {
      const model = graphToModel(result.graph, { producerVersion: result.card.converter.version, docString: `ACS Hub ${result.card.mode} conversion of ${result.card.architecture.arch}` });
      let weights = 0;
      for (const t of result.graph.initializers.values()) weights += t.data.byteLength;
      if (weights < ONNX_INLINE_LIMIT) files.set(name, encodeOnnxChunks(model));
      else {
        const location = `${basename(name)}.data`;
        const { model: bytes, data } = encodeOnnxExternal(model, { location });
        files.set(name, [bytes]);
        files.set(name.replace(/[^/]*$/, location), data);
      }
      break;
    }
  }
  return files;
}

/** The card as pretty JSON bytes. */
export function encodeCard(result: ConvertResult): Uint8Array {
  return Buffer.from(`${JSON.stringify(result.card, null, 2)}\n`, 'utf8');
}
