/**
 * A small DSL that builds ONNX graphs over a state dict: every weight an operator needs is
 * taken from the state dict by key (the graph's initializers are the checkpoint's own
 * tensors), and node names follow the state dict's module names, so that an error or a
 * profile points at `layer3.1.conv2` rather than at `Conv_57`.
 */
import { ConversionError, UnsupportedError } from '../errors.js';
import type { StateDict, Tensor } from '../tensor.js';
import { A, type Attr, type Dim, type Graph, type Node, type ValueInfo } from './ir.js';

/** Options of a convolution. */
export interface ConvOptions {
  stride?: number;
  pad?: number;
  dilation?: number;
  group?: number;
}

/** Builds one graph; see the module comment. */
export class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly initializers = new Map<string, Tensor>();
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly names = new Set<string>();
  private readonly used = new Set<string>();

  constructor(
    readonly sd: StateDict,
    readonly name: string,
    readonly opset = 17,
  ) {}

  /** Does the state dict hold this key? */
  has(key: string): boolean {
    return this.sd.has(key);
  }

  /** A state dict tensor, or an error that names the missing key. */
  tensor(key: string): Tensor {
    const t = this.sd.get(key);
    if (t === undefined) throw new ConversionError(`state dict has no tensor '${key}' (needed by the ${this.name} graph)`);
    return t;
  }

  /** Use a state dict tensor as an initializer (by its own key) and return its name. */
  weight(key: string): string {
    const t = this.tensor(key);
    if (t.dtype !== 'F32') throw new UnsupportedError(`tensor '${key}' is ${t.dtype}; convert the checkpoint to float32 first`);
    this.initializers.set(key, t);
    this.used.add(key);
    return key;
  }

  /** A state dict tensor viewed with another shape (same elements), under its own key. */
  weightAs(key: string, shape: number[]): string {
    const t = this.tensor(key);
    this.initializers.set(key, { ...t, shape });
    this.used.add(key);
    return key;
  }

  /** State dict keys the graph reads. */
  usedKeys(): Set<string> {
    return new Set(this.used);
  }

  /** A new initializer under a unique name derived from `hint`. */
  constant(hint: string, t: Tensor): string {
    const name = this.unique(hint);
    this.initializers.set(name, t);
    return name;
  }

  /** A 1-D int64 constant. */
  ints(hint: string, values: number[]): string {
    return this.constant(hint, { dtype: 'I64', shape: [values.length], data: BigInt64Array.from(values.map(BigInt)) });
  }

  /** A float32 constant of any shape. */
  floats(hint: string, values: number[], shape: number[] = []): string {
    return this.constant(hint, { dtype: 'F32', shape, data: Float32Array.from(values) });
  }

  private unique(hint: string): string {
    let name = hint;
    for (let i = 1; this.names.has(name) || this.initializers.has(name); i++) name = `${hint}_${i}`;
    this.names.add(name);
    return name;
  }

  /** Add a node; returns its outputs' names. */
  opN(op: string, inputs: string[], attrs: Record<string, Attr> = {}, hint = op, outputs = 1): string[] {
    const name = this.unique(hint);
    const outs = outputs === 1 ? [name] : Array.from({ length: outputs }, (_, i) => this.unique(`${name}:${i}`));
    this.nodes.push({ name, op, domain: '', inputs: [...inputs], outputs: outs, attrs });
    return outs;
  }

  /** Add a single-output node; returns its output's name. */
  op(op: string, inputs: string[], attrs: Record<string, Attr> = {}, hint = op): string {
    return this.opN(op, inputs, attrs, hint, 1)[0]!;
  }

  /** Declare a graph input. */
  input(name: string, shape: Dim[]): string {
    this.names.add(name);
    this.inputs.push({ name, dtype: 'F32', shape });
    return name;
  }

  /** Declare a graph output (renaming the value through an Identity when needed). */
  output(value: string, name: string, shape: Dim[] | null = null): void {
    const v = value === name ? value : this.op('Identity', [value], {}, name);
    this.outputs.push({ name: v, dtype: 'F32', shape });
  }

  /** `prefix.weight` (+ `prefix.bias` if present) as a 2D convolution. */
  conv(x: string, prefix: string, o: ConvOptions = {}): string {
    const w = this.tensor(`${prefix}.weight`);
    if (w.shape.length !== 4) throw new ConversionError(`'${prefix}.weight' has shape [${w.shape.join(', ')}], not a 2D convolution kernel`);
    const [, , kh, kw] = w.shape as [number, number, number, number];
    if (kh !== kw) throw new UnsupportedError(`non-square conv '${prefix}': kernel ${kh}x${kw}`);
    const pad = o.pad ?? 0;
    const inputs = [x, this.weight(`${prefix}.weight`)];
    if (this.has(`${prefix}.bias`)) inputs.push(this.weight(`${prefix}.bias`));
    return this.op(
      'Conv',
      inputs,
      {
        kernel_shape: A.ints([kh, kw]),
        strides: A.ints([o.stride ?? 1, o.stride ?? 1]),
        pads: A.ints([pad, pad, pad, pad]),
        dilations: A.ints([o.dilation ?? 1, o.dilation ?? 1]),
        group: A.int(o.group ?? 1),
      },
      prefix,
    );
  }

  /** BatchNorm in inference mode from `prefix.{weight,bias,running_mean,running_var}`. */
  bn(x: string, prefix: string, eps = 1e-5): string {
    const names = ['weight', 'bias', 'running_mean', 'running_var'].map((s) => this.weight(`${prefix}.${s}`));
    return this.op('BatchNormalization', [x, ...names], { epsilon: A.float(eps) }, prefix);
  }

  /** `prefix.weight` / `prefix.bias` as a fully connected layer (x is [N, in]). */
  linear(x: string, prefix: string): string {
    const inputs = [x, this.weight(`${prefix}.weight`)];
    if (this.has(`${prefix}.bias`)) inputs.push(this.weight(`${prefix}.bias`));
    return this.op('Gemm', inputs, { transB: A.int(1) }, prefix);
  }

  /** A Linear applied over the last axis of any-rank input (MatMul + Add). */
  linearLastAxis(x: string, prefix: string): string {
    // The transpose of a constant is folded by the runtime when the session loads.
    const wt = this.transpose(this.weight(`${prefix}.weight`), [1, 0], `${prefix}.weight_t`);
    let y = this.op('MatMul', [x, wt], {}, `${prefix}.matmul`);
    if (this.has(`${prefix}.bias`)) y = this.op('Add', [y, this.weight(`${prefix}.bias`)], {}, prefix);
    return y;
  }

  relu(x: string, hint = 'relu'): string {
    return this.op('Relu', [x], {}, hint);
  }

  relu6(x: string, hint = 'relu6'): string {
    return this.op('Clip', [x, this.sharedFloat('zero', 0), this.sharedFloat('six', 6)], {}, hint);
  }

  sigmoid(x: string, hint = 'sigmoid'): string {
    return this.op('Sigmoid', [x], {}, hint);
  }

  silu(x: string, hint = 'silu'): string {
    return this.op('Mul', [x, this.sigmoid(x, `${hint}.sigmoid`)], {}, hint);
  }

  hardswish(x: string, hint = 'hardswish'): string {
    return this.op('HardSwish', [x], {}, hint);
  }

  hardsigmoid(x: string, hint = 'hardsigmoid'): string {
    return this.op('HardSigmoid', [x], { alpha: A.float(1 / 6), beta: A.float(0.5) }, hint);
  }

  /** GELU with the exact erf form (torch's default `approximate='none'`). */
  gelu(x: string, hint = 'gelu'): string {
    const scaled = this.op('Mul', [x, this.sharedFloat('inv_sqrt2', Math.SQRT1_2)], {}, `${hint}.scale`);
    const erf = this.op('Erf', [scaled], {}, `${hint}.erf`);
    const one = this.op('Add', [erf, this.sharedFloat('one', 1)], {}, `${hint}.add`);
    const half = this.op('Mul', [x, this.sharedFloat('half', 0.5)], {}, `${hint}.half`);
    return this.op('Mul', [half, one], {}, hint);
  }

  private readonly shared = new Map<string, string>();

  /** A scalar float constant shared by every node that needs it. */
  sharedFloat(hint: string, value: number): string {
    const key = `${hint}=${value}`;
    let name = this.shared.get(key);
    if (name === undefined) {
      name = this.floats(hint, [value]);
      this.shared.set(key, name);
    }
    return name;
  }

  add(a: string, b: string, hint = 'add'): string {
    return this.op('Add', [a, b], {}, hint);
  }

  mul(a: string, b: string, hint = 'mul'): string {
    return this.op('Mul', [a, b], {}, hint);
  }

  concat(xs: string[], axis: number, hint = 'concat'): string {
    return this.op('Concat', xs, { axis: A.int(axis) }, hint);
  }

  maxPool(x: string, k: number, s: number, p: number, hint = 'maxpool', ceil = false): string {
    return this.op('MaxPool', [x], { kernel_shape: A.ints([k, k]), strides: A.ints([s, s]), pads: A.ints([p, p, p, p]), ceil_mode: A.int(ceil ? 1 : 0) }, hint);
  }

  avgPool(x: string, k: number, s: number, p: number, hint = 'avgpool', countIncludePad = true): string {
    return this.op(
      'AveragePool',
      [x],
      { kernel_shape: A.ints([k, k]), strides: A.ints([s, s]), pads: A.ints([p, p, p, p]), count_include_pad: A.int(countIncludePad ? 1 : 0) },
      hint,
    );
  }

  globalAvgPool(x: string, hint = 'avgpool'): string {
    return this.op('GlobalAveragePool', [x], {}, hint);
  }

  flatten(x: string, hint = 'flatten'): string {
    return this.op('Flatten', [x], { axis: A.int(1) }, hint);
  }

  transpose(x: string, perm: number[], hint = 'transpose'): string {
    return this.op('Transpose', [x], { perm: A.ints(perm) }, hint);
  }

  /** LayerNormalization over the last axis from `prefix.weight` / `prefix.bias`. */
  layerNorm(x: string, prefix: string, eps: number): string {
    return this.op('LayerNormalization', [x, this.weight(`${prefix}.weight`), this.weight(`${prefix}.bias`)], { axis: A.int(-1), epsilon: A.float(eps) }, prefix);
  }

  /** LayerNorm over the channels of a channels-first tensor (torchvision's LayerNorm2d). */
  layerNorm2d(x: string, prefix: string, eps: number): string {
    const last = this.transpose(x, [0, 2, 3, 1], `${prefix}.to_last`);
    const y = this.layerNorm(last, prefix, eps);
    return this.transpose(y, [0, 3, 1, 2], `${prefix}.to_first`);
  }

  /** The finished graph. */
  build(): Graph {
    return {
      name: this.name,
      nodes: this.nodes,
      inputs: this.inputs,
      outputs: this.outputs,
      initializers: this.initializers,
      opset: this.opset,
      metadata: {},
    };
  }
}
