/**
 * Shape vectors as torch exports them (`Shape -> Gather/Slice -> Unsqueeze -> Concat -> Cast`,
 * the `size=y.shape[-2:]` of `F.interpolate`), read element by element: each element is a
 * constant or one dimension of a value of the 2D graph. The 3D converter rebuilds such a
 * vector from the 3D values' own shapes at run time, so that a size that follows a tensor
 * follows it at every volume size (converters/SPEC-acs.md section 17).
 */
import { LIMITS, type Tensor } from '../tensor.js';
import { attrInt, attrInts, type Node } from './ir.js';

/** One element of a shape vector: a constant, or dimension `axis` of the 2D value `of`. */
export type SizeElem = { kind: 'const'; value: number } | { kind: 'dim'; of: string; axis: number };

/** Ops a traced shape vector may pass through; anything else is not followed. */
const PASS = new Set(['Identity', 'Cast', 'Squeeze', 'Unsqueeze']);

/**
 * Longest chain of ops followed back from a shape vector, and most nodes visited for one
 * vector (a graph may reuse a value many times: without a bound, a ladder of Concats that
 * each read the one below twice costs 2^depth). torch's exports need a chain of at most six
 * (Shape, Gather, Unsqueeze, Concat, Cast, Concat) and a few dozen visits; beyond either bound
 * the vector counts as untraceable, which the converter reports as unsupported.
 */
const MAX_STEPS = 32;
const MAX_VISITS = 256;

/** What the tracer reads from the graph. */
export interface SizeGraph {
  producer: ReadonlyMap<string, Node>;
  consts: ReadonlyMap<string, Tensor>;
  /** Rank of a 2D value (for `Shape` with negative start or end). */
  rank: (name: string) => number;
  opset: number;
}

/**
 * The elements of the 1-D (or scalar) integer vector `name`, or undefined when it is computed
 * by anything but the ops above (arithmetic on sizes, data-dependent values, long chains).
 */
export function traceSizes(name: string, g: SizeGraph): SizeElem[] | undefined {
  return trace(name, g, 0, { visits: 0 });
}

function trace(name: string, g: SizeGraph, steps: number, work: { visits: number }): SizeElem[] | undefined {
  if (steps > MAX_STEPS || ++work.visits > MAX_VISITS) return undefined;
  const c = g.consts.get(name);
  if (c) {
    if (c.shape.length > 1 || c.data.length > LIMITS.maxDims || c.dtype.startsWith('F')) return undefined;
    return Array.from(c.data as ArrayLike<number | bigint>, (v) => ({ kind: 'const', value: Number(v) }));
  }
  const n = g.producer.get(name);
  if (!n) return undefined;
  const next = (x: string | undefined): SizeElem[] | undefined => (x ? trace(x, g, steps + 1, work) : undefined);
  switch (n.op) {
    case 'Shape': {
      const x = n.inputs[0]!;
      const r = g.rank(x);
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
      const start = clamp(attrInt(n, 'start', 0));
      const end = clamp(attrInt(n, 'end', r));
      return Array.from({ length: Math.max(0, end - start) }, (_, i) => ({ kind: 'dim', of: x, axis: start + i }));
    }
    case 'Gather': {
      if (attrInt(n, 'axis', 0) !== 0) return undefined;
      const src = next(n.inputs[0]);
      const idx = constants(next(n.inputs[1]));
      if (!src || !idx) return undefined;
      const picked = idx.map((i) => src[i < 0 ? i + src.length : i]);
      return picked.every((e) => e !== undefined) ? (picked as SizeElem[]) : undefined;
    }
    case 'Slice': {
      const src = next(n.inputs[0]);
      if (!src) return undefined;
      const vals = (i: number): number[] | undefined => constants(next(n.inputs[i]));
      const starts = g.opset >= 10 ? vals(1) : attrInts(n, 'starts', undefined);
      const ends = g.opset >= 10 ? vals(2) : attrInts(n, 'ends', undefined);
      const axes = g.opset >= 10 ? (n.inputs[3] ? vals(3) : [0]) : attrInts(n, 'axes', [0]);
      const steps1 = g.opset >= 10 && n.inputs[4] ? vals(4) : [1];
      if (!starts || !ends || !axes || !steps1 || starts.length !== 1 || ends.length !== 1 || axes[0] !== 0 || steps1[0] !== 1) return undefined;
      const len = src.length;
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + len : v, 0), len);
      return src.slice(clamp(starts[0]!), clamp(ends[0]!));
    }
    case 'Concat': {
      if (attrInt(n, 'axis', 0) !== 0) return undefined;
      const parts = n.inputs.map((x) => next(x));
      if (parts.some((p) => p === undefined)) return undefined;
      const all = parts.flat() as SizeElem[];
      return all.length <= LIMITS.maxDims ? all : undefined;
    }
    default:
      return PASS.has(n.op) ? next(n.inputs[0]) : undefined;
  }
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
