/**
 * The channel block of onnxruntime's blocked convolutions (inference/runtime/channel-block.ts):
 * read from its optimized graph, it agrees with the rule its CPU kernels follow (16 with
 * AVX-512, 8 with AVX2, none off x86-64), and the engine's specialised sessions on the CPU pad
 * the stem's folded views to it, with the same answers as the general graph.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { test } from 'node:test';
import { encodeOnnx } from '../../../converters/formats/onnx.js';
import { GraphBuilder } from '../../../converters/graph/builder.js';
import { graphToModel } from '../../../converters/graph/ir.js';
import { convertGraphTo3d } from '../../../converters/graph/to3d.js';
import type { StateDict } from '../../../converters/tensor.js';
import { cpuChannelBlock, withMachineBlock } from '../../../inference/runtime/channel-block.js';
import { InferenceEngine } from '../../../inference/runtime/engine.js';
import { assertClose, detTensor } from '../../helpers.js';

/** The block onnxruntime's CPU kernels use, by the CPU's features (its MLAS library's rule). */
function expectedBlock(): number | undefined {
  if (os.arch() !== 'x64') return undefined;
  const flags = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'))?.split(/\s+/) ?? [];
  if (flags.includes('avx512f')) return 16;
  if (flags.includes('avx2')) return 8;
  return undefined;
}

test('channel block: read from onnxruntime\'s optimized graph, as its kernels pick it for this CPU; measured once', async () => {
  const block = await cpuChannelBlock();
  assert.equal(block, expectedBlock(), `onnxruntime's blocked convolutions take channels in blocks of ${block} here`);
  assert.equal(cpuChannelBlock(), cpuChannelBlock(), 'one probe per process');
});

test('channel block: the CPU\'s sessions get it unless the options name one; other devices keep theirs', async () => {
  const block = await cpuChannelBlock();
  assert.deepEqual(await withMachineBlock({ pointwise: true }, 'cpu'), block === undefined ? { pointwise: true } : { pointwise: true, channelBlock: block });
  assert.deepEqual(await withMachineBlock(undefined, 'cpu'), block === undefined ? undefined : { channelBlock: block });
  assert.deepEqual(await withMachineBlock({ channelBlock: 24 }, 'cpu'), { channelBlock: 24 });
  assert.deepEqual(await withMachineBlock({ strided: false }, 'webgpu'), { strided: false });
});

/** An ACS stem (7x7 stride 2, 13 channels, ReLU, max pool 3/2) and a 3x3 convolution after it, as ONNX. */
function stemModel(): Uint8Array {
  const sd: StateDict = new Map();
  sd.set('stem.weight', { dtype: 'F32', shape: [13, 3, 7, 7], data: detTensor([13, 3, 7, 7], 11, 0.2) });
  sd.set('stem.bias', { dtype: 'F32', shape: [13], data: detTensor([13], 12, 0.5) });
  sd.set('next.weight', { dtype: 'F32', shape: [6, 13, 3, 3], data: detTensor([6, 13, 3, 3], 13, 0.2) });
  const b = new GraphBuilder(sd, 'stem');
  const x = b.relu(b.conv(b.input('input', ['N', 3, 'H', 'W']), 'stem', { stride: 2, pad: 3 }));
  b.output(b.conv(b.maxPool(x, 3, 2, 1), 'next', { pad: 1 }), 'output');
  return encodeOnnx(graphToModel(convertGraphTo3d(b.build(), { mode: 'acs', axis: 0 }).graph));
}

test('channel block: the engine pads the stem\'s folded views to this machine\'s block, and answers as the general graph', async () => {
  const bytes = stemModel();
  const model = { key: 'stem', bytes: bytes.byteLength, load: async () => bytes };
  const notes: (string | undefined)[] = [];
  const special = new InferenceEngine({ threads: 1, onLoad: (i) => notes.push(i.specialized) });
  const general = new InferenceEngine({ threads: 1, specialize: false });
  try {
    const shape = [1, 3, 16, 18, 20];
    const data = detTensor(shape, 5);
    const [a, b] = await Promise.all([special.run(model, { data, shape }), general.run(model, { data, shape })]);
    assertClose(a['output']!.data, b['output']!.data, { rtol: 1e-5, atol: 1e-6, what: 'specialised against general' });
    const block = (await cpuChannelBlock()) ?? 8;
    assert.match(notes[0] ?? '', new RegExp(`, 3 pooled while folded \\(output channels in blocks of ${block}\\)$`), notes[0]);
  } finally {
    await special.close();
    await general.close();
  }
});
