/**
 * ONNX operators of a 3D graph (converters/graph/to3d.ts, SPEC-acs.md section 2) as torch
 * expressions, with ONNX's semantics: defaults, broadcasting, pads, rounding modes. Layers with
 * parameters (convolutions, BatchNorm, Linear, LayerNorm) become modules elsewhere; this is
 * everything else. An operator without a translation stops with an `UnsupportedError` that
 * names the node and the op.
 */
import { DTYPES, dtypeFromOnnx, type DType } from '../dtypes.js';
import { UnsupportedError } from '../errors.js';
import { attrFloat, attrInt, attrInts, attrString, type Node } from '../graph/ir.js';
import { own } from '../own.js';

/** What a translation needs from the generator. */
export interface OpContext {
  /** The Python expression of an input (a variable, a parameter, a constant tensor). */
  value(name: string): string;
  /** A scalar constant as a Python number literal, when `name` is one. */
  scalar(name: string): string | undefined;
  /** The elements of a small integer vector (a constant, or shape arithmetic) as expressions. */
  ints(name: string): string[] | undefined;
  /** The rank of a value. */
  rank(name: string): number;
  /** The shape of a value at the probe size (for dimensions that do not follow the input). */
  shape(name: string): number[];
  /** The element type of a value. */
  dtype(name: string): DType;
  /** The elements of a small float constant. */
  floats(name: string): number[] | undefined;
  /** The graph's opset. */
  opset: number;
}

/** A refusal naming the node and its op. */
export function unsupported(node: Node, why = 'has no PyTorch translation here'): never {
  throw new UnsupportedError(`node '${node.name}' (${node.op}): ${why}`);
}

const UNARY: Record<string, (x: string, n: Node) => string> = {
  Relu: (x) => `F.relu(${x})`,
  Sigmoid: (x) => `torch.sigmoid(${x})`,
  Tanh: (x) => `torch.tanh(${x})`,
  HardSwish: (x) => `F.hardswish(${x})`,
  Erf: (x) => `torch.erf(${x})`,
  Softplus: (x) => `F.softplus(${x})`,
  Softsign: (x) => `F.softsign(${x})`,
  Mish: (x) => `F.mish(${x})`,
  Exp: (x) => `torch.exp(${x})`,
  Log: (x) => `torch.log(${x})`,
  Abs: (x) => `torch.abs(${x})`,
  Reciprocal: (x) => `torch.reciprocal(${x})`,
  Sin: (x) => `torch.sin(${x})`,
  Cos: (x) => `torch.cos(${x})`,
  Neg: (x) => `-${x}`,
  Sqrt: (x) => `torch.sqrt(${x})`,
  Floor: (x) => `torch.floor(${x})`,
  Ceil: (x) => `torch.ceil(${x})`,
  Round: (x) => `torch.round(${x})`,
  Sign: (x) => `torch.sign(${x})`,
  Not: (x) => `torch.logical_not(${x})`,
  IsNaN: (x) => `torch.isnan(${x})`,
  LeakyRelu: (x, n) => `F.leaky_relu(${x}, ${pyFloat(attrFloat(n, 'alpha', 0.01))})`,
  Elu: (x, n) => `F.elu(${x}, ${pyFloat(attrFloat(n, 'alpha', 1))})`,
  Celu: (x, n) => `F.celu(${x}, ${pyFloat(attrFloat(n, 'alpha', 1))})`,
  Selu: (x, n) => {
    const a = attrFloat(n, 'alpha', 1.67326319217681884765625);
    const g = attrFloat(n, 'gamma', 1.05070102214813232421875);
    return `${pyFloat(g)} * torch.where(${x} > 0, ${x}, ${pyFloat(a)} * torch.expm1(${x}))`;
  },
  Gelu: (x, n) => (attrString(n, 'approximate', 'none') === 'tanh' ? `F.gelu(${x}, approximate='tanh')` : `F.gelu(${x})`),
  HardSigmoid: (x, n) => {
    const a = attrFloat(n, 'alpha', 0.2);
    const b = attrFloat(n, 'beta', 0.5);
    return a === Math.fround(1 / 6) && b === 0.5 ? `F.hardsigmoid(${x})` : `torch.clamp(${x} * ${pyFloat(a)} + ${pyFloat(b)}, 0, 1)`;
  },
  ThresholdedRelu: (x, n) => `torch.where(${x} > ${pyFloat(attrFloat(n, 'alpha', 1))}, ${x}, torch.zeros_like(${x}))`,
  Shrink: (x, n) => {
    const l = pyFloat(attrFloat(n, 'lambd', 0.5));
    const b = pyFloat(attrFloat(n, 'bias', 0));
    return `torch.where(${x} < -${l}, ${x} + ${b}, torch.where(${x} > ${l}, ${x} - ${b}, torch.zeros_like(${x})))`;
  },
};

const BINARY: Record<string, string> = { Add: '+', Sub: '-', Mul: '*', Div: '/', Pow: '**' };
const COMPARE: Record<string, string> = { Equal: '==', Less: '<', Greater: '>', LessOrEqual: '<=', GreaterOrEqual: '>=' };
const LOGICAL: Record<string, string> = { And: 'torch.logical_and', Or: 'torch.logical_or', Xor: 'torch.logical_xor' };

/**
 * The torch expression computing `node`'s outputs (a tuple expression when it has several).
 * `x` gives the Python expressions of the inputs.
 */
export function translateOp(node: Node, c: OpContext): string {
  const op = node.op;
  const x = (i: number) => c.value(node.inputs[i]!);
  const operand = (i: number) => c.scalar(node.inputs[i]!) ?? x(i);
  const unary = own(UNARY, op);
  if (unary) return unary(x(0), node);
  const binary = own(BINARY, op) ?? own(COMPARE, op);
  if (binary) {
    if (op === 'Div' && !DTYPES[c.dtype(node.outputs[0]!)].float) return `torch.div(${operand(0)}, ${operand(1)}, rounding_mode='trunc')`;
    return `${operand(0)} ${binary} ${operand(1)}`;
  }
  const logical = own(LOGICAL, op);
  if (logical) return `${logical}(${x(0)}, ${x(1)})`;
  switch (op) {
    case 'Cast':
      return `${x(0)}.to(torch.${DTYPES[dtypeFromOnnx(attrInt(node, 'to', 1))].torchDtype})`;
    case 'Max':
    case 'Min':
      return node.inputs.slice(1).reduce((acc, _, i) => `torch.${op === 'Max' ? 'maximum' : 'minimum'}(${acc}, ${x(i + 1)})`, x(0));
    case 'Sum':
      return node.inputs.map((_, i) => operand(i)).join(' + ');
    case 'Mean':
      return `(${node.inputs.map((_, i) => operand(i)).join(' + ')}) / ${node.inputs.length}`;
    case 'PRelu':
      return `torch.where(${x(0)} < 0, ${x(0)} * ${operand(1)}, ${x(0)})`;
    case 'Where':
      return `torch.where(${x(0)}, ${operand(1)}, ${operand(2)})`;
    case 'Mod':
      return attrInt(node, 'fmod', 0) ? `torch.fmod(${x(0)}, ${operand(1)})` : `torch.remainder(${x(0)}, ${operand(1)})`;
    case 'Clip':
      return clip(node, c);
    case 'Dropout':
      if (node.outputs.length > 1 && node.outputs[1]) unsupported(node, 'its mask output is used');
      return `F.dropout(${x(0)}, ${dropoutRatio(node, c)}, self.training)`;
    case 'Softmax':
    case 'LogSoftmax':
      return softmax(node, c);
    case 'ArgMax':
    case 'ArgMin':
      if (attrInt(node, 'select_last_index', 0)) unsupported(node, 'select_last_index is not supported');
      return `torch.${op.toLowerCase()}(${x(0)}, ${attrInt(node, 'axis', 0)}, keepdim=${pyBool(attrInt(node, 'keepdims', 1) === 1)})`;
    case 'Flatten': {
      const a = norm(attrInt(node, 'axis', 1), c.rank(node.inputs[0]!));
      return a === 0 ? `${x(0)}.reshape(1, -1)` : a === 1 ? `torch.flatten(${x(0)}, 1)` : `torch.flatten(${x(0)}, ${a}).flatten(0, ${a - 1})`;
    }
    case 'Gemm':
      return gemm(node, c);
    case 'MatMul':
      return `torch.matmul(${x(0)}, ${x(1)})`;
    case 'Transpose': {
      const r = c.rank(node.inputs[0]!);
      const perm = attrInts(node, 'perm', Array.from({ length: r }, (_, i) => r - 1 - i))!;
      return `${x(0)}.permute(${perm.join(', ')})`;
    }
    case 'Concat':
      return `torch.cat([${node.inputs.map((_, i) => x(i)).join(', ')}], ${attrInt(node, 'axis', 0)})`;
    case 'Split':
      return split(node, c);
    case 'Gather':
      return gather(node, c);
    case 'Slice':
      return slice(node, c);
    case 'Pad':
      return pad(node, c);
    case 'Squeeze':
    case 'Unsqueeze':
      return squeeze(node, c);
    case 'Reshape': {
      const target = c.ints(node.inputs[1]!) ?? unsupported(node, 'its target shape is not known');
      const dims = target.map((d, i) => (d === '0' && attrInt(node, 'allowzero', 0) === 0 ? `${x(0)}.shape[${i}]` : d));
      return `${x(0)}.reshape(${dims.join(', ')})`;
    }
    case 'Expand':
      return `${x(0)}.expand(${c.shape(node.outputs[0]!).join(', ')})`;
    case 'Tile':
      return `${x(0)}.repeat(${(c.ints(node.inputs[1]!) ?? unsupported(node, 'its repeats are not constant')).join(', ')})`;
    case 'ConstantOfShape': {
      const shape = c.ints(node.inputs[0]!) ?? unsupported(node, 'its shape is not constant');
      const v = node.attrs['value'];
      const value = v?.type === 'tensor' ? Number((v.value.data as ArrayLike<number | bigint>)[0] ?? 0) : 0;
      const dtype = v?.type === 'tensor' ? v.value.dtype : 'F32';
      return `torch.full((${shape.join(', ')},), ${DTYPES[dtype].float ? pyFloat(value) : String(value)}, dtype=torch.${DTYPES[dtype].torchDtype})`;
    }
    case 'Range':
      return `torch.arange(${operand(0)}, ${operand(1)}, ${operand(2)})`;
    case 'Resize':
      return resize(node, c);
    case 'MaxPool':
    case 'AveragePool':
    case 'LpPool':
      return pool(node, c);
    case 'GlobalAveragePool':
    case 'GlobalMaxPool':
    case 'GlobalLpPool': {
      const dims = spatialDims(c.rank(node.inputs[0]!));
      if (op === 'GlobalAveragePool') return `${x(0)}.mean(dim=${dims}, keepdim=True)`;
      if (op === 'GlobalMaxPool') return `${x(0)}.amax(dim=${dims}, keepdim=True)`;
      const p = attrInt(node, 'p', 2);
      return `${x(0)}.abs().pow(${p}).sum(dim=${dims}, keepdim=True).pow(${pyFloat(1 / p)})`;
    }
    case 'ReduceMean':
    case 'ReduceSum':
    case 'ReduceMax':
    case 'ReduceMin':
    case 'ReduceProd':
    case 'ReduceL1':
    case 'ReduceL2':
    case 'ReduceLogSumExp':
    case 'ReduceSumSquare':
      return reduce(node, c);
    case 'BatchNormalization':
      if (node.outputs.slice(1).some((o) => o)) unsupported(node, 'training outputs (running mean and variance) are not supported');
      return `F.batch_norm(${x(0)}, ${x(3)}, ${x(4)}, ${x(1)}, ${x(2)}, False, 0.0, ${pyFloat(attrFloat(node, 'epsilon', 1e-5))})`;
    case 'InstanceNormalization':
      return `F.instance_norm(${x(0)}, weight=${x(1)}, bias=${x(2)}, eps=${pyFloat(attrFloat(node, 'epsilon', 1e-5))})`;
    case 'GroupNormalization': {
      const groups = attrInt(node, 'num_groups', 0);
      const channels = c.shape(node.inputs[0]!)[1]!;
      const perGroup = c.shape(node.inputs[1]!)[0] === groups && groups !== channels;
      const affine = (i: number) => (perGroup ? `${x(i)}.repeat_interleave(${channels / groups})` : x(i));
      return `F.group_norm(${x(0)}, ${groups}, ${affine(1)}, ${affine(2)}, ${pyFloat(attrFloat(node, 'epsilon', 1e-5))})`;
    }
    case 'LayerNormalization': {
      if (node.outputs.slice(1).some((o) => o)) unsupported(node, 'its mean and inverse deviation outputs are not supported');
      const r = c.rank(node.inputs[0]!);
      const a = norm(attrInt(node, 'axis', -1), r);
      const shape = c.shape(node.inputs[0]!).slice(a);
      const bias = node.inputs[2] ? x(2) : 'None';
      return `F.layer_norm(${x(0)}, (${shape.join(', ')},), ${x(1)}, ${bias}, ${pyFloat(attrFloat(node, 'epsilon', 1e-5))})`;
    }
    default:
      return unsupported(node);
  }
}

/** Elements of an int vector input that must be plain numbers. */
function numbers(node: Node, c: OpContext, i: number, what: string): number[] {
  const v = c.ints(node.inputs[i] ?? '');
  if (!v || v.some((e) => !/^-?[0-9]+$/.test(e))) return unsupported(node, `its ${what} are not constant`);
  return v.map(Number);
}

function norm(a: number, rank: number): number {
  return a < 0 ? a + rank : a;
}

function spatialDims(rank: number): string {
  return `(${Array.from({ length: rank - 2 }, (_, i) => i + 2).join(', ')})`;
}

function clip(node: Node, c: OpContext): string {
  const x = c.value(node.inputs[0]!);
  let lo: string | undefined;
  let hi: string | undefined;
  if (c.opset < 11) {
    if (node.attrs['min']) lo = pyFloat(attrFloat(node, 'min', 0));
    if (node.attrs['max']) hi = pyFloat(attrFloat(node, 'max', 0));
  } else {
    if (node.inputs[1]) lo = c.scalar(node.inputs[1]) ?? c.value(node.inputs[1]);
    if (node.inputs[2]) hi = c.scalar(node.inputs[2]) ?? c.value(node.inputs[2]);
  }
  if (lo === '0.0' && hi === '6.0') return `F.relu6(${x})`;
  if (lo === '0.0' && hi === undefined) return `F.relu(${x})`;
  return `torch.clamp(${x}${lo ? `, min=${lo}` : ''}${hi ? `, max=${hi}` : ''})`;
}

function dropoutRatio(node: Node, c: OpContext): string {
  if (c.opset < 12) return pyFloat(attrFloat(node, 'ratio', 0.5));
  return node.inputs[1] ? (c.scalar(node.inputs[1]) ?? unsupported(node, 'its ratio is not constant')) : '0.5';
}

function softmax(node: Node, c: OpContext): string {
  const x = c.value(node.inputs[0]!);
  const r = c.rank(node.inputs[0]!);
  const fn = node.op === 'Softmax' ? 'torch.softmax' : 'torch.log_softmax';
  if (c.opset >= 13) return `${fn}(${x}, ${attrInt(node, 'axis', -1)})`;
  // Before opset 13 the input is read as a matrix split at `axis`.
  const a = norm(attrInt(node, 'axis', 1), r);
  if (a === r - 1) return `${fn}(${x}, -1)`;
  return `${fn}(torch.flatten(${x}, ${a}), -1).reshape(${x}.shape)`;
}

function gemm(node: Node, c: OpContext): string {
  let a = c.value(node.inputs[0]!);
  let b = c.value(node.inputs[1]!);
  if (attrInt(node, 'transA', 0)) a = `${a}.t()`;
  if (attrInt(node, 'transB', 0)) b = `${b}.t()`;
  const alpha = attrFloat(node, 'alpha', 1);
  const beta = attrFloat(node, 'beta', 1);
  let y = `torch.matmul(${a}, ${b})`;
  if (alpha !== 1) y = `${pyFloat(alpha)} * ${y}`;
  if (node.inputs[2]) y = `${y} + ${beta !== 1 ? `${pyFloat(beta)} * ` : ''}${c.scalar(node.inputs[2]) ?? c.value(node.inputs[2])}`;
  return y;
}

function split(node: Node, c: OpContext): string {
  const r = c.rank(node.inputs[0]!);
  const axis = norm(attrInt(node, 'axis', 0), r);
  const sizes = node.outputs.map((o) => c.shape(o)[axis]!);
  return `torch.split(${c.value(node.inputs[0]!)}, [${sizes.join(', ')}], ${axis})`;
}

function gather(node: Node, c: OpContext): string {
  const x = c.value(node.inputs[0]!);
  const r = c.rank(node.inputs[0]!);
  const axis = norm(attrInt(node, 'axis', 0), r);
  const dim = c.shape(node.inputs[0]!)[axis]!;
  const idx = c.ints(node.inputs[1]!);
  const idxRank = c.rank(node.inputs[1]!);
  if (idx && idx.every((e) => /^-?[0-9]+$/.test(e))) {
    const positive = idx.map((e) => (Number(e) < 0 ? Number(e) + dim : Number(e)));
    if (idxRank === 0) return `${x}.select(${axis}, ${positive[0]})`;
    const picked = `torch.index_select(${x}, ${axis}, torch.tensor([${positive.join(', ')}], device=${x}.device))`;
    if (idxRank === 1) return picked;
    const shape = c.shape(node.outputs[0]!);
    return `${picked}.reshape(${shape.map((d, i) => (i === 0 ? '-1' : String(d))).join(', ')})`;
  }
  const index = c.value(node.inputs[1]!);
  if (idxRank !== 1) unsupported(node, 'gathering with computed indices of rank other than 1');
  return `torch.index_select(${x}, ${axis}, torch.where(${index} < 0, ${index} + ${dim}, ${index}))`;
}

function slice(node: Node, c: OpContext): string {
  const x = c.value(node.inputs[0]!);
  const r = c.rank(node.inputs[0]!);
  // Bounds may be read from other tensors' shapes (a crop to `y.shape`): Python expressions.
  const bounds = (i: number, what: string): string[] =>
    c.opset >= 10 ? (c.ints(node.inputs[i]!) ?? unsupported(node, `its ${what} are not known`)) : attrInts(node, what, [])!.map(String);
  const starts = bounds(1, 'starts');
  const ends = bounds(2, 'ends');
  const axes = c.opset >= 10 ? (node.inputs[3] ? numbers(node, c, 3, 'axes') : starts.map((_, i) => i)) : attrInts(node, 'axes', starts.map((_, i) => i))!;
  const steps = c.opset >= 10 && node.inputs[4] ? numbers(node, c, 4, 'steps') : starts.map(() => 1);
  const index = Array.from({ length: r }, () => ':');
  axes.forEach((a0, i) => {
    const a = norm(a0, r);
    const step = steps[i]!;
    if (step < 1) unsupported(node, 'slices with negative steps are not supported');
    const bound = (v: string) => (/^-?\d+$/.test(v) && Math.abs(Number(v)) >= 2 ** 31 ? '' : v);
    const s = bound(starts[i]!) === '0' ? '' : bound(starts[i]!);
    index[a] = `${s}:${bound(ends[i]!)}${step !== 1 ? `:${step}` : ''}`;
  });
  while (index.length > 1 && index[index.length - 1] === ':') index.pop();
  return `${x}[${index.join(', ')}]`;
}

function pad(node: Node, c: OpContext): string {
  const x = c.value(node.inputs[0]!);
  const r = c.rank(node.inputs[0]!);
  if (node.inputs[3]) unsupported(node, 'Pad with axes is not supported');
  // Pads may be expressions of other tensors' shapes (a U-Net's pad to its skip connection).
  const pads = c.opset >= 11 ? (c.ints(node.inputs[1]!) ?? unsupported(node, 'its pads are not known')) : attrInts(node, 'pads', [])!.map(String);
  if (pads.length !== 2 * r) unsupported(node, `its pads have ${pads.length} elements, not ${2 * r}`);
  const torchPads: string[] = [];
  for (let a = r - 1; a >= 0; a--) torchPads.push(pads[a]!, pads[a + r]!);
  while (torchPads.length > 2 && torchPads[torchPads.length - 1] === '0' && torchPads[torchPads.length - 2] === '0') torchPads.length -= 2;
  const mode = attrString(node, 'mode', 'constant');
  if (mode === 'reflect' || mode === 'edge') return `F.pad(${x}, (${torchPads.join(', ')}), mode='${mode === 'edge' ? 'replicate' : 'reflect'}')`;
  if (mode !== 'constant') unsupported(node, `pad mode '${mode}' is not supported`);
  const value = c.opset >= 11 ? (node.inputs[2] ? (c.scalar(node.inputs[2]) ?? unsupported(node, 'its value is not constant')) : undefined) : pyFloat(attrFloat(node, 'value', 0));
  return `F.pad(${x}, (${torchPads.join(', ')})${value && value !== '0.0' ? `, value=${value}` : ''})`;
}

function squeeze(node: Node, c: OpContext): string {
  const x = c.value(node.inputs[0]!);
  const inRank = c.rank(node.inputs[0]!);
  const outRank = c.rank(node.outputs[0]!);
  let axes = c.opset >= 13 ? (node.inputs[1] ? numbers(node, c, 1, 'axes') : undefined) : attrInts(node, 'axes', undefined);
  if (node.op === 'Squeeze') {
    axes ??= c.shape(node.inputs[0]!).flatMap((d, i) => (d === 1 ? [i] : []));
    const sorted = axes.map((a) => norm(a, inRank)).sort((a, b) => b - a);
    return sorted.reduce((e, a) => `${e}.squeeze(${a})`, x);
  }
  if (!axes) unsupported(node, 'no axes');
  const sorted = axes.map((a) => norm(a, outRank)).sort((a, b) => a - b);
  return sorted.reduce((e, a) => `${e}.unsqueeze(${a})`, x);
}

function reduce(node: Node, c: OpContext): string {
  const x = c.value(node.inputs[0]!);
  const r = c.rank(node.inputs[0]!);
  let axes = node.inputs[1] ? numbers(node, c, 1, 'axes') : attrInts(node, 'axes', undefined);
  if (!axes || axes.length === 0) {
    if (attrInt(node, 'noop_with_empty_axes', 0)) return x;
    axes = Array.from({ length: r }, (_, i) => i);
  }
  const dims = axes.map((a) => norm(a, r)).sort((a, b) => a - b);
  const keep = attrInt(node, 'keepdims', 1) === 1;
  const args = `dim=(${dims.join(', ')},), keepdim=${pyBool(keep)}`;
  switch (node.op) {
    case 'ReduceMean':
      return `${x}.mean(${args})`;
    case 'ReduceSum':
      return `${x}.sum(${args})`;
    case 'ReduceMax':
      return `${x}.amax(${args})`;
    case 'ReduceMin':
      return `${x}.amin(${args})`;
    case 'ReduceL1':
      return `${x}.abs().sum(${args})`;
    case 'ReduceL2':
      return `${x}.pow(2).sum(${args}).sqrt()`;
    case 'ReduceSumSquare':
      return `${x}.pow(2).sum(${args})`;
    case 'ReduceLogSumExp':
      return `torch.logsumexp(${x}, ${args})`;
    default:
      return [...dims].reverse().reduce((e, d) => `${e}.prod(${d}, keepdim=${pyBool(keep)})`, x);
  }
}

function resize(node: Node, c: OpContext): string {
  const x = c.value(node.inputs[0]!);
  const r = c.rank(node.inputs[0]!);
  if (attrInt(node, 'antialias', 0)) unsupported(node, 'antialias is not supported');
  const mode = attrString(node, 'mode', 'nearest');
  const transform = attrString(node, 'coordinate_transformation_mode', 'half_pixel');
  // Sizes (constants, or read from other tensors' shapes): torch then scales by in / out, as ONNX does.
  const sizesName = node.op === 'Resize' ? node.inputs[3] : undefined;
  let spatial: number[] = [];
  let factor: string;
  if (sizesName) {
    const sizes = c.ints(sizesName);
    if (!sizes || sizes.length !== r) unsupported(node, 'its sizes are not known');
    factor = `size=(${sizes.slice(2).join(', ')},)`;
  } else {
    const scalesName = node.op === 'Resize' ? node.inputs[2] : node.inputs[1];
    const scales = scalesName ? c.floats(scalesName) : undefined;
    if (!scales || scales.length !== r || scales[0] !== 1 || scales[1] !== 1) unsupported(node, 'only constant scales of the spatial axes are supported');
    spatial = scales.slice(2);
    factor = `scale_factor=(${spatial.map(pyFloat).join(', ')})`;
  }
  if (mode === 'linear') {
    const torchMode = ['linear', 'bilinear', 'trilinear'][r - 3] ?? unsupported(node, `linear resize of a rank-${r} tensor`);
    if (transform === 'half_pixel' || (transform === 'pytorch_half_pixel' && c.shape(node.outputs[0]!).slice(2).every((d) => d > 1))) {
      return `F.interpolate(${x}, ${factor}, mode='${torchMode}', align_corners=False)`;
    }
    if (transform === 'align_corners') return `F.interpolate(${x}, ${factor}, mode='${torchMode}', align_corners=True)`;
    return unsupported(node, `linear resize with coordinate_transformation_mode '${transform}' is not supported`);
  }
  if (mode !== 'nearest') return unsupported(node, `resize mode '${mode}' is not supported`);
  const rounding = attrString(node, 'nearest_mode', 'round_prefer_floor');
  if (transform === 'asymmetric' && rounding === 'floor') return `F.interpolate(${x}, ${factor}, mode='nearest')`;
  // half_pixel reads plane round((i + 0.5) / s - 0.5): torch's 'nearest-exact', with no ties to
  // break when every scale is a whole number.
  const whole = !sizesName && spatial.every((s) => Number.isInteger(s));
  if (transform === 'half_pixel' && (rounding === 'round_prefer_ceil' || (rounding === 'round_prefer_floor' && whole))) {
    return `F.interpolate(${x}, ${factor}, mode='nearest-exact')`;
  }
  return unsupported(node, `nearest resize with coordinate_transformation_mode '${transform}' and nearest_mode '${rounding}' is not supported`);
}

function pool(node: Node, c: OpContext): string {
  const x = c.value(node.inputs[0]!);
  if (node.outputs.length > 1 && node.outputs[1]) unsupported(node, 'its indices output is not supported');
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  if (autoPad !== 'NOTSET' && autoPad !== 'VALID') unsupported(node, `auto_pad ${autoPad} is not supported`);
  const k = attrInts(node, 'kernel_shape', undefined) ?? unsupported(node, 'no kernel_shape');
  const n = k.length;
  const s = attrInts(node, 'strides', undefined) ?? k.map(() => 1);
  const d = attrInts(node, 'dilations', undefined) ?? k.map(() => 1);
  const pads = autoPad === 'VALID' ? [...k, ...k].map(() => 0) : (attrInts(node, 'pads', undefined) ?? [...k, ...k].map(() => 0));
  const ceil = attrInt(node, 'ceil_mode', 0) === 1;
  const begin = pads.slice(0, n);
  const end = pads.slice(n);
  const symmetric = begin.every((p, i) => p === end[i] && 2 * p <= k[i]!);
  const kw = (name: string, v: number[], dflt?: number) => (v.every((e) => e === dflt) ? '' : `, ${name}=${tuple(v)}`);
  const torchPads = () => begin.flatMap((_, i) => [begin[n - 1 - i]!, end[n - 1 - i]!]).join(', ');
  const ceilArg = ceil ? ', ceil_mode=True' : '';
  if (node.op === 'MaxPool') {
    const input = symmetric ? x : `F.pad(${x}, (${torchPads()}), value=float('-inf'))`;
    return `F.max_pool${n}d(${input}, ${tuple(k)}${kw('stride', s)}${symmetric ? kw('padding', begin, 0) : ''}${kw('dilation', d, 1)}${ceilArg})`;
  }
  if (d.some((v) => v !== 1)) unsupported(node, 'dilated average and Lp pooling are not supported');
  const includePad = node.op === 'LpPool' || attrInt(node, 'count_include_pad', 0) === 1;
  if (!symmetric && !includePad) unsupported(node, 'asymmetric pads that are not counted are not supported');
  const input = symmetric ? x : `F.pad(${x}, (${torchPads()}))`;
  const args = `${tuple(k)}${kw('stride', s)}${symmetric ? kw('padding', begin, 0) : ''}${ceilArg}, count_include_pad=${pyBool(includePad)}`;
  if (node.op === 'AveragePool') return `F.avg_pool${n}d(${input}, ${args})`;
  if (ceil) unsupported(node, 'LpPool with ceil_mode is not supported');
  const p = attrInt(node, 'p', 2);
  const volume = k.reduce((a, b) => a * b, 1);
  return `(F.avg_pool${n}d(${input}.abs().pow(${p}), ${args}) * ${volume}).pow(${pyFloat(1 / p)})`;
}

function tuple(v: number[]): string {
  return v.every((e) => e === v[0]) ? String(v[0]) : `(${v.join(', ')})`;
}

function pyBool(b: boolean): string {
  return b ? 'True' : 'False';
}

/** A float32 value as the shortest Python literal that reads back as the same float32. */
export function pyFloat(v: number): string {
  if (Number.isNaN(v)) return "float('nan')";
  if (!Number.isFinite(v)) return v > 0 ? "float('inf')" : "-float('inf')";
  const f = Math.fround(v);
  for (let p = 1; p <= 17; p++) {
    const s = Number(f.toPrecision(p));
    if (Math.fround(s) === f) return Number.isInteger(s) && Math.abs(s) < 1e16 ? `${s}.0` : String(s);
  }
  return String(f);
}
