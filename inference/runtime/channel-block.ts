/**
 * The channel block of onnxruntime's blocked (NCHWc) 2D convolutions on this machine: 8 where
 * its CPU kernels use AVX2, 16 where they use AVX-512. A specialised graph pads the output
 * channels of a view it pools while folded (the ACS stem) to whole blocks, so that onnxruntime
 * pools the convolution's blocked output in place; padded to a block the kernels do not use,
 * the pooling falls back to the plain layout after a full-size reorder (5% of ResNet-18 at
 * 64^3 and 128^3 on an AVX-512 machine, bench/inference). The block is read, not assumed from
 * the CPU's features: it is what onnxruntime's own graph optimizer writes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { decodeOnnx, encodeOnnx } from '../../converters/formats/onnx.js';
import { A, graphToModel, type Graph } from '../../converters/graph/ir.js';
import type { SpecializeOptions } from '../../converters/graph/specialize.js';
import type { Device } from './providers.js';

let known: Promise<number | undefined> | undefined;

/**
 * The channel block of onnxruntime's blocked convolutions in this process (measured once):
 * the output channels of a one-filter convolution's weights as its optimizer reorders them;
 * undefined where it has no blocked kernels (they are x86-64 only) or the probe fails.
 */
export function cpuChannelBlock(): Promise<number | undefined> {
  known ??= probe().catch(() => undefined);
  return known;
}

/**
 * Specialisation options for a session on `device`: on the CPU, the channel block is this
 * machine's (unless the options name one).
 */
export async function withMachineBlock(o: SpecializeOptions | undefined, device: Device): Promise<SpecializeOptions | undefined> {
  if (o?.channelBlock !== undefined || device !== 'cpu') return o;
  const block = await cpuChannelBlock();
  return block === undefined ? o : { ...o, channelBlock: block };
}

async function probe(): Promise<number | undefined> {
  const graph: Graph = {
    name: 'block',
    opset: 17,
    metadata: {},
    inputs: [{ name: 'x', dtype: 'F32', shape: [1, 64, 8, 8] }],
    outputs: [{ name: 'y', dtype: 'F32', shape: [1, 1, 8, 8] }],
    initializers: new Map([['w', { dtype: 'F32', shape: [1, 64, 3, 3], data: new Float32Array(64 * 9).fill(0.01) }]]),
    nodes: [{ name: 'y', op: 'Conv', domain: '', inputs: ['x', 'w'], outputs: ['y'], attrs: { pads: A.ints([1, 1, 1, 1]) } }],
  };
  const dir = mkdtempSync(join(os.tmpdir(), 'acs-hub-block-'));
  try {
    const file = join(dir, 'optimized.onnx');
    const session = await ort.InferenceSession.create(encodeOnnx(graphToModel(graph)), {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 1,
      optimizedModelFilePath: file,
      logSeverityLevel: 3,
    });
    await session.release();
    const optimized = decodeOnnx(readFileSync(file));
    const conv = optimized.graph?.node?.find((n) => n.opType === 'Conv' && n.domain === 'com.microsoft.nchwc');
    const weight = optimized.graph?.initializer?.find((t) => t.name === conv?.input?.[1]);
    const block = weight?.dims?.[0] === undefined ? undefined : Number(weight.dims[0]);
    return block !== undefined && Number.isInteger(block) && block > 1 ? block : undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
