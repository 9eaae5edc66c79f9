/**
 * The graph converter: a 2D ONNX graph (from the architecture builders, or any 2D CNN a
 * user exported with `torch.onnx.export`) into its 3D counterpart, following
 * converters/SPEC-acs.md (convolutions: sections 1, 3-5 and 8; every other layer: section 2;
 * fusions: section 10).
 *
 * Every value of the 2D graph carries a layout: where its H and W axes are (or none, for
 * values that have lost their spatial axes). The 3D graph inserts D right before H; every
 * axis-valued attribute, constant and shape vector is rewritten through that mapping.
 * Shape arithmetic that torch exports (Shape -> Gather -> Concat -> Reshape) is not
 * translated op by op: the target of each consumer is rebuilt from the 3D tensors' own
 * shapes, classified by running the 2D shape inference at two probe sizes (a dimension that
 * follows the batch, H or W of the data is rebuilt from the 3D data; one that stays put is a
 * constant). The sizes of a Resize, the bounds of a Slice and the pads of a Pad are instead
 * followed back to the shapes they read and recomputed from the 3D shapes at run time
 * (converters/SPEC-acs.md section 18). An op or pattern that cannot be converted stops with an
 * error naming the node.
 */
import { DTYPES } from '../dtypes.js';
import { ConversionError, UnsupportedError } from '../errors.js';
import type { Split3 } from '../modes/split.js';
import type { Tensor } from '../tensor.js';
import { Emitter } from './emitter.js';
import { foldBatchNorm } from './fold.js';
import { inlineIdentityConstants } from './identity-constants.js';
import { A, attrInt, attrInts, attrString, consumersOf, pruneGraph, topologicalSort, type Attr, type Dim, type Graph, type Node } from './ir.js';
import { lowerConvTranspose } from './lower-conv-transpose.js';
import { lowerConv, type Conv2dSpec, type ConvMode, type SpatialAxis } from './lower-conv.js';
import { traceSizes, type SizeElem } from './runtime-sizes.js';
import { inferShapes, type ValueFacts } from './shapes.js';
import { own } from '../own.js';

/** Where a value's spatial axes are: H (which gains D in front of it) and W. */
interface Layout {
  h: number;
  w: number | null;
}

/** Options of the converter. */
export interface To3dOptions {
  mode: ConvMode;
  /** 2.5D unit axis / i3d repeat axis. @default 0 (D) */
  axis?: SpatialAxis;
  /** Explicit ACS splits, by conv weight name. */
  splits?: ReadonlyMap<string, Split3>;
  /** soft-ACS `soft_w_core` values, by conv weight name (zeros when absent). */
  softWCore?: ReadonlyMap<string, Float32Array>;
  /**
   * Fold BatchNorm into convolutions and apply activations inside the ACS parts (speed); one
   * switch for both, or each apart (for measuring them). @default true
   */
  fuse?: boolean | { batchNorm: boolean; activation: boolean };
  /** How ACS views are computed (see `LowerConvOptions.lowering`). @default 'conv3d' */
  lowering?: 'conv3d' | 'fold2d';
  /** Probe sizes (H, W) for the 2D shape inference. @default [[64, 96], [96, 128]] */
  probes?: [number, number][];
}

/** One converted convolution, for accounting (multiply-adds of ACS vs dense 3D). */
export interface ConvRecord {
  node: string;
  weightName: string;
  output: string;
  outChannels: number;
  inPerGroup: number;
  /** Kernel extent along H. */
  k: number;
  /** Elements of the dense 3D kernel (D taking H's extent): k^3 for a square kernel. */
  kernel3: number;
  /** A ConvTranspose: `inPerGroup` is then the input channels per group, and `output` grows from the input. */
  transposed?: boolean;
  /** The 3D input value of a transposed conv (its multiply-adds follow the input). */
  input?: string;
}

/** The 3D graph and what the conversion recorded. */
export interface To3dResult {
  graph: Graph;
  convs: ConvRecord[];
}

/** Inputs of each op that hold shapes, axes or pads (vectors rewritten for 3D, never data). */
export const SHAPE_SLOTS: Readonly<Record<string, readonly number[]>> = {
  Reshape: [1],
  Resize: [1, 2, 3],
  Upsample: [1],
  Expand: [1],
  ConstantOfShape: [0],
  Tile: [1],
  Slice: [1, 2, 3, 4],
  Pad: [1, 2, 3],
  Squeeze: [1],
  Unsqueeze: [1],
  ReduceMean: [1],
  ReduceSum: [1],
  ReduceMax: [1],
  ReduceMin: [1],
  Split: [1],
  Range: [0, 1, 2],
  Clip: [1, 2],
};

/** Element-wise ops with broadcasting (a constant operand may gain a unit D axis). */
export const ELEMENTWISE: ReadonlySet<string> = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'PRelu', 'Where', 'Equal', 'Less', 'Greater',
  'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor', 'Mod', 'Clip',
]);

const UNARY = new Set([
  'Relu', 'LeakyRelu', 'Sigmoid', 'Tanh', 'HardSigmoid', 'HardSwish', 'Elu', 'Selu', 'Celu', 'Gelu', 'Erf', 'Softplus',
  'Softsign', 'Mish', 'Exp', 'Log', 'Abs', 'Reciprocal', 'Sin', 'Cos', 'Identity', 'Neg', 'Sqrt', 'Floor', 'Ceil',
  'Round', 'Sign', 'Not', 'Cast', 'ThresholdedRelu', 'Shrink', 'IsNaN',
]);

/** Probe sizes (H, W) of the 2D shape inference, larger ones tried when a network refuses the first. */
const DEFAULT_PROBES: [number, number][][] = [
  [[64, 96], [96, 128]],
  [[256, 384], [384, 512]],
];

/** Convert a 2D graph to 3D. */
export function convertGraphTo3d(g2: Graph, opts: To3dOptions): To3dResult {
  return new Converter(g2, opts).run();
}

class Converter {
  private readonly em = new Emitter();
  private readonly layout = new Map<string, Layout | null>();
  /** 2D value -> 3D value (when the 3D graph names it differently). */
  private readonly rename = new Map<string, string>();
  private readonly consts = new Map<string, Tensor>();
  private readonly shapeValued = new Set<string>();
  /** Values that hold a flattened feature map whose size depends on H and W. */
  private readonly flattenedSpatial = new Map<string, string>();
  private readonly probes: Map<string, ValueFacts>[] = [];
  private readonly convs: ConvRecord[] = [];
  private readonly axis: SpatialAxis;
  private readonly shapeOf = new Map<string, string>();

  private readonly g2: Graph;
  /** Original conv weight name of a folded one (`x.weight:bn` -> `x.weight`). */
  private readonly originalWeight = new Map<string, string>();
  /** Activations applied inside the ACS parts, by the node that no longer runs them. */
  private readonly absorbed = new Map<string, string>();
  private readonly consumers: Map<string, Node[]>;
  private readonly producer = new Map<string, Node>();
  private readonly fuseBn: boolean;
  private readonly fuseAct: boolean;

  constructor(
    g2: Graph,
    private readonly opts: To3dOptions,
  ) {
    this.axis = opts.axis ?? 0;
    this.fuseBn = opts.fuse === undefined || opts.fuse === true || (typeof opts.fuse === 'object' && opts.fuse.batchNorm);
    this.fuseAct = opts.fuse === undefined || opts.fuse === true || (typeof opts.fuse === 'object' && opts.fuse.activation);
    const plain = inlineIdentityConstants(g2);
    this.g2 = this.fuseBn ? foldBatchNorm(plain) : plain;
    for (const n of this.g2.nodes) {
      if (n.op === 'Conv' && /:bn\d*$/.test(n.inputs[1] ?? '')) this.originalWeight.set(n.inputs[1]!, n.inputs[1]!.replace(/:bn\d*$/, ''));
    }
    this.consumers = consumersOf(this.g2.nodes);
    for (const n of this.g2.nodes) for (const o of n.outputs) this.producer.set(o, n);
  }

  run(): To3dResult {
    const g2 = this.g2;
    if (g2.inputs.length !== 1) throw new UnsupportedError(`the 2D graph has ${g2.inputs.length} inputs; only single-input networks are converted`);
    const input = g2.inputs[0]!;
    if (!input.shape || input.shape.length !== 4) throw new UnsupportedError(`graph input '${input.name}' is not 4D (N, C, H, W)`);
    for (const [k, t] of g2.initializers) this.consts.set(k, t);
    for (const n of g2.nodes) if (n.op === 'Constant') this.consts.set(n.outputs[0]!, constantTensor(n));
    this.runProbes(input.shape);
    this.markShapeValued();

    this.em.reserve(input.name);
    this.layout.set(input.name, { h: 2, w: 3 });
    for (const node of topologicalSort(g2)) {
      if (node.op === 'Constant') continue;
      if (node.outputs.every((o) => this.shapeValued.has(o))) continue;
      this.convertNode(node);
    }
    const inputs3 = [{ name: input.name, dtype: input.dtype, shape: [sym(input.shape[0], 'N'), input.shape[1] ?? null, 'D', 'H', 'W'] as Dim[] }];
    const outputs3 = g2.outputs.map((o) => {
      const l = this.layout.get(o.name);
      return { name: this.v3(o.name), dtype: o.dtype, shape: this.outputShape(this.probedShape(o.name), l ?? null) };
    });
    // Graph outputs keep their 2D names.
    for (const o of outputs3) {
      const orig = g2.outputs.find((x) => this.v3(x.name) === o.name)!;
      if (o.name !== orig.name) {
        this.em.node('Identity', `${orig.name}/out`, [o.name], [orig.name], {});
        o.name = orig.name;
      }
    }
    const graph = pruneGraph({
      name: `${g2.name}_3d`,
      nodes: this.em.nodes,
      inputs: inputs3,
      outputs: outputs3,
      initializers: this.em.initializers,
      opset: Math.max(g2.opset, 13),
      metadata: { ...g2.metadata },
    });
    return { graph, convs: this.convs };
  }

  /** A 2D value's shape from the probes: dimensions that change with the probe are symbolic. */
  private probedShape(name: string): Dim[] {
    const fs = this.facts(name);
    const batch = this.facts(this.g2.inputs[0]!.name).map((f) => f.shape[0]);
    return fs[0]!.shape.map((d, i) => {
      if (fs.every((f) => f.shape[i] === d)) return d;
      return fs.every((f, p) => f.shape[i] === batch[p]) ? 'N' : null;
    });
  }

  private outputShape(shape: Dim[], l: Layout | null): Dim[] {
    if (!l) return shape;
    const out: Dim[] = [];
    shape.forEach((d, i) => {
      if (i === l.h) out.push(null, null);
      else if (i === l.w) out.push(null);
      else out.push(d);
    });
    return out;
  }

  /** Shape inference of the 2D graph at one or two probe sizes. */
  private runProbes(shape: Dim[]): void {
    const input = this.g2.inputs[0]!;
    const staticHW = typeof shape[2] === 'number' && typeof shape[3] === 'number';
    const staticN = typeof shape[0] === 'number';
    const c = typeof shape[1] === 'number' ? shape[1] : 3;
    // Batch sizes and spatial sizes that no downsampling chain makes equal to each other, so
    // that a dimension following N, H or W is told apart by value.
    const sets: [number, number][][] = staticHW ? [[[shape[2] as number, shape[3] as number]]] : this.opts.probes ? [this.opts.probes] : DEFAULT_PROBES;
    sets.forEach((probes, attempt) => {
      if (this.probes.length > 0) return;
      try {
        const facts = probes.map(([h, w], i) => inferShapes(this.g2, { [input.name]: [staticN ? (shape[0] as number) : [13, 17][i] ?? 13 + 4 * i, c, h, w] }));
        this.probes.push(...facts);
      } catch (err) {
        // A network whose smallest input is larger than the first probes (Inception-v3: 75).
        if (!(err instanceof ConversionError && /too small for the|gives an empty output/.test(err.message)) || attempt === sets.length - 1) throw err;
      }
    });
  }

  private facts(name: string): ValueFacts[] {
    return this.probes.map((p) => {
      const f = p.get(name);
      if (!f) throw new ConversionError(`value '${name}' has no inferred shape`);
      return f;
    });
  }

  /** Values computed only from shapes and constants (the shape arithmetic of exports). */
  private markShapeValued(): void {
    for (const node of topologicalSort(this.g2)) {
      if (node.op === 'Shape' || node.op === 'Size') {
        node.outputs.forEach((o) => this.shapeValued.add(o));
        continue;
      }
      if (node.op === 'Constant') continue;
      const ins = node.inputs.filter((x) => x !== '');
      if (ins.length > 0 && ins.some((x) => this.shapeValued.has(x)) && ins.every((x) => this.shapeValued.has(x) || this.consts.has(x))) {
        node.outputs.forEach((o) => this.shapeValued.add(o));
        continue;
      }
      // Small integer arithmetic on constants only (torch's export of F.pad builds its pads so)
      // is folded too; float constants (weights) are left to the runtime.
      const small = node.outputs.every((o) => this.probes.every((p) => p.get(o)?.value !== undefined && !p.get(o)!.dtype.startsWith('F')));
      if (ins.length > 0 && ins.every((x) => this.consts.has(x)) && small) node.outputs.forEach((o) => this.shapeValued.add(o));
    }
  }

  private v3(name: string): string {
    return this.rename.get(name) ?? name;
  }

  /** The 3D name of an input: constants are kept (or rewritten by the caller), values renamed. */
  private input3(name: string): string {
    if (name === '') return '';
    const c = this.consts.get(name);
    if (c && !this.em.initializers.has(name) && !this.rename.has(name)) this.em.keep(name, c);
    return this.v3(name);
  }

  private setOut(node: Node, i: number, layout: Layout | null): void {
    this.layout.set(node.outputs[i]!, layout);
  }

  private fail(node: Node, why: string): never {
    throw new ConversionError(`node '${node.name}' (${node.op}): ${why}`);
  }

  private layoutOf(name: string): Layout | null {
    if (this.consts.has(name)) return null;
    const l = this.layout.get(name);
    if (l === undefined) return null;
    return l;
  }

  /** 2D axis -> 3D axes (H becomes D, H). */
  private map(a: number, l: Layout | null): number[] {
    if (!l) return [a];
    if (a < l.h) return [a];
    if (a === l.h) return [a, a + 1];
    return [a + 1];
  }

  private mapOne(node: Node, a: number, l: Layout | null, what: string): number {
    if (l && (a === l.h || a === l.w)) this.fail(node, `${what} ${a} is a spatial axis`);
    return this.map(a, l)[0]!;
  }

  private rank(name: string): number {
    return this.facts(name)[0]!.shape.length;
  }

  private norm(node: Node, a: number, rank: number): number {
    const x = a < 0 ? a + rank : a;
    if (x < 0 || x >= rank) this.fail(node, `axis ${a} out of range for rank ${rank}`);
    return x;
  }

  /** A list of axes, normalised; each at most once (so never more than the rank). */
  private axesOf(node: Node, axes: number[], rank: number): number[] {
    const set = axes.map((a) => this.norm(node, a, rank));
    if (new Set(set).size !== set.length) this.fail(node, `axes [${axes.join(', ')}] name an axis twice`);
    return set;
  }

  private constValue(node: Node, i: number, what: string): number[] {
    const name = node.inputs[i] ?? '';
    const t = this.consts.get(name);
    if (t) return Array.from(t.data as ArrayLike<number | bigint>, Number);
    if (this.shapeValued.has(name)) {
      const vals = this.facts(name).map((f) => f.value);
      if (vals.every((v) => v !== undefined && v.join() === vals[0]!.join())) return vals[0]!;
    }
    return this.fail(node, `its ${what} ('${name}') is not a constant`);
  }

  private convertNode(node: Node): void {
    const slots = new Set(own(SHAPE_SLOTS, node.op) ?? []);
    node.inputs.forEach((x, i) => {
      if (x && this.shapeValued.has(x) && !slots.has(i)) this.fail(node, `input '${x}' is computed from tensor shapes and used as data; this pattern is not supported`);
    });
    const x0 = node.inputs[0] ?? '';
    const l0 = this.layoutOf(x0);
    const fused = this.absorbed.get(node.name);
    if (fused !== undefined) {
      this.rename.set(node.outputs[0]!, fused);
      this.setOut(node, 0, l0);
      return;
    }
    const copy = (attrs: Record<string, Attr> = node.attrs, inputs = node.inputs.map((x) => this.input3(x))): void => {
      this.em.node(node.op, node.name, inputs, node.outputs, attrs);
    };
    switch (node.op) {
      case 'Conv':
        return this.convertConv(node);
      case 'ConvTranspose':
        return this.convertConvTranspose(node);
      case 'BatchNormalization':
      case 'InstanceNormalization':
      case 'GroupNormalization':
        if (l0 && l0.h !== 2) this.fail(node, 'normalisation over channels needs channels on axis 1');
        copy();
        node.outputs.forEach((_, i) => this.setOut(node, i, i === 0 ? l0 : null));
        return;
      case 'LayerNormalization': {
        const r = this.rank(x0);
        const a = this.norm(node, attrInt(node, 'axis', -1), r);
        if (l0 && (a <= l0.h || (l0.w !== null && a <= l0.w))) this.fail(node, 'LayerNormalization over spatial axes cannot be converted');
        copy({ ...node.attrs, axis: A.int(this.map(a, l0)[0]!) });
        node.outputs.forEach((_, i) => this.setOut(node, i, i === 0 ? l0 : null));
        return;
      }
      case 'MaxPool':
      case 'AveragePool':
      case 'LpPool':
        return this.convertPool(node, l0);
      case 'GlobalAveragePool':
      case 'GlobalMaxPool':
      case 'GlobalLpPool':
        copy();
        this.setOut(node, 0, l0);
        return;
      case 'Dropout':
        copy({ ...node.attrs }, [this.input3(x0), ...node.inputs.slice(1).map((x) => this.input3(x))]);
        node.outputs.forEach((_, i) => this.setOut(node, i, l0));
        return;
      case 'Softmax':
      case 'LogSoftmax':
      case 'ArgMax':
      case 'ArgMin': {
        const r = this.rank(x0);
        const def = node.op.startsWith('Arg') ? 0 : this.g2.opset >= 13 ? -1 : 1;
        const a = this.norm(node, attrInt(node, 'axis', def), r);
        if (l0 && this.g2.opset < 13 && node.op.includes('Softmax') && a <= l0.h) this.fail(node, 'softmax over spatial axes (opset < 13 semantics)');
        copy({ ...node.attrs, axis: A.int(this.mapOne(node, a, l0, 'axis')) });
        const keep = attrInt(node, 'keepdims', 1) === 1;
        this.setOut(node, 0, node.op.startsWith('Arg') && !keep ? shiftLayout(l0, a) : l0);
        return;
      }
      case 'Flatten': {
        const r = this.rank(x0);
        const a = this.norm(node, attrInt(node, 'axis', 1), r);
        if (l0 && a > l0.h) this.fail(node, 'flattening that splits the spatial axes cannot be converted');
        copy({ ...node.attrs, axis: A.int(a) });
        this.setOut(node, 0, null);
        if (l0 && this.facts(x0).some((f) => f.shape[l0.h]! * (l0.w !== null ? f.shape[l0.w]! : 1) > 1)) {
          this.flattenedSpatial.set(node.outputs[0]!, node.name);
        }
        return;
      }
      case 'Gemm':
      case 'MatMul':
        return this.convertMatMul(node, l0);
      case 'Transpose': {
        const r = this.rank(x0);
        const perm = attrInts(node, 'perm', Array.from({ length: r }, (_, i) => r - 1 - i))!;
        if (!l0) {
          copy();
          this.setOut(node, 0, null);
          return;
        }
        const perm3 = perm.flatMap((p) => this.map(p, l0));
        copy({ ...node.attrs, perm: A.ints(perm3) });
        this.setOut(node, 0, { h: perm.indexOf(l0.h), w: l0.w === null ? null : perm.indexOf(l0.w) });
        return;
      }
      case 'Concat': {
        const r = this.rank(x0);
        const a = this.norm(node, attrInt(node, 'axis', 0), r);
        const layouts = node.inputs.map((x) => this.layoutOf(x));
        const l = layouts.find((x) => x) ?? null;
        if (l && layouts.some((x, i) => !x && !this.isUnitConst(node.inputs[i]!))) this.fail(node, 'concatenates spatial and non-spatial tensors');
        copy({ ...node.attrs, axis: A.int(this.mapOne(node, a, l, 'concat axis')) });
        this.setOut(node, 0, l);
        return;
      }
      case 'Split': {
        const r = this.rank(x0);
        const a = this.norm(node, attrInt(node, 'axis', 0), r);
        copy({ ...node.attrs, axis: A.int(this.mapOne(node, a, l0, 'split axis')) });
        node.outputs.forEach((_, i) => this.setOut(node, i, l0));
        return;
      }
      case 'Gather': {
        const r = this.rank(x0);
        const a = this.norm(node, attrInt(node, 'axis', 0), r);
        if (this.layoutOf(node.inputs[1]!)) this.fail(node, 'indices with spatial axes');
        copy({ ...node.attrs, axis: A.int(this.mapOne(node, a, l0, 'gather axis')) });
        const idxRank = this.rank(node.inputs[1]!);
        this.setOut(node, 0, l0 ? shiftLayoutBy(l0, a, idxRank - 1) : null);
        return;
      }
      case 'Slice':
        return this.convertSlice(node, l0);
      case 'Pad':
        return this.convertPad(node, l0);
      case 'Squeeze':
      case 'Unsqueeze':
        return this.convertSqueeze(node, l0);
      case 'Reshape':
        return this.convertReshape(node, l0);
      case 'Resize':
      case 'Upsample':
        return this.convertResize(node, l0);
      case 'ReduceMean':
      case 'ReduceSum':
      case 'ReduceMax':
      case 'ReduceMin':
      case 'ReduceProd':
      case 'ReduceL1':
      case 'ReduceL2':
      case 'ReduceLogSumExp':
      case 'ReduceSumSquare':
        return this.convertReduce(node, l0);
      case 'Expand':
      case 'Tile':
      case 'ConstantOfShape':
      case 'Range':
        if (node.outputs.every((o) => this.facts(o).every((f, _, all) => f.shape.join() === all[0]!.shape.join()))) {
          copy(node.attrs, node.inputs.map((x, i) => (this.shapeValued.has(x) ? this.em.ints(this.constValue(node, i, 'shape')) : this.input3(x))));
          this.setOut(node, 0, l0 && node.op !== 'ConstantOfShape' && node.op !== 'Range' ? l0 : null);
          if (l0) this.fail(node, 'expanding a spatial tensor is not supported');
          return;
        }
        return this.fail(node, 'its output shape depends on the spatial size of the input');
      default:
        break;
    }
    if (UNARY.has(node.op)) {
      copy();
      node.outputs.forEach((_, i) => this.setOut(node, i, l0));
      return;
    }
    if (ELEMENTWISE.has(node.op)) return this.convertElementwise(node);
    this.fail(node, 'this op is not supported by the 2D -> 3D converter');
  }

  private isUnitConst(name: string): boolean {
    const t = this.consts.get(name);
    return t !== undefined && t.shape.every((d) => d === 1);
  }

  /** A Conv's or ConvTranspose's input (laid out N, C, H, W), its constant float32 4D kernel and its constant bias, or a refusal naming them. */
  private convOperands(node: Node): { x: string; wName: string; weight: Tensor; bName: string | undefined; bias: Tensor | undefined } {
    const x = node.inputs[0]!;
    const l = this.layoutOf(x);
    if (!l || l.h !== 2 || l.w !== 3) this.fail(node, 'convolution input is not (N, C, H, W)');
    const wName = node.inputs[1]!;
    const weight = this.consts.get(wName);
    if (!weight || weight.shape.length !== 4) this.fail(node, `weight '${wName}' is not a constant 4D kernel`);
    if (weight.dtype !== 'F32') this.fail(node, `weight '${wName}' is ${weight.dtype}; only float32 networks are converted`);
    const bName = node.inputs[2];
    const bias = bName ? this.consts.get(bName) : undefined;
    if (bName && !bias) this.fail(node, `bias '${bName}' is not a constant`);
    return { x, wName, weight, bName, bias };
  }

  private convertConv(node: Node): void {
    const { x, wName, weight, bName, bias } = this.convOperands(node);
    const plane = this.convPlane(node, weight, false);
    const g = attrInt(node, 'group', 1);
    const key = this.originalWeight.get(wName) ?? wName;
    // An activation that follows the convolution alone is applied to each ACS part before the
    // Concat, where onnxruntime fuses it into the part's convolution.
    const next = this.consumers.get(node.outputs[0]!) ?? [];
    const act = this.fuseAct && next.length === 1 && isFusableActivation(next[0]!, this.consts) && !this.g2.outputs.some((o) => o.name === node.outputs[0]) ? next[0]! : undefined;
    const lowered = lowerConv(
      this.em,
      { name: node.name, x: this.v3(x), weight, weightName: key, bias, biasName: bias ? this.input3(bName!) : undefined, ...plane, g },
      {
        mode: this.opts.mode,
        axis: this.axis,
        split: this.opts.splits?.get(key),
        softWCore: this.opts.softWCore?.get(key),
        lowering: this.opts.lowering,
        activation: act ? { op: act.op, attrs: act.attrs, inputs: act.inputs.slice(1).map((v) => this.input3(v)) } : undefined,
      },
    );
    this.rename.set(node.outputs[0]!, lowered.output);
    if (act && lowered.activated) this.absorbed.set(act.name, lowered.output);
    this.setOut(node, 0, { h: 2, w: 3 });
    this.convs.push({ node: node.name, weightName: key, output: lowered.output, outChannels: weight.shape[0]!, inPerGroup: weight.shape[1]!, k: plane.k, kernel3: denseKernel(plane) });
  }

  /**
   * The H and W settings of a Conv or ConvTranspose (converters/SPEC-acs.md sections 1 and 15).
   * Kernels may be non-square; pads must be equal at both ends of an axis, and the H and W
   * settings must give the same output size at every input size (the sagittal view runs the
   * kernel's W extent along H, so H and W must grow or shrink alike).
   */
  private convPlane(node: Node, weight: Tensor, transposed: boolean): Pick<Conv2dSpec, 'k' | 's' | 'p' | 'd' | 'w'> & { op: [number, number] } {
    const ks = attrInts(node, 'kernel_shape', weight.shape.slice(2))!;
    const st = attrInts(node, 'strides', [1, 1])!;
    const dl = attrInts(node, 'dilations', [1, 1])!;
    const op = attrInts(node, 'output_padding', [0, 0])!;
    let pads = attrInts(node, 'pads', [0, 0, 0, 0])!;
    const autoPad = attrString(node, 'auto_pad', 'NOTSET');
    if (ks.length !== 2 || st.length !== 2 || dl.length !== 2 || pads.length !== 4 || op.length !== 2) this.fail(node, 'kernel_shape, strides, dilations, pads or output_padding do not fit a 2D convolution');
    if (ks[0] !== weight.shape[2] || ks[1] !== weight.shape[3]) this.fail(node, `kernel_shape ${ks.join('x')} does not match the weight [${weight.shape.join(', ')}]`);
    if (transposed && autoPad !== 'NOTSET') this.fail(node, `auto_pad ${autoPad} is not supported for transposed convolutions; export with explicit pads`);
    if (transposed && node.attrs['output_shape'] !== undefined) this.fail(node, 'output_shape is not supported; export with pads and output_padding');
    if (autoPad !== 'NOTSET' && autoPad !== 'VALID') {
      // SAME padding with odd kernels and stride 1 is symmetric; otherwise it depends on the size.
      if (st.some((s) => s !== 1) || ks.some((k) => k % 2 === 0)) this.fail(node, `auto_pad ${autoPad} with stride or even kernel is not supported`);
      pads = ks.map((k) => (k - 1) / 2).concat(ks.map((k) => (k - 1) / 2));
    }
    if (autoPad === 'VALID') pads = [0, 0, 0, 0];
    const bad = [...ks, ...st, ...dl].some((v) => !(v >= 1)) || pads.some((v) => !(v >= 0)) || op.some((v, i) => !(v >= 0) || v >= Math.max(st[i]!, dl[i]!));
    if (bad) {
      this.fail(node, `kernel ${ks.join('x')}, strides ${st.join(',')}, dilations ${dl.join(',')}, pads ${pads.join(',')}, output_padding ${op.join(',')}: each must be at least 1 (pads and output_padding at least 0, output_padding below the stride or the dilation)`);
    }
    const [kh, kw] = ks as [number, number];
    const [sh, sw] = st as [number, number];
    const [dh, dw] = dl as [number, number];
    const [ph, pw, ph1, pw1] = pads as [number, number, number, number];
    const growth = (k: number, p: number, d: number, o: number) => (transposed ? d * (k - 1) - 2 * p + o : 2 * p - d * (k - 1));
    if (ph !== ph1 || pw !== pw1 || sh !== sw || growth(kh, ph, dh, op[0]!) !== growth(kw, pw, dw, op[1]!)) {
      this.fail(
        node,
        `non-square conv whose H and W outputs differ in size (kernel ${ks.join('x')}, strides ${st.join(',')}, dilations ${dl.join(',')}, pads ${pads.join(',')}` +
          `${transposed ? `, output_padding ${op.join(',')}` : ''}): the three ACS views would not line up (converters/SPEC-acs.md section 15)`,
      );
    }
    return { k: kh, s: sh, p: ph, d: dh, w: { k: kw, s: sw, p: pw, d: dw }, op: [op[0]!, op[1]!] };
  }

  /** A ConvTranspose: converters/SPEC-acs.md section 14. */
  private convertConvTranspose(node: Node): void {
    const { x, wName, weight, bName, bias } = this.convOperands(node);
    const plane = this.convPlane(node, weight, true);
    const g = attrInt(node, 'group', 1);
    const cin = this.facts(x)[0]?.shape[1];
    if (!(g >= 1) || weight.shape[0]! % g !== 0 || (cin !== undefined && cin !== weight.shape[0])) {
      this.fail(node, `weight [${weight.shape.join(', ')}] does not fit ${cin ?? '?'} input channels in ${g} groups (a transposed kernel is (Cin, Cout/g, kh, kw))`);
    }
    const lowered = lowerConvTranspose(
      this.em,
      { name: node.name, x: this.v3(x), weight, weightName: wName, bias, biasName: bias ? this.input3(bName!) : undefined, ...plane, outputPadding: plane.op, g },
      { mode: this.opts.mode, axis: this.axis, split: this.opts.splits?.get(wName), softWCore: this.opts.softWCore?.get(wName) },
    );
    this.rename.set(node.outputs[0]!, lowered.output);
    this.setOut(node, 0, { h: 2, w: 3 });
    const outChannels = weight.shape[1]! * g;
    this.convs.push({ node: node.name, weightName: wName, output: lowered.output, outChannels, inPerGroup: weight.shape[0]! / g, k: plane.k, kernel3: denseKernel(plane), transposed: true, input: this.v3(x) });
  }

  private convertPool(node: Node, l: Layout | null): void {
    if (!l || l.h !== 2 || l.w !== 3) this.fail(node, 'pooling input is not (N, C, H, W)');
    const k = attrInts(node, 'kernel_shape', undefined);
    if (!k) this.fail(node, 'no kernel_shape');
    const attrs: Record<string, Attr> = { ...node.attrs, kernel_shape: A.ints([k[0]!, k[0]!, k[1]!]) };
    const s = attrInts(node, 'strides', undefined);
    if (s) attrs['strides'] = A.ints([s[0]!, s[0]!, s[1]!]);
    const d = attrInts(node, 'dilations', undefined);
    if (d) attrs['dilations'] = A.ints([d[0]!, d[0]!, d[1]!]);
    const p = attrInts(node, 'pads', undefined);
    if (p) attrs['pads'] = A.ints([p[0]!, p[0]!, p[1]!, p[2]!, p[2]!, p[3]!]);
    this.em.node(node.op, node.name, [this.v3(node.inputs[0]!)], node.outputs, attrs);
    node.outputs.forEach((_, i) => this.setOut(node, i, l));
  }

  private convertMatMul(node: Node, l: Layout | null): void {
    const x = node.inputs[0]!;
    const fl = this.flattenedSpatial.get(x);
    if (fl) {
      const [f] = this.facts(x);
      this.fail(
        node,
        `this classifier takes the feature map flattened by '${fl}' (${f!.shape[1]} features that depend on the 2D height and width); ` +
          'a 3D network cannot keep it: use head "features" or a new head with a number of classes',
      );
    }
    if (node.op === 'Gemm' && l) this.fail(node, 'Gemm on a spatial tensor');
    if (l) {
      const r = this.rank(x);
      if (l.h >= r - 1 || (l.w !== null && l.w >= r - 1)) this.fail(node, 'matrix product over a spatial axis');
    }
    if (this.layoutOf(node.inputs[1]!)) this.fail(node, 'second operand has spatial axes');
    this.em.node(node.op, node.name, node.inputs.map((v) => this.input3(v)), node.outputs, node.attrs);
    this.setOut(node, 0, l);
  }

  private convertElementwise(node: Node): void {
    const outRank = this.rank(node.outputs[0]!);
    let outLayout: Layout | null = null;
    for (const x of node.inputs) {
      const l = x ? this.layoutOf(x) : null;
      if (!l) continue;
      const shift = outRank - this.rank(x);
      const candidate = { h: l.h + shift, w: l.w === null ? null : l.w + shift };
      if (outLayout && (outLayout.h !== candidate.h || outLayout.w !== candidate.w)) this.fail(node, 'operands have their spatial axes in different places');
      outLayout = candidate;
    }
    const inputs = node.inputs.map((x, i) => {
      if (!x) return x;
      if (!outLayout || this.layoutOf(x)) return this.input3(x);
      return this.alignOperand(node, x, i, outRank, outLayout);
    });
    this.em.node(node.op, node.name, inputs, node.outputs, node.attrs);
    this.setOut(node, 0, outLayout);
  }

  /** A non-spatial operand broadcast against a spatial one gains a unit D axis if it reaches H. */
  private alignOperand(node: Node, x: string, i: number, outRank: number, l: Layout): string {
    const shapes = this.facts(x).map((f) => f.shape);
    const r = shapes[0]!.length;
    const hIdx = l.h - (outRank - r);
    if (hIdx < 0) return this.input3(x);
    const wIdx = l.w === null ? -1 : l.w - (outRank - r);
    if (shapes.some((s) => s[hIdx] !== 1 || (wIdx >= 0 && s[wIdx] !== 1))) {
      this.fail(node, `operand ${i} ('${x}') of shape [${shapes[0]!.join(', ')}] has a spatial extent that would not follow a 3D volume`);
    }
    const c = this.consts.get(x);
    if (c) {
      const shape = [...c.shape];
      shape.splice(hIdx, 0, 1);
      return this.em.constant(`${x}/3d`, { ...c, shape });
    }
    return this.em.op('Unsqueeze', [this.v3(x), this.em.ints([hIdx])], {}, `${x}/unsqueeze_d`);
  }

  private convertSlice(node: Node, l: Layout | null): void {
    const r = this.rank(node.inputs[0]!);
    if (this.g2.opset < 10) this.fail(node, 'Slice before opset 10');
    const starts = this.runtimeVector(node, 1, 'starts');
    const ends = this.runtimeVector(node, 2, 'ends');
    const axes = node.inputs[3] ? this.constValue(node, 3, 'axes') : starts.map((_, i) => i);
    const steps = node.inputs[4] ? this.constValue(node, 4, 'steps') : starts.map(() => 1);
    if ([ends, axes, steps].some((v) => v.length !== starts.length)) this.fail(node, 'its starts, ends, axes and steps differ in length');
    const s3: (number | string)[] = [];
    const e3: (number | string)[] = [];
    const a3: number[] = [];
    const st3: number[] = [];
    this.axesOf(node, axes, r).forEach((a, i) => {
      this.map(a, l).forEach((m, k) => {
        s3.push(this.elem3(node, starts[i]!, a, l, k));
        e3.push(this.elem3(node, ends[i]!, a, l, k));
        a3.push(m);
        st3.push(steps[i]!);
      });
    });
    const em = this.em;
    this.em.node('Slice', node.name, [this.input3(node.inputs[0]!), this.vector3(s3, `${node.name}/starts`), this.vector3(e3, `${node.name}/ends`), em.ints(a3), em.ints(st3)], node.outputs, {});
    this.setOut(node, 0, l);
  }

  /**
   * A shape-valued input (Slice bounds, Pad pads): its elements traced back to the shapes they
   * read (a crop to `x.shape`, the pads of a U-Net's `F.pad` to its skip connection;
   * converters/SPEC-acs.md 17.1); its value when that is the same at every probe and reads
   * no spatial size (a channel split), or when it cannot be traced.
   */
  private runtimeVector(node: Node, i: number, what: string): (number | SizeElem)[] {
    const name = node.inputs[i] ?? '';
    if (this.consts.has(name) || !this.shapeValued.has(name)) return this.constValue(node, i, what);
    // Traced first: a vector computed from sizes can be the same at both probes (pads that are
    // zero whenever the sizes are even) and still follow the volume.
    const elems = this.trace(name);
    const vals = this.facts(name).map((f) => f.value);
    const fixed = vals.every((v) => v !== undefined && v.join() === vals[0]!.join());
    if (elems && !(fixed && !elems.some((e) => this.readsSpatial(e)))) return elems.map((e) => (e.kind === 'const' ? e.value : e));
    if (fixed) return vals[0]!;
    return this.fail(node, `its ${what} ('${name}') are computed in a way the converter does not follow`);
  }

  /** Whether a traced element reads H or W of a spatial tensor. */
  private readsSpatial(e: SizeElem): boolean {
    if (e.kind === 'op') return e.args.some((a) => this.readsSpatial(a));
    if (e.kind !== 'dim') return false;
    const l = this.layoutOf(e.of);
    return l !== null && (e.axis === l.h || e.axis === l.w);
  }

  /** `traceSizes` over this graph. */
  private trace(name: string): SizeElem[] | undefined {
    const fixed = (v: string) => this.facts(v).every((f, _, all) => f.shape.join() === all[0]!.shape.join());
    return traceSizes(name, {
      producer: this.producer,
      consts: this.consts,
      shape: (v) => this.facts(v)[0]!.shape,
      fixedShape: (v) => !this.layoutOf(v) && fixed(v),
      integer: (v) => !DTYPES[this.facts(v)[0]!.dtype].float,
      opset: this.g2.opset,
    });
  }

  /**
   * One element of a shape vector at a position of 2D axis `a` (layout `l`), for the `k`-th 3D
   * axis that axis becomes: a constant, or a 1-element vector computed from the 3D shapes. A
   * dimension read at H's place must be an H (it then reads D for k = 0 and H for k = 1), at
   * W's place a W, elsewhere a non-spatial axis.
   */
  private elem3(node: Node, e: number | SizeElem, a: number, l: Layout | null, k: number): number | string {
    if (typeof e === 'number') return e;
    if (e.kind === 'const') return e.value;
    const spatial = (lay: Layout | null, x: number) => (lay && x === lay.h ? 'H' : lay && x === lay.w ? 'W' : 'not spatial');
    const memo = new Map<SizeElem, string>();
    const emit = (x: SizeElem): string => {
      let v = memo.get(x);
      if (v !== undefined) return v;
      if (x.kind === 'const') v = this.em.ints([x.value]);
      else if (x.kind === 'op') v = this.em.op(x.op, [emit(x.args[0]), emit(x.args[1])], {}, `${node.name}/size`);
      else {
        const lt = this.layoutOf(x.of);
        if (spatial(l, a) !== spatial(lt, x.axis)) this.fail(node, `its output axis ${a} (${spatial(l, a)}) takes axis ${x.axis} of '${x.of}' (${spatial(lt, x.axis)})`);
        const axes = this.map(x.axis, lt);
        v = this.dims3(this.v3(x.of), [axes[Math.min(k, axes.length - 1)]!]);
      }
      memo.set(x, v);
      return v;
    };
    return emit(e);
  }

  /** A 1-D int64 vector of constants and 1-element vectors. */
  private vector3(parts: (number | string)[], hint: string): string {
    if (parts.every((p) => typeof p === 'number')) return this.em.ints(parts as number[]);
    return this.em.op('Concat', parts.map((p) => (typeof p === 'number' ? this.em.ints([p]) : p)), { axis: A.int(0) }, hint);
  }

  private convertPad(node: Node, l: Layout | null): void {
    const r = this.rank(node.inputs[0]!);
    const pads = this.g2.opset >= 11 ? this.runtimeVector(node, 1, 'pads') : attrInts(node, 'pads', [])!;
    if (node.inputs[3]) this.fail(node, 'Pad with axes is not supported');
    if (pads.length !== 2 * r) this.fail(node, `its pads have ${pads.length} elements, not ${2 * r}`);
    const begin: (number | string)[] = [];
    const end: (number | string)[] = [];
    for (let a = 0; a < r; a++) {
      this.map(a, l).forEach((_, k) => {
        begin.push(this.elem3(node, pads[a]!, a, l, k));
        end.push(this.elem3(node, pads[a + r]!, a, l, k));
      });
    }
    const attrs = { ...node.attrs };
    let inputs: string[];
    if (this.g2.opset >= 11) {
      inputs = [this.input3(node.inputs[0]!), this.vector3([...begin, ...end], `${node.name}/pads`)];
      if (node.inputs[2]) inputs.push(this.input3(node.inputs[2]));
    } else {
      attrs['pads'] = A.ints([...begin, ...end] as number[]);
      inputs = [this.input3(node.inputs[0]!)];
    }
    this.em.node('Pad', node.name, inputs, node.outputs, attrs);
    this.setOut(node, 0, l);
  }


  private convertSqueeze(node: Node, l: Layout | null): void {
    const x = node.inputs[0]!;
    const inRank = this.rank(x);
    const outRank = this.rank(node.outputs[0]!);
    const fromInput = this.g2.opset >= 13;
    let axes = fromInput ? (node.inputs[1] ? this.constValue(node, 1, 'axes') : undefined) : attrInts(node, 'axes', undefined);
    let outLayout: Layout | null = l;
    let axes3: number[];
    if (node.op === 'Squeeze') {
      axes ??= this.facts(x)[0]!.shape.flatMap((d, i) => (d === 1 ? [i] : []));
      const set = this.axesOf(node, axes, inRank);
      axes3 = set.flatMap((a) => this.map(a, l));
      if (l) {
        const removedH = set.includes(l.h);
        const removedW = l.w !== null && set.includes(l.w);
        const before = (p: number) => set.filter((a) => a < p).length;
        outLayout = removedH ? null : { h: l.h - before(l.h), w: l.w === null || removedW ? null : l.w - before(l.w) };
      }
    } else {
      if (!axes) this.fail(node, 'no axes');
      const set = this.axesOf(node, axes, outRank).sort((a, b) => a - b);
      if (l) {
        let h = l.h;
        let w = l.w;
        for (const a of set) {
          if (a <= h) h++;
          if (w !== null && a <= w) w++;
        }
        outLayout = { h, w };
        axes3 = set.map((a) => (a < h ? a : a + 1));
      } else axes3 = set;
    }
    const inputs = [this.input3(x)];
    const attrs = { ...node.attrs };
    if (fromInput) inputs.push(this.em.ints(axes3));
    else attrs['axes'] = A.ints(axes3);
    this.em.node(node.op, node.name, inputs, node.outputs, attrs);
    this.setOut(node, 0, outLayout);
  }

  private convertReduce(node: Node, l: Layout | null): void {
    const x = node.inputs[0]!;
    const r = this.rank(x);
    const fromInput = (node.op === 'ReduceSum' && this.g2.opset >= 13) || this.g2.opset >= 18;
    let axes = fromInput ? (node.inputs[1] ? this.constValue(node, 1, 'axes') : undefined) : attrInts(node, 'axes', undefined);
    if (!axes || axes.length === 0) {
      if (attrInt(node, 'noop_with_empty_axes', 0)) axes = [];
      else axes = Array.from({ length: r }, (_, i) => i);
    }
    const set = this.axesOf(node, axes, r);
    const keep = attrInt(node, 'keepdims', 1) === 1;
    const axes3 = set.flatMap((a) => this.map(a, l));
    const attrs = { ...node.attrs };
    const inputs = [this.input3(x)];
    if (fromInput) inputs.push(this.em.ints(axes3));
    else attrs['axes'] = A.ints(axes3);
    this.em.node(node.op, node.name, inputs, node.outputs, attrs);
    let out: Layout | null = l;
    if (l && !keep) {
      const removedH = set.includes(l.h);
      const before = (p: number) => set.filter((a) => a < p).length;
      out = removedH ? null : { h: l.h - before(l.h), w: l.w === null || set.includes(l.w) ? null : l.w - before(l.w) };
    }
    this.setOut(node, 0, out);
  }

  /** The 3D shape of `x3` (one Shape node per value). */
  private shape3(x3: string): string {
    let s = this.shapeOf.get(x3);
    if (s === undefined) {
      s = this.em.op('Shape', [x3], {}, `${x3}/shape`);
      this.shapeOf.set(x3, s);
    }
    return s;
  }

  /** Dimensions `axes` of the 3D value `x3`, as a 1-D int64 vector. */
  private dims3(x3: string, axes: number[]): string {
    return this.em.op('Gather', [this.shape3(x3), this.em.ints(axes)], { axis: A.int(0) }, `${x3}/dims`);
  }

  private convertReshape(node: Node, l: Layout | null): void {
    const x = node.inputs[0]!;
    const ins = this.facts(x);
    const outs = this.facts(node.outputs[0]!);
    const multi = ins.length > 1;
    type Elem = { kind: 'const'; v: number } | { kind: 'dim'; axes: number[] } | { kind: 'rest' };
    const elems: Elem[] = [];
    let hOut = -1;
    let wOut = -1;
    const rOut = outs[0]!.shape.length;
    for (let j = 0; j < rOut; j++) {
      const vals = outs.map((f) => f.shape[j]!);
      const equalsAxis = (a: number) => ins.every((f, p) => f.shape[a] === vals[p]);
      const varies = multi && vals.some((v) => v !== vals[0]);
      if (varies && equalsAxis(0) && !(l && (l.h === 0 || l.w === 0))) {
        elems.push({ kind: 'dim', axes: [0] });
        continue;
      }
      if (l && hOut < 0 && j <= rOut - 1 && equalsAxis(l.h) && (multi ? varies || ins.every((f) => f.shape[l.h] === 1) : true) && this.spatialCandidate(j, rOut, l, ins, outs)) {
        hOut = j;
        elems.push({ kind: 'dim', axes: this.map(l.h, l) });
        continue;
      }
      if (l && l.w !== null && hOut >= 0 && wOut < 0 && equalsAxis(l.w) && (multi ? varies || ins.every((f) => f.shape[l.w!] === 1) : true)) {
        wOut = j;
        elems.push({ kind: 'dim', axes: this.map(l.w, l) });
        continue;
      }
      if (varies) {
        elems.push({ kind: 'rest' });
        continue;
      }
      elems.push({ kind: 'const', v: vals[0]! });
    }
    if (elems.filter((e) => e.kind === 'rest').length > 1) this.fail(node, 'more than one output dimension depends on the spatial size in a way that cannot be rebuilt in 3D');
    const outLayout: Layout | null = hOut >= 0 ? { h: hOut, w: wOut >= 0 ? wOut : null } : null;
    if (l && hOut < 0 && !elems.some((e) => e.kind === 'rest') && ins.some((f) => f.shape[l.h]! * (l.w !== null ? f.shape[l.w]! : 1) > 1)) {
      // The spatial axes were merged into a constant-size dimension: only possible at one size.
      this.fail(node, `reshape merges the spatial axes into fixed sizes [${outs[0]!.shape.join(', ')}]`);
    }
    if (l && hOut < 0 && ins.some((f) => f.shape[l.h]! * (l.w !== null ? f.shape[l.w]! : 1) > 1)) {
      this.flattenedSpatial.set(node.outputs[0]!, node.name);
    }
    // A constant target where possible; else a Concat of constants and 3D dimensions.
    const x3 = this.v3(x);
    let target: string;
    if (elems.every((e) => e.kind !== 'dim' || (e.axes.length === 1 && e.axes[0] === 0 && elems.indexOf(e) === 0))) {
      target = this.em.ints(elems.map((e) => (e.kind === 'const' ? e.v : e.kind === 'rest' ? -1 : 0)));
    } else {
      const parts = elems.map((e) => (e.kind === 'const' ? this.em.ints([e.v]) : e.kind === 'rest' ? this.em.ints([-1]) : this.dims3(x3, e.axes)));
      target = this.em.op('Concat', parts, { axis: A.int(0) }, `${node.name}/shape`);
    }
    this.em.node('Reshape', node.name, [x3, target], node.outputs, {});
    this.setOut(node, 0, outLayout);
  }

  /** With one probe, only trailing (H, W) pairs are taken as spatial, to avoid coincidences. */
  private spatialCandidate(j: number, rOut: number, l: Layout, ins: ValueFacts[], outs: ValueFacts[]): boolean {
    if (ins.length > 1) return true;
    const h = ins[0]!.shape[l.h]!;
    const w = l.w === null ? undefined : ins[0]!.shape[l.w];
    const out = outs[0]!.shape;
    return w === undefined ? j === rOut - 1 : j === rOut - 2 && out[j] === h && out[j + 1] === w;
  }

  /**
   * Resize by scales (each spatial scale applies to D and H alike) or by sizes; sizes are
   * rebuilt from the 3D values they follow, read at run time (converters/SPEC-acs.md 17.1).
   */
  private convertResize(node: Node, l: Layout | null): void {
    const x = node.inputs[0]!;
    if (!l || l.h !== 2 || l.w !== 3) this.fail(node, 'resizing a tensor that is not (N, C, H, W)');
    const mode = attrString(node, 'mode', 'nearest');
    if (mode === 'cubic') this.fail(node, 'cubic interpolation has no 3D form in ONNX Runtime; use linear or nearest');
    const attrs: Record<string, Attr> = node.op === 'Upsample' ? { mode: A.str(mode === 'bilinear' ? 'linear' : mode) } : { ...node.attrs };
    if (node.op === 'Resize' && node.inputs[3]) {
      this.em.node('Resize', node.name, [this.v3(x), '', '', this.resizeSizes3(node, l)], node.outputs, attrs);
      this.setOut(node, 0, l);
      return;
    }
    const slot = node.op === 'Resize' ? 2 : 1;
    const a = node.attrs['scales'];
    const sc = node.inputs[slot] ? this.constValue(node, slot, 'scales') : a?.type === 'floats' ? a.value : this.fail(node, 'no scales');
    if (sc.length !== 4) this.fail(node, `its scales [${sc.join(', ')}] are not one per axis of (N, C, H, W)`);
    if (sc[0] !== 1 || sc[1] !== 1) this.fail(node, 'resizing the batch or channel axis');
    const scales = this.em.constant(`${node.name}/scales`, { dtype: 'F32', shape: [5], data: Float32Array.from([1, 1, sc[2]!, sc[2]!, sc[3]!]) });
    this.em.node('Resize', node.name, [this.v3(x), '', scales], node.outputs, attrs);
    this.setOut(node, 0, l);
  }

  /** The 3D `sizes` of a Resize: (N, C) as they are, H as (D, H) of the value it follows, W as W. */
  private resizeSizes3(node: Node, l: Layout): string {
    const elems = this.trace(node.inputs[3]!);
    if (!elems || elems.length !== 4) {
      this.fail(node, 'its sizes are computed in a way the converter does not follow (Shape, Gather, Slice, Concat, Reshape, Transpose, Cast and integer arithmetic of tensor shapes, and constants)');
    }
    const parts: (number | string)[] = [];
    elems.forEach((e, j) => {
      const spatial = j === l.h || j === l.w;
      if (spatial && e.kind === 'const') {
        const src = this.fixedSizeSource(node, elems);
        const axes = this.map(j === l.h ? src.layout.h : src.layout.w!, src.layout);
        parts.push(...axes.map((a) => this.dims3(this.v3(src.name), [a])));
        return;
      }
      this.map(j, l).forEach((_, k) => parts.push(this.elem3(node, e, j, l, k)));
    });
    return this.vector3(parts, `${node.name}/sizes`);
  }

  /**
   * A static-shape export resizes to constant sizes that are the 2D size of some tensor: the
   * tensor the result is combined with (Add, Concat, ...) when there is one, else the graph's
   * input. In 3D the resize follows that tensor's size (converters/SPEC-acs.md 17.2).
   */
  private fixedSizeSource(node: Node, elems: SizeElem[]): { name: string; layout: Layout } {
    const h = elems[2]!;
    const w = elems[3]!;
    if (this.probes.length > 1) {
      this.fail(node, 'it resizes to a fixed 2D size in a graph whose input size is free; a fixed size has no 3D counterpart');
    }
    const matches = (name: string): Layout | undefined => {
      const lt = this.layout.get(name);
      if (!lt || lt.w === null) return undefined;
      const shape = this.facts(name)[0]!.shape;
      const ok = (e: SizeElem, a: number) => e.kind !== 'const' || shape[a] === e.value;
      return ok(h, lt.h) && ok(w, lt.w) ? lt : undefined;
    };
    const candidates = [...this.partnersOf(node.outputs[0]!), this.g2.inputs[0]!.name];
    for (const name of candidates) {
      const lt = matches(name);
      if (lt) return { name, layout: lt };
    }
    return this.fail(node, `it resizes to the fixed size [${elems.map((e) => (e.kind === 'const' ? e.value : '?')).join(', ')}], which is neither the size of a tensor it is combined with nor the input's`);
  }

  /** Converted values that `value` (after single-input ops) is added, multiplied or concatenated with. */
  private partnersOf(value: string): string[] {
    let v = value;
    for (let steps = 0; steps < 16; steps++) {
      const users = this.consumers.get(v) ?? [];
      if (users.length !== 1) return [];
      const u = users[0]!;
      const others = u.inputs.filter((x) => x && x !== v && !this.consts.has(x) && !this.shapeValued.has(x));
      if (others.length > 0) return u.op === 'Concat' || ELEMENTWISE.has(u.op) ? others.filter((x) => this.layout.has(x)) : [];
      if (u.outputs.length !== 1) return [];
      v = u.outputs[0]!;
    }
    return [];
  }
}

const FUSABLE = new Set(['Relu', 'LeakyRelu', 'Sigmoid', 'Tanh', 'HardSigmoid', 'Clip']);

/** Elements of the dense 3D kernel of a conv's plane settings: D takes H's extent. */
function denseKernel(p: Pick<Conv2dSpec, 'k' | 'w'>): number {
  return p.k * p.k * (p.w?.k ?? p.k);
}

function isFusableActivation(n: Node, consts: Map<string, Tensor>): boolean {
  return FUSABLE.has(n.op) && n.inputs.slice(1).every((x) => x === '' || consts.has(x));
}

function sym(d: Dim | undefined, name: string): Dim {
  return typeof d === 'number' ? d : name;
}

function shiftLayout(l: Layout | null, removed: number): Layout | null {
  if (!l) return null;
  if (removed === l.h) return null;
  return { h: l.h > removed ? l.h - 1 : l.h, w: l.w === null || l.w === removed ? null : l.w > removed ? l.w - 1 : l.w };
}

function shiftLayoutBy(l: Layout, at: number, by: number): Layout {
  return { h: l.h > at ? l.h + by : l.h, w: l.w === null ? null : l.w > at ? l.w + by : l.w };
}

function constantTensor(n: Node): Tensor {
  const a = n.attrs['value'];
  if (a && a.type === 'tensor') return a.value;
  const f = n.attrs['value_float'] ?? n.attrs['value_floats'];
  if (f) return { dtype: 'F32', shape: f.type === 'floats' ? [f.value.length] : [], data: Float32Array.from(f.type === 'floats' ? f.value : [f.value as number]) };
  const i = n.attrs['value_int'] ?? n.attrs['value_ints'];
  if (i) {
    const vals = i.type === 'ints' ? i.value : [i.value as number];
    return { dtype: 'I64', shape: i.type === 'ints' ? [vals.length] : [], data: BigInt64Array.from(vals.map(BigInt)) };
  }
  throw new ConversionError(`Constant node '${n.name}' has no supported value attribute`);
}
