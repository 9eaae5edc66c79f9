/**
 * EfficientNet-B0..B7 (torchvision): stem conv 3x3/2 + BN + SiLU, seven stages of MBConv
 * blocks (optional 1x1 expansion, depthwise conv, squeeze-excitation with SiLU and sigmoid,
 * 1x1 projection, residual when the shape allows), a 1x1 head conv, global average pool
 * and the classifier. Strides are not in a state dict: they follow the stage (the same for
 * every B variant); B5..B7 use BatchNorm epsilon 1e-3.
 */
import { GraphBuilder } from '../graph/builder.js';
import type { StateDict } from '../tensor.js';
import { maxIndex, shapeOf } from './keys.js';
import type { ArchBuilder, BuildOptions, BuiltNetwork, Detected } from './types.js';

const STAGE_STRIDES = [1, 2, 2, 2, 1, 2, 1];
const BASE = [
  [1, 32, 16, 1],
  [6, 16, 24, 2],
  [6, 24, 40, 2],
  [6, 40, 80, 3],
  [6, 80, 112, 3],
  [6, 112, 192, 4],
  [6, 192, 320, 1],
] as const;
const VARIANTS: Record<string, [number, number]> = {
  efficientnet_b0: [1.0, 1.0],
  efficientnet_b1: [1.0, 1.1],
  efficientnet_b2: [1.1, 1.2],
  efficientnet_b3: [1.2, 1.4],
  efficientnet_b4: [1.4, 1.8],
  efficientnet_b5: [1.6, 2.2],
  efficientnet_b6: [1.8, 2.6],
  efficientnet_b7: [2.0, 3.1],
};

function makeDivisible(v: number, divisor = 8): number {
  const n = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  return n < 0.9 * v ? n + divisor : n;
}

/** Stem width, stage widths and depths of a variant, as torchvision computes them. */
function variantShape(width: number, depth: number): string {
  const stem = makeDivisible(32 * width);
  const stages = BASE.map(([, , out, n]) => `${makeDivisible(out * width)}x${Math.ceil(n * depth)}`);
  return [stem, ...stages].join(',');
}

function observedShape(sd: StateDict): string {
  const stem = shapeOf(sd, 'features.0.0.weight')[0]!;
  const stages = [1, 2, 3, 4, 5, 6, 7].map((s) => {
    const n = maxIndex(sd, `features.${s}.`) + 1;
    const last = `features.${s}.${n - 1}.block`;
    const j = maxIndex(sd, `${last}.`);
    return `${shapeOf(sd, `${last}.${j}.0.weight`)[0]}x${n}`;
  });
  return [stem, ...stages].join(',');
}

export const efficientnet: ArchBuilder = {
  family: 'efficientnet',
  architectures: Object.keys(VARIANTS),

  detect(sd: StateDict): Detected | undefined {
    if (!sd.has('features.0.0.weight') || !sd.has('features.1.0.block.0.0.weight') || !sd.has('features.8.0.weight')) return undefined;
    const observed = observedShape(sd);
    const arch = Object.entries(VARIANTS).find(([, [w, d]]) => variantShape(w, d) === observed)?.[0] ?? 'efficientnet-like';
    const big = arch === 'efficientnet_b5' || arch === 'efficientnet_b6' || arch === 'efficientnet_b7';
    return {
      family: 'efficientnet',
      arch,
      layout: 'torchvision',
      classifier: { weight: 'classifier.1.weight', bias: sd.has('classifier.1.bias') ? 'classifier.1.bias' : undefined },
      stem: 'features.0.0.weight',
      headInit: 'uniform-out',
      featureDim: shapeOf(sd, 'features.8.0.weight')[0]!,
      headFits3d: true,
      bnEps: big ? 1e-3 : 1e-5,
    };
  },

  build(sd: StateDict, detected: Detected, options: BuildOptions): BuiltNetwork {
    const eps = detected.bnEps ?? 1e-5;
    const b = new GraphBuilder(sd, detected.arch);
    const cna = (x: string, p: string, o: { stride?: number; group?: number; act?: boolean } = {}): string => {
      const k = shapeOf(sd, `${p}.0.weight`)[2]!;
      const y = b.bn(b.conv(x, `${p}.0`, { stride: o.stride ?? 1, pad: (k - 1) >> 1, group: o.group ?? 1 }), `${p}.1`, eps);
      return o.act === false ? y : b.silu(y, `${p}.2`);
    };
    const cin = shapeOf(sd, 'features.0.0.weight')[1]!;
    let x = b.input('input', ['N', cin, 'H', 'W']);
    x = cna(x, 'features.0', { stride: 2 });
    for (let s = 1; s <= 7; s++) {
      const n = maxIndex(sd, `features.${s}.`) + 1;
      for (let l = 0; l < n; l++) {
        const p = `features.${s}.${l}.block`;
        const first = shapeOf(sd, `${p}.0.0.weight`);
        const expand = first[2] === 1 && b.has(`${p}.3.0.weight`);
        const inC = expand ? first[1]! : first[0]!;
        let j = 0;
        let y = x;
        if (expand) y = cna(y, `${p}.${j++}`);
        const hidden = shapeOf(sd, `${p}.${j}.0.weight`)[0]!;
        y = cna(y, `${p}.${j++}`, { stride: l === 0 ? STAGE_STRIDES[s - 1]! : 1, group: hidden });
        y = squeezeExcite(b, y, `${p}.${j++}`);
        y = cna(y, `${p}.${j}`, { act: false });
        const outC = shapeOf(sd, `${p}.${j}.0.weight`)[0]!;
        x = l > 0 || (STAGE_STRIDES[s - 1] === 1 && inC === outC) ? b.add(y, x, `features.${s}.${l}.residual`) : y;
      }
    }
    x = cna(x, 'features.8');
    let out = b.flatten(b.globalAvgPool(x, 'avgpool'), 'flatten');
    if (!options.features) out = b.linear(out, 'classifier.1');
    b.output(out, 'output');
    return { graph: b.build(), detected };
  },
};

/** torchvision's SqueezeExcitation with SiLU and a sigmoid gate. */
function squeezeExcite(b: GraphBuilder, x: string, p: string): string {
  let s = b.globalAvgPool(x, `${p}.avgpool`);
  s = b.silu(b.conv(s, `${p}.fc1`), `${p}.activation`);
  s = b.sigmoid(b.conv(s, `${p}.fc2`), `${p}.scale_activation`);
  return b.mul(s, x, p);
}
