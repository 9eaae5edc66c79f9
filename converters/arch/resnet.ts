/**
 * ResNet, ResNeXt and Wide ResNet (torchvision, and timm's `resnet*` weights, which use the
 * same keys): stem conv 7x7/2 + BN + ReLU + max-pool 3x3/2, four stages of basic or
 * bottleneck blocks (stride on the 3x3 convolution, "v1.5"), global average pool, fc.
 */
import { GraphBuilder } from '../graph/builder.js';
import type { StateDict } from '../tensor.js';
import { maxIndex, shapeOf } from './keys.js';
import type { ArchBuilder, BuildOptions, BuiltNetwork, Detected } from './types.js';

const KNOWN: Record<string, { bottleneck: boolean; blocks: number[]; groups: number; width: number }> = {
  resnet18: { bottleneck: false, blocks: [2, 2, 2, 2], groups: 1, width: 64 },
  resnet34: { bottleneck: false, blocks: [3, 4, 6, 3], groups: 1, width: 64 },
  resnet50: { bottleneck: true, blocks: [3, 4, 6, 3], groups: 1, width: 64 },
  resnet101: { bottleneck: true, blocks: [3, 4, 23, 3], groups: 1, width: 64 },
  resnet152: { bottleneck: true, blocks: [3, 8, 36, 3], groups: 1, width: 64 },
  resnext50_32x4d: { bottleneck: true, blocks: [3, 4, 6, 3], groups: 32, width: 128 },
  resnext101_32x8d: { bottleneck: true, blocks: [3, 4, 23, 3], groups: 32, width: 256 },
  resnext101_64x4d: { bottleneck: true, blocks: [3, 4, 23, 3], groups: 64, width: 256 },
  wide_resnet50_2: { bottleneck: true, blocks: [3, 4, 6, 3], groups: 1, width: 128 },
  wide_resnet101_2: { bottleneck: true, blocks: [3, 4, 23, 3], groups: 1, width: 128 },
};

function structure(sd: StateDict): { bottleneck: boolean; blocks: number[]; groups: number; width: number } {
  const bottleneck = sd.has('layer1.0.conv3.weight');
  const blocks = [1, 2, 3, 4].map((i) => maxIndex(sd, `layer${i}.`) + 1);
  const w2 = shapeOf(sd, 'layer1.0.conv2.weight');
  return { bottleneck, blocks, groups: w2[0]! / w2[1]!, width: w2[0]! };
}

export const resnet: ArchBuilder = {
  family: 'resnet',
  architectures: Object.keys(KNOWN),

  detect(sd: StateDict): Detected | undefined {
    if (!sd.has('conv1.weight') || !sd.has('bn1.weight') || !sd.has('layer1.0.conv1.weight') || !sd.has('layer4.0.conv1.weight')) return undefined;
    const s = structure(sd);
    const arch =
      Object.entries(KNOWN).find(([, k]) => k.bottleneck === s.bottleneck && k.blocks.join() === s.blocks.join() && k.groups === s.groups && k.width === s.width)?.[0] ??
      (s.groups > 1 ? 'resnext-like' : 'resnet-like');
    const fc = sd.get('fc.weight');
    const last = s.bottleneck ? 'conv3' : 'conv2';
    const featureDim = fc ? fc.shape[1]! : shapeOf(sd, `layer4.${s.blocks[3]! - 1}.${last}.weight`)[0]!;
    return {
      family: 'resnet',
      arch,
      layout: 'torchvision',
      classifier: { weight: 'fc.weight', bias: sd.has('fc.bias') ? 'fc.bias' : undefined },
      stem: 'conv1.weight',
      headInit: 'torch-linear',
      featureDim,
      headFits3d: true,
    };
  },

  build(sd: StateDict, detected: Detected, options: BuildOptions): BuiltNetwork {
    const s = structure(sd);
    const b = new GraphBuilder(sd, detected.arch);
    const cin = shapeOf(sd, 'conv1.weight')[1]!;
    let x = b.input('input', ['N', cin, 'H', 'W']);
    x = b.relu(b.bn(b.conv(x, 'conv1', { stride: 2, pad: 3 }), 'bn1'), 'relu');
    x = b.maxPool(x, 3, 2, 1, 'maxpool');
    for (let layer = 1; layer <= 4; layer++) {
      for (let i = 0; i < s.blocks[layer - 1]!; i++) {
        const p = `layer${layer}.${i}`;
        const stride = layer > 1 && i === 0 ? 2 : 1;
        let y: string;
        if (s.bottleneck) {
          const g = shapeOf(sd, `${p}.conv2.weight`);
          y = b.relu(b.bn(b.conv(x, `${p}.conv1`), `${p}.bn1`), `${p}.relu1`);
          y = b.relu(b.bn(b.conv(y, `${p}.conv2`, { stride, pad: 1, group: g[0]! / g[1]! }), `${p}.bn2`), `${p}.relu2`);
          y = b.bn(b.conv(y, `${p}.conv3`), `${p}.bn3`);
        } else {
          y = b.relu(b.bn(b.conv(x, `${p}.conv1`, { stride, pad: 1 }), `${p}.bn1`), `${p}.relu1`);
          y = b.bn(b.conv(y, `${p}.conv2`, { pad: 1 }), `${p}.bn2`);
        }
        const shortcut = b.has(`${p}.downsample.0.weight`) ? b.bn(b.conv(x, `${p}.downsample.0`, { stride }), `${p}.downsample.1`) : x;
        x = b.relu(b.add(y, shortcut, `${p}.add`), `${p}.relu`);
      }
    }
    let out = b.flatten(b.globalAvgPool(x, 'avgpool'), 'flatten');
    if (!options.features) out = b.linear(out, 'fc');
    b.output(out, 'output');
    return { graph: b.build(), detected };
  },
};
