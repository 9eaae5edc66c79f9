/**
 * Numeric shape inference over a graph, for given input shapes. Small tensors (shape
 * vectors and the arithmetic torch exports around them) are evaluated too, so that a
 * `Reshape` whose target is computed from `Shape` gets a known output shape. Used by the
 * 2D -> 3D rewriter (to classify reshapes) and by the multiply-add counter.
 */
import { ConversionError } from '../errors.js';
import type { DType } from '../dtypes.js';
import { LIMITS } from '../tensor.js';
import { attrInt, attrInts, attrString, topologicalSort, type Attr, type Graph, type Node } from './ir.js';
import { own } from '../own.js';

/** A network's input is too small for one of its convolutions or pools (a `CONVERSION_FAILED`). */
export class InputTooSmallError extends ConversionError {}

/** What is known about one value: its shape, dtype, and its elements if it is small. */
export interface ValueFacts {
  shape: number[];
  dtype: DType;
  /** The elements (C order), when the tensor has at most `MAX_VALUE_ELEMENTS`. */
  value?: number[];
}

/** Largest tensor whose elements are tracked. */
export const MAX_VALUE_ELEMENTS = 4096;

const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);

/** Whether a tensor of this shape is small enough to track its elements (and a valid shape at all). */
const trackable = (shape: readonly number[]): boolean => shape.every((d) => Number.isSafeInteger(d) && d >= 0) && prod(shape) <= MAX_VALUE_ELEMENTS;

/** numpy-style broadcast of several shapes. */
export function broadcastShapes(shapes: number[][], where: string): number[] {
  const rank = shapes.reduce((r, s) => Math.max(r, s.length), 0);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v === 1) continue;
      if (d !== 1 && d !== v) throw new ConversionError(`${where}: shapes ${shapes.map((x) => `[${x.join(', ')}]`).join(' and ')} do not broadcast`);
      d = v;
    }
    out.push(d);
  }
  return out;
}

function broadcastValues(facts: ValueFacts[], outShape: number[], fn: (...xs: number[]) => number): number[] | undefined {
  if (facts.some((f) => f.value === undefined) || !trackable(outShape)) return undefined;
  const n = prod(outShape);
  const out = new Array<number>(n);
  const rank = outShape.length;
  const idx = new Array<number>(rank).fill(0);
  for (let k = 0; k < n; k++) {
    const args = facts.map((f) => {
      let off = 0;
      let stride = 1;
      for (let i = f.shape.length - 1; i >= 0; i--) {
        const d = f.shape[i]!;
        const o = idx[rank - f.shape.length + i]!;
        off += (d === 1 ? 0 : o) * stride;
        stride *= d;
      }
      return f.value![off]!;
    });
    out[k] = fn(...args);
    for (let i = rank - 1; i >= 0; i--) {
      idx[i]!++;
      if (idx[i]! < outShape[i]!) break;
      idx[i] = 0;
    }
  }
  return out;
}

const UNARY_SAME_SHAPE = new Set([
  'Relu', 'LeakyRelu', 'Sigmoid', 'Tanh', 'HardSigmoid', 'HardSwish', 'Clip', 'Elu', 'Selu', 'Celu', 'Gelu', 'Erf', 'Softplus',
  'Softsign', 'Mish', 'Exp', 'Log', 'Abs', 'Reciprocal', 'Sin', 'Cos', 'Identity', 'Dropout', 'BatchNormalization',
  'InstanceNormalization', 'LayerNormalization', 'GroupNormalization', 'Softmax', 'LogSoftmax', 'LpNormalization',
  'PRelu', 'ThresholdedRelu', 'Shrink', 'Sign', 'IsNaN', 'Round', 'Floor', 'Ceil', 'Sqrt', 'Neg', 'Not', 'Cast',
]);

const UNARY_FN: Record<string, (x: number) => number> = {
  Identity: (x) => x, Neg: (x) => -x, Abs: Math.abs, Floor: Math.floor, Ceil: Math.ceil, Sqrt: Math.sqrt,
  Round: (x) => { const f = Math.floor(x); const d = x - f; return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f; },
  Reciprocal: (x) => 1 / x, Exp: Math.exp, Log: Math.log, Relu: (x) => Math.max(0, x), Sign: Math.sign, Not: (x) => (x ? 0 : 1),
};

const BINARY_FN: Record<string, (a: number, b: number) => number> = {
  Add: (a, b) => a + b, Sub: (a, b) => a - b, Mul: (a, b) => a * b, Pow: (a, b) => a ** b,
  Max: Math.max, Min: Math.min, Equal: (a, b) => +(a === b), Less: (a, b) => +(a < b), Greater: (a, b) => +(a > b),
  LessOrEqual: (a, b) => +(a <= b), GreaterOrEqual: (a, b) => +(a >= b), And: (a, b) => +(a && b), Or: (a, b) => +(a || b),
  Xor: (a, b) => +(!a !== !b), Mod: (a, b) => a - b * Math.floor(a / b),
};

const INT_DTYPES = new Set<DType>(['I64', 'I32', 'I16', 'I8', 'U8', 'BOOL']);

/** Convolution/pool output size along one axis. */
export function outSize(n: number, k: number, s: number, pBegin: number, pEnd: number, d: number, ceil = false): number {
  const span = n + pBegin + pEnd - d * (k - 1) - 1;
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (out - 1) * s >= n + pBegin) out--;
  return out;
}

function dtypeFromTo(to: number): DType {
  const map: Record<number, DType> = { 1: 'F32', 2: 'U8', 3: 'I8', 5: 'I16', 6: 'I32', 7: 'I64', 9: 'BOOL', 10: 'F16', 11: 'F64', 16: 'BF16' };
  return map[to] ?? 'F32';
}

function tensorValue(t: { shape: readonly number[]; data: ArrayLike<number | bigint> }): number[] | undefined {
  if (!trackable(t.shape)) return undefined;
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}

/**
 * Infer the shape (and small values) of every value of `graph` for the given input shapes.
 * Unknown ops, and reshapes whose target cannot be evaluated, are errors naming the node.
 */
export function inferShapes(graph: Graph, inputShapes: Record<string, number[]>): Map<string, ValueFacts> {
  const facts = new Map<string, ValueFacts>();
  for (const [name, t] of graph.initializers) {
    facts.set(name, { shape: [...t.shape], dtype: t.dtype, value: t.dtype === 'F32' && prod(t.shape) > 64 ? undefined : tensorValue(t) });
  }
  for (const inp of graph.inputs) {
    const shape = inputShapes[inp.name];
    if (shape === undefined) throw new ConversionError(`no shape given for graph input '${inp.name}'`);
    facts.set(inp.name, { shape: [...shape], dtype: inp.dtype });
  }
  for (const node of topologicalSort(graph)) {
    const ins = node.inputs.map((x) => (x === '' ? undefined : facts.get(x)));
    const outs = inferNode(node, ins, graph.opset);
    outs.forEach((f, i) => {
      const name = node.outputs[i];
      if (!name || !f) return;
      checkShape(node, f.shape);
      facts.set(name, f);
    });
  }
  return facts;
}

/**
 * Every inferred shape must be one a tensor can have: at most `LIMITS.maxDims` dimensions,
 * each a non-negative integer (shape arithmetic can compute anything, e.g. Expand to -1).
 */
function checkShape(node: Node, shape: readonly number[]): void {
  if (shape.length > LIMITS.maxDims || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    const dims = shape.length > LIMITS.maxDims ? `${shape.length} dimensions, more than ${LIMITS.maxDims}` : `shape [${shape.join(', ')}]`;
    throw new ConversionError(`node '${node.name}' (${node.op}): its output would have ${dims}`);
  }
}

function need(node: Node, ins: (ValueFacts | undefined)[], i: number): ValueFacts {
  const f = ins[i];
  if (f === undefined) throw new ConversionError(`node '${node.name}' (${node.op}): input ${i} ('${node.inputs[i] ?? ''}') has no known shape`);
  return f;
}

function needValue(node: Node, ins: (ValueFacts | undefined)[], i: number, what: string): number[] {
  const f = need(node, ins, i);
  if (f.value === undefined) {
    throw new ConversionError(`node '${node.name}' (${node.op}): its ${what} ('${node.inputs[i]}') is computed from data, not from shapes, so the output shape is unknown`);
  }
  return f.value;
}

function optionalValue(ins: (ValueFacts | undefined)[], i: number): number[] | undefined {
  return ins[i]?.value;
}

function normAxis(a: number, rank: number, node: Node): number {
  const x = a < 0 ? a + rank : a;
  if (x < 0 || x >= rank) throw new ConversionError(`node '${node.name}' (${node.op}): axis ${a} is out of range for rank ${rank}`);
  return x;
}

function inferNode(node: Node, ins: (ValueFacts | undefined)[], opset: number): (ValueFacts | undefined)[] {
  const x0 = (): ValueFacts => need(node, ins, 0);
  const where = `node '${node.name}' (${node.op})`;
  switch (node.op) {
    case 'Conv': {
      const x = x0();
      const w = need(node, ins, 1);
      const sp = x.shape.length - 2;
      const k = attrInts(node, 'kernel_shape', w.shape.slice(2))!;
      const s = attrInts(node, 'strides', new Array(sp).fill(1))!;
      const d = attrInts(node, 'dilations', new Array(sp).fill(1))!;
      const autoPad = attrString(node, 'auto_pad', 'NOTSET');
      const pads = attrInts(node, 'pads', new Array(2 * sp).fill(0))!;
      const out = [x.shape[0]!, w.shape[0]!];
      for (let i = 0; i < sp; i++) {
        const n = x.shape[2 + i]!;
        if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') out.push(Math.ceil(n / s[i]!));
        else if (autoPad === 'VALID') out.push(outSize(n, k[i]!, s[i]!, 0, 0, d[i]!));
        else out.push(outSize(n, k[i]!, s[i]!, pads[i]!, pads[i + sp]!, d[i]!));
      }
      if (out.some((v) => v <= 0)) throw new InputTooSmallError(`${where}: input [${x.shape.join(', ')}] is too small for the kernel (output [${out.join(', ')}])`);
      return [{ shape: out, dtype: x.dtype }];
    }
    case 'ConvTranspose': {
      const x = x0();
      const w = need(node, ins, 1);
      const sp = x.shape.length - 2;
      const k = attrInts(node, 'kernel_shape', w.shape.slice(2))!;
      const s = attrInts(node, 'strides', new Array(sp).fill(1))!;
      const d = attrInts(node, 'dilations', new Array(sp).fill(1))!;
      const pads = attrInts(node, 'pads', new Array(2 * sp).fill(0))!;
      const op = attrInts(node, 'output_padding', new Array(sp).fill(0))!;
      if (attrString(node, 'auto_pad', 'NOTSET') !== 'NOTSET' || node.attrs['output_shape'] !== undefined) {
        throw new ConversionError(`${where}: auto_pad and output_shape are not supported; export with pads and output_padding`);
      }
      if (k.length !== sp || s.length !== sp || d.length !== sp || op.length !== sp || pads.length !== 2 * sp) {
        throw new ConversionError(`${where}: kernel_shape, strides, dilations, output_padding or pads do not fit ${sp} spatial axes`);
      }
      const out = [x.shape[0]!, w.shape[1]! * attrInt(node, 'group', 1)];
      for (let i = 0; i < sp; i++) out.push((x.shape[2 + i]! - 1) * s[i]! + op[i]! + d[i]! * (k[i]! - 1) + 1 - pads[i]! - pads[i + sp]!);
      if (out.some((v) => v <= 0)) throw new ConversionError(`${where}: input [${x.shape.join(', ')}] gives an empty output [${out.join(', ')}]`);
      return [{ shape: out, dtype: x.dtype }];
    }
    case 'MaxPool':
    case 'AveragePool':
    case 'LpPool': {
      const x = x0();
      const sp = x.shape.length - 2;
      const k = attrInts(node, 'kernel_shape', undefined);
      if (!k) throw new ConversionError(`${where}: no kernel_shape`);
      const s = attrInts(node, 'strides', new Array(sp).fill(1))!;
      const d = attrInts(node, 'dilations', new Array(sp).fill(1))!;
      const pads = attrInts(node, 'pads', new Array(2 * sp).fill(0))!;
      const ceil = attrInt(node, 'ceil_mode', 0) === 1;
      const autoPad = attrString(node, 'auto_pad', 'NOTSET');
      const out = [x.shape[0]!, x.shape[1]!];
      for (let i = 0; i < sp; i++) {
        const n = x.shape[2 + i]!;
        if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') out.push(Math.ceil(n / s[i]!));
        else out.push(outSize(n, k[i]!, s[i]!, autoPad === 'VALID' ? 0 : pads[i]!, autoPad === 'VALID' ? 0 : pads[i + sp]!, d[i]!, ceil));
      }
      if (out.some((v) => v <= 0)) throw new InputTooSmallError(`${where}: input [${x.shape.join(', ')}] is too small for the pool (output [${out.join(', ')}])`);
      return [{ shape: out, dtype: x.dtype }, { shape: out, dtype: 'I64' }];
    }
    case 'GlobalAveragePool':
    case 'GlobalMaxPool':
    case 'GlobalLpPool': {
      const x = x0();
      return [{ shape: [x.shape[0]!, x.shape[1]!, ...x.shape.slice(2).map(() => 1)], dtype: x.dtype }];
    }
    case 'Constant': {
      const a = Object.entries(node.attrs)[0];
      if (!a) throw new ConversionError(`${where}: no value`);
      return [constantFacts(a[0], a[1], where)];
    }
    case 'Shape': {
      const x = x0();
      const r = x.shape.length;
      let start = attrInt(node, 'start', 0);
      let end = attrInt(node, 'end', r);
      start = Math.min(Math.max(start < 0 ? start + r : start, 0), r);
      end = Math.min(Math.max(end < 0 ? end + r : end, 0), r);
      const value = x.shape.slice(start, Math.max(start, end));
      return [{ shape: [value.length], dtype: 'I64', value }];
    }
    case 'Size':
      return [{ shape: [], dtype: 'I64', value: [prod(x0().shape)] }];
    case 'Reshape': {
      const x = x0();
      const target = needValue(node, ins, 1, 'target shape');
      const allowZero = attrInt(node, 'allowzero', 0) === 1;
      const out = target.map((v, i) => (v === 0 && !allowZero ? x.shape[i]! : v));
      const known = prod(out.filter((v) => v !== -1));
      const total = prod(x.shape);
      const minus = out.filter((v) => v === -1).length;
      if (minus > 1) throw new ConversionError(`${where}: more than one -1 in target [${target.join(', ')}]`);
      if (minus === 1) out[out.indexOf(-1)] = known === 0 ? 0 : total / known;
      if (prod(out) !== total || out.some((v) => !Number.isInteger(v) || v < 0)) {
        throw new ConversionError(`${where}: cannot reshape [${x.shape.join(', ')}] to [${target.join(', ')}]`);
      }
      return [{ shape: out, dtype: x.dtype, value: x.value }];
    }
    case 'Flatten': {
      const x = x0();
      const a = normAxisInclusive(attrInt(node, 'axis', 1), x.shape.length);
      return [{ shape: [prod(x.shape.slice(0, a)), prod(x.shape.slice(a))], dtype: x.dtype, value: x.value }];
    }
    case 'Squeeze':
    case 'Unsqueeze': {
      const x = x0();
      const axes = opset >= 13 ? (node.inputs[1] ? needValue(node, ins, 1, 'axes') : undefined) : attrInts(node, 'axes', undefined);
      if (node.op === 'Squeeze') {
        const r = x.shape.length;
        const drop = new Set((axes ?? x.shape.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => normAxis(a, r, node)));
        return [{ shape: x.shape.filter((_, i) => !drop.has(i)), dtype: x.dtype, value: x.value }];
      }
      if (!axes) throw new ConversionError(`${where}: no axes`);
      const r = x.shape.length + axes.length;
      const add = new Set(axes.map((a) => normAxis(a, r, node)));
      const out: number[] = [];
      for (let i = 0, j = 0; i < r; i++) out.push(add.has(i) ? 1 : x.shape[j++]!);
      return [{ shape: out, dtype: x.dtype, value: x.value }];
    }
    case 'Concat': {
      const xs = node.inputs.map((_, i) => need(node, ins, i));
      const r = xs[0]!.shape.length;
      const axis = normAxis(attrInt(node, 'axis', 0), r, node);
      const shape = [...xs[0]!.shape];
      shape[axis] = xs.reduce((a, f) => a + f.shape[axis]!, 0);
      const value = r === 1 && xs.every((f) => f.value) ? xs.flatMap((f) => f.value!) : undefined;
      return [{ shape, dtype: xs[0]!.dtype, value }];
    }
    case 'Split': {
      const x = x0();
      const axis = normAxis(attrInt(node, 'axis', 0), x.shape.length, node);
      let sizes = opset >= 13 ? (node.inputs[1] ? needValue(node, ins, 1, 'split sizes') : undefined) : attrInts(node, 'split', undefined);
      const n = node.outputs.length;
      if (!sizes) {
        const total = x.shape[axis]!;
        const each = Math.ceil(total / n);
        sizes = Array.from({ length: n }, (_, i) => Math.max(0, Math.min(each, total - i * each)));
      }
      return sizes.map((sz) => {
        const shape = [...x.shape];
        shape[axis] = sz;
        return { shape, dtype: x.dtype };
      });
    }
    case 'Slice': {
      const x = x0();
      const r = x.shape.length;
      const starts = opset >= 10 ? needValue(node, ins, 1, 'starts') : attrInts(node, 'starts', [])!;
      const ends = opset >= 10 ? needValue(node, ins, 2, 'ends') : attrInts(node, 'ends', [])!;
      const axes = (opset >= 10 ? optionalValue(ins, 3) : attrInts(node, 'axes', undefined)) ?? starts.map((_, i) => i);
      const steps = (opset >= 10 ? optionalValue(ins, 4) : undefined) ?? starts.map(() => 1);
      const shape = [...x.shape];
      const ranges = x.shape.map((d) => [0, d, 1] as [number, number, number]);
      axes.forEach((a0, i) => {
        const a = normAxis(a0, r, node);
        const d = x.shape[a]!;
        const step = steps[i]!;
        let s = starts[i]!;
        let e = ends[i]!;
        s = s < 0 ? s + d : s;
        e = e < 0 ? e + d : e;
        if (step > 0) {
          s = Math.min(Math.max(s, 0), d);
          e = Math.min(Math.max(e, 0), d);
          shape[a] = Math.max(0, Math.ceil((e - s) / step));
        } else {
          s = Math.min(Math.max(s, -1), d - 1);
          e = Math.min(Math.max(e, -1), d - 1);
          shape[a] = Math.max(0, Math.ceil((s - e) / -step));
        }
        ranges[a] = [s, e, step];
      });
      const value = x.value ? gatherValues(x.value, x.shape, shape, (idx) => idx.map((i, a) => ranges[a]![0] + i * ranges[a]![2])) : undefined;
      return [{ shape, dtype: x.dtype, value }];
    }
    case 'Gather': {
      const x = x0();
      const idx = need(node, ins, 1);
      const axis = normAxis(attrInt(node, 'axis', 0), x.shape.length, node);
      const shape = [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)];
      let value: number[] | undefined;
      if (x.value && idx.value && x.shape.length === 1) value = idx.value.map((i) => x.value![i < 0 ? i + x.shape[0]! : i]!);
      return [{ shape, dtype: x.dtype, value }];
    }
    case 'Transpose': {
      const x = x0();
      const perm = attrInts(node, 'perm', x.shape.map((_, i) => x.shape.length - 1 - i))!;
      const shape = perm.map((p) => x.shape[p]!);
      const value = x.value ? gatherValues(x.value, x.shape, shape, (idx) => {
        const src = new Array<number>(idx.length);
        perm.forEach((p, i) => (src[p] = idx[i]!));
        return src;
      }) : undefined;
      return [{ shape, dtype: x.dtype, value }];
    }
    case 'Gemm': {
      const a = x0();
      const b = need(node, ins, 1);
      const m = attrInt(node, 'transA', 0) ? a.shape[1]! : a.shape[0]!;
      const n = attrInt(node, 'transB', 0) ? b.shape[0]! : b.shape[1]!;
      return [{ shape: [m, n], dtype: a.dtype }];
    }
    case 'MatMul': {
      const a = x0();
      const b = need(node, ins, 1);
      const as = a.shape.length === 1 ? [1, a.shape[0]!] : a.shape;
      const bs = b.shape.length === 1 ? [b.shape[0]!, 1] : b.shape;
      if (as[as.length - 1] !== bs[bs.length - 2]) throw new ConversionError(`${where}: cannot multiply [${a.shape.join(', ')}] by [${b.shape.join(', ')}]`);
      const batch = broadcastShapes([as.slice(0, -2), bs.slice(0, -2)], where);
      const shape = [...batch, ...(a.shape.length === 1 ? [] : [as[as.length - 2]!]), ...(b.shape.length === 1 ? [] : [bs[bs.length - 1]!])];
      return [{ shape, dtype: a.dtype }];
    }
    case 'ReduceMean':
    case 'ReduceSum':
    case 'ReduceMax':
    case 'ReduceMin':
    case 'ReduceProd':
    case 'ReduceL1':
    case 'ReduceL2':
    case 'ReduceLogSumExp':
    case 'ReduceSumSquare': {
      const x = x0();
      const r = x.shape.length;
      const axesFromInput = (node.op === 'ReduceSum' && opset >= 13) || opset >= 18;
      let axes = axesFromInput ? (node.inputs[1] ? needValue(node, ins, 1, 'axes') : undefined) : attrInts(node, 'axes', undefined);
      if (!axes || axes.length === 0) axes = attrInt(node, 'noop_with_empty_axes', 0) ? [] : x.shape.map((_, i) => i);
      const set = new Set(axes.map((a) => normAxis(a, r, node)));
      const keep = attrInt(node, 'keepdims', 1) === 1;
      const shape = keep ? x.shape.map((d, i) => (set.has(i) ? 1 : d)) : x.shape.filter((_, i) => !set.has(i));
      return [{ shape, dtype: x.dtype }];
    }
    case 'ArgMax':
    case 'ArgMin': {
      const x = x0();
      const axis = normAxis(attrInt(node, 'axis', 0), x.shape.length, node);
      const keep = attrInt(node, 'keepdims', 1) === 1;
      return [{ shape: keep ? x.shape.map((d, i) => (i === axis ? 1 : d)) : x.shape.filter((_, i) => i !== axis), dtype: 'I64' }];
    }
    case 'Resize':
    case 'Upsample': {
      const x = x0();
      const sizes = node.op === 'Resize' ? optionalValue(ins, 3) : undefined;
      if (sizes && sizes.length > 0) {
        const axes = attrInts(node, 'axes', undefined);
        if (axes) {
          const shape = [...x.shape];
          axes.forEach((a, i) => (shape[normAxis(a, x.shape.length, node)] = sizes[i]!));
          return [{ shape, dtype: x.dtype }];
        }
        return [{ shape: sizes, dtype: x.dtype }];
      }
      const scales = node.op === 'Upsample' ? (opset >= 9 ? needValue(node, ins, 1, 'scales') : attrFloatList(node, 'scales')) : needValue(node, ins, 2, 'scales');
      return [{ shape: x.shape.map((d, i) => Math.floor(d * scales[i]!)), dtype: x.dtype }];
    }
    case 'Pad': {
      const x = x0();
      const r = x.shape.length;
      const pads = opset >= 11 ? needValue(node, ins, 1, 'pads') : attrInts(node, 'pads', [])!;
      const axesIn = opset >= 18 ? optionalValue(ins, 3) : undefined;
      const axes = (axesIn ?? x.shape.map((_, i) => i)).map((a) => normAxis(a, r, node));
      if (pads.length !== 2 * axes.length) throw new ConversionError(`${where}: ${pads.length} pads for ${axes.length} axes; it needs ${2 * axes.length}`);
      const shape = [...x.shape];
      axes.forEach((a, i) => (shape[a] = shape[a]! + pads[i]! + pads[i + axes.length]!));
      return [{ shape, dtype: x.dtype }];
    }
    case 'ConstantOfShape': {
      const shape = needValue(node, ins, 0, 'shape');
      const a = node.attrs['value'];
      const fill = a && a.type === 'tensor' ? Number(a.value.data[0] ?? 0) : 0;
      const dtype = a && a.type === 'tensor' ? a.value.dtype : 'F32';
      return [{ shape, dtype, value: trackable(shape) ? new Array(prod(shape)).fill(fill) : undefined }];
    }
    case 'Expand': {
      const x = x0();
      const target = needValue(node, ins, 1, 'shape');
      const shape = broadcastShapes([x.shape, target], where);
      return [{ shape, dtype: x.dtype, value: broadcastValues([x], shape, (v) => v) }];
    }
    case 'Tile': {
      const x = x0();
      const reps = needValue(node, ins, 1, 'repeats');
      if (reps.length !== x.shape.length) throw new ConversionError(`${where}: ${reps.length} repeats for rank ${x.shape.length}`);
      return [{ shape: x.shape.map((d, i) => d * reps[i]!), dtype: x.dtype }];
    }
    case 'Range': {
      const bounds = [0, 1, 2].map((i) => needValue(node, ins, i, 'range bound'));
      if (bounds.some((b) => b.length !== 1)) throw new ConversionError(`${where}: start, limit and delta must be scalars`);
      const [s, l, d] = bounds.map((b) => b[0]!) as [number, number, number];
      const n = Math.max(0, Math.ceil((l - s) / d));
      return [{ shape: [n], dtype: x0().dtype, value: n <= MAX_VALUE_ELEMENTS ? Array.from({ length: n }, (_, i) => s + i * d) : undefined }];
    }
    case 'Where': {
      const [c, a, b] = [0, 1, 2].map((i) => need(node, ins, i)) as [ValueFacts, ValueFacts, ValueFacts];
      const shape = broadcastShapes([c.shape, a.shape, b.shape], where);
      return [{ shape, dtype: a.dtype, value: broadcastValues([c, a, b], shape, (cv, av, bv) => (cv ? av : bv)) }];
    }
    case 'Sum':
    case 'Mean':
    case 'Max':
    case 'Min': {
      const xs = node.inputs.map((_, i) => need(node, ins, i));
      if (xs.length === 2 && node.op !== 'Sum' && node.op !== 'Mean') break;
      const shape = broadcastShapes(xs.map((f) => f.shape), where);
      return [{ shape, dtype: xs[0]!.dtype }];
    }
    default:
      break;
  }
  const binaryFn = own(BINARY_FN, node.op);
  if (binaryFn || node.op === 'Div') {
    const a = x0();
    const b = need(node, ins, 1);
    const shape = broadcastShapes([a.shape, b.shape], where);
    const int = INT_DTYPES.has(a.dtype);
    const fn = binaryFn ?? ((p: number, q: number) => (int ? Math.trunc(p / q) : p / q));
    const cmp = ['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor'].includes(node.op);
    return [{ shape, dtype: cmp ? 'BOOL' : a.dtype, value: broadcastValues([a, b], shape, fn) }];
  }
  if (UNARY_SAME_SHAPE.has(node.op)) {
    const x = x0();
    const dtype = node.op === 'Cast' ? dtypeFromTo(attrInt(node, 'to', 1)) : node.op === 'Not' ? 'BOOL' : x.dtype;
    let value: number[] | undefined;
    if (x.value) {
      if (node.op === 'Cast') value = INT_DTYPES.has(dtype) ? x.value.map((v) => Math.trunc(v)) : [...x.value];
      else if (node.op === 'Clip') value = undefined;
      else {
        const unaryFn = own(UNARY_FN, node.op);
        if (unaryFn) value = x.value.map(unaryFn);
      }
    }
    const outs: ValueFacts[] = [{ shape: [...x.shape], dtype, value }];
    if (node.op === 'Dropout') outs.push({ shape: [...x.shape], dtype: 'BOOL' });
    return outs;
  }
  throw new ConversionError(`${where}: op '${node.op}' is not supported by the shape inference of this converter`);
}

/** Values of an output tensor whose element at index `idx` is the input's element at `source(idx)`. */
function gatherValues(values: number[], inShape: number[], outShape: number[], source: (idx: number[]) => number[]): number[] | undefined {
  if (!trackable(outShape)) return undefined;
  const n = prod(outShape);
  const strides = inShape.map((_, i) => prod(inShape.slice(i + 1)));
  const out = new Array<number>(n);
  const idx = new Array<number>(outShape.length).fill(0);
  for (let k = 0; k < n; k++) {
    const src = source(idx);
    out[k] = values[src.reduce((a, v, i) => a + v * strides[i]!, 0)]!;
    for (let i = outShape.length - 1; i >= 0; i--) {
      idx[i]!++;
      if (idx[i]! < outShape[i]!) break;
      idx[i] = 0;
    }
  }
  return out;
}

function normAxisInclusive(a: number, rank: number): number {
  return a < 0 ? a + rank : a;
}

function attrFloatList(node: Node, name: string): number[] {
  const a = node.attrs[name];
  if (!a || a.type !== 'floats') throw new ConversionError(`node '${node.name}' (${node.op}): no '${name}'`);
  return a.value;
}

function constantFacts(name: string, a: Attr, where: string): ValueFacts {
  switch (name) {
    case 'value':
      if (a.type !== 'tensor') break;
      return { shape: [...a.value.shape], dtype: a.value.dtype, value: tensorValue(a.value) };
    case 'value_float':
      return { shape: [], dtype: 'F32', value: [a.value as number] };
    case 'value_floats':
      return { shape: [(a.value as number[]).length], dtype: 'F32', value: [...(a.value as number[])] };
    case 'value_int':
      return { shape: [], dtype: 'I64', value: [a.value as number] };
    case 'value_ints':
      return { shape: [(a.value as number[]).length], dtype: 'I64', value: [...(a.value as number[])] };
    default:
      break;
  }
  throw new ConversionError(`${where}: Constant with attribute '${name}' is not supported`);
}

