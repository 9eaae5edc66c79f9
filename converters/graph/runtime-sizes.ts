/**
 * Shape vectors as torch exports them (`Shape -> Gather/Slice -> Unsqueeze -> Concat -> Cast`,
 * the `size=y.shape[-2:]` of `F.interpolate`; the pad arithmetic of `F.pad(x, [dx // 2, ...])`),
 * read element by element: each element is a constant, one dimension of a value of the 2D
 * graph, or integer arithmetic on such elements. The 3D converter rebuilds such a vector from
 * the 3D values' own shapes at run time, so that a size that follows a tensor follows it at
 * every volume size (converters/SPEC-acs.md section 18).
 */
import { LIMITS, type Tensor } from '../tensor.js';
import { attrInt, attrInts, type Node } from './ir.js';

/** Integer arithmetic a traced element may hold (ONNX semantics: Div truncates). */
export type SizeOp = 'Add' | 'Sub' | 'Mul' | 'Div';

/** One element of a shape vector: a constant, dimension `axis` of the 2D value `of`, or arithmetic. */
export type SizeElem =
  | { kind: 'const'; value: number }
  | { kind: 'dim'; of: string; axis: number }
  | { kind: 'op'; op: SizeOp; args: [SizeElem, SizeElem] };

/** Ops a traced shape vector may pass through unchanged (element order kept). */
const PASS = new Set(['Identity', 'Cast', 'Squeeze', 'Unsqueeze', 'Reshape', 'Flatten']);
const ARITH = new Set<string>(['Add', 'Sub', 'Mul', 'Div']);

/**
 * Longest chain of ops followed back from a shape vector, and most nodes visited for one
 * vector (a graph may reuse a value many times: without a bound, a ladder of Concats that
 * each read the one below twice costs 2^depth). torch's exports need a chain of at most a
 * dozen (F.pad's: Shape, Gather, Sub, Div, Cast, Sub, Unsqueeze, Concat, Reshape, Slice,
 * Transpose, Reshape, Cast) and a hundred visits; beyond either bound the vector counts as
 * untraceable, which the converter reports as unsupported.
 */
const MAX_STEPS = 32;
const MAX_VISITS = 512;

/** What the tracer reads from the graph. */
export interface SizeGraph {
  producer: ReadonlyMap<string, Node>;
  consts: ReadonlyMap<string, Tensor>;
  /** Shape of a 2D value at the first probe (for small vectors: the same at every probe). */
  shape: (name: string) => number[];
  /** Whether a value's shape is the same at every probe size (it holds no spatial data). */
  fixedShape: (name: string) => boolean;
  /** Whether a value holds integers. */
  integer: (name: string) => boolean;
  opset: number;
}

/**
 * The elements (C order) of the small integer tensor `name`, or undefined when it is computed
 * by anything but the ops above (float arithmetic, data-dependent values, long chains).
 */
export function traceSizes(name: string, g: SizeGraph): SizeElem[] | undefined {
  return trace(name, g, 0, { visits: 0 });
}

function trace(name: string, g: SizeGraph, steps: number, work: { visits: number }): SizeElem[] | undefined {
  if (steps > MAX_STEPS || ++work.visits > MAX_VISITS) return undefined;
  const c = g.consts.get(name);
  if (c) {
    if (c.data.length > LIMITS.maxDims * 4 || c.dtype.startsWith('F')) return undefined;
    return Array.from(c.data as ArrayLike<number | bigint>, (v) => konst(Number(v)));
  }
  const n = g.producer.get(name);
  if (!n || !g.integer(name)) return undefined;
  const next = (x: string | undefined): SizeElem[] | undefined => (x ? trace(x, g, steps + 1, work) : undefined);
  const out = g.shape(name);
  if (out.reduce((a, b) => a * b, 1) > LIMITS.maxDims * 4) return undefined;
  switch (n.op) {
    case 'Shape': {
      const x = n.inputs[0]!;
      const dims = g.shape(x);
      const r = dims.length;
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
      const start = clamp(attrInt(n, 'start', 0));
      const end = clamp(attrInt(n, 'end', r));
      const fixed = g.fixedShape(x);
      return Array.from({ length: Math.max(0, end - start) }, (_, i) => (fixed ? konst(dims[start + i]!) : { kind: 'dim', of: x, axis: start + i }));
    }
    case 'Gather': {
      const src = next(n.inputs[0]);
      const idx = constants(next(n.inputs[1]));
      if (!src || !idx || attrInt(n, 'axis', 0) !== 0 || g.shape(n.inputs[0]!).length !== 1) return undefined;
      const picked = idx.map((i) => src[i < 0 ? i + src.length : i]);
      return picked.every((e) => e !== undefined) ? (picked as SizeElem[]) : undefined;
    }
    case 'Slice':
      return slice(n, g, next);
    case 'Transpose': {
      const src = next(n.inputs[0]);
      const [a, b] = g.shape(n.inputs[0]!);
      if (!src || g.shape(n.inputs[0]!).length !== 2 || a === undefined || b === undefined) return undefined;
      return Array.from({ length: a * b }, (_, k) => src[(k % a) * b + Math.floor(k / a)]!);
    }
    case 'Concat': {
      if (attrInt(n, 'axis', 0) !== 0) return undefined;
      const parts = n.inputs.map((x) => next(x));
      return parts.some((p) => p === undefined) ? undefined : (parts.flat() as SizeElem[]);
    }
    case 'ConstantOfShape': {
      const v = n.attrs['value'];
      const value = v?.type === 'tensor' ? Number((v.value.data as ArrayLike<number | bigint>)[0] ?? 0) : 0;
      return Array.from({ length: out.reduce((p, q) => p * q, 1) }, () => konst(value));
    }
    default:
      if (ARITH.has(n.op)) return arith(n.op as SizeOp, n, g, next, out);
      return PASS.has(n.op) ? next(n.inputs[0]) : undefined;
  }
}

function konst(value: number): SizeElem {
  return { kind: 'const', value };
}

/** Element-wise arithmetic with broadcasting; constants are folded. */
function arith(op: SizeOp, n: Node, g: SizeGraph, next: (x: string | undefined) => SizeElem[] | undefined, out: number[]): SizeElem[] | undefined {
  const a = next(n.inputs[0]);
  const b = next(n.inputs[1]);
  if (!a || !b) return undefined;
  const sa = g.shape(n.inputs[0]!);
  const sb = g.shape(n.inputs[1]!);
  const at = (e: SizeElem[], s: number[], k: number): SizeElem => {
    let off = 0;
    let stride = 1;
    let rest = k;
    const idx = out.map(() => 0);
    for (let i = out.length - 1; i >= 0; i--) {
      idx[i] = rest % out[i]!;
      rest = Math.floor(rest / out[i]!);
    }
    for (let i = s.length - 1; i >= 0; i--) {
      const d = s[i]!;
      off += (d === 1 ? 0 : idx[out.length - s.length + i]!) * stride;
      stride *= d;
    }
    return e[off]!;
  };
  return Array.from({ length: out.reduce((p, q) => p * q, 1) }, (_, k) => combine(op, at(a, sa, k), at(b, sb, k)));
}

function combine(op: SizeOp, x: SizeElem, y: SizeElem): SizeElem {
  if (x.kind === 'const' && y.kind === 'const') {
    const v = op === 'Add' ? x.value + y.value : op === 'Sub' ? x.value - y.value : op === 'Mul' ? x.value * y.value : y.value === 0 ? NaN : Math.trunc(x.value / y.value);
    if (Number.isSafeInteger(v)) return konst(v);
  }
  return { kind: 'op', op, args: [x, y] };
}

/** Slice of a small tensor with constant starts, ends, axes and steps (negative steps too). */
function slice(n: Node, g: SizeGraph, next: (x: string | undefined) => SizeElem[] | undefined): SizeElem[] | undefined {
  const src = next(n.inputs[0]);
  if (!src) return undefined;
  const vals = (i: number): number[] | undefined => constants(next(n.inputs[i]));
  const starts = g.opset >= 10 ? vals(1) : attrInts(n, 'starts', undefined);
  const inShape = g.shape(n.inputs[0]!);
  const axes = g.opset >= 10 ? (n.inputs[3] ? vals(3) : starts?.map((_, i) => i)) : attrInts(n, 'axes', starts?.map((_, i) => i));
  const steps = g.opset >= 10 && n.inputs[4] ? vals(4) : starts?.map(() => 1);
  if (!starts || !axes || !steps || axes.length !== starts.length || steps.length !== starts.length) return undefined;
  const outShape = g.shape(n.outputs[0]!);
  const first = inShape.map(() => 0);
  const step = inShape.map(() => 1);
  for (let i = 0; i < axes.length; i++) {
    const a = axes[i]! < 0 ? axes[i]! + inShape.length : axes[i]!;
    const d = inShape[a];
    if (d === undefined || steps[i] === 0) return undefined;
    const s = starts[i]! < 0 ? starts[i]! + d : starts[i]!;
    first[a] = steps[i]! > 0 ? Math.min(Math.max(s, 0), d) : Math.min(Math.max(s, 0), d - 1);
    step[a] = steps[i]!;
  }
  const total = outShape.reduce((p, q) => p * q, 1);
  const out: SizeElem[] = [];
  for (let k = 0; k < total; k++) {
    let rest = k;
    let off = 0;
    let stride = 1;
    const idx = outShape.map(() => 0);
    for (let i = outShape.length - 1; i >= 0; i--) {
      idx[i] = rest % outShape[i]!;
      rest = Math.floor(rest / outShape[i]!);
    }
    for (let i = inShape.length - 1; i >= 0; i--) {
      off += (first[i]! + idx[i]! * step[i]!) * stride;
      stride *= inShape[i]!;
    }
    const e = src[off];
    if (e === undefined) return undefined;
    out.push(e);
  }
  return out;
}

/** The values of a traced vector whose elements are all constants. */
export function constants(elems: SizeElem[] | undefined): number[] | undefined {
  if (!elems) return undefined;
  const out: number[] = [];
  for (const e of elems) {
    if (e.kind !== 'const') return undefined;
    out.push(e.value);
  }
  return out;
}
