/**
 * Shape specialisation, for inference: once the spatial size of the input is known, each ACS
 * view (a Conv3D whose kernel has exactly one unit extent) is rewritten as a 2D convolution,
 * which onnxruntime runs in its blocked 2D kernels instead of the im2col path it uses for 3D
 * ones. The result is the same sum of the same products (converters/SPEC-acs.md section 11).
 *
 * - Coronal view (unit extent on H): the volume [N, C, D, H, W] is read as [N, C, D*H, W];
 *   a step of one along D is a step of H rows, so the kernel's D taps get dilation `d*H` and
 *   padding `p*H`. Rows that a tap reaches past either end are exactly the zero padding.
 * - Sagittal view (unit extent on W): [N, C, D, H*W], the H taps get dilation `d*W`.
 * - Axial view (unit extent on D), and every strided view: the collapsed axis is moved next
 *   to the batch and folded into it, [N*D, C, H, W], and moved back afterwards.
 * - Transposed views (a ConvTranspose whose kernel has one unit extent): folded the same way,
 *   a 2D ConvTranspose over the planes, whose outputs are then spread `s` planes apart along
 *   the collapsed axis (the planes between hold the bias) and cropped by its pads. onnxruntime's
 *   WebGPU provider runs only 1D and 2D ConvTranspose, so this is what lets ACS U-Nets run there.
 * A lone element-wise activation after the convolution is moved before the reshape so that
 * onnxruntime still fuses it, and a pooling after a channel Concat is applied to the parts
 * (a smaller copy). The dilations depend on H and W, so a specialised graph is only valid
 * for the spatial size it was made for; the batch stays free.
 */
import { decodeOnnx, encodeOnnx } from '../formats/onnx.js';
import type { Tensor } from '../tensor.js';
import { Emitter } from './emitter.js';
import { A, attrInt, type Attr, attrInts, attrString, consumersOf, graphFromModel, graphToModel, pruneGraph, type Graph, type Node, type ValueInfo } from './ir.js';
import { FOLD_IN, FOLD_OUT, type SpatialAxis } from './lower-conv.js';
import { inferShapes } from './shapes.js';

/**
 * The version of the graphs `specializeModel` makes with its default options: part of the
 * key of a stored specialised model.onnx (zoo/store.ts), so that files an older version made
 * are made again rather than served. Raise it whenever what the defaults make changes, and
 * the autotune's CANDIDATES_VERSION with it (inference/runtime/autotune.ts), so that stored
 * decisions are measured again. (Files made before there was a version, with 3D transposed
 * views and sliced strided folds, sit under an unversioned key that is no longer read.)
 */
export const SPECIALIZE_VERSION = 2;

/** What the specialisation did. */
export interface Specialized {
  graph: Graph;
  /** Views rewritten, by collapsed axis: axial, coronal, sagittal. */
  views: { axial: number; coronal: number; sagittal: number; pointwise: number; transposed: number; pooled: number };
}

/**
 * Which rewrites to make. The defaults are what measured fastest (bench/inference): 1x1x1
 * kernels as 2D ones were no faster than onnxruntime's own 1x1x1 path.
 */
export interface SpecializeOptions {
  /**
   * Strided views too: the planes the stride keeps are sliced out, then folded into the
   * batch (their transposes cost about what the 2D kernels save, a few percent net). @default true
   */
  strided?: boolean;
  /**
   * 1x1x1 convolutions as 2D 1x1 ones, over the volume read as [N, C, D, H*W]; the residual
   * Adds and activations between them are done in that 4D form too (`flatResiduals`), so that
   * onnxruntime fuses each Add and ReLU into the convolution before it and keeps the blocked
   * layout from one 1x1 convolution to the next. @default false
   */
  pointwise?: boolean;
  /** A pooling after a channel Concat applied to each part first (a smaller Concat). @default true */
  pools?: boolean;
  /**
   * A max pooling after a folded view (the ACS stem's) done in the folded layout: the in-plane
   * axes by a 2D pooling on the convolution's blocked output, then the folded axis, so that
   * the transpose back moves the pooled (smaller) tensor. Needs `pools`. @default true
   */
  foldedPools?: boolean;
  /** The channel block of onnxruntime's blocked kernels, to which a folded pooled view's output channels are padded. @default 8 */
  channelBlock?: number;
  /**
   * Where a strided folded view keeps every s-th plane: in the fold itself, a Gather of the
   * kept planes' rows in folded order (one copy instead of a Transpose and a Slice; a fold of
   * W, whose rows would be single values, keeps the slice after the fold), after the fold (a
   * contiguous slice of the transposed volume), or before it (a strided slice). @default 'gather'
   */
  planes?: 'after-fold' | 'before-fold' | 'gather';
  /**
   * A folded view with stride 2 and fewer input channels than a block (the stem: 3 channels,
   * 7x7) as a space-to-depth of its planes, each 2x2 patch becoming 4x the channels, and a
   * stride-1 convolution with half the kernel (4x4): the same products, in the layout of a
   * convolution with more input channels and fewer taps. Only where the planes have even
   * sides. @default 'direct'
   */
  stem?: 'direct' | 'space-to-depth';
  /** Transposed views (ConvTranspose with one unit kernel extent) as 2D ConvTransposes over the folded planes. @default true */
  transposed?: boolean;
}

/** Unary activations that may move before the reshape. */
const ACTIVATIONS = new Set(['Relu', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Elu', 'Selu', 'Softplus', 'Gelu']);

/** A convolution that can be rewritten, with what the rewrite needs. */
interface Candidate {
  /** The collapsed axis of an ACS view, or 'pointwise' for a 1x1x1 kernel. */
  axis: 0 | 1 | 2 | 'pointwise';
  x: [number, number, number, number, number];
  y: [number, number, number, number, number];
  weight: Tensor;
  bias?: Tensor;
  stride: number;
  pads: number[];
  dilations: number[];
  group: number;
}

function candidate(n: Node, g: Graph, shapes: Map<string, { shape: number[] }>, o: SpecializeOptions): Candidate | undefined {
  if (n.op !== 'Conv' || n.outputs.length !== 1) return undefined;
  const weight = g.initializers.get(n.inputs[1] ?? '');
  if (!weight || weight.dtype !== 'F32' || weight.shape.length !== 5) return undefined;
  if (n.inputs[2] && !g.initializers.has(n.inputs[2])) return undefined;
  if (attrString(n, 'auto_pad', 'NOTSET') !== 'NOTSET') return undefined;
  const strides = attrInts(n, 'strides', [1, 1, 1])!;
  if (strides.some((s) => s !== strides[0])) return undefined;
  const pads = attrInts(n, 'pads', [0, 0, 0, 0, 0, 0])!;
  const x = shapes.get(n.inputs[0]!)?.shape;
  const y = shapes.get(n.outputs[0]!)?.shape;
  if (!x || !y || x.length !== 5 || y.length !== 5) return undefined;
  const kernel = weight.shape.slice(2);
  const units = kernel.filter((k) => k === 1).length;
  let axis: Candidate['axis'];
  if (units === 3) {
    if (!o.pointwise || strides[0] !== 1 || pads.some((p) => p !== 0)) return undefined;
    axis = 'pointwise';
  } else if (units === 1) {
    axis = kernel.indexOf(1) as 0 | 1 | 2;
    if (pads[axis] !== 0 || pads[axis + 3] !== 0) return undefined;
    if (strides[0] !== 1 && o.strided === false) return undefined;
  } else return undefined;
  return {
    axis,
    x: x as Candidate['x'],
    y: y as Candidate['y'],
    weight,
    bias: n.inputs[2] ? g.initializers.get(n.inputs[2]) : undefined,
    stride: strides[0]!,
    pads,
    dilations: attrInts(n, 'dilations', [1, 1, 1])!,
    group: attrInt(n, 'group', 1),
  };
}

/**
 * The graph specialised for inputs of the given shapes (only the spatial sizes matter; the
 * batch dimension stays free). Convolutions it cannot prove safe to rewrite are kept as they
 * are; shape inference errors propagate (the caller keeps the general graph then).
 */
export function specializeViews(graph: Graph, inputShapes: Record<string, number[]>, o: SpecializeOptions = {}): Specialized {
  const shapes = inferShapes(graph, inputShapes);
  const consumers = consumersOf(graph.nodes);
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const em = new Emitter();
  for (const n of graph.nodes) for (const o of [n.name, ...n.outputs]) em.reserve(o);
  for (const k of graph.initializers.keys()) em.reserve(k);
  for (const i of graph.inputs) em.reserve(i.name);

  const views = { axial: 0, coronal: 0, sagittal: 0, pointwise: 0, transposed: 0, pooled: 0 };
  // A folded view whose only reader is a Concat that is max-pooled is pooled while folded;
  // poolBeforeConcat then takes its pooled value as that part.
  const pooledConcats = o.pools === false ? new Map<Node, Node>() : concatPools(graph.nodes, outputs);
  const poolOfPart = new Map<string, { pool: Node; shape: number[] }>();
  if (o.foldedPools !== false) {
    for (const [cat, pool] of pooledConcats) {
      const shape = shapes.get(pool.outputs[0]!)?.shape;
      if (pool.op !== 'MaxPool' || !shape || shape.length !== 5 || !separablePool(pool)) continue;
      for (const x of cat.inputs) if ((consumers.get(x) ?? []).length === 1) poolOfPart.set(x, { pool, shape });
    }
  }
  const prePooled = new Map<string, string>();
  // 5D values that are a reshape of a 4D [N, C, D, H*W] one (a 1x1x1 convolution's output): that 4D value
  const flat = new Map<string, string>();
  const moved = new Set<Node>();
  const nodes: Node[] = [];
  for (const n of graph.nodes) {
    if (moved.has(n)) continue;
    const tv = o.transposed === false ? undefined : transposedCandidate(n, graph, shapes);
    if (tv) {
      const start = em.nodes.length;
      rewriteTransposed(em, n, tv);
      nodes.push(...em.nodes.slice(start));
      views.transposed++;
      continue;
    }
    const c = candidate(n, graph, shapes, o);
    if (!c) {
      nodes.push(n);
      continue;
    }
    const users = consumers.get(n.outputs[0]!) ?? [];
    const act = users.length === 1 && ACTIVATIONS.has(users[0]!.op) && users[0]!.inputs.length === 1 && !outputs.has(n.outputs[0]!) ? users[0]! : undefined;
    if (act) moved.add(act);
    const final = act ? act.outputs[0]! : n.outputs[0]!;
    const start = em.nodes.length;
    const pooledPart = rewrite(em, n, c, act, final, poolOfPart.get(final), o, flat);
    if (pooledPart) {
      prePooled.set(final, pooledPart);
      views.pooled++;
    }
    nodes.push(...em.nodes.slice(start));
    views[c.axis === 'pointwise' ? 'pointwise' : (['axial', 'coronal', 'sagittal'] as const)[c.axis]]++;
  }
  const pooled = o.pools === false ? nodes : poolBeforeConcat(nodes, pooledConcats, prePooled, em);
  const trunk = flat.size ? flatResiduals(pooled, flat, shapes, outputs, graph.initializers, em) : undefined;
  const initializers = new Map(graph.initializers);
  for (const [k, t] of em.initializers) initializers.set(k, t);
  if (!trunk) {
    const used = new Set(pooled.flatMap((n) => n.inputs));
    for (const k of [...initializers.keys()]) if (!used.has(k)) initializers.delete(k);
    return { graph: { ...graph, nodes: pooled, initializers }, views };
  }
  // The reshapes the 4D values replaced are read by nothing now (nor are their initializers).
  const pruned = pruneGraph({ ...graph, nodes: trunk.nodes, initializers });
  // Shape inference loses the batch dimension in the folds (a reshape to -1 planes); the 4D
  // trunk values keep the input's, so that onnxruntime can tell an Add's two inputs have one
  // shape and fuse it into the convolution.
  const batch = graph.inputs[0]?.shape?.[0];
  const made = new Set(pruned.nodes.flatMap((n) => n.outputs));
  const valueInfo: ValueInfo[] = batch === undefined || batch === null ? [] : [...trunk.shapes].filter(([name]) => made.has(name)).map(([name, dims]) => ({ name, dtype: 'F32', shape: [batch, ...dims] }));
  return { graph: { ...pruned, valueInfo }, views };
}

/** `data` followed by zeros up to `n` values (itself when it has `n`). */
function grow(data: Float32Array, n: number): Float32Array {
  if (data.length === n) return data;
  const out = new Float32Array(n);
  out.set(data);
  return out;
}

/** Channel Concats (not graph outputs) whose one reader is a pooling, with that pooling. */
function concatPools(nodes: Node[], outputs: Set<string>): Map<Node, Node> {
  const consumers = consumersOf(nodes);
  const found = new Map<Node, Node>();
  for (const cat of nodes) {
    if (cat.op !== 'Concat' || attrInt(cat, 'axis', 0) !== 1 || outputs.has(cat.outputs[0]!)) continue;
    const users = consumers.get(cat.outputs[0]!) ?? [];
    const pool = users[0];
    if (users.length !== 1 || !pool || (pool.op !== 'MaxPool' && pool.op !== 'AveragePool') || pool.outputs.length !== 1) continue;
    found.set(cat, pool);
  }
  return found;
}

/** A 3D max pooling that can be done one group of axes at a time (a max of maxes). */
function separablePool(pool: Node): boolean {
  return (
    attrString(pool, 'auto_pad', 'NOTSET') === 'NOTSET' &&
    attrInts(pool, 'kernel_shape', [])!.length === 3 &&
    (attrInts(pool, 'dilations', [1, 1, 1])!).every((d) => d === 1)
  );
}

/**
 * Pooling works channel by channel, so pooling a channel Concat is the Concat of the pooled
 * parts: the copy then moves the pooled (smaller) tensors. The ACS stem is such a place
 * (three views, concatenated, max-pooled). `prePooled` holds parts a folded view already
 * pooled (see `rewrite`).
 */
function poolBeforeConcat(nodes: Node[], pooledConcats: Map<Node, Node>, prePooled: Map<string, string>, em: Emitter): Node[] {
  const replaced = new Map<Node, Node[]>();
  const dropped = new Set<Node>();
  for (const [cat, pool] of pooledConcats) {
    const first = em.nodes.length;
    const parts = cat.inputs.map((x, i) => prePooled.get(x) ?? em.op(pool.op, [x], pool.attrs, `${pool.name}/part${i}`));
    const concat: Node = { ...cat, name: em.unique(`${cat.name}/pooled`), inputs: parts, outputs: [pool.outputs[0]!] };
    replaced.set(cat, [...em.nodes.slice(first), concat]);
    dropped.add(pool);
  }
  return nodes.flatMap((n) => (dropped.has(n) ? [] : (replaced.get(n) ?? [n])));
}

/** A transposed view that can be rewritten: its collapsed axis and what the rewrite needs. */
interface TransposedCandidate {
  axis: SpatialAxis;
  x: [number, number, number, number, number];
  y: [number, number, number, number, number];
  weight: Tensor;
  kernel: number[];
  strides: number[];
  pads: number[];
  dilations: number[];
  group: number;
}

function transposedCandidate(n: Node, g: Graph, shapes: Map<string, { shape: number[] }>): TransposedCandidate | undefined {
  if (n.op !== 'ConvTranspose' || n.domain !== '' || n.outputs.length !== 1) return undefined;
  const weight = g.initializers.get(n.inputs[1] ?? '');
  if (!weight || weight.dtype !== 'F32' || weight.shape.length !== 5) return undefined;
  if (n.inputs[2] && !g.initializers.has(n.inputs[2])) return undefined;
  if (attrString(n, 'auto_pad', 'NOTSET') !== 'NOTSET' || n.attrs['output_shape']) return undefined;
  if (attrInts(n, 'output_padding', [0, 0, 0])!.some((p) => p !== 0)) return undefined;
  const kernel = weight.shape.slice(2);
  if (kernel.filter((k) => k === 1).length !== 1) return undefined;
  const axis = kernel.indexOf(1) as SpatialAxis;
  const x = shapes.get(n.inputs[0]!)?.shape;
  const y = shapes.get(n.outputs[0]!)?.shape;
  if (!x || !y || x.length !== 5 || y.length !== 5) return undefined;
  const strides = attrInts(n, 'strides', [1, 1, 1])!;
  const pads = attrInts(n, 'pads', [0, 0, 0, 0, 0, 0])!;
  // Along the collapsed axis input plane i lands on i*s - pad: the size the spread and crop give.
  if (y[2 + axis] !== (x[2 + axis]! - 1) * strides[axis]! + 1 - pads[axis]! - pads[axis + 3]!) return undefined;
  return { axis, x: x as TransposedCandidate['x'], y: y as TransposedCandidate['y'], weight, kernel, strides, pads, dilations: attrInts(n, 'dilations', [1, 1, 1])!, group: attrInt(n, 'group', 1) };
}

/**
 * A transposed view over its folded planes: a 2D ConvTranspose per plane, its output plane i
 * put at i*s along the collapsed axis (s - 1 zero planes after each), cropped by the pads on
 * that axis; the bias is added last, so that the planes between hold it as in 3D.
 */
function rewriteTransposed(em: Emitter, n: Node, t: TransposedCandidate): void {
  const { axis } = t;
  const [, C, ...dims] = t.x;
  const n0 = dims[axis]!;
  const s = t.strides[axis]!;
  const [begin, end] = [t.pads[axis]!, t.pads[axis + 3]!];
  const others = (v: readonly number[]) => v.filter((_, i) => i !== axis);
  const hint = n.name;
  const folded = em.op('Transpose', [n.inputs[0]!], { perm: A.ints(FOLD_IN[axis]) }, `${hint}/fold`);
  const planes = em.op('Reshape', [folded, em.ints([-1, C, ...others(dims)])], {}, `${hint}/flat`);
  const [cin, per] = t.weight.shape as [number, number];
  const w = em.constant(`${n.inputs[1]}/2d`, { dtype: 'F32', shape: [cin, per, ...others(t.kernel)], data: t.weight.data as Float32Array });
  const spread = s !== 1;
  const y = em.op('ConvTranspose', [planes, w, ...(n.inputs[2] && !spread ? [n.inputs[2]] : [])], {
    kernel_shape: A.ints(others(t.kernel)),
    strides: A.ints(others(t.strides)),
    pads: A.ints([...others(t.pads.slice(0, 3)), ...others(t.pads.slice(3))]),
    dilations: A.ints(others(t.dilations)),
    group: A.int(t.group),
  }, `${hint}/2d`);
  const [, O, ...outDims] = t.y;
  const [a, b] = others(outDims);
  // [N*n0, O, a, b] back to [N, planes, O, a, b]: a spread adds s - 1 zero planes after each
  let v: string;
  if (spread) {
    const one = em.op('Reshape', [y, em.ints([-1, n0, 1, O, a!, b!])], {}, `${hint}/unflat`);
    const apart = em.op('Pad', [one, em.ints([0, 0, 0, 0, 0, 0, 0, 0, s - 1, 0, 0, 0])], { mode: A.str('constant') }, `${hint}/spread`);
    v = em.op('Reshape', [apart, em.ints([-1, n0 * s, O, a!, b!])], {}, `${hint}/planes`);
  } else {
    v = em.op('Reshape', [y, em.ints([-1, n0, O, a!, b!])], {}, `${hint}/unflat`);
  }
  const length = (n0 - 1) * s + 1 - begin - end;
  if (begin !== 0 || length !== (spread ? n0 * s : n0)) v = em.op('Slice', [v, em.ints([begin]), em.ints([begin + length]), em.ints([1])], {}, `${hint}/crop`);
  if (!spread || !n.inputs[2]) {
    em.node('Transpose', `${hint}/unfold`, [v], [n.outputs[0]!], { perm: A.ints(FOLD_OUT[axis]) });
    return;
  }
  const unfolded = em.op('Transpose', [v], { perm: A.ints(FOLD_OUT[axis]) }, `${hint}/unfold`);
  const bias = em.op('Reshape', [n.inputs[2], em.ints([O, 1, 1, 1])], {}, `${hint}/bias3d`);
  em.node('Add', `${hint}/bias`, [unfolded, bias], [n.outputs[0]!], {});
}

/**
 * Write the 2D form of one view; its value is `final`. Given a max pooling that reads the
 * view (through a Concat) and a folded view, the pooled part is written instead, under a new
 * name, which is returned.
 */
function rewrite(
  em: Emitter,
  n: Node,
  c: Candidate,
  act: Node | undefined,
  final: string,
  pooling: { pool: Node; shape: number[] } | undefined,
  o: SpecializeOptions,
  flat: Map<string, string>,
): string | undefined {
  const [, C, D, H, W] = c.x;
  const [, O, Do, Ho, Wo] = c.y;
  const [, I, ...k] = c.weight.shape as [number, number, number, number, number];
  const axis = c.axis;
  const kernel2d = axis === 'pointwise' ? [1, 1] : k.filter((_, i) => i !== axis);
  // Stride-1 coronal and sagittal views are reshapes; the others are folded into the batch.
  const folds = axis !== 'pointwise' && (c.stride !== 1 || axis === 0);
  // A view pooled while folded gets whole blocks of output channels (zero filters), so that
  // onnxruntime pools the blocked output in place.
  const pooled = folds ? pooling : undefined;
  const block = o.channelBlock ?? 8;
  const padded = pooled ? Math.ceil(O / block) * block : O;
  const weight = grow(c.weight.data as Float32Array, padded * I * kernel2d[0]! * kernel2d[1]!);
  const bias = n.inputs[2] ? [n.inputs[2]] : [];
  if (c.bias && padded !== O) bias[0] = em.constant(`${n.inputs[2]}/2d`, { dtype: 'F32', shape: [padded], data: grow(c.bias.data as Float32Array, padded) });
  const hint = n.name;
  const [pd0, ph0, pw0, pd1, ph1, pw1] = c.pads as [number, number, number, number, number, number];
  const [dd, dh, dw] = c.dilations as [number, number, number];
  const s = c.stride;
  let x = n.inputs[0]!;
  let pads: number[];
  let dilations: number[];
  let back: number[];
  let fold: 0 | 1 | 2 | undefined;
  if (axis === 'pointwise') {
    x = em.op('Reshape', [x, em.ints([0, C, D, H * W])], {}, `${hint}/flat`);
    pads = [0, 0, 0, 0];
    dilations = [1, 1];
    back = [0, O, D, H, W];
  } else if (s === 1 && axis === 1) {
    x = em.op('Reshape', [x, em.ints([0, C, D * H, W])], {}, `${hint}/rows`);
    pads = [pd0 * H, pw0, pd1 * H, pw1];
    dilations = [dd * H, dw];
    back = [0, O, Do, H, Wo];
  } else if (s === 1 && axis === 2) {
    x = em.op('Reshape', [x, em.ints([0, C, D, H * W])], {}, `${hint}/columns`);
    pads = [pd0, ph0 * W, pd1, ph1 * W];
    dilations = [dd, dh * W];
    back = [0, O, Do, Ho, W];
  } else {
    // Fold the collapsed axis into the batch; with a stride, keep every s-th plane first
    // (the planes a unit kernel with that stride reads).
    fold = axis;
    const dims = [D, H, W];
    let t: string;
    if (s !== 1 && (o.planes ?? 'gather') === 'gather' && axis !== 2) t = gatherPlanes(em, x, C, [D, H, W], axis, s, hint);
    else {
      const beforeFold = s !== 1 && o.planes === 'before-fold';
      if (beforeFold) x = em.op('Slice', [x, em.ints([0]), em.ints([dims[axis]!]), em.ints([2 + axis]), em.ints([s])], {}, `${hint}/planes`);
      t = em.op('Transpose', [x], { perm: A.ints(FOLD_IN[axis]) }, `${hint}/fold`);
      // After the fold the planes are whole blocks next to the batch: a contiguous copy.
      if (s !== 1 && !beforeFold) t = em.op('Slice', [t, em.ints([0]), em.ints([dims[axis]!]), em.ints([1]), em.ints([s])], {}, `${hint}/planes`);
    }
    if (s !== 1) dims[axis] = Math.ceil(dims[axis]! / s);
    const rest = dims.filter((_, i) => i !== axis);
    x = em.op('Reshape', [t, em.ints([-1, C, ...rest])], {}, `${hint}/flat`);
    const p = [[pd0, pd1], [ph0, ph1], [pw0, pw1]].filter((_, i) => i !== axis);
    pads = [p[0]![0]!, p[1]![0]!, p[0]![1]!, p[1]![1]!];
    dilations = [dd, dh, dw].filter((_, i) => i !== axis);
    const outDims = [Do, Ho, Wo];
    back = [-1, outDims[axis]!, O, ...outDims.filter((_, i) => i !== axis)];
  }
  const strides = fold === undefined ? [1, 1] : [s, s];
  const s2d = fold !== undefined && o.stem === 'space-to-depth' ? spaceToDepth(c, fold, kernel2d as [number, number], pads, dilations, block) : undefined;
  // the convolution's input, weight and attributes: over the planes, or over their space-to-depth
  const conv: { input: string; weight: { shape: number[]; data: Float32Array }; attrs: Record<string, Attr> } = s2d
    ? {
        input: em.op('SpaceToDepth', [x], { blocksize: A.int(2) }, `${hint}/space-to-depth`),
        weight: { shape: [padded, 4 * I, ...s2d.kernel], data: s2d.weight(weight, padded) },
        attrs: { kernel_shape: A.ints(s2d.kernel), pads: A.ints(s2d.pads) },
      }
    : {
        input: x,
        weight: { shape: [padded, I, ...kernel2d], data: weight },
        attrs: { kernel_shape: A.ints(kernel2d), strides: A.ints(strides), pads: A.ints(pads), dilations: A.ints(dilations), group: A.int(c.group) },
      };
  let y = em.op('Conv', [conv.input, em.constant(`${n.inputs[1]}/2d`, { dtype: 'F32', ...conv.weight }), ...bias], conv.attrs, `${hint}/2d`);
  if (act) y = em.op(act.op, [y], act.attrs, `${act.name}/2d`);
  if (fold !== undefined && pooled) return foldedPool(em, y, fold, [Do, Ho, Wo][fold]!, O, padded, pooled, hint);
  if (fold !== undefined) {
    const r = em.op('Reshape', [y, em.ints(back)], {}, `${hint}/unflat`);
    em.node('Transpose', `${hint}/unfold`, [r], [final], { perm: A.ints(FOLD_OUT[fold]) });
  } else {
    em.node('Reshape', `${hint}/unflat`, [y, em.ints(back)], [final], {});
    if (axis === 'pointwise') flat.set(final, y);
  }
  return undefined;
}

/**
 * The fold of a strided view that keeps every s-th plane of axis D or H, as one Gather: the
 * volume [N, C, D, H, W] read as rows [N, C*D, H*W] (D) or [N, C*D*H, W] (H), and the rows of
 * the kept planes gathered in the folded order (plane, channel[, depth]), which the reshape
 * the caller makes then reads as [N*planes, C, ...]: the Transpose and the Slice after it in
 * one copy. The index has one int32 per row gathered (1/W of the values moved).
 */
function gatherPlanes(em: Emitter, x: string, C: number, [D, H, W]: readonly [number, number, number], axis: 0 | 1, s: number, hint: string): string {
  const kept = Math.ceil((axis === 0 ? D : H) / s);
  const index = new Int32Array(axis === 0 ? kept * C : kept * C * D);
  let i = 0;
  if (axis === 0) for (let d = 0; d < D; d += s) for (let c = 0; c < C; c++) index[i++] = c * D + d;
  else for (let h = 0; h < H; h += s) for (let c = 0; c < C; c++) for (let d = 0; d < D; d++) index[i++] = (c * D + d) * H + h;
  const rows = em.op('Reshape', [x, em.ints(axis === 0 ? [0, C * D, H * W] : [0, C * D * H, W])], {}, `${hint}/rows`);
  const at = em.constant(`${hint}/planes_index`, { dtype: 'I32', shape: [index.length], data: index });
  return em.op('Gather', [rows, at], { axis: A.int(1) }, `${hint}/fold`);
}

/**
 * A folded view's stride-2 2D convolution over planes [a, b] (the axes other than `fold`) as a
 * stride-1 one over their space-to-depth
 * [4I, a/2, b/2] (ONNX's order: channel (r*2 + s)*I + c holds x[c, 2i + r, 2j + s]). A tap t
 * of the kernel reads x[2i + t - p]; with e = p mod 2 zero taps put first, tap t' = t + e
 * reads x[2(i - (p + e)/2) + t'], which is z[(t' mod 2)-th phase, i + t'/2 - (p + e)/2]: a
 * kernel of ceil((k + e)/2) taps over z, padded by (p + e)/2 before and by what makes the
 * output size the same after. The weights and the layout only: the same products are summed.
 * Undefined where it does not apply (dilated, grouped, odd planes, a block of channels or more).
 */
function spaceToDepth(
  c: Candidate,
  fold: SpatialAxis,
  [ka, kb]: [number, number],
  pads: number[],
  dilations: number[],
  block: number,
): { kernel: [number, number]; pads: number[]; weight: (w: Float32Array, O: number) => Float32Array } | undefined {
  const I = c.weight.shape[1]!;
  const [[a, b], [ao, bo]] = [c.x, c.y].map((v) => v.slice(2).filter((_, i) => i !== fold)) as [[number, number], [number, number]];
  if (c.stride !== 2 || c.group !== 1 || I >= block || dilations.some((d) => d !== 1) || a % 2 || b % 2) return undefined;
  const [pa, pb] = pads as [number, number, number, number];
  const [ea, eb] = [pa % 2, pb % 2];
  const kernel: [number, number] = [Math.ceil((ka + ea) / 2), Math.ceil((kb + eb) / 2)];
  const before = [(pa + ea) / 2, (pb + eb) / 2];
  const after = [ao + kernel[0] - 1 - a / 2 - before[0]!, bo + kernel[1] - 1 - b / 2 - before[1]!];
  if (after.some((p) => p < 0)) return undefined;
  const weight = (w: Float32Array, O: number) => {
    const out = new Float32Array(O * 4 * I * kernel[0] * kernel[1]);
    for (let o = 0; o < O; o++)
      for (let ci = 0; ci < I; ci++)
        for (let ta = 0; ta < ka; ta++)
          for (let tb = 0; tb < kb; tb++) {
            const [ua, ub] = [ta + ea, tb + eb];
            const channel = ((ua % 2) * 2 + (ub % 2)) * I + ci;
            out[((o * 4 * I + channel) * kernel[0] + (ua >> 1)) * kernel[1] + (ub >> 1)] = w[((o * I + ci) * ka + ta) * kb + tb]!;
          }
    return out;
  };
  return { kernel, pads: [before[0]!, before[1]!, after[0]!, after[1]!], weight };
}

/**
 * The residual trunk of a network whose 1x1x1 convolutions are 2D ones, kept in their 4D form
 * [N, C, D, H*W]: an Add of two 5D values of one shape, one of which is the reshape of a 4D
 * value (`flat`), is done on the 4D values and reshaped after; so is a lone activation of such
 * a value; a reshape of such a value to [N, C, D, H*W] (the next 1x1 convolution's input, or a
 * sagittal view's) is the 4D value itself, and any other reshape of it (keeping the batch)
 * reshapes the 4D value. onnxruntime then fuses the Add and the
 * ReLU into the convolution before them and keeps its blocked layout across the trunk, instead
 * of converting back and forth around each reshape. The values are the same; only where
 * they are reshaped changes. Nodes left without readers are dropped.
 */
function flatResiduals(
  nodes: Node[],
  flat: Map<string, string>,
  shapes: Map<string, { shape: number[] }>,
  outputs: Set<string>,
  initializers: Map<string, Tensor>,
  em: Emitter,
): { nodes: Node[]; shapes: Map<string, number[]> } {
  const alias = new Map<string, string>();
  const out: Node[] = [];
  // The [C, D, H*W] of each 4D value made or kept here.
  const known = new Map<string, number[]>();
  const dims5 = (x: string) => {
    const s = shapes.get(x)?.shape;
    return s && s.length === 5 && s.every((d) => Number.isInteger(d) && d > 0) ? s : undefined;
  };
  const ints = (name: string) => {
    const t = em.initializers.get(name) ?? initializers.get(name);
    return t && t.dtype === 'I64' ? Array.from(t.data as BigInt64Array, Number) : undefined;
  };
  // [C, D, H*W] of a 5D shape
  const dims4 = ([, C, D, H, W]: number[]) => [C!, D!, H! * W!];
  const as4d = (x: string, shape: number[]) => {
    const y = flat.get(x) ?? em.op('Reshape', [x, em.ints([0, ...dims4(shape)])], {}, `${x}/flat`);
    known.set(y, dims4(shape));
    return y;
  };
  for (const node of nodes) {
    const n = { ...node, inputs: node.inputs.map((x) => alias.get(x) ?? x) };
    const [a, b] = n.inputs as [string, string | undefined];
    const y = n.outputs[0]!;
    const shape = dims5(a);
    const start = em.nodes.length;
    if (n.op === 'Add' && b !== undefined && n.inputs.length === 2 && n.outputs.length === 1 && shape && (flat.has(a) || flat.has(b)) && dims5(b)?.join() === shape.join() && dims5(y)?.join() === shape.join()) {
      const sum = em.op('Add', [as4d(a, shape), as4d(b, shape)], n.attrs, `${n.name}/2d`);
      em.node('Reshape', `${n.name}/unflat`, [sum, em.ints([0, ...shape.slice(1)])], [y], {});
      flat.set(y, sum);
      known.set(sum, dims4(shape));
    } else if (ACTIVATIONS.has(n.op) && n.inputs.length === 1 && n.outputs.length === 1 && flat.has(a) && shape) {
      const act = em.op(n.op, [flat.get(a)!], n.attrs, `${n.name}/2d`);
      em.node('Reshape', `${n.name}/unflat`, [act, em.ints([0, ...shape.slice(1)])], [y], {});
      flat.set(y, act);
      known.set(act, dims4(shape));
    } else if (n.op === 'Reshape' && flat.has(a) && shape && !outputs.has(y) && ints(b ?? '')?.join() === [0, ...dims4(shape)].join()) {
      alias.set(y, flat.get(a)!);
      known.set(flat.get(a)!, dims4(shape));
      continue;
    } else if (n.op === 'Reshape' && flat.has(a) && ints(b ?? '')?.slice(1).every((d) => d !== 0)) {
      // Another reshape (a coronal view's rows): from the 4D value, whose batch is the same.
      out.push({ ...n, inputs: [flat.get(a)!, b!] });
      continue;
    } else {
      out.push(n);
      continue;
    }
    out.push(...em.nodes.slice(start));
  }
  return { nodes: out, shapes: known };
}

/**
 * A 3D max pooling of a folded view's output [N*F, O', a, b] (F: the folded axis; O' the
 * output channels, padded to a whole block), done in two steps: the two in-plane axes by a
 * 2D pooling, which onnxruntime runs on the convolution's blocked output before converting
 * it back, then, once the (smaller) pooled tensor is moved back and the padding channels are
 * dropped, the folded axis by a 3D pooling with unit extents elsewhere. A max over the window
 * is the max over its planes of the max over each plane, padding excluded either way, so the
 * result is the 3D pooling's.
 */
function foldedPool(em: Emitter, y: string, fold: SpatialAxis, folded: number, O: number, padded: number, pooling: { pool: Node; shape: number[] }, hint: string): string {
  const { pool, shape } = pooling;
  const kernel = attrInts(pool, 'kernel_shape', [])!;
  const strides = attrInts(pool, 'strides', [1, 1, 1])!;
  const pads = attrInts(pool, 'pads', [0, 0, 0, 0, 0, 0])!;
  const ceil = A.int(attrInt(pool, 'ceil_mode', 0));
  const [i, j] = ([0, 1, 2] as SpatialAxis[]).filter((a) => a !== fold) as [SpatialAxis, SpatialAxis];
  const out = shape.slice(2);
  const name = `${pool.name}/${hint.split('/').pop()}`;
  const plane = em.op('MaxPool', [y], {
    kernel_shape: A.ints([kernel[i]!, kernel[j]!]),
    strides: A.ints([strides[i]!, strides[j]!]),
    pads: A.ints([pads[i]!, pads[j]!, pads[i + 3]!, pads[j + 3]!]),
    ceil_mode: ceil,
  }, `${name}/plane`);
  let t = em.op('Reshape', [plane, em.ints([-1, folded, padded, out[i]!, out[j]!])], {}, `${name}/unflat`);
  t = em.op('Transpose', [t], { perm: A.ints(FOLD_OUT[fold]) }, `${name}/unfold`);
  if (padded !== O) t = em.op('Slice', [t, em.ints([0]), em.ints([O]), em.ints([1])], {}, `${name}/channels`);
  const unit = (v: number, a: number) => (a === fold ? v : 1);
  return em.op('MaxPool', [t], {
    kernel_shape: A.ints(kernel.map(unit)),
    strides: A.ints(strides.map(unit)),
    pads: A.ints(pads.map((v, k) => (k % 3 === fold ? v : 0))),
    ceil_mode: ceil,
  }, `${name}/across`);
}

/**
 * An ONNX model (bytes) specialised for one input shape, and a line saying what was done; the
 * model unchanged, with the reason, when it cannot be (an op shape inference does not know,
 * external data, ...).
 */
export function specializeModel(bytes: Uint8Array, inputShape: number[], o: SpecializeOptions = {}): { bytes: Uint8Array; note: string } {
  try {
    const graph = graphFromModel(decodeOnnx(bytes));
    const input = graph.inputs[0];
    if (!input || graph.inputs.length !== 1) return { bytes, note: 'kept general: the network has more than one input' };
    const { graph: out, views } = specializeViews(graph, { [input.name]: inputShape }, o);
    const n = views.axial + views.coronal + views.sagittal + views.pointwise;
    if (n + views.transposed === 0) return { bytes, note: 'kept general: no convolution to rewrite' };
    const transposed = views.transposed ? `, ${views.transposed} transposed ones as 2D ones` : '';
    const pooled = views.pooled ? `, ${views.pooled} pooled while folded (output channels in blocks of ${o.channelBlock ?? 8})` : '';
    return { bytes: encodeOnnx(graphToModel(out)), note: `specialised for ${inputShape.slice(2).join('x')}: ${n} convolutions as 2D ones${transposed}${pooled}` };
  } catch (err) {
    return { bytes, note: `kept general: ${(err as Error).message}` };
  }
}
