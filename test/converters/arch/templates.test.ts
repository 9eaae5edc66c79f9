import assert from 'node:assert/strict';
import { test } from 'node:test';
import { recognise } from '../../../converters/arch/index.js';
import { loadTemplate, signature, signatureLines, templateIndex } from '../../../converters/arch/templates.js';
import { convert } from '../../../converters/convert.js';
import { initHead } from '../../../converters/modes/head.js';
import type { StateDict } from '../../../converters/tensor.js';
import { detTensor } from '../../helpers.js';
import { runGraph } from '../goldens/goldens.js';
import { shapesOnly, templateEntry as entry, templateWeights } from './template-weights.js';

test('every template agrees with its index entry: keys, shapes, stem, classifier, BatchNorm kept apart from the convolutions', () => {
  const index = templateIndex();
  assert.ok(index.templates.length >= 30, `${index.templates.length} templates`);
  for (const e of index.templates) {
    const { graph, tensors } = loadTemplate(e);
    const shapes = new Map(tensors.map((s) => [s.name, s.shape as number[]]));
    assert.equal(tensors.length, e.keys, `${e.name}: tensor count`);
    assert.equal(signature(signatureLines(shapes, e)), e.signature, `${e.name}: signature`);
    assert.ok(shapes.has(e.stem), `${e.name}: stem ${e.stem}`);
    if (e.classifier) assert.ok(shapes.has(e.classifier.weight), `${e.name}: classifier ${e.classifier.weight}`);
    assert.equal(graph.inputs.length, 1, `${e.name}: one input`);
    assert.deepEqual(graph.initializers.size, 0, `${e.name}: weightless`);
    const bn = graph.nodes.filter((n) => n.op === 'BatchNormalization').length;
    const bnTensors = tensors.filter((s) => s.name.endsWith('running_var')).length;
    assert.equal(bn, bnTensors, `${e.name}: one BatchNormalization node per BatchNorm`);
  }
});

test('a state dict is recognised as exactly its template, with or without num_batches_tracked and auxiliary heads', () => {
  for (const e of templateIndex().templates) {
    const sd = shapesOnly(e);
    assert.equal(recognise(sd).detected.arch, e.name, e.name);
    for (const k of [...sd.keys()]) {
      if (k.endsWith('.running_mean')) sd.set(k.replace(/running_mean$/, 'num_batches_tracked'), { dtype: 'I64', shape: [], data: new BigInt64Array(1) });
    }
    for (const aux of e.auxiliary) sd.set(`${aux}conv.weight`, { dtype: 'F32', shape: [8, 4, 1, 1], data: new Float32Array(32) });
    const r = recognise(sd);
    assert.equal(r.detected.arch, e.name, `${e.name} with buffers and auxiliary heads`);
    assert.equal(r.detected.family, e.family);
    assert.equal(r.detected.task, e.task);
  }
});

test('near misses are refused: a changed shape names the tensor, an extra or a missing key is not that template', () => {
  const e = entry('mnasnet0_5');
  const sd = shapesOnly(e);
  const key = 'layers.0.weight';
  sd.set(key, { dtype: 'F32', shape: [17, 3, 3, 3], data: new Float32Array(0) });
  assert.throws(() => recognise(sd), (err: Error) => /keys of mnasnet/.test(err.message) && err.message.includes(key) && (err as { code?: string }).code === 'CONVERSION_FAILED');

  const extra = shapesOnly(e);
  extra.set('layers.99.weight', { dtype: 'F32', shape: [1], data: new Float32Array(0) });
  assert.throws(() => recognise(extra), /cannot tell the architecture/);

  const missing = shapesOnly(e);
  missing.delete('layers.1.weight');
  assert.throws(() => recognise(missing), /cannot tell the architecture/);

  const stray = shapesOnly(e);
  stray.set('nothing.num_batches_tracked', { dtype: 'I64', shape: [], data: new BigInt64Array(1) });
  assert.throws(() => recognise(stray), /cannot tell the architecture/);

  const wrongType = templateWeights(e);
  wrongType.set('classifier.1.bias', { dtype: 'I64', shape: [1000], data: new BigInt64Array(1000) });
  assert.throws(() => convert({ kind: 'state-dict', tensors: wrongType }, { mode: 'acs' }), (err: Error) => /classifier\.1\.bias.*I64/.test(err.message) && (err as { code?: string }).code === 'CONVERSION_FAILED');

  // many keys: each template stops reading once the state dict has more tensors than it reads
  const many: StateDict = new Map();
  for (let i = 0; i < 200_000; i++) many.set(`aux1.x${i}.running_mean`, { dtype: 'F32', shape: [1], data: new Float32Array(0) });
  assert.throws(() => recognise(many), /cannot tell the architecture of this state dict \(200000 tensors/);

  const classes = shapesOnly(entry('regnet_y_400mf'));
  classes.set('fc.weight', { dtype: 'F32', shape: [10, 440], data: new Float32Array(0) });
  classes.set('fc.bias', { dtype: 'F32', shape: [10], data: new Float32Array(0) });
  assert.equal(recognise(classes).detected.arch, 'regnet_y_400mf', 'a classifier of another number of classes');
  assert.equal(recognise(classes, 'regnet_y_400mf').detected.arch, 'regnet_y_400mf', '--arch');
  assert.equal(recognise(classes, 'regnet').detected.arch, 'regnet_y_400mf', '--arch with the family');
  assert.throws(() => recognise(classes, 'mnasnet'), /does not have the keys of a mnasnet/);
  assert.throws(() => recognise(classes, 'regnet_y_800mf'), /keys of regnet_y_800mf but not its shapes|does not have the keys/);
});

test('heads of template networks: features, a new number of classes, another number of input channels', async () => {
  const x = detTensor([1, 1, 20, 24, 28], 3);
  for (const name of ['squeezenet1_1', 'regnet_x_400mf']) {
    const sd = templateWeights(entry(name));
    const features = convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', head: 'features', inChannels: 1 });
    const dim = name === 'squeezenet1_1' ? 512 : 400;
    assert.deepEqual((await runGraph(features.graph, x, [1, 1, 20, 24, 28])).dims, [1, dim], `${name} features`);
    const ten = convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', head: 10, inChannels: 1 });
    assert.deepEqual((await runGraph(ten.graph, x, [1, 1, 20, 24, 28])).dims, [1, 10], `${name} head 10`);
    assert.equal(ten.card.output.size, 10);
  }
  const googlenet = templateWeights(entry('googlenet'));
  assert.throws(() => convert({ kind: 'state-dict', tensors: googlenet }, { mode: 'acs', inChannels: 1 }), (err: Error) => /transform_input/.test(err.message) && (err as { code?: string }).code === 'UNSUPPORTED');
  const lraspp = shapesOnly(entry('lraspp_mobilenet_v3_large'));
  assert.throws(() => convert({ kind: 'state-dict', tensors: lraspp }, { mode: 'acs', head: 'features' }), (err: Error) => /segmentation network/.test(err.message) && (err as { code?: string }).code === 'UNSUPPORTED');
});

test("a new head is initialised as the architecture's own code does: GoogLeNet, Inception-v3, MNASNet", () => {
  const std = (a: Float32Array): number => Math.sqrt(a.reduce((x, v) => x + v * v, 0) / a.length);
  const googlenet = convert({ kind: 'state-dict', tensors: templateWeights(entry('googlenet')) }, { mode: 'acs', head: 10, seed: 3 });
  const w = googlenet.stateDict.get('fc.weight')!.data as Float32Array;
  const b = googlenet.stateDict.get('fc.bias')!.data as Float32Array;
  assert.ok(Math.abs(std(w) - 0.01) < 0.001, `GoogLeNet fc.weight std ${std(w)}`);
  assert.ok(b.every((v) => Math.abs(v) <= 1 / 32) && b.some((v) => v !== 0), 'GoogLeNet fc.bias: nn.Linear default');
  const inception = initHead(entry('inception_v3').headInit!, 100, 2048, 1);
  assert.ok(Math.abs(std(inception.weight.data as Float32Array) - 0.1) < 0.005, 'Inception-v3: trunc normal 0.1');
  const mnasnet = convert({ kind: 'state-dict', tensors: templateWeights(entry('mnasnet0_5')) }, { mode: 'acs', head: 10, seed: 3 });
  const mw = mnasnet.stateDict.get('classifier.1.weight')!.data as Float32Array;
  const bound = Math.sqrt(3 / 10);
  assert.ok(mw.every((v) => Math.abs(v) <= bound) && mw.some((v) => Math.abs(v) > 0.9 * bound), 'MNASNet: uniform(+-sqrt(3/classes))');
  assert.ok((mnasnet.stateDict.get('classifier.1.bias')!.data as Float32Array).every((v) => v === 0), 'MNASNet: zero bias');
});

test('a template conversion stays within conversionOutputBytes', () => {
  const sd = templateWeights(entry('mnasnet0_5'));
  assert.throws(
    () => convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs' }, { budgets: { conversionOutputBytes: 1_000_000 } }),
    (err: Error) => (err as { code?: string }).code === 'LIMIT_EXCEEDED' && /conversionOutputBytes|CONVERSION_OUTPUT/i.test(err.message),
  );
});

test('segmentation heads take another number of classes and stems another number of input channels; the heads must agree on one number of at least 1', () => {
  const resized = (name: string, keys: string[], n: number, dim = 0): StateDict => {
    const sd = shapesOnly(entry(name));
    for (const k of keys) {
      const t = sd.get(k)!;
      sd.set(k, { ...t, shape: t.shape.map((d, i) => (i === dim ? n : d)) });
    }
    return sd;
  };
  const failed = (re: RegExp) => (err: Error) => re.test(err.message) && (err as { code?: string }).code === 'CONVERSION_FAILED';
  for (const name of ['fcn_resnet50', 'deeplabv3_resnet50', 'deeplabv3_mobilenet_v3_large', 'lraspp_mobilenet_v3_large', 'unet']) {
    const e = entry(name);
    const heads = e.classes.filter((k) => !e.auxiliary.some((p) => k.startsWith(p)));
    assert.ok(heads.length >= 2, `${name}: the heads' weights and biases are marked`);
    for (const n of [1, 3, 150]) assert.equal(recognise(resized(name, heads, n)).detected.arch, name, `${name} with ${n} classes`);
    assert.equal(recognise(resized(name, [e.stem], 1, 1)).detected.arch, name, `${name} with 1 input channel`);
    assert.throws(() => recognise(resized(name, heads.slice(0, 1), 3)), failed(new RegExp(`'${heads[0]}' \\(3 classes\\) and '${heads[1]}' \\(\\d+ classes\\) disagree|'${heads[1]}' \\(\\d+ classes\\) and '${heads[0]}' \\(3 classes\\) disagree`)), `${name}: weight and bias disagree`);
    assert.throws(() => recognise(resized(name, heads, 0)), failed(/needs at least one class/), `${name}: zero classes`);
    assert.throws(() => recognise(resized(name, [e.stem], 0, 1)), failed(/needs at least one input channel/), `${name}: zero input channels`);
  }
  const lraspp = resized('lraspp_mobilenet_v3_large', ['classifier.low_classifier.weight', 'classifier.low_classifier.bias'], 3);
  for (const k of ['classifier.high_classifier.weight', 'classifier.high_classifier.bias']) lraspp.set(k, { ...lraspp.get(k)!, shape: [5, ...lraspp.get(k)!.shape.slice(1)] });
  assert.throws(() => recognise(lraspp), failed(/'classifier\.low_classifier\.weight' \(3 classes\) and 'classifier\.high_classifier\.weight' \(5 classes\) disagree on the number of classes of lraspp_mobilenet_v3_large/));
  assert.ok(entry('fcn_resnet50').classes.includes('aux_classifier.4.weight'), 'the aux head is marked');
  // The aux head only trains: the network never reads it, so its number of classes is not compared.
  const fcn = resized('fcn_resnet50', ['classifier.4.weight', 'classifier.4.bias'], 3);
  fcn.set('aux_classifier.4.weight', { dtype: 'F32', shape: [21, 256, 1, 1], data: new Float32Array(0) });
  fcn.set('aux_classifier.4.bias', { dtype: 'F32', shape: [21], data: new Float32Array(0) });
  assert.equal(recognise(fcn).detected.arch, 'fcn_resnet50');
  // The same shapes from a classifier: fc's weight and bias must agree too.
  const regnet = resized('regnet_x_400mf', ['fc.weight'], 10);
  assert.throws(() => recognise(regnet), failed(/'fc\.weight' \(10 classes\) and 'fc\.bias' \(1000 classes\) disagree/));
});

test('a U-Net from its template stays within conversionOutputBytes: i3d inflates its kernels threefold', () => {
  const sd: StateDict = new Map([...shapesOnly(entry('unet'))].map(([k, t]) => [k, { ...t, data: new Float32Array(t.shape.reduce((a, b) => a * b, 1)) }]));
  // 31M parameters: about 124 MB in each of the three outputs in ACS, about three times that in i3d.
  const budgets = { conversionOutputBytes: 600_000_000 };
  assert.equal(convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs' }, { budgets }).card.parameters.converted, 31_037_698);
  assert.throws(
    () => convert({ kind: 'state-dict', tensors: sd }, { mode: 'i3d' }, { budgets }),
    (err: Error) => (err as { code?: string }).code === 'LIMIT_EXCEEDED' && /conversionOutputBytes/.test(err.message),
  );
});
