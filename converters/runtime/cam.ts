/**
 * Class activation maps for classifiers that end in global average pooling and one Linear
 * layer (ResNet, DenseNet, EfficientNet, MobileNetV2 and their ACS conversions): the feature
 * map before the pooling, weighted by the classifier's row of a class, is where the network
 * looked for that class. Used for the preview overlay.
 */
import { decodeOnnx, encodeOnnx } from '../formats/onnx.js';
import { graphFromModel, graphToModel, type Graph, type Node } from '../graph/ir.js';
import { resample } from '../preprocess/index.js';
import { readFileBytes } from '../io.js';
import type { Volume } from '../volumes/index.js';
import type { Float32Array5, InferenceEngine } from './engine.js';
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

/** The CAM of class `k` on a (D, H, W) grid, scaled to [0, 1]. */
export function classActivation(cam: CamModel, featureMap: Float32Array5, k: number, size: readonly [number, number, number]): Float32Array {
  const [, c, d, h, w] = featureMap.shape as [number, number, number, number, number];
  const vox = d * h * w;
  const map = new Float32Array(vox);
  for (let ci = 0; ci < c; ci++) {
    const wk = cam.weight[k * cam.channels + ci]!;
    const f = featureMap.data.subarray(ci * vox, (ci + 1) * vox);
    for (let i = 0; i < vox; i++) map[i]! += wk * f[i]!;
  }
  let max = 0;
  for (let i = 0; i < vox; i++) max = Math.max(max, map[i]!);
  for (let i = 0; i < vox; i++) map[i] = max > 0 ? Math.max(0, map[i]!) / max : 0;
  if (d === size[0] && h === size[1] && w === size[2]) return map;
  return resample({ volume: { data: map, shape: [1, d, h, w] as const }, size: [...size], mode: 'trilinear' }).data;
}

/**
 * A class-activation map of the top class on the input's grid, where the network allows one;
 * `input` is the preprocessed volume, when the caller has it already.
 */
export async function activationMap(engine: InferenceEngine, model: LoadedModel, result: InferResult, volume: Volume, options: InferOptions, input?: Volume): Promise<Float32Array | undefined> {
  if (result.kind !== 'classification' || !result.topK?.length || options.patch) return undefined;
  const bytes = await model.source.load();
  const cam = withFeatureMap(typeof bytes === 'string' ? await readFileBytes(bytes) : bytes);
  if (!cam) return undefined;
  const camModel = { ...model.source, key: `${model.source.key}#cam`, bytes: cam.bytes.byteLength, load: async () => cam.bytes };
  const fed = input ?? preprocess(volume, model, options).volume;
  const outs = await engine.run(camModel, { data: fed.data, shape: [1, ...fed.shape] });
  const features = outs[cam.features];
  if (!features || features.shape.length !== 5) return undefined;
  return classActivation(cam, features, result.topK[0]!.index, [volume.shape[1], volume.shape[2], volume.shape[3]]);
}

