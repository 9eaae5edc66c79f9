/** Reading the PyTorch goldens of tools/goldens (test/fixtures/goldens). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { readCheckpointFile } from '../../../converters/formats/index.js';
import { encodeOnnx } from '../../../converters/formats/onnx.js';
import { graphToModel, type Graph } from '../../../converters/graph/ir.js';
import type { Mode } from '../../../converters/convert.js';
import type { StateDict } from '../../../converters/tensor.js';
import { assertClose, fixture } from '../../helpers.js';

export interface GoldenInput {
  shape: number[];
  seed: number;
}

export interface FamilyCase {
  name: string;
  mode: string;
  options: { axis?: 'd' | 'h' | 'w'; inChannels?: number; head?: 'features' | 'keep' | number; split?: [number, number, number] };
  input: GoldenInput;
  output_shape: number[];
  param_count: number;
}

export interface TensorDesc {
  dtype?: string;
  shape: number[];
  sha256?: string;
  sum?: number;
  first?: number[];
  exact?: boolean;
  after?: string;
}

export interface Family {
  family: string;
  source: string;
  files: Record<string, string>;
  cases: FamilyCase[];
  state_dicts: Record<string, { base?: string; drop?: string[]; set?: Record<string, TensorDesc> } | Record<string, TensorDesc>>;
  timm_key_map?: Record<string, string>;
}

export const FAMILIES = [
  'resnet18', 'resnet50', 'resnext50_32x4d', 'wide_resnet50_2', 'densenet121', 'vgg11_bn', 'vgg16', 'convnext_tiny',
  'efficientnet_b0', 'mobilenet_v2', 'mobilenet_v3_large', 'mobilenet_v3_small', 'regnet', 'shufflenet_v2', 'functional_cnn',
];

export function loadFamily(name: string): Family {
  return JSON.parse(readFileSync(fixture('goldens', name, 'golden.json'), 'utf8')) as Family;
}

export async function loadOutputs(dir: string): Promise<StateDict> {
  return (await readCheckpointFile(fixture('goldens', dir, 'outputs.safetensors'))).tensors;
}

/** Run a graph on one input named `input`; returns its first output. */
export async function runGraph(graph: Graph | Uint8Array | string, data: Float32Array, shape: number[]): Promise<{ data: Float32Array; dims: number[] }> {
  const model = typeof graph === 'string' || graph instanceof Uint8Array ? graph : encodeOnnx(graphToModel(graph));
  const session = await ort.InferenceSession.create(model as Uint8Array, { intraOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', data, shape) });
    const t = out[session.outputNames[0]!]!;
    return { data: t.data as Float32Array, dims: [...t.dims] };
  } finally {
    await session.release();
  }
}

/** Compare with the goldens' tolerance: rtol 1e-4, atol scaled by the largest reference value. */
export function assertMatchesGolden(actual: { data: Float32Array; dims: number[] }, expected: { data: ArrayLike<number>; shape: readonly number[] }, what: string, rtol = 1e-4): void {
  assert.deepEqual(actual.dims, [...expected.shape], `${what}: output shape`);
  let max = 0;
  for (let i = 0; i < expected.data.length; i++) max = Math.max(max, Math.abs(expected.data[i]!));
  assertClose(actual.data, expected.data, { rtol, atol: rtol * Math.max(max, 1e-3), what });
}

/** A case of the segmentation goldens (tools/goldens/make_seg_goldens.py): one network, mode and size. */
export interface SegGoldenCase {
  name: string;
  network: string;
  mode: Mode;
  input: GoldenInput;
  output_shape: number[];
  sum: number;
  abs_sum: number;
  params_2d: number;
}

/** The segmentation goldens keep `samples` elements of each output, at flat indices (j * stride) mod numel. */
export interface SegGoldens {
  samples: number;
  stride: number;
  cases: SegGoldenCase[];
}

export function loadSegGoldens(): SegGoldens {
  return JSON.parse(readFileSync(fixture('goldens', 'segmentation', 'cases.json'), 'utf8')) as SegGoldens;
}

/** An output against its segmentation golden: the shape, the sampled elements, the sum and abs sum, rtol 1e-4. */
export function assertMatchesSegGolden(y: { data: Float32Array; dims: number[] }, c: SegGoldenCase, expected: Float32Array, golden: SegGoldens): void {
  assert.deepEqual(y.dims, c.output_shape, `${c.name}: output shape`);
  const sampled = new Float32Array(golden.samples);
  for (let j = 0; j < golden.samples; j++) sampled[j] = y.data[Number((BigInt(j) * BigInt(golden.stride)) % BigInt(y.data.length))]!;
  const scale = Math.max(...expected.map(Math.abs));
  assertClose(sampled, expected, { rtol: 1e-4, atol: 1e-4 * scale, what: c.name });
  let sum = 0;
  let abs = 0;
  for (const v of y.data) {
    sum += v;
    abs += Math.abs(v);
  }
  assert.ok(Math.abs(abs - c.abs_sum) <= 1e-4 * c.abs_sum, `${c.name}: abs sum ${abs} vs ${c.abs_sum}`);
  assert.ok(Math.abs(sum - c.sum) <= 1e-4 * c.abs_sum, `${c.name}: sum ${sum} vs ${c.sum}`);
}
