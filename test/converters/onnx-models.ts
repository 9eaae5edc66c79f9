/** Small 2D ONNX exports made at run time, for the tests of what an untrusted model can cause. */
import { encodeOnnx, encodeOnnxExternal, onnx } from '../../converters/formats/onnx.js';
import { GraphBuilder } from '../../converters/graph/builder.js';
import { graphToModel, type Graph } from '../../converters/graph/ir.js';
import { concatChunks } from '../../converters/io.js';
import type { StateDict } from '../../converters/tensor.js';
import { detTensor } from '../helpers.js';

/** One k x k convolution ("same" padding, `channels` in and out), pooled and flattened. */
export function oneConvGraph(k: number, channels = 1): Graph {
  const shape = [channels, channels, k, k];
  const sd: StateDict = new Map([['conv.weight', { dtype: 'F32', shape, data: detTensor(shape, 1, 0.1) }]]);
  const b = new GraphBuilder(sd, 'one_conv');
  const x = b.conv(b.input('input', ['N', channels, 'H', 'W']), 'conv', { pad: Math.floor(k / 2) });
  b.output(b.flatten(b.globalAvgPool(x)), 'output');
  return b.build();
}

/** `oneConvGraph` as ONNX bytes. */
export function oneConvOnnx(k: number, channels = 1): Uint8Array {
  return encodeOnnx(graphToModel(oneConvGraph(k, channels)));
}

/**
 * `oneConvGraph` with its kernel in external data at `location` (offset 0); `data` is what a
 * data file beside it must hold for the model to be whole.
 */
export function oneConvExternal(k: number, location: string): { model: Uint8Array; data: Uint8Array } {
  const { model, data } = encodeOnnxExternal(graphToModel(oneConvGraph(k)), { location, threshold: 1 });
  const back = onnx.ModelProto.decode(model);
  const external = (back.graph?.initializer ?? []).filter((i) => i.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL);
  if (external.length !== 1) throw new Error(`expected one external initializer, got ${external.length}`);
  return { model, data: concatChunks(data) };
}
