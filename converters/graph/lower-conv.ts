/**
 * Lowering one 2D convolution into its 3D form for every mode of converters/SPEC-acs.md
 * (sections 1, 3, 4, 5 and 8; the lowerings: section 10): ACS (three convolutions over the
 * axial, coronal and sagittal views, each with a contiguous slice of the 2D kernel as its
 * weight, concatenated), 2.5D, inflated 3D, mean-ACS and soft-ACS.
 *
 * The collapsed axis of an ACS view reads one plane per output index. For "same"
 * convolutions that plane is `i * s`, which is what a stride-`s` convolution with a unit
 * kernel on that axis reads. Elsewhere the plane depends on the volume's size (the
 * reference's rule: `i * s` when `n_out == n` or `2 * n_out == n`, else
 * `i * s + floor(k/2) - p`, zero outside; converters/SPEC-acs.md sections 1.4 to 1.6), so the
 * graph computes it from the input's shape and slices the planes out.
 */
import { ConversionError } from '../errors.js';
import { acsParts, type Split3 } from '../modes/split.js';
import type { Tensor } from '../tensor.js';
import type { Emitter } from './emitter.js';
import { A, type Attr } from './ir.js';

/** Spatial axis of a 3D volume: 0 = D, 1 = H, 2 = W. */
export type SpatialAxis = 0 | 1 | 2;

/** The conversion modes. */
export type ConvMode = 'acs' | '2.5d' | 'i3d' | 'mean-acs' | 'soft-acs';

/** One 2D convolution, as found in the 2D graph. */
export interface Conv2dSpec {
  /** Node name (used for the new nodes' names and in errors). */
  name: string;
  /** 3D input value. */
  x: string;
  weight: Tensor;
  weightName: string;
  bias?: Tensor;
  biasName?: string;
  /** Kernel extent, stride, padding (at both ends) and dilation of the 2D H axis. */
  k: number;
  s: number;
  p: number;
  d: number;
  g: number;
  /** The same for the 2D W axis, where it differs from H (non-square kernels, section 15). */
  w?: Partial<AxisSetting>;
}

/** One axis's convolution setting. */
export interface AxisSetting {
  k: number;
  s: number;
  p: number;
  d: number;
}

/** The settings of the 2D H and W axes of a convolution. */
export function planeSettings(c: Pick<Conv2dSpec, 'k' | 's' | 'p' | 'd' | 'w'>): [AxisSetting, AxisSetting] {
  const h = { k: c.k, s: c.s, p: c.p, d: c.d };
  return [h, { ...h, ...c.w }];
}

/**
 * The settings of the three 3D axes for the view whose collapsed (or, for 2.5D, unit; for
 * i3d, repeat) axis is `axis` (converters/SPEC-acs.md section 15): D takes H's setting, as
 * pools do; the kernel's first extent lies on D for the coronal and sagittal views, so the
 * sagittal view's H axis carries the kernel's W extent with W's setting.
 */
export function viewSettings(c: Pick<Conv2dSpec, 'k' | 's' | 'p' | 'd' | 'w'>, axis: SpatialAxis): [AxisSetting, AxisSetting, AxisSetting] {
  const [h, w] = planeSettings(c);
  return axis === 2 ? [h, w, w] : [h, h, w];
}

/** Options of the lowering. */
export interface LowerConvOptions {
  mode: ConvMode;
  /** 2.5D unit axis / i3d repeat axis. */
  axis: SpatialAxis;
  /** Explicit ACS split of the output channels. */
  split?: Split3;
  /** soft-ACS: the (O, 3) `soft_w_core`; zeros when absent. */
  softWCore?: Float32Array;
  /**
   * How an ACS view is computed: as a 3D convolution with a unit kernel extent, or with its
   * collapsed axis folded into the batch so that a 2D convolution does the work (measured in
   * bench/inference: its transposes cost more than the faster 2D kernels save). @default 'conv3d'
   */
  lowering?: 'conv3d' | 'fold2d';
  /** An element-wise activation to apply to the result (applied per part, before the Concat). */
  activation?: { op: string; attrs: Record<string, Attr>; inputs: string[] };
}

/** What the lowering produced: the output value and the weights it made (for accounting). */
export interface LoweredConv {
  output: string;
  /** Whether `activation` was applied (then the caller drops its own activation node). */
  activated: boolean;
  /** Weight initializers of the 3D convolutions written (names). */
  weights: string[];
}

/** A view of output channels [o0, o1) of a 4D kernel with a unit axis inserted at 2 + axis. */
function kernelSlice(w: Tensor, o0: number, o1: number, axis: SpatialAxis): Tensor {
  const [, i, kh, kw] = w.shape as [number, number, number, number];
  const per = i * kh * kw;
  const shape = [o1 - o0, i, kh, kw];
  shape.splice(2 + axis, 0, 1);
  return { dtype: 'F32', shape, data: (w.data as Float32Array).subarray(o0 * per, o1 * per) };
}

/** Kernel, strides, pads and dilations of a view, with the unit extent on `axis`. */
export function viewAttrs(c: Conv2dSpec, axis: SpatialAxis, collapsedStride: number): { kernel: number[]; strides: number[]; pads: number[]; dilations: number[] } {
  const set = viewSettings(c, axis);
  const kernel = set.map((a) => a.k);
  const strides = set.map((a) => a.s);
  const pads = set.map((a) => a.p);
  const dilations = set.map((a) => a.d);
  kernel[axis] = 1;
  strides[axis] = collapsedStride;
  pads[axis] = 0;
  dilations[axis] = 1;
  return { kernel, strides, pads: [...pads, ...pads], dilations };
}

/** Does the collapsed axis of an ACS view read plane `i * s` for every volume size? */
export function planesAreNatural(k: number, p: number, d: number): boolean {
  return Math.floor(k / 2) === p && d * (k - 1) === 2 * p;
}

/**
 * The planes a view's collapsed axis reads, sliced out of `x` along `axis`; returns the value
 * to convolve and the stride left to use on that axis.
 */
function selectPlanes(em: Emitter, x: string, axis: SpatialAxis, c: Conv2dSpec, hint: string): { x: string; stride: number } {
  const { k, s, p, d } = viewSettings(c, axis)[axis];
  if (planesAreNatural(k, p, d)) return { x, stride: s };
  const ax = 2 + axis;
  const shape = em.op('Shape', [x], {}, `${hint}.shape`);
  const n = em.op('Gather', [shape, em.ints([ax])], { axis: A.int(0) }, `${hint}.n`);
  const num = em.op('Add', [n, em.ints([2 * p - d * (k - 1) - 1])], {}, `${hint}.span`);
  const nOut = em.op('Add', [em.op('Div', [num, em.ints([s])], {}, `${hint}.div`), em.ints([1])], {}, `${hint}.n_out`);
  const off2 = Math.floor(k / 2) - p;
  let off: string;
  if (off2 === 0) off = em.ints([0]);
  else {
    const same = em.op('Equal', [nOut, n], {}, `${hint}.same_size`);
    const half = em.op('Equal', [em.op('Mul', [nOut, em.ints([2])], {}, `${hint}.twice`), n], {}, `${hint}.half_size`);
    off = em.op('Where', [em.op('Or', [same, half], {}, `${hint}.first_rule`), em.ints([0]), em.ints([off2])], {}, `${hint}.offset`);
  }
  let src = x;
  if (p > 0) {
    // Reads reach p planes before the volume (second rule) and, with the first rule and heavy
    // padding, up to 2p planes past its end; those planes are zero.
    const pads = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    pads[ax] = p;
    pads[ax + 5] = 2 * p;
    src = em.op('Pad', [x, em.ints(pads)], { mode: A.str('constant') }, `${hint}.pad`);
  }
  const start = p > 0 ? em.op('Add', [off, em.ints([p])], {}, `${hint}.start`) : off;
  const span = em.op('Add', [em.op('Mul', [em.op('Sub', [nOut, em.ints([1])], {}, `${hint}.last`), em.ints([s])], {}, `${hint}.reach`), em.ints([1])], {}, `${hint}.extent`);
  const end = em.op('Add', [start, span], {}, `${hint}.end`);
  const sel = em.op('Slice', [src, start, end, em.ints([ax]), em.ints([s])], {}, `${hint}.planes`);
  return { x: sel, stride: 1 };
}

function conv3d(
  em: Emitter,
  x: string,
  weight: string,
  bias: string | undefined,
  kernel: number[],
  strides: number[],
  pads: number[],
  dilations: number[],
  group: number,
  hint: string,
): string {
  return em.op('Conv', bias ? [x, weight, bias] : [x, weight], {
    kernel_shape: A.ints(kernel),
    strides: A.ints(strides),
    pads: A.ints(pads),
    dilations: A.ints(dilations),
    group: A.int(group),
  }, hint);
}

/** One view (collapsed `axis`) of output channels [o0, o1) reading input channels [i0, i1). */
function acsView(
  em: Emitter,
  c: Conv2dSpec,
  axis: SpatialAxis,
  out: [number, number],
  inp: [number, number],
  groups: number,
  withBias: boolean,
  hint: string,
  weights: string[],
  fold = false,
  act?: LowerConvOptions['activation'],
): string {
  const cin = c.weight.shape[1]! * c.g;
  let x = c.x;
  if (inp[0] !== 0 || inp[1] !== cin) {
    x = em.op('Slice', [x, em.ints([inp[0]]), em.ints([inp[1]]), em.ints([1])], {}, `${hint}.channels`);
  }
  const sel = selectPlanes(em, x, axis, c, hint);
  let b: string | undefined;
  if (withBias && c.bias) {
    b = em.constant(`${c.biasName}/${hint.split('/').pop()}`, { dtype: 'F32', shape: [out[1] - out[0]], data: (c.bias.data as Float32Array).subarray(out[0], out[1]) });
  }
  if (fold) return foldedView(em, c, axis, sel, out, groups, b, hint, weights, act);
  const w = em.constant(`${c.weightName}/${hint.split('/').pop()}`, kernelSlice(c.weight, out[0], out[1], axis));
  weights.push(w);
  const v = viewAttrs(c, axis, sel.stride);
  const y = conv3d(em, sel.x, w, b, v.kernel, v.strides, v.pads, v.dilations, groups, hint);
  return act ? em.op(act.op, [y, ...act.inputs], act.attrs, `${hint}/${act.op.toLowerCase()}`) : y;
}

/** Permutations that bring the collapsed axis next to the batch, and back. */
export const FOLD_IN: Readonly<Record<SpatialAxis, number[]>> = { 0: [0, 2, 1, 3, 4], 1: [0, 3, 1, 2, 4], 2: [0, 4, 1, 2, 3] };
export const FOLD_OUT: Readonly<Record<SpatialAxis, number[]>> = { 0: [0, 2, 1, 3, 4], 1: [0, 2, 3, 1, 4], 2: [0, 2, 3, 4, 1] };

/**
 * A view computed by a 2D convolution: the collapsed axis is moved next to the batch and
 * merged with it, the remaining two axes are convolved with the 2D kernel as it is, and the
 * result is put back. Onnxruntime runs 2D convolutions in its blocked (NCHWc) kernels, which
 * are faster than its im2col path for 3D ones.
 */
function foldedView(
  em: Emitter,
  c: Conv2dSpec,
  axis: SpatialAxis,
  sel: { x: string; stride: number },
  out: [number, number],
  groups: number,
  bias: string | undefined,
  hint: string,
  weights: string[],
  act: LowerConvOptions['activation'],
): string {
  const cin = c.weight.shape[1]! * groups;
  const [h, wd] = planeSettings(c);
  const per = c.weight.shape[1]! * h.k * wd.k;
  // The collapsed axis was already subsampled by the plane selection when its stride is 1.
  let x = sel.x;
  if (sel.stride !== 1) {
    x = em.op('Slice', [x, em.ints([0]), em.ints([2 ** 62]), em.ints([2 + axis]), em.ints([sel.stride])], {}, `${hint}.stride`);
  }
  const t = em.op('Transpose', [x], { perm: A.ints(FOLD_IN[axis]) }, `${hint}.fold`);
  const tShape = em.op('Shape', [t], {}, `${hint}.fold_shape`);
  const ab = em.op('Slice', [tShape, em.ints([3]), em.ints([5]), em.ints([0])], {}, `${hint}.plane_dims`);
  const flat = em.op('Reshape', [t, em.op('Concat', [em.ints([-1, cin]), ab], { axis: A.int(0) }, `${hint}.flat_shape`)], {}, `${hint}.flat`);
  const w = em.constant(`${c.weightName}/${hint.split('/').pop()}`, {
    dtype: 'F32',
    shape: [out[1] - out[0], ...c.weight.shape.slice(1)],
    data: (c.weight.data as Float32Array).subarray(out[0] * per, out[1] * per),
  });
  weights.push(w);
  let y = em.op('Conv', bias ? [flat, w, bias] : [flat, w], {
    kernel_shape: A.ints([h.k, wd.k]),
    strides: A.ints([h.s, wd.s]),
    pads: A.ints([h.p, wd.p, h.p, wd.p]),
    dilations: A.ints([h.d, wd.d]),
    group: A.int(groups),
  }, hint);
  if (act) y = em.op(act.op, [y, ...act.inputs], act.attrs, `${hint}/${act.op.toLowerCase()}`);
  const yShape = em.op('Shape', [y], {}, `${hint}.out_shape`);
  const back = em.op('Concat', [em.op('Slice', [tShape, em.ints([0]), em.ints([2]), em.ints([0])], {}, `${hint}.batch_dims`), em.op('Slice', [yShape, em.ints([1]), em.ints([4]), em.ints([0])], {}, `${hint}.conv_dims`)], { axis: A.int(0) }, `${hint}.unflat_shape`);
  const unflat = em.op('Reshape', [y, back], {}, `${hint}.unflat`);
  return em.op('Transpose', [unflat], { perm: A.ints(FOLD_OUT[axis]) }, `${hint}.unfold`);
}

const VIEW_NAMES = ['a', 'c', 's'] as const;

/** Lower a 2D convolution to 3D in the given mode. */
export function lowerConv(em: Emitter, c: Conv2dSpec, o: LowerConvOptions): LoweredConv {
  const O = c.weight.shape[0]!;
  const weights: string[] = [];
  const base = c.name;
  const [h, wd] = planeSettings(c);
  if (h.k === 1 && h.p === 0 && wd.k === 1 && wd.p === 0 && h.s === wd.s) {
    // A 1x1 kernel reads one voxel in every view: every mode is the same 1x1x1 convolution
    // (the ACS parts would concatenate to it; the mean and softmax weights sum to one).
    const w = em.constant(`${c.weightName}/1x1x1`, { dtype: 'F32', shape: [O, c.weight.shape[1]!, 1, 1, 1], data: c.weight.data as Float32Array });
    weights.push(w);
    const output = conv3d(em, c.x, w, c.biasName, [1, 1, 1], [c.s, c.s, c.s], [0, 0, 0, 0, 0, 0], [1, 1, 1], c.g, `${base}/1x1x1`);
    return { output, weights, activated: false };
  }
  switch (o.mode) {
    case 'acs': {
      const parts = acsParts(O, c.weight.shape[1]! * c.g, c.g, o.split, `conv '${c.name}'`);
      const outs: string[] = [];
      const act = o.activation;
      parts.forEach((part, i) => {
        if (part.out[1] === part.out[0]) return;
        const hint = `${base}/acs_${VIEW_NAMES[i]}`;
        outs.push(acsView(em, c, i as SpatialAxis, part.out, part.in, part.groups, true, hint, weights, o.lowering === 'fold2d', act));
      });
      if (outs.length === 0) throw new ConversionError(`conv '${c.name}' has no output channels`);
      const output = outs.length === 1 ? outs[0]! : em.op('Concat', outs, { axis: A.int(1) }, `${base}/acs`);
      return { output, weights, activated: act !== undefined };
    }
    case '2.5d': {
      const w = em.constant(`${c.weightName}/2.5d`, kernelSlice(c.weight, 0, O, o.axis));
      weights.push(w);
      const v = viewAttrs(c, o.axis, viewSettings(c, o.axis)[o.axis].s);
      const dil = viewSettings(c, o.axis).map((a) => a.d);
      const output = conv3d(em, c.x, w, c.biasName, v.kernel, v.strides, v.pads, dil, c.g, `${base}/2.5d`);
      return { output, weights, activated: false };
    }
    case 'i3d': {
      const w = em.constant(`${c.weightName}/i3d`, inflate(c.weight, o.axis));
      weights.push(w);
      const set = viewSettings(c, o.axis);
      const pads = set.map((a) => a.p);
      const output = conv3d(em, c.x, w, c.biasName, set.map((a) => a.k), set.map((a) => a.s), [...pads, ...pads], set.map((a) => a.d), c.g, `${base}/i3d`);
      return { output, weights, activated: false };
    }
    case 'mean-acs':
    case 'soft-acs': {
      const views = ([0, 1, 2] as SpatialAxis[]).map((axis) =>
        acsView(em, c, axis, [0, O], [0, c.weight.shape[1]! * c.g], c.g, false, `${base}/${o.mode}_${VIEW_NAMES[axis]}`, weights),
      );
      let sum: string;
      if (o.mode === 'mean-acs') {
        sum = em.op('Mul', [em.op('Sum', views, {}, `${base}/sum`), em.floats([1 / 3], [])], {}, `${base}/mean`);
      } else {
        const scales = softmaxRows(o.softWCore ?? new Float32Array(O * 3), O);
        const scaled = views.map((v, i) =>
          em.op('Mul', [v, em.constant(`${c.weightName}/soft_w_${VIEW_NAMES[i]}`, { dtype: 'F32', shape: [O, 1, 1, 1], data: scales[i]! })], {}, `${base}/soft_${VIEW_NAMES[i]}`),
        );
        sum = em.op('Sum', scaled, {}, `${base}/soft`);
      }
      if (!c.bias) return { output: sum, weights, activated: false };
      const b = em.constant(`${c.biasName}/3d`, { dtype: 'F32', shape: [O, 1, 1, 1], data: c.bias.data as Float32Array });
      return { output: em.op('Add', [sum, b], {}, `${base}/bias`), weights, activated: false };
    }
  }
}

/** softmax over each row of an (O, 3) matrix, returned as three per-channel columns. */
export function softmaxRows(core: Float32Array, O: number): Float32Array[] {
  const cols = [new Float32Array(O), new Float32Array(O), new Float32Array(O)];
  for (let o = 0; o < O; o++) {
    const r = [core[o * 3]!, core[o * 3 + 1]!, core[o * 3 + 2]!];
    const m = Math.max(...r);
    const e = r.map((v) => Math.exp(v - m));
    const z = e[0]! + e[1]! + e[2]!;
    for (let i = 0; i < 3; i++) cols[i]![o] = e[i]! / z;
  }
  return cols;
}

/**
 * The i3d kernel: `t` copies of the 2D kernel (kh, kw) stacked along `axis` and divided by `t`
 * (float32), where `t` is the extent that axis takes (section 15): kw along W, else kh. For a
 * square kernel `t = k`. Works for transposed kernels (Cin, Cout/g, kh, kw) alike.
 */
export function inflate(w: Tensor, axis: SpatialAxis): Tensor {
  const [O, I, kh, kw] = w.shape as [number, number, number, number];
  const t = axis === 2 ? kw : kh;
  const src = w.data as Float32Array;
  const shape3 = [kh, kw];
  shape3.splice(axis, 0, t);
  const [e0, e1, e2] = shape3 as [number, number, number];
  const out = new Float32Array(O * I * e0 * e1 * e2);
  const tt = Math.fround(t);
  for (let oi = 0; oi < O * I; oi++) {
    for (let a = 0; a < kh; a++) {
      for (let b = 0; b < kw; b++) {
        const v = Math.fround(src[oi * kh * kw + a * kw + b]! / tt);
        for (let r = 0; r < t; r++) {
          const idx = axis === 0 ? [r, a, b] : axis === 1 ? [a, r, b] : [a, b, r];
          out[oi * e0 * e1 * e2 + idx[0]! * e1 * e2 + idx[1]! * e2 + idx[2]!] = v;
        }
      }
    }
  }
  return { dtype: 'F32', shape: [O, I, e0, e1, e2], data: out };
}
