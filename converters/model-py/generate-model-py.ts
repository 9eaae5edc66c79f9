/**
 * `model.py`: a converted network as a self-contained PyTorch source file (torch 1.13 or later,
 * nothing else), for fine-tuning. Its `Model` holds the 2D-shaped tensors of the converted
 * state dict under the same names, so `Model().load_state_dict(torch.load('model.pth'))`
 * works with `strict=True`, and computes what the converted ONNX graph computes: the ACS views
 * in `forward` (converters/SPEC-acs.md sections 1, 5, 8 and 12, stated again in the file), and
 * every other layer as its torch counterpart (section 2).
 *
 * The file is written from the 3D graph of the conversion without its speed rewrites (no BN
 * folding, no per-view activations, section 10): each convolution's lowering becomes one call of
 * a conv module, BatchNorm, Linear, LayerNorm and InstanceNorm become modules named after their
 * state-dict keys, and every other node becomes one line of `forward`, in the graph's order.
 */
import { CONVERTER_VERSION, type ConvertResult, type Mode } from '../convert.js';
import { DTYPES, type DType } from '../dtypes.js';
import { UnsupportedError } from '../errors.js';
import { attrFloat, attrInt, attrInts, attrString, topologicalSort, type Graph, type Node } from '../graph/ir.js';
import type { SpatialAxis } from '../graph/lower-conv.js';
import { inferShapes, type ValueFacts } from '../graph/shapes.js';
import { convertGraphTo3d, type ConvRecord } from '../graph/to3d.js';
import type { Split3 } from '../modes/split.js';
import { isBuffer, type StateDict, type Tensor } from '../tensor.js';
import { identifier, ModuleTree, Names, pyEscape, pyString, scopePath, valueHint } from './module-tree.js';
import { CONV_CLASS, CONV_TRANSPOSE_CLASS, pythonLayers } from './python-layers.js';
import { pyFloat, translateOp, type OpContext } from './torch-ops.js';
import { own } from '../own.js';

/** The model.py of a conversion. */
export function generateModelPy(result: ConvertResult): string {
  return new Generator(result).run();
}

const AXES: Record<string, SpatialAxis> = { d: 0, h: 1, w: 2 };

/** Largest constant (elements) written into the file as a literal. */
const MAX_LITERAL = 65536;

class Generator implements OpContext {
  private readonly g2: Graph;
  private readonly g3: Graph;
  private readonly convs: ConvRecord[];
  private readonly sd: StateDict;
  private readonly mode: Mode;
  private readonly axis: SpatialAxis;
  private readonly splits: Record<string, Split3>;
  private readonly facts: Map<string, ValueFacts>;
  readonly opset: number;

  private readonly tree = new ModuleTree();
  private readonly names = new Names(['self', 'input']);
  /** 3D value -> the Python expression that holds it. */
  private readonly vars = new Map<string, string>();
  /** Integer vectors computed from shapes, as Python expressions of their elements. */
  private readonly symbolic = new Map<string, string[]>();
  /** State dict key -> its path in the model. */
  private readonly keyPath = new Map<string, string>();
  /** State dict tensors by their data, to recognise reshaped views of them in the 3D graph. */
  private readonly sdByData = new Map<unknown, string>();
  private readonly constants = new Map<string, string>();
  private readonly lines: string[] = [];
  private readonly producer = new Map<string, Node>();
  private readonly consumers = new Map<string, Node[]>();

  constructor(private readonly result: ConvertResult) {
    const card = result.card;
    this.g2 = result.graph2d;
    this.sd = result.stateDict;
    this.mode = card.mode;
    this.axis = own(AXES, card.options.axis) ?? 0;
    this.splits = card.options.splits;
    const converted = convertGraphTo3d(this.g2, { mode: this.mode, axis: this.axis, splits: new Map(Object.entries(this.splits)), fuse: false });
    this.g3 = converted.graph;
    this.convs = converted.convs;
    this.opset = this.g3.opset;
    this.facts = inferShapes(this.g3, { [this.g3.inputs[0]!.name]: [1, card.input.channels, ...card.inputSize] });
    for (const [k, t] of this.sd) this.sdByData.set(t.data, k);
    for (const n of this.g3.nodes) {
      for (const o of n.outputs) this.producer.set(o, n);
      for (const i of n.inputs) this.consumers.set(i, [...(this.consumers.get(i) ?? []), n]);
    }
  }

  run(): string {
    const input = this.g3.inputs[0]!;
    this.vars.set(input.name, 'input');
    const special = new Map<Node, () => void>();
    const skip = new Set<Node>();
    for (const rec of this.convs) {
      const { nodes, output, x } = this.convLowering(rec);
      for (const n of nodes) if (n !== output) skip.add(n);
      special.set(output, () => this.emitConv(rec, x));
    }
    for (const n of this.g3.nodes) {
      const linear = n.op === 'MatMul' && !skip.has(n) ? this.linearPattern(n) : undefined;
      if (!linear) continue;
      for (const m of linear.nodes) if (m !== linear.last) skip.add(m);
      special.set(linear.last, () => this.emitLinear(linear.x, linear.weight, linear.bias, linear.last, n.name));
    }
    for (const n of this.g3.nodes) {
      const gelu = n.op === 'Erf' && !skip.has(n) ? this.geluPattern(n) : undefined;
      if (!gelu) continue;
      for (const m of gelu.nodes) if (m !== gelu.last) skip.add(m);
      special.set(gelu.last, () => this.line(gelu.last.outputs, gelu.last.outputs, `F.gelu(${this.value(gelu.x)})`));
    }
    for (const node of topologicalSort(this.g3)) {
      if (skip.has(node)) continue;
      const emit = special.get(node);
      if (emit) emit();
      else this.emitNode(node);
    }
    for (const [key, t] of this.sd) {
      if (!this.keyPath.has(key)) this.keyPath.set(key, this.tree.addTensor(key, { kind: isBuffer(key) ? 'buffer' : 'parameter', init: zeros(t), note: 'not used by forward' }));
    }
    const outputs = this.g3.outputs.map((o) => this.value(o.name));
    this.lines.push(`return ${outputs.length === 1 ? outputs[0]! : `(${outputs.join(', ')})`}`);
    return this.file();
  }

  // ---------------------------------------------------------------- convolutions

  /** The nodes that compute one lowered convolution, its last node and its 3D input. */
  private convLowering(rec: ConvRecord): { nodes: Set<Node>; output: Node; x: string } {
    const output = this.producer.get(rec.output)!;
    const nodes = new Set<Node>();
    const inputs = new Set<string>();
    const visit = (n: Node): void => {
      if (nodes.has(n)) return;
      nodes.add(n);
      for (const i of n.inputs) {
        const p = this.producer.get(i);
        if (p && p.name.startsWith(`${rec.node}/`)) visit(p);
        else if (i && !this.g3.initializers.has(i)) inputs.add(i);
      }
    };
    visit(output);
    if (inputs.size !== 1) throw new UnsupportedError(`conv '${rec.node}': its 3D form does not read exactly one value`);
    return { nodes, output, x: [...inputs][0]! };
  }

  private emitConv(rec: ConvRecord, x: string): void {
    const n2 = this.g2.nodes.find((n) => n.name === rec.node)!;
    const weight = this.g2.initializers.get(rec.weightName)!;
    const biasKey = n2.inputs[2] || undefined;
    const c = convSettings(n2, weight);
    const owns: Record<string, string> = { weight: rec.weightName };
    if (biasKey) owns['bias'] = biasKey;
    if (this.mode === 'soft-acs') owns['soft_w_core'] = `${rec.weightName.replace(/\.weight$/, '')}.soft_w_core`;
    const [cin, cout] = rec.transposed ? [weight.shape[0]!, weight.shape[1]! * c.g] : [weight.shape[1]! * c.g, weight.shape[0]!];
    const split = this.splits[rec.weightName];
    const ctor = rec.transposed ? this.convTransposeCtor(cin, cout, c, biasKey !== undefined, split) : this.convCtor(cin, cout, c, biasKey !== undefined, split);
    const path = this.module(owns, n2.name, ctor);
    this.line([n2.outputs[0]!], [rec.output], `${this.tree.access(path)}(${this.value(x)})`);
  }

  /** The 3D settings of the view with unit (2.5D) or repeat (i3d) axis `this.axis` (converters/SPEC-acs.md section 15). */
  private axisSettings(c: PlaneConv): { k: number[]; s: number[]; p: number[]; d: number[]; op: number[] } {
    const h = [c.k[0], c.s[0], c.p[0], c.d[0], c.op[0]];
    const w = [c.k[1], c.s[1], c.p[1], c.d[1], c.op[1]];
    const set = this.axis === 2 ? [h, w, w] : [h, h, w];
    const col = (i: number) => set.map((a) => a[i]!);
    return { k: col(0), s: col(1), p: col(2), d: col(3), op: col(4) };
  }

  private convCtor(cin: number, cout: number, c: PlaneConv, bias: boolean, split: Split3 | undefined): string {
    const pointwise = c.k[0] === 1 && c.k[1] === 1 && c.p[0] === 0 && c.p[1] === 0;
    const opt = (name: string, v: string, dflt: string) => (v === dflt ? '' : `, ${name}=${v}`);
    const tail = `${opt('dilation', pyInts(c.d), '1')}${opt('groups', `${c.g}`, '1')}${bias ? '' : ', bias=False'}`;
    const cls = CONV_CLASS[this.mode];
    if (cls) return `${cls}(${cin}, ${cout}, ${pyInts(c.k)}${opt('stride', pyInts(c.s), '1')}${opt('padding', pyInts(c.p), '0')}${tail}${split && !pointwise ? `, split=(${split.join(', ')})` : ''})`;
    const a = this.axisSettings(c);
    const tail3 = `${opt('dilation', pyInts(a.d), '1')}${opt('groups', `${c.g}`, '1')}${bias ? '' : ', bias=False'}`;
    if (this.mode === 'i3d') return `nn.Conv3d(${cin}, ${cout}, ${pyInts(a.k)}${opt('stride', pyInts(a.s), '1')}${opt('padding', pyInts(a.p), '0')}${tail3})`;
    const kernel = [...a.k];
    kernel[this.axis] = 1;
    const pads = [...a.p];
    pads[this.axis] = 0;
    const padding = pads.every((v) => v === 0) ? '' : `, padding=(${pads.join(', ')})`;
    return `nn.Conv3d(${cin}, ${cout}, ${pointwise ? 1 : `(${kernel.join(', ')})`}${opt('stride', pyInts(a.s), '1')}${padding}${tail3})`;
  }

  private convTransposeCtor(cin: number, cout: number, c: PlaneConv, bias: boolean, split: Split3 | undefined): string {
    const opt = (name: string, v: string, dflt: string) => (v === dflt ? '' : `, ${name}=${v}`);
    const tail = `${opt('groups', `${c.g}`, '1')}${bias ? '' : ', bias=False'}`;
    const cls = CONV_TRANSPOSE_CLASS[this.mode];
    if (this.mode === 'acs' || this.mode === 'mean-acs' || this.mode === 'soft-acs') {
      const settings = `${opt('stride', pyInts(c.s), '1')}${opt('padding', pyInts(c.p), '0')}${opt('output_padding', pyInts(c.op), '0')}`;
      return `${cls}(${cin}, ${cout}, ${pyInts(c.k)}${settings}${tail}${opt('dilation', pyInts(c.d), '1')}${split ? `, split=(${split.join(', ')})` : ''})`;
    }
    const a = this.axisSettings(c);
    if (this.mode === 'i3d') {
      const settings = `${opt('stride', pyInts(a.s), '1')}${opt('padding', pyInts(a.p), '0')}${opt('output_padding', pyInts(a.op), '0')}`;
      return `${cls}(${cin}, ${cout}, ${pyInts(a.k)}${settings}${tail}${opt('dilation', pyInts(a.d), '1')})`;
    }
    const x = this.axis;
    const placed = `(${[a.k[x], a.s[x], a.p[x], a.d[x], a.op[x]].join(', ')})`;
    const unit = (v: number[], u: number) => `(${v.map((e, i) => (i === x ? u : e)).join(', ')})`;
    return `${cls}(${cin}, ${cout}, ${unit(a.k, 1)}, stride=(${a.s.join(', ')}), padding=${unit(a.p, 0)}, output_padding=${unit(a.op, 0)}${tail}, dilation=${unit(a.d, 1)}, axis=${x}, placed=${placed})`;
  }

  // ---------------------------------------------------------------- other layers with parameters

  /**
   * The module that owns `owns` (local name -> state dict key): placed at the keys' common
   * prefix when they have one (`layer1.0.bn1`), else at the node's scope in an ONNX export.
   * A module whose tensors another node already uses is that node's module (shared weights).
   */
  private module(owns: Record<string, string>, nodeName: string, ctor: string): string {
    const first = Object.entries(owns)[0]![1];
    const shared = this.keyPath.get(first);
    if (shared !== undefined) {
      const path = shared.slice(0, shared.lastIndexOf('.'));
      if (this.moduleCtors.get(path) !== ctor) throw new UnsupportedError(`node '${nodeName}': reuses '${first}' with other settings`);
      return path;
    }
    for (const key of Object.values(owns)) if (!this.sd.has(key)) throw new UnsupportedError(`node '${nodeName}': '${key}' is not a tensor of the checkpoint`);
    const prefix = first.includes('.') ? first.slice(0, first.lastIndexOf('.')) : undefined;
    const natural = prefix !== undefined && Object.entries(owns).every(([local, key]) => key === `${prefix}.${local}`);
    const path = this.tree.addModule(natural ? prefix : (scopePath(nodeName) ?? identifier(nodeName)), ctor, owns);
    for (const [local, key] of Object.entries(owns)) this.keyPath.set(key, `${path}.${local}`);
    if (natural && this.sd.has(`${prefix}.num_batches_tracked`) && ctor.startsWith('nn.BatchNorm')) this.keyPath.set(`${prefix}.num_batches_tracked`, `${path}.num_batches_tracked`);
    this.moduleCtors.set(path, ctor);
    return path;
  }

  private readonly moduleCtors = new Map<string, string>();

  private isKey(name: string | undefined, rank?: number): name is string {
    const t = name ? this.sd.get(name) : undefined;
    return t !== undefined && t.dtype === 'F32' && (rank === undefined || t.shape.length === rank);
  }

  /** The builders' Linear over the last axis: Transpose(W) -> MatMul -> Add(b). */
  private linearPattern(mm: Node): { nodes: Node[]; last: Node; x: string; weight: string; bias?: string } | undefined {
    const t = this.producer.get(mm.inputs[1]!);
    if (!t || t.op !== 'Transpose' || !this.isKey(t.inputs[0], 2) || attrInts(t, 'perm', [1, 0])!.join() !== '1,0') return undefined;
    if ((this.consumers.get(t.outputs[0]!) ?? []).length !== 1) return undefined;
    const next = this.consumers.get(mm.outputs[0]!) ?? [];
    const add = next.length === 1 && next[0]!.op === 'Add' ? next[0]! : undefined;
    const bias = add?.inputs.find((i) => i !== mm.outputs[0]);
    if (add && this.isKey(bias, 1)) return { nodes: [t, mm, add], last: add, x: mm.inputs[0]!, weight: t.inputs[0]!, bias };
    return { nodes: [t, mm], last: mm, x: mm.inputs[0]!, weight: t.inputs[0]! };
  }

  /**
   * GELU written out with erf: x * 0.5 * (1 + erf(x / sqrt(2))), in the builders' order
   * (0.5 x times the sum) or in torch's export order ((x times the sum) times 0.5).
   */
  private geluPattern(erf: Node): { nodes: Node[]; last: Node; x: string } | undefined {
    const only = (v: string) => {
      const c = this.consumers.get(v) ?? [];
      return c.length === 1 ? c[0]! : undefined;
    };
    const near = (name: string | undefined, v: number) => {
      const t = name ? this.g3.initializers.get(name) : undefined;
      return t !== undefined && !this.sd.has(name!) && t.data.length === 1 && Math.abs(Number(t.data[0]) - v) < 1e-6;
    };
    const scale = this.producer.get(erf.inputs[0]!);
    if (!scale || only(scale.outputs[0]!) !== erf) return undefined;
    const x = scale.inputs[0]!;
    if (!((scale.op === 'Mul' && near(scale.inputs[1], Math.SQRT1_2)) || (scale.op === 'Div' && near(scale.inputs[1], Math.SQRT2)))) return undefined;
    const add = only(erf.outputs[0]!);
    if (add?.op !== 'Add' || !add.inputs.some((i) => near(i, 1))) return undefined;
    const next = only(add.outputs[0]!);
    if (next?.op !== 'Mul') return undefined;
    const other = next.inputs.find((i) => i !== add.outputs[0]);
    const half = other ? this.producer.get(other) : undefined;
    if (other === x) {
      const last = only(next.outputs[0]!);
      if (last?.op === 'Mul' && last.inputs.some((i) => near(i, 0.5))) return { nodes: [scale, erf, add, next, last], last, x };
    } else if (half?.op === 'Mul' && half.inputs.includes(x) && half.inputs.some((i) => near(i, 0.5)) && only(half.outputs[0]!) === next) {
      return { nodes: [scale, erf, add, half, next], last: next, x };
    }
    return undefined;
  }

  private emitLinear(x: string, weight: string, bias: string | undefined, last: Node, nodeName: string): void {
    const [out, inp] = this.sd.get(weight)!.shape as [number, number];
    const owns: Record<string, string> = { weight };
    if (bias) owns['bias'] = bias;
    const path = this.module(owns, nodeName, `nn.Linear(${inp}, ${out}${bias ? '' : ', bias=False'})`);
    this.line(last.outputs, last.outputs, `${this.tree.access(path)}(${this.value(x)})`);
  }

  /** BatchNorm, Gemm, LayerNorm and InstanceNorm with checkpoint tensors, as modules. */
  private layerModule(node: Node): { owns: Record<string, string>; ctor: string } | undefined {
    const ins = node.inputs;
    const rank = this.rank(ins[0]!);
    const eps = attrFloat(node, 'epsilon', 1e-5);
    const epsArg = Math.fround(eps) === Math.fround(1e-5) ? '' : `, eps=${pyFloat(eps)}`;
    switch (node.op) {
      case 'BatchNormalization': {
        if (![1, 2, 3, 4].every((i) => this.isKey(ins[i], 1)) || node.outputs.length > 1) return undefined;
        const cls = rank === 5 ? 'nn.BatchNorm3d' : rank === 4 ? 'nn.BatchNorm2d' : 'nn.BatchNorm1d';
        const momentum = node.attrs['momentum'] ? attrFloat(node, 'momentum', 0.9) : 0.9;
        const momentumArg = Math.fround(momentum) === Math.fround(0.9) ? '' : `, momentum=${pyFloat(1 - momentum)}`;
        return {
          owns: { weight: ins[1]!, bias: ins[2]!, running_mean: ins[3]!, running_var: ins[4]! },
          ctor: `${cls}(${this.sd.get(ins[1]!)!.shape[0]}${epsArg}${momentumArg})`,
        };
      }
      case 'Gemm': {
        const plain = attrFloat(node, 'alpha', 1) === 1 && attrFloat(node, 'beta', 1) === 1 && !attrInt(node, 'transA', 0) && attrInt(node, 'transB', 0) === 1;
        if (!plain || rank !== 2 || !this.isKey(ins[1], 2) || (ins[2] && !this.isKey(ins[2], 1))) return undefined;
        const [out, inp] = this.sd.get(ins[1]!)!.shape as [number, number];
        return { owns: ins[2] ? { weight: ins[1]!, bias: ins[2] } : { weight: ins[1]! }, ctor: `nn.Linear(${inp}, ${out}${ins[2] ? '' : ', bias=False'})` };
      }
      case 'LayerNormalization': {
        const a = attrInt(node, 'axis', -1);
        const shape = this.shape(ins[0]!).slice(a < 0 ? a + rank : a);
        const w = ins[1] ? this.sd.get(ins[1]) : undefined;
        if (!w || !this.isKey(ins[2]) || w.shape.join() !== shape.join() || this.sd.get(ins[2]!)!.shape.join() !== shape.join() || node.outputs.length > 1) return undefined;
        return { owns: { weight: ins[1]!, bias: ins[2]! }, ctor: `nn.LayerNorm(${shape.length === 1 ? shape[0] : `(${shape.join(', ')})`}${epsArg})` };
      }
      case 'InstanceNormalization': {
        if (!this.isKey(ins[1], 1) || !this.isKey(ins[2], 1) || rank < 3 || rank > 5) return undefined;
        return { owns: { weight: ins[1]!, bias: ins[2]! }, ctor: `nn.InstanceNorm${rank - 2}d(${this.sd.get(ins[1]!)!.shape[0]}${epsArg}, affine=True)` };
      }
      default:
        return undefined;
    }
  }

  // ---------------------------------------------------------------- every other node

  private emitNode(node: Node): void {
    if (node.op === 'Identity') {
      this.vars.set(node.outputs[0]!, this.value(node.inputs[0]!));
      return;
    }
    if (this.trySymbolic(node)) return;
    const layer = this.layerModule(node);
    if (layer) {
      const path = this.module(layer.owns, node.name, layer.ctor);
      this.line(node.outputs.slice(0, 1), node.outputs.slice(0, 1), `${this.tree.access(path)}(${this.value(node.inputs[0]!)})`);
      return;
    }
    const outs = node.outputs.filter((o) => o !== '');
    this.line(outs, outs, translateOp({ ...node, outputs: outs }, this));
  }

  /** Integer arithmetic on shapes (the targets of reshapes) stays symbolic: `x.shape[0]`. */
  private trySymbolic(node: Node): boolean {
    const out = node.outputs[0];
    if (node.outputs.length !== 1 || !out || DTYPES[this.dtype(out)].float || this.rank(out) > 1) return false;
    const ins = node.inputs.map((i) => (i ? this.ints(i) : undefined));
    let value: string[] | undefined;
    switch (node.op) {
      case 'Shape': {
        const r = this.rank(node.inputs[0]!);
        const all = Array.from({ length: r }, (_, i) => `${this.value(node.inputs[0]!)}.shape[${i}]`);
        value = all.slice(normIndex(attrInt(node, 'start', 0), r), normIndex(attrInt(node, 'end', r), r));
        break;
      }
      case 'Gather':
        if (ins[0] && ins[1]?.every(isNumber) && attrInt(node, 'axis', 0) === 0) value = ins[1].map((i) => ins[0]![normIndex(Number(i), ins[0]!.length)]!);
        break;
      case 'Concat':
        if (ins.every((v) => v !== undefined)) value = ins.flatMap((v) => v!);
        break;
      case 'Unsqueeze':
      case 'Squeeze':
      case 'Cast':
        if (ins[0]) value = ins[0];
        break;
      case 'Add':
      case 'Sub':
      case 'Mul':
      case 'Div':
        if (ins[0] && ins[1] && (ins[0].length === ins[1].length || ins[1].length === 1)) value = ins[0].map((a, i) => arith(node.op, a, ins[1]![ins[1]!.length === 1 ? 0 : i]!));
        break;
      default:
        break;
    }
    if (value === undefined) return false;
    this.symbolic.set(out, value);
    return true;
  }

  /** `outs = expr`; `vals` are the 3D values the outputs stand for, `hints` name them. */
  private line(hints: string[], vals: string[], expr: string): void {
    const names = hints.map((h) => this.names.fresh(valueHint(h).toLowerCase()));
    vals.forEach((v, i) => this.vars.set(v, names[i]!));
    this.lines.push(`${names.join(', ')} = ${expr}`);
  }

  // ---------------------------------------------------------------- OpContext

  value(name: string): string {
    const v = this.vars.get(name);
    if (v !== undefined) return v;
    if (this.sd.has(name)) return this.tree.access(this.tensorPath(name));
    const sym = this.symbolic.get(name);
    if (sym) return `torch.tensor([${sym.join(', ')}])`;
    const t = this.g3.initializers.get(name);
    if (!t) throw new UnsupportedError(`value '${name}' has no PyTorch expression`);
    const key = this.sdByData.get(t.data);
    if (key !== undefined) return `${this.tree.access(this.tensorPath(key))}.view(${t.shape.join(', ')})`;
    return this.constant(name, t);
  }

  scalar(name: string): string | undefined {
    const t = this.g3.initializers.get(name);
    if (!t || this.sd.has(name) || t.data.length !== 1) return undefined;
    const v = Number(t.data[0]);
    const s = DTYPES[t.dtype].float ? pyFloat(v) : String(v);
    return v < 0 || Object.is(v, -0) ? `(${s})` : s;
  }

  ints(name: string): string[] | undefined {
    const sym = this.symbolic.get(name);
    if (sym) return sym;
    const t = this.g3.initializers.get(name);
    if (!t || DTYPES[t.dtype].float || t.data.length > 64) return undefined;
    return Array.from(t.data as ArrayLike<number | bigint>, (v) => String(v));
  }

  floats(name: string): number[] | undefined {
    const t = this.g3.initializers.get(name);
    if (!t || !DTYPES[t.dtype].float || t.data.length > 64) return undefined;
    return Array.from(t.data as ArrayLike<number>);
  }

  rank(name: string): number {
    return this.fact(name).shape.length;
  }

  shape(name: string): number[] {
    return this.fact(name).shape;
  }

  dtype(name: string): DType {
    return this.fact(name).dtype;
  }

  private fact(name: string): ValueFacts {
    const f = this.facts.get(name);
    if (!f) throw new UnsupportedError(`value '${name}' has no inferred shape`);
    return f;
  }

  /** Where a checkpoint tensor that no module owns lives in the model. */
  private tensorPath(key: string): string {
    let path = this.keyPath.get(key);
    if (path === undefined) {
      path = this.tree.addTensor(key, { kind: isBuffer(key) ? 'buffer' : 'parameter', init: zeros(this.sd.get(key)!) });
      this.keyPath.set(key, path);
    }
    return path;
  }

  /** A constant that is not part of the checkpoint: a buffer outside the state dict. */
  private constant(name: string, t: Tensor): string {
    let path = this.constants.get(name);
    if (path === undefined) {
      if (t.data.length > MAX_LITERAL) throw new UnsupportedError(`constant '${name}' has ${t.data.length} elements, more than ${MAX_LITERAL} written into model.py`);
      const info = DTYPES[t.dtype];
      const values = Array.from(t.data as ArrayLike<number | bigint>, (v) => (info.float ? pyFloat(Number(v)) : String(v)));
      const literal = t.shape.length === 0 ? `torch.tensor(${values[0]}` : `torch.tensor([${values.join(', ')}]`;
      const reshape = t.shape.length > 1 ? `.reshape(${t.shape.join(', ')})` : '';
      path = this.tree.addTensor(this.names.fresh(`const_${valueHint(name)}`), { kind: 'buffer', init: `${literal}, dtype=torch.${info.torchDtype})${reshape}`, persistent: false });
      this.constants.set(name, path);
    }
    return this.tree.access(path);
  }

  // ---------------------------------------------------------------- the file

  private file(): string {
    const card = this.result.card;
    const layers = pythonLayers(this.mode, this.convs.some((c) => c.transposed));
    const mapped = this.tree.sourceNames.size > 0;
    const out = card.output.kind === 'features' ? `(N, ${card.output.size ?? 'F'}) features` : `(N, ${card.output.size ?? 'K'}) logits`;
    const parts = [
      `"""${pyEscape(card.architecture.arch)} converted to 3D by ACS Hub (converter ${CONVERTER_VERSION}), mode ${this.mode}${this.mode === '2.5d' || this.mode === 'i3d' ? `, axis ${card.options.axis}` : ''}: a trainable PyTorch module.

Input (N, ${card.input.channels}, D, H, W) float32; output ${out}.
The parameters and buffers are those of the converted checkpoint, under the same names:

    model = Model()
    model.load_state_dict(torch.load('model.pth', weights_only=True))

Generated by ACS Hub from the converted network; needs torch 1.13 or later and nothing else.
The ACS rules (the channel split, the planes each view reads) are those of ACS Hub's
converters/SPEC-acs.md, sections 1, 5, 8 and 12; the layers below state them.
"""`,
      `${mapped ? 'from collections import OrderedDict\n' : ''}import math\n\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F`,
    ];
    if (layers) parts.push(layers.trimEnd());
    parts.push(this.modelClass(mapped));
    const [doc, ...code] = parts;
    return `${doc}\n\n${code.join('\n\n\n')}\n`;
  }

  private modelClass(mapped: boolean): string {
    const card = this.result.card;
    const lines = [
      'class Model(nn.Module):',
      `    """${pyEscape(card.architecture.arch)} in mode ${this.mode}; layers named as in the source network."""`,
      '',
    ];
    if (mapped) {
      lines.push(
        '    # Checkpoint names of the tensors whose layer has another name here (an ONNX export names',
        "    # the weights of BatchNorm-folded layers after the graph, e.g. 'onnx::Conv_144').",
        '    SOURCE_NAMES = {',
        ...[...this.tree.sourceNames].map(([at, key]) => `        ${pyString(at)}: ${pyString(key)},`),
        '    }',
        '',
      );
    }
    lines.push('    def __init__(self):', '        super().__init__()', ...this.tree.initLines(), '');
    lines.push('    def forward(self, input):', ...this.lines.map((l) => `        ${l}`));
    if (mapped) {
      lines.push(
        '',
        "    def state_dict(self, *args, destination=None, prefix='', keep_vars=False):",
        '        """The state dict under the checkpoint\'s names (SOURCE_NAMES)."""',
        '        own = super().state_dict(keep_vars=keep_vars)',
        '        out = OrderedDict() if destination is None else destination',
        '        for name, value in own.items():',
        '            out[prefix + self.SOURCE_NAMES.get(name, name)] = value',
        '        return out',
        '',
        '    def load_state_dict(self, state_dict, strict=True, **kwargs):',
        '        """Load a checkpoint saved under its own names (or under the names used here)."""',
        '        here = {source: name for name, source in self.SOURCE_NAMES.items()}',
        '        renamed = OrderedDict((here.get(name, name), value) for name, value in state_dict.items())',
        '        return super().load_state_dict(renamed, strict, **kwargs)',
      );
    }
    return lines.join('\n');
  }
}

/** Kernel size, stride, padding, dilation and groups of a square 2D convolution node. */
/** A 2D Conv's or ConvTranspose's settings as (H, W) pairs. */
interface PlaneConv {
  k: [number, number];
  s: [number, number];
  p: [number, number];
  d: [number, number];
  op: [number, number];
  g: number;
}

function convSettings(node: Node, weight: Tensor): PlaneConv {
  const ks = attrInts(node, 'kernel_shape', weight.shape.slice(2))!;
  let pads = attrInts(node, 'pads', [0, 0, 0, 0])!;
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  if (autoPad === 'VALID') pads = [0, 0, 0, 0];
  else if (autoPad !== 'NOTSET') pads = [...ks, ...ks].map((k) => (k - 1) / 2);
  const two = (v: number[]): [number, number] => [v[0]!, v[1]!];
  return {
    k: two(ks),
    s: two(attrInts(node, 'strides', [1, 1])!),
    p: two(pads),
    d: two(attrInts(node, 'dilations', [1, 1])!),
    op: two(attrInts(node, 'output_padding', [0, 0])!),
    g: attrInt(node, 'group', 1),
  };
}

/** A Python setting: one number when all entries agree, else a tuple. */
function pyInts(v: readonly number[]): string {
  return v.every((x) => x === v[0]) ? `${v[0]}` : `(${v.join(', ')})`;
}

function zeros(t: Tensor): string {
  const dtype = t.dtype === 'F32' ? '' : `, dtype=torch.${DTYPES[t.dtype].torchDtype}`;
  return `torch.zeros(${t.shape.length ? t.shape.join(', ') : '()'}${dtype})`;
}

function isNumber(s: string): boolean {
  return /^-?[0-9]+$/.test(s);
}

function normIndex(i: number, n: number): number {
  return Math.min(Math.max(i < 0 ? i + n : i, 0), n);
}

function arith(op: string, a: string, b: string): string {
  if (isNumber(a) && isNumber(b)) {
    const x = Number(a);
    const y = Number(b);
    return String(op === 'Add' ? x + y : op === 'Sub' ? x - y : op === 'Mul' ? x * y : Math.trunc(x / y));
  }
  return `(${a} ${{ Add: '+', Sub: '-', Mul: '*', Div: '//' }[op]} ${b})`;
}

