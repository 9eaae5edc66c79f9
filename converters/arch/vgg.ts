/**
 * VGG-11/13/16/19, with and without BatchNorm (torchvision): 3x3 convolutions (+BN) + ReLU
 * with 2x2 max-pools between stages, an adaptive average pool to 7x7, and a classifier of
 * three Linear layers over the flattened 7x7 map. That classifier only fits 2D maps of one
 * size; in 3D the network ends in the globally pooled features or a new head.
 */
import { ConversionError } from '../errors.js';
import { GraphBuilder } from '../graph/builder.js';
import type { StateDict } from '../tensor.js';
import { indices, shapeOf } from './keys.js';
import type { ArchBuilder, BuildOptions, BuiltNetwork, Detected } from './types.js';

const KNOWN: Record<string, number[]> = {
  vgg11: [1, 1, 2, 2, 2],
  vgg13: [2, 2, 2, 2, 2],
  vgg16: [2, 2, 3, 3, 3],
  vgg19: [2, 2, 4, 4, 4],
};

type Layer = { kind: 'conv'; index: number; bn?: number } | { kind: 'pool' };

/** The sequence of `features`, recovered from which indices hold parameters. */
function layers(sd: StateDict): Layer[] {
  const idx = indices(sd, 'features.');
  const convs = idx.filter((i) => sd.get(`features.${i}.weight`)?.shape.length === 4);
  const out: Layer[] = [];
  convs.forEach((c, j) => {
    const bn = sd.has(`features.${c + 1}.running_mean`) ? c + 1 : undefined;
    out.push({ kind: 'conv', index: c, bn });
    const next = convs[j + 1];
    const step = bn === undefined ? 2 : 3;
    if (next === undefined || next - c > step) out.push({ kind: 'pool' });
  });
  return out;
}

function stages(ls: Layer[]): number[] {
  const counts: number[] = [];
  let n = 0;
  for (const l of ls) {
    if (l.kind === 'conv') n++;
    else {
      counts.push(n);
      n = 0;
    }
  }
  return counts;
}

export const vgg: ArchBuilder = {
  family: 'vgg',
  architectures: Object.keys(KNOWN).flatMap((k) => [k, `${k}_bn`]),

  detect(sd: StateDict): Detected | undefined {
    if (!sd.has('features.0.weight') || !sd.has('classifier.0.weight') || shapeOf(sd, 'features.0.weight').length !== 4) return undefined;
    if (sd.has('features.0.0.weight') || sd.has('features.1.0.weight')) return undefined;
    const ls = layers(sd);
    const bn = ls.some((l) => l.kind === 'conv' && l.bn !== undefined);
    const counts = stages(ls);
    const base = Object.entries(KNOWN).find(([, c]) => c.join() === counts.join())?.[0];
    const last = ls.filter((l): l is Extract<Layer, { kind: 'conv' }> => l.kind === 'conv').pop()!;
    return {
      family: 'vgg',
      arch: base ? `${base}${bn ? '_bn' : ''}` : 'vgg-like',
      layout: 'torchvision',
      classifier: { weight: 'classifier.6.weight', bias: sd.has('classifier.6.bias') ? 'classifier.6.bias' : undefined },
      stem: 'features.0.weight',
      headInit: 'normal-0.01',
      featureDim: shapeOf(sd, `features.${last.index}.weight`)[0]!,
      headFits3d: false,
    };
  },

  build(sd: StateDict, detected: Detected, options: BuildOptions): BuiltNetwork {
    const b = new GraphBuilder(sd, detected.arch);
    const cin = shapeOf(sd, 'features.0.weight')[1]!;
    const ls = layers(sd);
    let x = b.input('input', ['N', cin, options.features ? 'H' : options.inputSize?.[0] ?? 224, options.features ? 'W' : options.inputSize?.[1] ?? 224]);
    let pools = 0;
    for (const l of ls) {
      if (l.kind === 'pool') {
        x = b.maxPool(x, 2, 2, 0, `features.pool${pools++}`);
        continue;
      }
      x = b.conv(x, `features.${l.index}`, { pad: 1 });
      if (l.bn !== undefined) x = b.bn(x, `features.${l.bn}`);
      x = b.relu(x, `features.${l.index}.relu`);
    }
    let out: string;
    if (options.features) {
      out = b.flatten(b.globalAvgPool(x, 'avgpool'), 'flatten');
    } else {
      const [h, w] = options.inputSize ?? [224, 224];
      const fh = Math.floor(h / 2 ** pools);
      const fw = Math.floor(w / 2 ** pools);
      if (fh < 1 || fw < 1) throw new ConversionError(`VGG input ${h}x${w} is too small`);
      x = adaptiveAvgPool(b, x, fh, fw, 7);
      out = b.flatten(x, 'flatten');
      out = b.relu(b.linear(out, 'classifier.0'), 'classifier.1');
      out = b.relu(b.linear(out, 'classifier.3'), 'classifier.4');
      out = b.linear(out, 'classifier.6');
    }
    b.output(out, 'output');
    return { graph: b.build(), detected };
  },
};

/** AdaptiveAvgPool2d(o) of a (h, w) map, as two matrix products with pooling matrices. */
function adaptiveAvgPool(b: GraphBuilder, x: string, h: number, w: number, o: number): string {
  const matrix = (n: number): Float32Array => {
    const m = new Float32Array(o * n);
    for (let i = 0; i < o; i++) {
      const s = Math.floor((i * n) / o);
      const e = Math.ceil(((i + 1) * n) / o);
      for (let j = s; j < e; j++) m[i * n + j] = 1 / (e - s);
    }
    return m;
  };
  const pw = matrix(w);
  const pwT = new Float32Array(w * o);
  for (let i = 0; i < o; i++) for (let j = 0; j < w; j++) pwT[j * o + i] = pw[i * w + j]!;
  const cols = b.op('MatMul', [x, b.constant('avgpool.cols', { dtype: 'F32', shape: [w, o], data: pwT })], {}, 'avgpool.w');
  return b.op('MatMul', [b.constant('avgpool.rows', { dtype: 'F32', shape: [o, h], data: matrix(h) }), cols], {}, 'avgpool');
}
