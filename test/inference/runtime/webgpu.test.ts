/**
 * onnxruntime's WebGPU provider, run for real: on the GPU that VK_ICD_FILENAMES names, else on
 * lavapipe, a Vulkan driver that runs on the CPU (tools/webgpu/setup-lavapipe.sh, run by
 * .ci/run). The graphs the hub serves and the graphs the engine runs (specialised for a size)
 * against their PyTorch goldens on that adapter; the engine, the CLI and the HTTP API on the
 * device; and the fallback to the CPU, with its reason, where there is no adapter.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import request from 'supertest';
import { convert, type ConvertOptions } from '../../../converters/convert.js';
import { loadSource } from '../../../converters/convert-file.js';
import { encodeOnnx } from '../../../converters/formats/onnx.js';
import { Emitter } from '../../../converters/graph/emitter.js';
import { A, attrInts, graphToModel, type Graph } from '../../../converters/graph/ir.js';
import { specializeViews } from '../../../converters/graph/specialize.js';
import { concatChunks } from '../../../converters/io.js';
import { encodeOutput } from '../../../converters/outputs.js';
import { InferenceEngine } from '../../../inference/runtime/engine.js';
import { createSession, type Device } from '../../../inference/runtime/providers.js';
import { assertMatchesGolden, assertMatchesSegGolden, loadFamily, loadOutputs, loadSegGoldens } from '../../converters/goldens/goldens.js';
import { assertClose, cli, detTensor, fixture } from '../../helpers.js';
import { finishedJob, testHub } from '../../server/hub.js';
import { NO_ADAPTER_ENV, useWebGpuAdapter } from '../../webgpu.js';

useWebGpuAdapter();

/** The first output of a graph run on `device`, which must be the device the session got. */
async function runOn(device: Device, graph: Graph | Uint8Array, data: Float32Array, shape: number[]): Promise<{ data: Float32Array; dims: number[] }> {
  const created = await createSession(graph instanceof Uint8Array ? graph : encodeOnnx(graphToModel(graph)), { device, threads: 1 });
  assert.equal(created.device, device, `the session runs on ${device} (fell back: ${created.fallback ?? 'no'})`);
  try {
    const out = await created.session.run({ [created.session.inputNames[0]!]: new ort.Tensor('float32', data, shape) });
    const t = out[created.session.outputNames[0]!]!;
    return { data: t.data as Float32Array, dims: [...t.dims] };
  } finally {
    await created.session.release();
  }
}

function specialised(graph: Graph, shape: number[]): Graph {
  const sp = specializeViews(graph, { [graph.inputs[0]!.name]: shape });
  assert.ok(sp.views.axial + sp.views.coronal + sp.views.sagittal > 0, 'the specialised graph rewrote views');
  return sp.graph;
}

/** The model.onnx the hub serves for a 2D checkpoint or ONNX file converted with `options`. */
async function servedOnnx(file: string, options: ConvertOptions): Promise<Uint8Array> {
  const { source } = await loadSource(file);
  return concatChunks(encodeOutput(convert(source, options), 'onnx', 'm.onnx').get('m.onnx')!);
}

test('webgpu: ACS ResNet-18 as downloaded and as the engine specialises it matches PyTorch (rtol 1e-4)', async () => {
  const family = loadFamily('resnet18');
  const outputs = await loadOutputs('resnet18');
  const { source } = await loadSource(fixture('goldens', 'resnet18', 'model.pth'));
  for (const name of ['acs', 'acs-in1', 'i3d-d']) {
    const c = family.cases.find((x) => x.name === name)!;
    const r = convert(source, { mode: c.mode as 'acs' | 'i3d', axis: c.options.axis, inChannels: c.options.inChannels, head: 'keep' });
    const input = detTensor(c.input.shape, c.input.seed);
    const expected = { data: outputs.get(c.name)!.data as Float32Array, shape: c.output_shape };
    assertMatchesGolden(await runOn('webgpu', r.graph, input, c.input.shape), expected, `${name} on webgpu`);
    if (c.mode === 'acs') assertMatchesGolden(await runOn('webgpu', specialised(r.graph, c.input.shape), input, c.input.shape), expected, `${name} on webgpu, specialised`);
  }
});

const TRANSPOSED_3D = /^webgpu: onnxruntime's WebGPU provider runs only 1D and 2D ConvTranspose, and this model has a 3D one \('.+'\)$/;

/**
 * A graph with 3D ConvTransposes (a U-Net's general graph) is given to the CPU with the reason;
 * the same graph specialised for its size (2D ones) runs on the device.
 */
async function runTransposedNet(graph: Graph, data: Float32Array, shape: number[]): Promise<{ general: { data: Float32Array; dims: number[] }; specialised: { data: Float32Array; dims: number[] } }> {
  assert.ok(graph.nodes.some((n) => n.op === 'ConvTranspose'), 'the network has transposed convolutions');
  const created = await createSession(encodeOnnx(graphToModel(graph)), { device: 'webgpu', threads: 1 });
  assert.equal(created.device, 'cpu');
  assert.match(created.fallback ?? '', TRANSPOSED_3D);
  await created.session.release();
  const sp = specializeViews(graph, { [graph.inputs[0]!.name]: shape });
  assert.ok(sp.views.transposed > 0, 'transposed views rewritten');
  assert.ok(!sp.graph.nodes.some((n) => n.op === 'ConvTranspose' && attrInts(n, 'kernel_shape', [])!.length > 2), 'no 3D ConvTranspose left');
  return { general: await runOn('cpu', graph, data, shape), specialised: await runOn('webgpu', sp.graph, data, shape) };
}

interface TransposedNet {
  source: string;
  cases: { name: string; mode?: 'acs' | '2.5d' | 'i3d' | 'mean-acs' | 'soft-acs'; axis?: 'd' | 'h' | 'w'; input: { shape: number[]; seed: number }; output_shape: number[] }[];
}

test('webgpu: transposed convolutions (a U-Net; strides, pads, dilations, groups) run on the device once specialised, and match PyTorch', async () => {
  const nets = JSON.parse(readFileSync(fixture('goldens', 'transposed', 'golden.json'), 'utf8')) as Record<string, TransposedNet>;
  const outputs = await loadOutputs('transposed');
  for (const name of ['unet', 'deconvs']) {
    const { source } = await loadSource(fixture('goldens', 'transposed', nets[name]!.source));
    for (const c of nets[name]!.cases.filter((x) => x.mode === 'acs')) {
      const r = convert(source, { mode: c.mode!, axis: c.axis });
      const expected = { data: outputs.get(`${name}/${c.name}`)!.data as Float32Array, shape: c.output_shape };
      const { general, specialised } = await runTransposedNet(r.graph, detTensor(c.input.shape, c.input.seed), c.input.shape);
      assertMatchesGolden(general, expected, `${name}/${c.name}, general, on the CPU`);
      assertMatchesGolden(specialised, expected, `${name}/${c.name}, specialised, on webgpu`);
    }
  }
});

test('webgpu: segmentation networks (FCN, DeepLabV3 with ASPP, U-Nets) match PyTorch', async () => {
  const golden = loadSegGoldens();
  const outputs = await loadOutputs('segmentation');
  for (const network of ['fcn', 'deeplabv3', 'unet', 'unet_ac', 'unet_pad']) {
    const c = golden.cases.find((x) => x.network === network && x.mode === 'acs' && x.name.endsWith('/35x29x53'))!;
    const { source } = await loadSource(fixture('goldens', 'segmentation', `${network}.onnx`));
    const r = convert(source, { mode: 'acs' });
    const x = detTensor(c.input.shape, c.input.seed);
    const expected = outputs.get(c.name)!.data as Float32Array;
    if (r.graph.nodes.some((n) => n.op === 'ConvTranspose')) {
      const { general, specialised } = await runTransposedNet(r.graph, x, c.input.shape);
      assertMatchesSegGolden(general, c, expected, golden);
      assertMatchesSegGolden(specialised, { ...c, name: `${c.name} (specialised, webgpu)` }, expected, golden);
    } else {
      assertMatchesSegGolden(await runOn('webgpu', r.graph, x, c.input.shape), { ...c, name: `${c.name} (webgpu)` }, expected, golden);
      assertMatchesSegGolden(await runOn('webgpu', specialised(r.graph, c.input.shape), x, c.input.shape), { ...c, name: `${c.name} (specialised, webgpu)` }, expected, golden);
    }
  }
});

test('webgpu: the engine loads the model on the device through its worker and answers as on the CPU', async () => {
  const bytes = await servedOnnx(fixture('goldens', 'resnet18', 'model.pth'), { mode: 'acs' });
  const shape = [2, 3, 20, 24, 28];
  const data = detTensor(shape, 9);
  const answers: Float32Array[] = [];
  for (const device of ['cpu', 'webgpu'] as const) {
    const loads: { device: string; fallback?: string; specialized?: string }[] = [];
    const engine = new InferenceEngine({ device, threads: 1, onLoad: (i) => loads.push(i) });
    try {
      const out = await engine.run({ key: 'r18', bytes: bytes.byteLength, load: async () => bytes }, { data, shape });
      answers.push(Object.values(out)[0]!.data as Float32Array);
    } finally {
      await engine.close();
    }
    assert.equal(loads.length, 1);
    assert.equal(loads[0]!.device, device);
    assert.equal(loads[0]!.fallback, undefined);
    assert.match(loads[0]!.specialized ?? '', /specialised for 20x24x28/);
  }
  assertClose(answers[1]!, answers[0]!, { rtol: 1e-4, atol: 1e-5, what: 'webgpu against cpu' });
});

test('webgpu: the autotune chooses among the lowerings the device runs, not one the device hands to the CPU', async () => {
  // The U-Net's general graph (3D ConvTransposes) would run on the CPU: not a candidate for webgpu.
  const bytes = await servedOnnx(fixture('goldens', 'transposed', 'unet.onnx'), { mode: 'acs' });
  const shape = [1, 3, 16, 20, 24];
  const loads: { device: string; fallback?: string; choice?: { candidate: string; timings: Record<string, number> } }[] = [];
  const engine = new InferenceEngine({ device: 'webgpu', threads: 1, autotune: { runs: 1 }, onLoad: (i) => loads.push(i) });
  try {
    await engine.run({ key: 'unet', bytes: bytes.byteLength, load: async () => bytes }, { data: detTensor(shape, 4), shape });
  } finally {
    await engine.close();
  }
  const choice = loads[0]!.choice!;
  assert.equal(choice.timings['general'], undefined, `timed: ${Object.keys(choice.timings).join(', ')}`);
  assert.ok(Object.keys(choice.timings).length > 1, 'the specialised candidates were timed');
  assert.notEqual(choice.candidate, 'general');
  assert.equal(loads[0]!.device, 'webgpu', loads[0]!.fallback);
});

test('webgpu: `acs-hub infer --device webgpu` and the HTTP API run on the device and say so', async (t) => {
  const model = fixture('goldens', 'resnet18', 'model.pth');
  const volume = fixture('inference', 'ct_phantom.nii.gz');
  const logits = async (device: Device) => {
    const r = await cli(['infer', model, '--input', volume, '--device', device, '--top-k', '10']);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout) as { device: string; topK: { index: number; logit: number }[] };
    assert.equal(json.device, device);
    assert.doesNotMatch(r.stderr, /running on cpu/);
    return json.topK.sort((a, b) => a.index - b.index).map((k) => k.logit);
  };
  assertClose(await logits('webgpu'), await logits('cpu'), { rtol: 1e-4, atol: 1e-5, what: 'CLI logits, webgpu against cpu' });

  const { hub } = await testHub(t, { inference: { device: 'webgpu' } });
  const up = await request(hub.app).post('/v1/uploads?filename=resnet18.pth').set('Content-Type', 'application/octet-stream').send(readFileSync(model)).expect(201);
  const job = await request(hub.app).post('/v1/conversions').send({ source: { upload: up.body.id }, mode: 'acs', options: { inChannels: 1 } }).expect(202);
  const done = await finishedJob(hub.app, job.body.id);
  const inf = await request(hub.app).post(`/v1/checkpoints/${done['checkpointId'] as string}/infer?topK=10`).set('Content-Type', 'application/gzip').send(readFileSync(volume)).expect(200);
  assert.equal(inf.body.device, 'webgpu');
  const expected = JSON.parse(readFileSync(fixture('inference', 'expected.json'), 'utf8')) as { logits: number[] };
  const got = (inf.body.topK as { index: number; logit: number }[]).sort((a, b) => a.index - b.index).map((k) => k.logit);
  assertClose(got, expected.logits, { rtol: 1e-4, atol: 1e-4, what: 'HTTP logits on webgpu against PyTorch' });
});

/**
 * A 2D convolution with 6 input channels and a 3x3 kernel: onnxruntime 1.30's WebGPU provider
 * answers it wrongly, on lavapipe and on SwiftShader alike (so the fault is the provider's), as
 * for 9, 15, 18 and 21 input channels; 1-5, 7, 8, 10-14, 16, 17, 19, 20, 22-24 are right.
 */
function sixChannelConv(): Uint8Array {
  const em = new Emitter();
  const w = em.constant('w', { dtype: 'F32', shape: [8, 6, 3, 3], data: detTensor([8, 6, 3, 3], 5) });
  em.node('Conv', 'conv', ['x', w], ['y'], { kernel_shape: A.ints([3, 3]), pads: A.ints([1, 1, 1, 1]) });
  const graph: Graph = { name: 'six', opset: 17, metadata: {}, inputs: [{ name: 'x', dtype: 'F32', shape: [1, 6, 20, 24] }], outputs: [{ name: 'y', dtype: 'F32', shape: [1, 8, 20, 24] }], initializers: em.initializers, nodes: em.nodes };
  return encodeOnnx(graphToModel(graph));
}

test('webgpu: a device whose answer differs from the CPU\'s is not used; the CPU answers, with the reason', async () => {
  const bytes = sixChannelConv();
  const shape = [1, 6, 20, 24];
  const x = detTensor(shape, 3);
  // The fault, outside the hub: the provider's own answer is wrong (if onnxruntime fixes it, this test needs another one).
  const [gpu, cpu] = [await runOn('webgpu', bytes, x, shape), await runOn('cpu', bytes, x, shape)];
  let worst = 0;
  for (let i = 0; i < cpu.data.length; i++) worst = Math.max(worst, Math.abs(gpu.data[i]! - cpu.data[i]!));
  assert.ok(worst > 0.1, `the WebGPU provider answers this convolution wrongly here (largest difference ${worst})`);
  // A session made with the check falls back to the CPU and says why.
  const checked = await createSession(bytes, { device: 'webgpu', threads: 1, verifyShape: shape });
  assert.equal(checked.device, 'cpu');
  assert.match(checked.fallback ?? '', /^webgpu: its answer differs from the CPU's \(output 'y' element \d+: .* against .*, on a fixed input of shape 1x6x20x24\)$/);
  await checked.session.release();
  // A run that fails on the device: a 3D ConvTranspose whose rank the model does not state
  // (no kernel_shape, a computed weight) passes the static refusal and fails at its first run.
  const em = new Emitter();
  const w = em.op('Identity', [em.constant('w', { dtype: 'F32', shape: [2, 3, 2, 2, 2], data: detTensor([2, 3, 2, 2, 2], 6) })], {}, 'weight');
  em.node('ConvTranspose', 'up', ['x', w], ['y'], { strides: A.ints([2, 2, 2]) });
  const up = encodeOnnx(graphToModel({ name: 'up', opset: 17, metadata: {}, inputs: [{ name: 'x', dtype: 'F32', shape: [1, 2, 4, 4, 4] }], outputs: [{ name: 'y', dtype: 'F32', shape: [1, 3, 8, 8, 8] }], initializers: em.initializers, nodes: em.nodes }));
  const failed = await createSession(up, { device: 'webgpu', threads: 1, verifyShape: [1, 2, 4, 4, 4] });
  assert.equal(failed.device, 'cpu');
  assert.match(failed.fallback ?? '', /^webgpu: its first run failed: .*ConvTranspose/);
  assert.equal((await failed.session.run({ x: new ort.Tensor('float32', detTensor([1, 2, 4, 4, 4], 1), [1, 2, 4, 4, 4]) })).y!.dims.join('x'), '1x3x8x8x8');
  await failed.session.release();
  // A model the provider gets right keeps the device with the check.
  const r18 = await servedOnnx(fixture('goldens', 'resnet18', 'model.pth'), { mode: 'acs' });
  const kept = await createSession(r18, { device: 'webgpu', threads: 1, verifyShape: [1, 3, 16, 16, 16] });
  assert.equal(kept.device, 'webgpu', kept.fallback);
  await kept.session.release();

  // The engine checks each session it loads on the device: the ACS U-Net in 2.5D along D has such a convolution.
  const unet = await servedOnnx(fixture('goldens', 'transposed', 'unet.onnx'), { mode: '2.5d', axis: 'd' });
  const uShape = [1, 3, 16, 20, 24];
  const data = detTensor(uShape, 2);
  const loads: { device: string; fallback?: string }[] = [];
  const engine = new InferenceEngine({ device: 'webgpu', threads: 1, onLoad: (i) => loads.push(i) });
  let answer: Float32Array;
  try {
    answer = Object.values(await engine.run({ key: 'unet', bytes: unet.byteLength, load: async () => unet }, { data, shape: uShape }))[0]!.data as Float32Array;
  } finally {
    await engine.close();
  }
  assert.equal(loads[0]!.device, 'cpu');
  assert.match(loads[0]!.fallback ?? '', /^webgpu: its answer differs from the CPU's/);
  const expected = (await runOn('cpu', unet, data, uShape)).data;
  assertClose(answer, expected, { rtol: 1e-5, atol: 1e-6, what: 'the engine answers as the CPU does' });
});

test('webgpu: where the provider finds no adapter, the CLI runs on the CPU and says why', async () => {
  const r = await cli(['infer', fixture('goldens', 'resnet18', 'model.pth'), '--input', fixture('inference', 'ct_phantom.nii.gz'), '--device', 'webgpu'], { env: NO_ADAPTER_ENV });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { device: string }).device, 'cpu');
  assert.match(r.stderr, /webgpu: no WebGPU adapter \(no GPU or no Vulkan driver on this machine\).*running on cpu/);
});
