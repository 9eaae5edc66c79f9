/**
 * Lowering one 2D transposed convolution (ONNX `ConvTranspose`, PyTorch `ConvTranspose2d`) into
 * its 3D form for every mode (converters/SPEC-acs.md section 14).
 *
 * The weight is `(Cin, Cout/g, kh, kw)`. ACS splits the OUTPUT channels as for a Conv (for
 * g > 1 the groups, each part keeping its input rows), and gives each part's kernel a unit
 * extent along its collapsed axis. Along that axis input plane `i` lands on output plane
 * `i * s + c` with `c = d * floor((k-1)/2) - p` (the kernel tap nearest the centre), so the
 * axis grows by the stride like the others and every axis has the size
 * `(n-1)*s - 2p + d(k-1) + 1 + output_padding`; planes that receive nothing hold the bias.
 * The shift and the size are the same at every volume size, so the graph needs no shape
 * arithmetic: a 3D ConvTranspose whose pads on the collapsed axis crop, then a Pad that adds
 * zero planes where the shift or the size asks for more.
 */
import { ConversionError } from '../errors.js';
import { acsParts, type Split3 } from '../modes/split.js';
import type { Tensor } from '../tensor.js';
import type { Emitter } from './emitter.js';
import { A } from './ir.js';
import { inflate, softmaxRows, viewSettings, type AxisSetting, type Conv2dSpec, type LowerConvOptions, type LoweredConv, type SpatialAxis } from './lower-conv.js';

/** One 2D transposed convolution, as found in the 2D graph. */
export interface ConvTranspose2dSpec extends Conv2dSpec {
  /** `output_padding` of the H and W axes. */
  outputPadding: [number, number];
}

/** Where the collapsed axis puts input plane 0, and how many planes it adds past the last one. */
export function collapsedPlacement(a: AxisSetting, outputPadding: number): { shift: number; extra: number } {
  const shift = a.d * Math.floor((a.k - 1) / 2) - a.p;
  return { shift, extra: a.d * (a.k - 1) - 2 * a.p + outputPadding - shift };
}

/** Copy rows [r0, r1) and columns [c0, c1) of a (Cin, Cout/g, kh, kw) kernel, with a unit axis at 2 + axis. */
function transposedSlice(w: Tensor, rows: [number, number], cols: [number, number], axis: SpatialAxis | undefined): Tensor {
  const [, per, kh, kw] = w.shape as [number, number, number, number];
  const src = w.data as Float32Array;
  const nc = cols[1] - cols[0];
  const out = new Float32Array((rows[1] - rows[0]) * nc * kh * kw);
  for (let r = rows[0]; r < rows[1]; r++) {
    const from = (r * per + cols[0]) * kh * kw;
    out.set(src.subarray(from, from + nc * kh * kw), (r - rows[0]) * nc * kh * kw);
  }
  const shape = [rows[1] - rows[0], nc, kh, kw];
  if (axis !== undefined) shape.splice(2 + axis, 0, 1);
  return { dtype: 'F32', shape, data: out };
}

/**
 * A 3D ConvTranspose whose output on each axis is the full scatter cropped by `begin` planes at
 * the start and `end` at the end; a negative crop adds zero planes instead (a Pad), and the
 * bias is then added after it. `output_padding` is never written: it is a smaller end crop,
 * and onnxruntime refuses one that is not below the stride.
 */
function convTranspose3d(
  em: Emitter,
  x: string,
  w: string,
  bias: { name: string; tensor: Tensor } | undefined,
  a: { kernel: number[]; strides: number[]; dilations: number[]; begin: number[]; end: number[] },
  groups: number,
  hint: string,
): string {
  const grow = [...a.begin, ...a.end].some((v) => v < 0);
  const b = bias && (grow ? em.constant(bias.name, { ...bias.tensor, shape: [bias.tensor.shape[0]!, 1, 1, 1] }) : em.constant(bias.name, bias.tensor));
  const y = em.op('ConvTranspose', !grow && b ? [x, w, b] : [x, w], {
    kernel_shape: A.ints(a.kernel),
    strides: A.ints(a.strides),
    pads: A.ints([...a.begin, ...a.end].map((v) => Math.max(0, v))),
    dilations: A.ints(a.dilations),
    group: A.int(groups),
  }, hint);
  if (!grow) return y;
  const pads = [0, 0, ...a.begin.map((v) => Math.max(0, -v)), 0, 0, ...a.end.map((v) => Math.max(0, -v))];
  const placed = em.op('Pad', [y, em.ints(pads)], { mode: A.str('constant') }, `${hint}.place`);
  return b ? em.op('Add', [placed, b], {}, `${hint}.bias`) : placed;
}

/** The output_padding of each 3D axis (D takes H's). */
function outputPads(c: ConvTranspose2dSpec, axis: SpatialAxis): number[] {
  const [oh, ow] = c.outputPadding;
  return axis === 2 ? [oh, ow, ow] : [oh, oh, ow];
}

/** A view: a ConvTranspose with a unit kernel extent on `axis`, the collapsed axis placed by section 14. */
function transposedView(
  em: Emitter,
  c: ConvTranspose2dSpec,
  axis: SpatialAxis,
  x: string,
  weight: Tensor,
  groups: number,
  bias: Tensor | undefined,
  hint: string,
  weights: string[],
): string {
  const set = viewSettings(c, axis);
  const op = outputPads(c, axis);
  const { shift, extra } = collapsedPlacement(set[axis], op[axis]!);
  const kernel = set.map((a) => a.k);
  const dilations = set.map((a) => a.d);
  const begin = set.map((a) => a.p);
  const end = set.map((a, i) => a.p - op[i]!);
  kernel[axis] = 1;
  dilations[axis] = 1;
  begin[axis] = -shift;
  end[axis] = -extra;
  const tail = hint.split('/').pop();
  const w = em.constant(`${c.weightName}/${tail}`, weight);
  weights.push(w);
  const b = bias ? { name: `${c.biasName}/${tail}`, tensor: bias } : undefined;
  return convTranspose3d(em, x, w, b, { kernel, strides: set.map((a) => a.s), dilations, begin, end }, groups, hint);
}

const VIEW_NAMES = ['a', 'c', 's'] as const;

/** Lower a 2D transposed convolution to 3D in the given mode. */
export function lowerConvTranspose(em: Emitter, c: ConvTranspose2dSpec, o: LowerConvOptions): LoweredConv {
  const [cin, per] = c.weight.shape as [number, number];
  const O = per * c.g;
  const weights: string[] = [];
  const base = c.name;
  const bias = c.bias ? { ...c.bias, data: c.bias.data as Float32Array } : undefined;
  switch (o.mode) {
    case 'acs': {
      const parts = acsParts(O, cin, c.g, o.split as Split3 | undefined, `conv '${c.name}'`);
      const outs: string[] = [];
      parts.forEach((part, i) => {
        if (part.out[1] === part.out[0]) return;
        const axis = i as SpatialAxis;
        const hint = `${base}/acs_${VIEW_NAMES[i]}`;
        let x = c.x;
        if (part.in[0] !== 0 || part.in[1] !== cin) {
          x = em.op('Slice', [x, em.ints([part.in[0]]), em.ints([part.in[1]]), em.ints([1])], {}, `${hint}.channels`);
        }
        const w = transposedSlice(c.weight, part.in, c.g === 1 ? part.out : [0, per], axis);
        const b = bias ? { dtype: 'F32' as const, shape: [part.out[1] - part.out[0]], data: bias.data.subarray(part.out[0], part.out[1]) } : undefined;
        outs.push(transposedView(em, c, axis, x, w, part.groups, b, hint, weights));
      });
      if (outs.length === 0) throw new ConversionError(`conv '${c.name}' has no output channels`);
      const output = outs.length === 1 ? outs[0]! : em.op('Concat', outs, { axis: A.int(1) }, `${base}/acs`);
      return { output, weights, activated: false };
    }
    case '2.5d': {
      const w = transposedSlice(c.weight, [0, cin], [0, per], o.axis);
      return { output: transposedView(em, c, o.axis, c.x, w, c.g, bias, `${base}/2.5d`, weights), weights, activated: false };
    }
    case 'i3d': {
      const w = em.constant(`${c.weightName}/i3d`, inflate(c.weight, o.axis));
      weights.push(w);
      const set = viewSettings(c, o.axis);
      const op = outputPads(c, o.axis);
      const b = bias ? { name: `${c.biasName}/i3d`, tensor: bias } : undefined;
      const a = { kernel: set.map((x) => x.k), strides: set.map((x) => x.s), dilations: set.map((x) => x.d), begin: set.map((x) => x.p), end: set.map((x, i) => x.p - op[i]!) };
      return { output: convTranspose3d(em, c.x, w, b, a, c.g, `${base}/i3d`), weights, activated: false };
    }
    case 'mean-acs':
    case 'soft-acs': {
      const views = ([0, 1, 2] as SpatialAxis[]).map((axis) =>
        transposedView(em, c, axis, c.x, transposedSlice(c.weight, [0, cin], [0, per], axis), c.g, undefined, `${base}/${o.mode}_${VIEW_NAMES[axis]}`, weights),
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
      if (!bias) return { output: sum, weights, activated: false };
      const b = em.constant(`${c.biasName}/3d`, { dtype: 'F32', shape: [O, 1, 1, 1], data: bias.data });
      return { output: em.op('Add', [sum, b], {}, `${base}/bias`), weights, activated: false };
    }
  }
}
