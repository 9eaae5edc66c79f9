/**
 * Class activation maps for classifiers that end in global average pooling and one Linear
 * layer (ResNet, DenseNet, EfficientNet, MobileNetV2 and their ACS conversions): the feature
 * map before the pooling, weighted by the classifier's row of a class, is where the network
 * looked for that class. Used for the preview overlay.
 */
import { IN_PROCESS, type Fence } from '../../converters/fence/fence.js';
import { defineTask } from '../../converters/fence/task.js';
import { decodeOnnx, encodeOnnx } from '../../converters/formats/onnx.js';
import { graphFromModel, graphToModel, type Graph, type Node } from '../../converters/graph/ir.js';
import type { Budgets } from '../../converters/budgets.js';
import { resample } from '../preprocess/index.js';
import { readFileBytes } from '../../converters/io.js';
import type { Volume } from '../volumes/index.js';
import type { FloatTensor, InferenceEngine } from './engine.js';
import { preprocess, type InferOptions, type InferResult, type LoadedModel } from './pipeline.js';

/** A model that also outputs the feature map a CAM is made from. */
export interface CamModel {
  bytes: Uint8Array;
  /** Name of the extra output (the feature map before the pooling). */
  features: string;
  /** Classifier weights, classes x channels. */
  weight: Float32Array;
  channels: number;
}

/**
 * The model with its last feature map as an extra output, when the network ends in
 * GlobalAveragePool -> Flatten -> Gemm (transB); undefined for any other head.
 */
export function withFeatureMap(bytes: Uint8Array): CamModel | undefined {
  const g: Graph = graphFromModel(decodeOnnx(bytes));
  const producer = (v: string): Node | undefined => g.nodes.find((n) => n.outputs.includes(v));
  const skip = (n: Node | undefined): Node | undefined => (n && (n.op === 'Identity' || n.op === 'Dropout') ? skip(producer(n.inputs[0]!)) : n);
  const gemm = skip(producer(g.outputs[0]?.name ?? ''));
  if (!gemm || gemm.op !== 'Gemm' || gemm.attrs['transB']?.type !== 'int' || gemm.attrs['transB'].value !== 1) return undefined;
  const flatten = skip(producer(gemm.inputs[0]!));
  if (!flatten || flatten.op !== 'Flatten') return undefined;
  const pool = skip(producer(flatten.inputs[0]!));
  if (!pool || pool.op !== 'GlobalAveragePool') return undefined;
  const w = g.initializers.get(gemm.inputs[1]!);
  if (!w || w.dtype !== 'F32' || w.shape.length !== 2) return undefined;
  const features = pool.inputs[0]!;
  const out = { ...g, outputs: [...g.outputs, { name: features, dtype: 'F32' as const, shape: null }] };
  return { bytes: encodeOnnx(graphToModel(out)), features, weight: w.data as Float32Array, channels: w.shape[1]! };
}

/**
 * The CAM of one class on a (D, H, W) grid, scaled to [0, 1]: the feature map's channels
 * weighted by `weights` (the classifier's row of that class), resampled to `size`.
 */
export function classActivation(weights: Float32Array, featureMap: FloatTensor, size: readonly [number, number, number]): Float32Array {
  const [, c, d, h, w] = featureMap.shape as [number, number, number, number, number];
  const vox = d * h * w;
  const map = new Float32Array(vox);
  for (let ci = 0; ci < c; ci++) {
    const wk = weights[ci]!;
    const f = featureMap.data.subarray(ci * vox, (ci + 1) * vox);
    for (let i = 0; i < vox; i++) map[i]! += wk * f[i]!;
  }
  let max = 0;
  for (let i = 0; i < vox; i++) max = Math.max(max, map[i]!);
  for (let i = 0; i < vox; i++) map[i] = max > 0 ? Math.max(0, map[i]!) / max : 0;
  if (d === size[0] && h === size[1] && w === size[2]) return map;
  // Back onto the input's own grid, which its reader bounded: no budget beyond that.
  return resample({ volume: { data: map, shape: [1, d, h, w] as const }, size: [...size], mode: 'trilinear', budgets: { outputVoxels: size[0] * size[1] * size[2] } }).data;
}

/** `withFeatureMap` as a fence task (it decodes and encodes the whole model). */
export const WITH_FEATURE_MAP = defineTask(import.meta.url, 'WITH_FEATURE_MAP', withFeatureMap);

/** What the activation map of the top class is made from (see `classActivation`). */
export interface Activation {
  featureMap: FloatTensor;
  /** The classifier's weights of the top class, one per feature channel. */
  weights: Float32Array;
}

/** Options of `activationFeatures` and `activationMap`. */
export interface ActivationParams {
  /** The preprocessed volume, when the caller has it already. */
  input?: Volume;
  /**
   * Where the model with its feature map is made (the bytes `model.source.load()` gives move
   * there: they must be the caller's own). @default IN_PROCESS
   */
  fence?: Fence;
  /** Budgets on preprocessing. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** The feature map and weights of the top class's activation map, where the network allows one. */
export async function activationFeatures(
  engine: InferenceEngine,
  model: LoadedModel,
  result: InferResult,
  volume: Volume,
  options: InferOptions,
  extra: ActivationParams = {},
): Promise<Activation | undefined> {
  if (result.kind !== 'classification' || !result.topK?.length || options.patch) return undefined;
  const cam = await (extra.fence ?? IN_PROCESS).run(WITH_FEATURE_MAP, async () => {
    const bytes = await model.source.load();
    return typeof bytes === 'string' ? readFileBytes(bytes) : bytes;
  });
  if (!cam) return undefined;
  const camModel = { ...model.source, key: `${model.source.key}#cam`, bytes: cam.bytes.byteLength, load: async () => cam.bytes };
  const fed = extra.input ?? preprocess(volume, model, options, extra.budgets).volume;
  const outs = await engine.run(camModel, { data: fed.data, shape: [1, ...fed.shape] });
  const featureMap = outs[cam.features];
  if (!featureMap || featureMap.shape.length !== 5) return undefined;
  const k = result.topK[0]!.index;
  return { featureMap, weights: cam.weight.slice(k * cam.channels, (k + 1) * cam.channels) };
}

/** A class-activation map of the top class on the input's grid, where the network allows one. */
export async function activationMap(
  engine: InferenceEngine,
  model: LoadedModel,
  result: InferResult,
  volume: Volume,
  options: InferOptions,
  extra: ActivationParams = {},
): Promise<Float32Array | undefined> {
  const a = await activationFeatures(engine, model, result, volume, options, extra);
  return a && classActivation(a.weights, a.featureMap, [volume.shape[1], volume.shape[2], volume.shape[3]]);
}
