/**
 * model.py, the PyTorch source of a converted network, checked by PyTorch itself (Debian's
 * python3-torch through `.venv`, one Python process per batch, tools/model_py/check_model_py.py):
 * for every golden family and mode, and five networks from architecture templates, it loads
 * model.safetensors with safetensors.torch.load_file and strict=True (model.pth holding the very
 * same tensors), has the converted parameter count, computes what model.onnx
 * computes in onnxruntime (rtol 1e-4) at a size whose sides share no factor, passes gradients to
 * every parameter, updates BatchNorm's statistics in train(), and traces with torch.jit.trace;
 * so do the transposed and non-square goldens (a U-Net with ConvTranspose, an Inception block)
 * in every mode, and the public PyTorch U-Net at full size from its template (its weights read
 * from model.safetensors); the 300 single-conv goldens match the PyTorch reference; and SGD on a
 * synthetic 3D task lowers the loss.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { convert, type ConvertResult, type Mode } from '../../converters/convert.js';
import { loadSource } from '../../converters/convert-file.js';
import { UnsupportedError } from '../../converters/errors.js';
import { GraphBuilder } from '../../converters/graph/builder.js';
import { A, type Attr, type Graph } from '../../converters/graph/ir.js';
import { generateModelPy } from '../../converters/model-py/generate-model-py.js';
import { encodeOutput } from '../../converters/outputs.js';
import type { StateDict, Tensor } from '../../converters/tensor.js';
import { cli, detTensor, fixture, tempDir } from '../helpers.js';
import { templateEntry, templateWeights } from './arch/template-weights.js';
import { assertCaseResult, caseAt, checkModelPy, smallestSize as smallestSizeOf, writeCase, type CheckCase } from './model-py-check.js';
import { FAMILIES, loadFamily, loadOutputs, runGraph } from './goldens/goldens.js';

/** Input sizes whose three sides share no factor, smallest first; a family takes the first it can run. */
const SIZES: [number, number, number][] = [
  [9, 10, 11],
  [17, 19, 23],
  [33, 35, 37],
];

/** The first size of SIZES at which every value of the 3D graph has a non-empty shape (else the largest). */
function smallestSize(result: ConvertResult): [number, number, number] {
  return smallestSizeOf(result, SIZES, 2) ?? SIZES[SIZES.length - 1]!;
}

async function familyCases(dir: string): Promise<CheckCase[]> {
  const cases: CheckCase[] = [];
  for (const family of FAMILIES) {
    const f = loadFamily(family);
    const { source } = await loadSource(fixture('goldens', family, f.source));
    let size: [number, number, number] | undefined;
    for (const c of f.cases.filter((x) => x.mode !== '2d')) {
      const result = convert(source, { mode: c.mode as Mode, axis: c.options.axis, inChannels: c.options.inChannels, head: c.options.head ?? 'keep' });
      size ??= smallestSize(result);
      const shape = [2, result.card.input.channels, ...size];
      const input = detTensor(shape, 11);
      const expected = await runGraph(result.graph, input, shape);
      const at = join(dir, family, c.name);
      await writeCase(at, result, input, expected.data);
      // Tracing costs about a second per model: once per family, and once per conv class.
      const trace = c.name === 'acs' || (family === 'resnet18' && ['2.5d-d', 'i3d-d', 'mean-acs', 'soft-acs'].includes(c.name));
      cases.push(caseAt(at, `${family}/${c.name} at ${size.join('x')}`, result, shape, expected.dims, trace ? ['train', 'trace'] : ['train']));
    }
  }
  return cases;
}

/** The transposed and non-square goldens (a U-Net, shifted and cropped transposed convs, an Inception block) in every mode. */
async function transposedCases(dir: string): Promise<CheckCase[]> {
  const nets = JSON.parse(await readFile(fixture('goldens', 'transposed', 'golden.json'), 'utf8')) as Record<string, { source: string; cases: { name: string; mode?: Mode; axis?: 'd' | 'h' | 'w'; input: { shape: number[] } }[] }>;
  const cases: CheckCase[] = [];
  for (const [net, f] of Object.entries(nets)) {
    const { source } = await loadSource(fixture('goldens', 'transposed', f.source));
    for (const c of f.cases.filter((x) => x.mode !== undefined)) {
      const result = convert(source, { mode: c.mode!, axis: c.axis });
      const shape = [2, ...c.input.shape.slice(1)];
      const input = detTensor(shape, 12);
      const expected = await runGraph(result.graph, input, shape);
      const at = join(dir, 'transposed', net, c.name);
      await writeCase(at, result, input, expected.data);
      cases.push(caseAt(at, `transposed/${net}/${c.name} at ${shape.slice(2).join('x')}`, result, shape, expected.dims, c.name === 'acs' ? ['train', 'trace'] : ['train']));
    }
  }
  return cases;
}

interface LayerCase {
  name: string;
  mode: Mode;
  options: { axis?: 'd' | 'h' | 'w'; split?: [number, number, number] };
  in_channels: number;
  kernel: number;
  stride: number;
  padding: number;
  dilation: number;
  groups: number;
  input: { shape: number[]; seed: number };
  weight: { shape: number[]; seed: number; scale: number };
  bias_init: { shape: number[]; seed: number; scale: number } | null;
  output_shape: number[];
}

/** The single-conv goldens (plane rules, splits, groups, every mode) against PyTorch's outputs. */
async function layerCases(dir: string): Promise<CheckCase[]> {
  const file = JSON.parse(await readFile(fixture('goldens', 'layers', 'cases.json'), 'utf8')) as { cases: LayerCase[] };
  const outputs = await loadOutputs('layers');
  const cases: CheckCase[] = [];
  for (const c of file.cases) {
    const sd: StateDict = new Map();
    sd.set('conv.weight', { dtype: 'F32', shape: c.weight.shape, data: detTensor(c.weight.shape, c.weight.seed, c.weight.scale) });
    if (c.bias_init) sd.set('conv.bias', { dtype: 'F32', shape: c.bias_init.shape, data: detTensor(c.bias_init.shape, c.bias_init.seed, c.bias_init.scale) });
    const b = new GraphBuilder(sd, c.name);
    b.output(b.conv(b.input('input', ['N', c.in_channels, 'H', 'W']), 'conv', { stride: c.stride, pad: c.padding, dilation: c.dilation, group: c.groups }), 'output');
    const splits = c.options.split ? { 'conv.weight': c.options.split } : undefined;
    const result = convert({ kind: 'onnx', graph: b.build() }, { mode: c.mode, axis: c.options.axis, splits });
    const at = join(dir, 'layers', c.name);
    await writeCase(at, result, detTensor(c.input.shape, c.input.seed), outputs.get(c.name)!.data as Float32Array);
    cases.push(caseAt(at, `layers/${c.name}`, result, c.input.shape, c.output_shape, []));
  }
  return cases;
}

/**
 * Operators beyond the goldens' (activations, reductions, normalisations, pools with odd pads,
 * gathers, where/compare, Gemm with alpha and beta, GroupNormalization at opset 18): small 2D
 * ONNX graphs, converted, against onnxruntime.
 */
function operatorGraphs(): { name: string; graph: Graph }[] {
  const t = (shape: number[], seed: number, scale: number, shift = 0): Tensor => ({ dtype: 'F32', shape, data: detTensor(shape, seed, scale).map((v) => v + shift) });
  const sd: StateDict = new Map([
    ['conv.weight', t([8, 3, 3, 3], 1, 0.3)],
    ['conv.bias', t([8], 2, 0.1)],
    ['norm.weight', t([8], 3, 0.2, 1)],
    ['norm.bias', t([8], 4, 0.1)],
    ['slope', t([8, 1, 1], 5, 0.2)],
    ['head.w', t([24, 5], 6, 0.3)],
    ['head.b', t([5], 7, 0.1)],
    ['group.scale', t([2], 8, 0.2, 1)],
    ['group.bias', t([2], 9, 0.1)],
  ]);
  const f = (b: GraphBuilder, v: number) => b.sharedFloat(`c${String(v).replace(/\W/g, '_')}`, v);
  const graphs: { name: string; graph: Graph }[] = [];

  // Element-wise, reductions over channels, normalisations and pools on (N, 8, H, W).
  let b = new GraphBuilder(sd, 'elementwise');
  let y = b.conv(b.input('input', ['N', 3, 'H', 'W']), 'conv', { pad: 1 });
  const chain = (x: string, ops: [string, Record<string, Attr>?][]) => ops.reduce((v, [op, attrs]) => b.op(op, [v], attrs ?? {}), x);
  const a = chain(y, [['LeakyRelu', { alpha: A.float(0.1) }], ['Elu', { alpha: A.float(0.9) }], ['Selu'], ['Celu', { alpha: A.float(1.2) }], ['Softplus'], ['Softsign'], ['Tanh']]);
  const neg = chain(b.op('PRelu', [y, b.weight('slope')]), [['Abs'], ['Neg'], ['Exp']]);
  const c = chain(b.add(b.op('Softplus', [y]), f(b, 1)), [['Log'], ['Reciprocal'], ['Sin'], ['Cos'], ['Sqrt']]);
  const terms = [
    a, neg, c,
    b.op('Where', [b.op('Greater', [a, neg]), a, neg]),
    b.op('Max', [a, neg, c]), b.op('Min', [a, c]), b.op('Mean', [a, neg, c]),
    b.op('Softmax', [y], { axis: A.int(1) }), b.op('LogSoftmax', [y], { axis: A.int(1) }),
    ...['ReduceMax', 'ReduceMin', 'ReduceL1', 'ReduceL2', 'ReduceLogSumExp', 'ReduceSumSquare'].map((op) => b.op(op, [y], { axes: A.ints([1]) })),
    b.op('ReduceSum', [y, b.ints('sum_axes', [1])]),
    b.op('ReduceProd', [b.sigmoid(y)], { axes: A.ints([1]), keepdims: A.int(1) }),
    b.op('Cast', [b.op('ArgMax', [y], { axis: A.int(1) })], { to: A.int(1) }),
    b.op('Squeeze', [b.op('Unsqueeze', [b.op('Unsqueeze', [b.op('ReduceMean', [y], { axes: A.ints([1]), keepdims: A.int(0) }), b.ints('axes1', [1])]), b.ints('axes0', [0])]), b.ints('axes0b', [0])]),
    b.op('InstanceNormalization', [y, b.weight('norm.weight'), b.weight('norm.bias')], { epsilon: A.float(1e-3) }),
    b.op('Gather', [y, b.ints('channels', [0, 2, 4, 6, 1, 3, 5, -1])], { axis: A.int(1) }),
    b.concat([b.op('Slice', [y, b.ints('s0', [0]), b.ints('s1', [8]), b.ints('s2', [1]), b.ints('s3', [2])]), b.op('Slice', [y, b.ints('t0', [1]), b.ints('t1', [9]), b.ints('t2', [1]), b.ints('t3', [2])])], 1),
    b.op('ThresholdedRelu', [y], { alpha: A.float(0.2) }),
    b.op('Shrink', [y], { lambd: A.float(0.3), bias: A.float(0.1) }),
    b.op('HardSigmoid', [y], { alpha: A.float(0.3), beta: A.float(0.4) }),
    b.op('Clip', [y, f(b, -0.5), f(b, 0.7)]),
    b.op('Dropout', [y]),
    b.op('Pow', [b.op('Abs', [y]), f(b, 1.5)]),
    b.op('Div', [y, b.add(b.op('Abs', [y]), f(b, 1))]),
    b.op('Sub', [y, b.op('Erf', [y])]),
    b.maxPool(b.op('Pad', [y, b.ints('pads', [0, 0, 1, 1, 0, 0, 1, 1])], { mode: A.str('reflect') }), 3, 1, 0),
    b.op('Pad', [b.maxPool(y, 3, 1, 0), b.ints('edge', [0, 0, 1, 1, 0, 0, 1, 1])], { mode: A.str('edge') }),
    b.op('LpPool', [y], { kernel_shape: A.ints([3, 3]), strides: A.ints([1, 1]), pads: A.ints([1, 1, 1, 1]), p: A.int(2) }),
    b.avgPool(y, 3, 1, 1, 'avg_included', true),
    b.op('MaxPool', [y], { kernel_shape: A.ints([2, 2]), strides: A.ints([1, 1]), pads: A.ints([0, 0, 1, 1]) }),
    b.op('MaxPool', [y], { kernel_shape: A.ints([3, 3]), strides: A.ints([1, 1]), pads: A.ints([2, 2, 2, 2]), dilations: A.ints([2, 2]) }),
  ];
  b.output(b.op('Sum', terms), 'output');
  graphs.push({ name: 'elementwise', graph: b.build() });

  // Global pools into a functional Gemm (alpha, beta, an untransposed weight) and a softmax.
  b = new GraphBuilder(sd, 'pooled');
  y = b.relu(b.conv(b.input('input', ['N', 3, 'H', 'W']), 'conv', { stride: 2, pad: 1 }));
  const pooled = ['GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool'].map((op) => b.flatten(b.op(op, [y])));
  const logits = b.op('Gemm', [b.concat(pooled, 1), b.weight('head.w'), b.weight('head.b')], { alpha: A.float(0.5), beta: A.float(2) });
  b.output(b.op('Softmax', [logits], { axis: A.int(1) }), 'output');
  graphs.push({ name: 'pooled', graph: b.build() });

  // Opset 18: GroupNormalization with per-group scale and bias, Mish, axes and splits as inputs.
  b = new GraphBuilder(sd, 'opset18', 18);
  y = b.conv(b.input('input', ['N', 3, 'H', 'W']), 'conv', { pad: 1 });
  const g = b.op('GroupNormalization', [y, b.weight('group.scale'), b.weight('group.bias')], { num_groups: A.int(2), epsilon: A.float(1e-4) });
  const [p, q] = b.opN('Split', [b.op('Mish', [g]), b.ints('split', [3, 5])], { axis: A.int(1) }, 'split', 2) as [string, string];
  const m = b.op('ReduceMean', [q, b.ints('rm_axes', [1])], { keepdims: A.int(1) });
  b.output(b.concat([b.mul(p, m), q], 1), 'output');
  graphs.push({ name: 'opset18', graph: b.build() });
  return graphs;
}

async function operatorCases(dir: string): Promise<CheckCase[]> {
  const cases: CheckCase[] = [];
  for (const { name, graph } of operatorGraphs()) {
    for (const mode of ['acs', 'i3d'] as const) {
      const result = convert({ kind: 'onnx', graph }, { mode });
      const shape = [2, 3, 9, 10, 11];
      const input = detTensor(shape, 3);
      const expected = await runGraph(result.graph, input, shape);
      const at = join(dir, 'operators', `${name}-${mode}`);
      await writeCase(at, result, input, expected.data);
      cases.push(caseAt(at, `operators/${name} (${mode})`, result, shape, expected.dims, mode === 'acs' ? ['train', 'trace'] : ['train']));
    }
  }
  return cases;
}

/** Networks from architecture templates (converters/arch/templates), filled by template_weights. */
async function templateCases(dir: string): Promise<CheckCase[]> {
  const cases: CheckCase[] = [];
  for (const name of ['squeezenet1_1', 'googlenet', 'mnasnet0_5', 'shufflenet_v2_x0_5', 'regnet_y_400mf']) {
    const result = convert({ kind: 'state-dict', tensors: templateWeights(templateEntry(name)) }, { mode: 'acs' });
    const size = smallestSize(result);
    const shape = [2, 3, ...size];
    const input = detTensor(shape, 13);
    const expected = await runGraph(result.graph, input, shape);
    const at = join(dir, 'templates', name);
    await writeCase(at, result, input, expected.data);
    cases.push(caseAt(at, `templates/${name} (acs) at ${size.join('x')}`, result, shape, expected.dims, name === 'googlenet' ? ['train', 'trace'] : ['train']));
  }
  return cases;
}

/**
 * The public PyTorch U-Net at full size (widths 64 to 1024) from its architecture template,
 * filled by template_weights: transposed convolutions padded to their skip connections' sizes
 * at a size no stride divides, its model.py loading model.safetensors.
 */
async function unetCase(dir: string): Promise<CheckCase> {
  const result = convert({ kind: 'state-dict', tensors: templateWeights(templateEntry('unet')) }, { mode: 'acs' });
  const size = smallestSize(result);
  const shape = [2, 3, ...size];
  const input = detTensor(shape, 14);
  const expected = await runGraph(result.graph, input, shape);
  const at = join(dir, 'templates', 'unet');
  await writeCase(at, result, input, expected.data);
  return caseAt(at, `templates/unet (acs) at ${size.join('x')}`, result, shape, expected.dims, ['train']);
}

/**
 * Segmentation networks (tools/goldens/make_seg_goldens.py): resizes to the sizes of other
 * tensors (linear with align_corners, nearest), by a scale factor, a crop to the input's size,
 * a pad to a skip connection's size, and ASPP's image pooling, read from the 3D tensors' shapes
 * in model.py too.
 */
async function segmentationCases(dir: string): Promise<CheckCase[]> {
  const cases: CheckCase[] = [];
  for (const name of ['fcn', 'deeplabv3', 'lraspp', 'unet', 'unet_ac', 'unet_pad']) {
    const { source } = await loadSource(fixture('goldens', 'segmentation', `${name}.onnx`));
    const result = convert(source, { mode: 'acs' });
    const shape = [2, 3, 17, 19, 23];
    const input = detTensor(shape, 9);
    const expected = await runGraph(result.graph, input, shape);
    const at = join(dir, 'segmentation', name);
    await writeCase(at, result, input, expected.data);
    cases.push(caseAt(at, `segmentation/${name} (acs)`, result, shape, expected.dims, ['train', 'trace']));
  }
  return cases;
}

/** model.py and model.pth written by `acs-hub convert --out` (the format follows the extension). */
async function cliCase(dir: string): Promise<CheckCase> {
  const at = join(dir, 'cli');
  const source = fixture('goldens', 'resnet18', 'model.pth');
  await mkdir(at, { recursive: true });
  for (const out of ['model.py', 'model.safetensors', 'model.pth']) {
    const r = await cli(['convert', source, '--out', join(at, out), '--mode', 'soft-acs', '--in-channels', '1']);
    assert.equal(r.code, 0, r.stderr);
  }
  const { source: src } = await loadSource(source);
  const result = convert(src, { mode: 'soft-acs', inChannels: 1 });
  const shape = [2, 1, 17, 19, 23];
  const input = detTensor(shape, 5);
  const expected = await runGraph(result.graph, input, shape);
  await writeFile(join(at, 'input.f32'), input);
  await writeFile(join(at, 'expected.f32'), expected.data);
  assert.equal(await readFile(join(at, 'model.py'), 'utf8'), generateModelPy(result), 'the CLI writes the generated file');
  return caseAt(at, 'cli/resnet18 soft-acs, 1 input channel', result, shape, expected.dims, ['train']);
}

test('model.py of every golden family and mode is the converted network in PyTorch (loads strictly, matches model.onnx, trains, traces)', async (t) => {
  const dir = await tempDir(t);
  // Two checker processes, the first one running while the second one's cases are made.
  const layers = await layerCases(dir);
  const trainDir = join(dir, 'train');
  const { source } = await loadSource(fixture('goldens', 'resnet18', 'model.pth'));
  await writeCase(trainDir, convert(source, { mode: 'acs', inChannels: 1, head: 2 }), new Float32Array(0), new Float32Array(0));
  const train = { model: join(trainDir, 'model.py'), weights: join(trainDir, 'model.safetensors'), shape: [8, 1, 16, 16, 16], classes: 2, steps: 20, lr: 0.01 };
  const first = checkModelPy(dir, 'layers', layers, train);
  first.catch(() => undefined);
  const families = [
    ...(await familyCases(dir)),
    ...(await transposedCases(dir)),
    ...(await operatorCases(dir)),
    ...(await segmentationCases(dir)),
    ...(await templateCases(dir)),
    await unetCase(dir),
    await cliCase(dir),
  ];
  const [a, b] = await Promise.all([first, checkModelPy(dir, 'families', families)]);
  const cases = [...layers, ...families];
  const results = [...a.cases, ...b.cases];
  assert.equal(results.length, cases.length);
  const byName = new Map(results.map((r) => [r.name, r]));
  for (const c of cases) {
    await t.test(c.name, () => assertCaseResult(c, byName.get(c.name)!));
  }
  await t.test('SGD on a synthetic 3D task lowers the loss (resnet18, acs, 1 channel, 2 classes)', () => {
    assert.equal(a.train!.error, undefined, a.train!.error);
    assert.ok(a.train!.after < 0.6 * a.train!.before, `loss ${a.train!.before} -> ${a.train!.after}`);
  });
});


test('model.py: layers are modules named as in the state dict, computed in the source order', async () => {
  const { source } = await loadSource(fixture('goldens', 'resnet18', 'model.pth'));
  const py = generateModelPy(convert(source, { mode: 'acs' }));
  for (const line of [
    '        self.conv1 = ACSConv3d(3, 4, 7, stride=2, padding=3, bias=False)',
    "                'downsample': nn.ModuleDict({",
    "                    '0': ACSConv3d(4, 8, 1, stride=2, bias=False),",
    '        self.fc = nn.Linear(32, 10)',
    "        layer1_0_conv1 = self.layer1['0'].conv1(maxpool)",
    '        return fc',
  ]) {
    assert.ok(py.split('\n').includes(line), `model.py has the line: ${line}`);
  }
  const order = ['self.conv1(', 'self.bn1(', "self.layer1['0'].conv1(", "self.layer4['1'].bn2(", 'self.fc('].map((s) => py.indexOf(s));
  assert.ok(order.every((i) => i > 0));
  assert.deepEqual(order, [...order].sort((a, b) => a - b), 'forward follows the source order');
  assert.doesNotMatch(py, /node_\d|Conv_\d|SOURCE_NAMES/);
  // An ONNX export names BN-folded weights after the graph; the modules keep the scopes' names.
  const regnet = generateModelPy(convert((await loadSource(fixture('goldens', 'regnet', 'model.onnx'))).source, { mode: 'acs' }));
  assert.match(regnet, /self\.stem = nn\.ModuleDict\(\{\n\s+'0': ACSConv3d\(3, 32, 3, stride=2, padding=1\)/);
  assert.match(regnet, /'stem\.0\.weight': 'onnx::Conv_144',/);
});

test('model.py: names from the checkpoint are text, never code (a graph name that closes the docstring, keys with quotes and line breaks)', async (t) => {
  const dir = await tempDir(t);
  const marker = join(dir, 'pwned');
  // What an ONNX file can carry: a graph name written to close model.py's docstrings, and tensor
  // names with quotes, backslashes, line breaks, a NUL and a Unicode line separator.
  const name = `net"""; __import__('os').system('touch ${marker}'); """`;
  const prefixes = ["conv\nimport os\n#", 'a\'b"c\\d', 'e\r\u0000f\u2028g'];
  const sd: StateDict = new Map(prefixes.map((p, i) => [`${p}.weight`, { dtype: 'F32', shape: [4, i === 0 ? 3 : 4, 3, 3], data: detTensor([4, i === 0 ? 3 : 4, 3, 3], i + 1, 0.2) } as Tensor]));
  const b = new GraphBuilder(sd, name);
  let x = b.input('input', ['N', 3, 'H', 'W']);
  for (const p of prefixes) x = b.relu(b.conv(x, p, { pad: 1 }));
  b.output(b.flatten(b.globalAvgPool(x)), 'output');
  const result = convert({ kind: 'onnx', graph: b.build() }, { mode: 'acs' });
  const py = generateModelPy(result);
  assert.ok(py.startsWith('"""net\\"\\"\\"; __import__(\\\'os\\\')'), py.slice(0, 80));
  const shape = [2, 3, 9, 10, 11];
  const input = detTensor(shape, 5);
  const expected = await runGraph(result.graph, input, shape);
  const at = join(dir, 'names');
  await writeCase(at, result, input, expected.data);
  const c = caseAt(at, 'hostile names', result, shape, expected.dims, []);
  // PyTorch imports the file, loads the weights strictly under their own names and computes model.onnx's output.
  const { cases } = await checkModelPy(dir, 'names', [c]);
  assertCaseResult(c, cases[0]!);
  await assert.rejects(readFile(marker), { code: 'ENOENT' }, 'the graph name ran as code');
});

test('model.py: an operator without a PyTorch translation is refused by name', () => {
  const sd: StateDict = new Map([['conv.weight', { dtype: 'F32', shape: [4, 3, 3, 3], data: detTensor([4, 3, 3, 3], 1, 0.2) }]]);
  const b = new GraphBuilder(sd, 'reversed');
  const y = b.conv(b.input('input', ['N', 3, 'H', 'W']), 'conv', { pad: 1 });
  b.output(b.op('Slice', [y, b.ints('starts', [-1]), b.ints('ends', [-5]), b.ints('axes', [1]), b.ints('steps', [-1])], {}, 'flip_channels'), 'output');
  const result = convert({ kind: 'onnx', graph: b.build() }, { mode: 'acs' });
  const refusal = /node 'flip_channels(_\d+)?' \(Slice\): slices with negative steps are not supported/;
  assert.throws(() => generateModelPy(result), (err: Error) => err instanceof UnsupportedError && refusal.test(err.message));
  assert.throws(() => encodeOutput(result, 'py', 'model.py'), UnsupportedError);
});
