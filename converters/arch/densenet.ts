/**
 * DenseNet-121/161/169/201 (torchvision): stem conv 7x7/2 + BN + ReLU + max-pool, dense
 * blocks (BN-ReLU-conv1x1-BN-ReLU-conv3x3, outputs concatenated), transitions (BN-ReLU-
 * conv1x1-avgpool 2x2), final BN, then ReLU + global average pool + classifier as its
 * forward computes them. Old files name `norm1` as `norm.1`; those keys are renamed.
 */
import { GraphBuilder } from '../graph/builder.js';
import type { StateDict } from '../tensor.js';
import { shapeOf } from './keys.js';
import type { ArchBuilder, BuildOptions, BuiltNetwork, Detected } from './types.js';

const KNOWN: Record<string, { blocks: number[]; growth: number; init: number }> = {
  densenet121: { blocks: [6, 12, 24, 16], growth: 32, init: 64 },
  densenet161: { blocks: [6, 12, 36, 24], growth: 48, init: 96 },
  densenet169: { blocks: [6, 12, 32, 32], growth: 32, init: 64 },
  densenet201: { blocks: [6, 12, 48, 32], growth: 32, init: 64 },
};

const LEGACY = /^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$/;

function blockCount(sd: StateDict): number {
  let n = 0;
  while (sd.has(`features.denseblock${n + 1}.denselayer1.norm1.weight`)) n++;
  return n;
}

export const densenet: ArchBuilder = {
  family: 'densenet',
  architectures: Object.keys(KNOWN),

  normalize(sd: StateDict): StateDict {
    if (![...sd.keys()].some((k) => LEGACY.test(k))) return sd;
    const out: StateDict = new Map();
    for (const [k, t] of sd) {
      const m = LEGACY.exec(k);
      out.set(m ? `${m[1]}${m[2]}` : k, t);
    }
    return out;
  },

  detect(sd: StateDict): Detected | undefined {
    if (!sd.has('features.conv0.weight') || !sd.has('features.denseblock1.denselayer1.norm1.weight')) return undefined;
    const n = blockCount(sd);
    const blocks = Array.from({ length: n }, (_, i) => maxDenseLayer(sd, i + 1));
    const growth = shapeOf(sd, 'features.denseblock1.denselayer1.conv2.weight')[0]!;
    const init = shapeOf(sd, 'features.conv0.weight')[0]!;
    const arch = Object.entries(KNOWN).find(([, k]) => k.blocks.join() === blocks.join() && k.growth === growth && k.init === init)?.[0] ?? 'densenet-like';
    return {
      family: 'densenet',
      arch,
      layout: 'torchvision',
      classifier: { weight: 'classifier.weight', bias: sd.has('classifier.bias') ? 'classifier.bias' : undefined },
      stem: 'features.conv0.weight',
      headInit: 'torch-linear-zero-bias',
      featureDim: shapeOf(sd, 'features.norm5.weight')[0]!,
      headFits3d: true,
    };
  },

  build(sd: StateDict, detected: Detected, options: BuildOptions): BuiltNetwork {
    const b = new GraphBuilder(sd, detected.arch);
    const cin = shapeOf(sd, 'features.conv0.weight')[1]!;
    let x = b.input('input', ['N', cin, 'H', 'W']);
    x = b.relu(b.bn(b.conv(x, 'features.conv0', { stride: 2, pad: 3 }), 'features.norm0'), 'features.relu0');
    x = b.maxPool(x, 3, 2, 1, 'features.pool0');
    const n = blockCount(sd);
    for (let blk = 1; blk <= n; blk++) {
      const features = [x];
      const layers = maxDenseLayer(sd, blk);
      for (let l = 1; l <= layers; l++) {
        const p = `features.denseblock${blk}.denselayer${l}`;
        const inp = features.length === 1 ? features[0]! : b.concat(features, 1, `${p}.cat`);
        let y = b.conv(b.relu(b.bn(inp, `${p}.norm1`), `${p}.relu1`), `${p}.conv1`);
        y = b.conv(b.relu(b.bn(y, `${p}.norm2`), `${p}.relu2`), `${p}.conv2`, { pad: 1 });
        features.push(y);
      }
      x = b.concat(features, 1, `features.denseblock${blk}`);
      if (blk < n) {
        const p = `features.transition${blk}`;
        x = b.avgPool(b.conv(b.relu(b.bn(x, `${p}.norm`), `${p}.relu`), `${p}.conv`), 2, 2, 0, `${p}.pool`);
      }
    }
    x = b.relu(b.bn(x, 'features.norm5'), 'features.relu5');
    let out = b.flatten(b.globalAvgPool(x, 'avgpool'), 'flatten');
    if (!options.features) out = b.linear(out, 'classifier');
    b.output(out, 'output');
    return { graph: b.build(), detected };
  },
};

function maxDenseLayer(sd: StateDict, block: number): number {
  let l = 0;
  while (sd.has(`features.denseblock${block}.denselayer${l + 1}.norm1.weight`)) l++;
  return l;
}

