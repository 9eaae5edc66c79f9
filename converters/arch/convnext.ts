/**
 * ConvNeXt-T/S/B/L in torchvision's key layout (`features.*`, `layer_scale` (C,1,1)) and in
 * timm's (`stem.*`, `stages.*`, `gamma` (C,)): stem conv 4x4/4 + channel LayerNorm, stages
 * of blocks (depthwise 7x7 conv, LayerNorm and an MLP over channels-last, layer scale,
 * residual), downsampling by channel LayerNorm + conv 2x2/2, then global average pool,
 * LayerNorm and the classifier.
 */
import { GraphBuilder } from '../graph/builder.js';
import type { StateDict } from '../tensor.js';
import { maxIndex, shapeOf } from './keys.js';
import type { ArchBuilder, BuildOptions, BuiltNetwork, Detected } from './types.js';

const KNOWN: Record<string, { depths: number[]; dims: number[] }> = {
  convnext_tiny: { depths: [3, 3, 9, 3], dims: [96, 192, 384, 768] },
  convnext_small: { depths: [3, 3, 27, 3], dims: [96, 192, 384, 768] },
  convnext_base: { depths: [3, 3, 27, 3], dims: [128, 256, 512, 1024] },
  convnext_large: { depths: [3, 3, 27, 3], dims: [192, 384, 768, 1536] },
};

const EPS = 1e-6;

/** Key names of one layout. */
interface Names {
  stemConv: string;
  stemNorm: string;
  stages: number;
  blocks(stage: number): number;
  block(stage: number, j: number): { dw: string; norm: string; fc1: string; fc2: string; scale: string };
  downsample(stage: number): { norm: string; conv: string } | undefined;
  headNorm: string;
  fc: string;
}

function torchvisionNames(sd: StateDict): Names {
  const stages = Math.floor((maxIndex(sd, 'features.') + 1) / 2);
  return {
    stemConv: 'features.0.0',
    stemNorm: 'features.0.1',
    stages,
    blocks: (s) => maxIndex(sd, `features.${2 * s + 1}.`) + 1,
    block: (s, j) => {
      const p = `features.${2 * s + 1}.${j}`;
      return { dw: `${p}.block.0`, norm: `${p}.block.2`, fc1: `${p}.block.3`, fc2: `${p}.block.5`, scale: `${p}.layer_scale` };
    },
    downsample: (s) => (s === 0 ? undefined : { norm: `features.${2 * s}.0`, conv: `features.${2 * s}.1` }),
    headNorm: 'classifier.0',
    fc: 'classifier.2',
  };
}

function timmNames(sd: StateDict): Names {
  return {
    stemConv: 'stem.0',
    stemNorm: 'stem.1',
    stages: maxIndex(sd, 'stages.') + 1,
    blocks: (s) => maxIndex(sd, `stages.${s}.blocks.`) + 1,
    block: (s, j) => {
      const p = `stages.${s}.blocks.${j}`;
      return { dw: `${p}.conv_dw`, norm: `${p}.norm`, fc1: `${p}.mlp.fc1`, fc2: `${p}.mlp.fc2`, scale: `${p}.gamma` };
    },
    downsample: (s) => (sd.has(`stages.${s}.downsample.1.weight`) ? { norm: `stages.${s}.downsample.0`, conv: `stages.${s}.downsample.1` } : undefined),
    headNorm: 'head.norm',
    fc: 'head.fc',
  };
}

function names(sd: StateDict, layout: 'torchvision' | 'timm'): Names {
  return layout === 'timm' ? timmNames(sd) : torchvisionNames(sd);
}

export const convnext: ArchBuilder = {
  family: 'convnext',
  architectures: Object.keys(KNOWN),

  detect(sd: StateDict): Detected | undefined {
    let layout: 'torchvision' | 'timm';
    if (sd.has('features.0.0.weight') && sd.has('features.1.0.layer_scale')) layout = 'torchvision';
    else if (sd.has('stem.0.weight') && sd.has('stages.0.blocks.0.conv_dw.weight')) layout = 'timm';
    else return undefined;
    const n = names(sd, layout);
    const depths = Array.from({ length: n.stages }, (_, s) => n.blocks(s));
    const dims = Array.from({ length: n.stages }, (_, s) => shapeOf(sd, `${n.block(s, 0).dw}.weight`)[0]!);
    const arch = Object.entries(KNOWN).find(([, k]) => k.depths.join() === depths.join() && k.dims.join() === dims.join())?.[0] ?? 'convnext-like';
    return {
      family: 'convnext',
      arch,
      layout,
      classifier: { weight: `${n.fc}.weight`, bias: sd.has(`${n.fc}.bias`) ? `${n.fc}.bias` : undefined },
      stem: `${n.stemConv}.weight`,
      headInit: 'trunc-normal-0.02',
      featureDim: dims[dims.length - 1]!,
      headFits3d: true,
    };
  },

  build(sd: StateDict, detected: Detected, options: BuildOptions): BuiltNetwork {
    const n = names(sd, detected.layout);
    const b = new GraphBuilder(sd, detected.arch);
    const cin = shapeOf(sd, `${n.stemConv}.weight`)[1]!;
    let x = b.input('input', ['N', cin, 'H', 'W']);
    x = b.layerNorm2d(b.conv(x, n.stemConv, { stride: 4 }), n.stemNorm, EPS);
    for (let s = 0; s < n.stages; s++) {
      const ds = n.downsample(s);
      if (ds) x = b.conv(b.layerNorm2d(x, ds.norm, EPS), ds.conv, { stride: 2 });
      for (let j = 0; j < n.blocks(s); j++) {
        const k = n.block(s, j);
        const c = shapeOf(sd, `${k.dw}.weight`)[0]!;
        let y = b.conv(x, k.dw, { pad: 3, group: c });
        y = b.transpose(y, [0, 2, 3, 1], `${k.dw}.to_last`);
        y = b.layerNorm(y, k.norm, EPS);
        y = b.linearLastAxis(y, k.fc1);
        y = b.gelu(y, `${k.fc1}.gelu`);
        y = b.linearLastAxis(y, k.fc2);
        y = b.transpose(y, [0, 3, 1, 2], `${k.fc2}.to_first`);
        y = b.mul(y, scaleTensor(b, k.scale, c), `${k.scale}.mul`);
        x = b.add(y, x, `${k.dw}.residual`);
      }
    }
    x = b.layerNorm2d(b.globalAvgPool(x, 'avgpool'), n.headNorm, EPS);
    let out = b.flatten(x, 'flatten');
    if (!options.features) out = b.linear(out, n.fc);
    b.output(out, 'output');
    return { graph: b.build(), detected };
  },
};

/** The layer scale as a (C, 1, 1) constant: torchvision stores it so, timm as (C,). */
function scaleTensor(b: GraphBuilder, key: string, c: number): string {
  return b.tensor(key).shape.length === 3 ? b.weight(key) : b.weightAs(key, [c, 1, 1]);
}
