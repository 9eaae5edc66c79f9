/**
 * MobileNetV2 and MobileNetV3-Small/Large (torchvision). Their strides, activations and
 * (for V3) squeeze-excitation placement are not in a state dict; they follow the block
 * index, as in torchvision's configuration tables, which every width multiplier shares.
 */
import { ConversionError } from '../errors.js';
import { GraphBuilder } from '../graph/builder.js';
import type { StateDict } from '../tensor.js';
import { maxIndex, shapeOf } from './keys.js';
import type { ArchBuilder, BuildOptions, BuiltNetwork, Detected } from './types.js';

/** MobileNetV2: stride of features.1 .. features.17. */
const V2_STRIDES = [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1];

export const mobilenetV2: ArchBuilder = {
  family: 'mobilenet_v2',
  architectures: ['mobilenet_v2'],

  detect(sd: StateDict): Detected | undefined {
    if (!sd.has('features.0.0.weight') || !sd.has('features.1.conv.0.0.weight') || !sd.has('classifier.1.weight')) return undefined;
    const last = maxIndex(sd, 'features.');
    return {
      family: 'mobilenet_v2',
      arch: last === 18 && shapeOf(sd, 'features.0.0.weight')[0] === 32 ? 'mobilenet_v2' : 'mobilenet_v2-like',
      layout: 'torchvision',
      classifier: { weight: 'classifier.1.weight', bias: sd.has('classifier.1.bias') ? 'classifier.1.bias' : undefined },
      stem: 'features.0.0.weight',
      headInit: 'normal-0.01',
      featureDim: shapeOf(sd, `features.${last}.0.weight`)[0]!,
      headFits3d: true,
    };
  },

  build(sd: StateDict, detected: Detected, options: BuildOptions): BuiltNetwork {
    const b = new GraphBuilder(sd, detected.arch);
    const cnr = (x: string, p: string, o: { stride?: number; group?: number } = {}): string => {
      const k = shapeOf(sd, `${p}.0.weight`)[2]!;
      return b.relu6(b.bn(b.conv(x, `${p}.0`, { stride: o.stride ?? 1, pad: (k - 1) >> 1, group: o.group ?? 1 }), `${p}.1`), `${p}.2`);
    };
    const cin = shapeOf(sd, 'features.0.0.weight')[1]!;
    let x = b.input('input', ['N', cin, 'H', 'W']);
    x = cnr(x, 'features.0', { stride: 2 });
    const last = maxIndex(sd, 'features.');
    if (last - 1 !== V2_STRIDES.length) throw new ConversionError(`MobileNetV2 with ${last - 1} inverted-residual blocks (expected ${V2_STRIDES.length})`);
    for (let i = 1; i < last; i++) {
      const p = `features.${i}.conv`;
      const expand = b.has(`${p}.3.weight`);
      let j = 0;
      let y = x;
      const inC = shapeOf(sd, `${p}.0.0.weight`)[expand ? 1 : 0]!;
      if (expand) y = cnr(y, `${p}.${j++}`);
      const hidden = shapeOf(sd, `${p}.${j}.0.weight`)[0]!;
      y = cnr(y, `${p}.${j++}`, { stride: V2_STRIDES[i - 1]!, group: hidden });
      y = b.bn(b.conv(y, `${p}.${j}`), `${p}.${j + 1}`);
      const outC = shapeOf(sd, `${p}.${j}.weight`)[0]!;
      x = V2_STRIDES[i - 1] === 1 && inC === outC ? b.add(x, y, `features.${i}.residual`) : y;
    }
    x = cnr(x, `features.${last}`);
    let out = b.flatten(b.globalAvgPool(x, 'avgpool'), 'flatten');
    if (!options.features) out = b.linear(out, 'classifier.1');
    b.output(out, 'output');
    return { graph: b.build(), detected };
  },
};

/** MobileNetV3 block table: [kernel, use SE, activation, stride] per block. */
const V3: Record<string, [number, boolean, 'RE' | 'HS', number][]> = {
  mobilenet_v3_large: [
    [3, false, 'RE', 1], [3, false, 'RE', 2], [3, false, 'RE', 1], [5, true, 'RE', 2], [5, true, 'RE', 1], [5, true, 'RE', 1],
    [3, false, 'HS', 2], [3, false, 'HS', 1], [3, false, 'HS', 1], [3, false, 'HS', 1], [3, true, 'HS', 1], [3, true, 'HS', 1],
    [5, true, 'HS', 2], [5, true, 'HS', 1], [5, true, 'HS', 1],
  ],
  mobilenet_v3_small: [
    [3, true, 'RE', 2], [3, false, 'RE', 2], [3, false, 'RE', 1], [5, true, 'HS', 2], [5, true, 'HS', 1], [5, true, 'HS', 1],
    [5, true, 'HS', 1], [5, true, 'HS', 1], [5, true, 'HS', 2], [5, true, 'HS', 1], [5, true, 'HS', 1],
  ],
};
const V3_EPS = 1e-3;

export const mobilenetV3: ArchBuilder = {
  family: 'mobilenet_v3',
  architectures: Object.keys(V3),

  detect(sd: StateDict): Detected | undefined {
    if (!sd.has('features.0.0.weight') || !sd.has('features.1.block.0.0.weight') || !sd.has('classifier.3.weight')) return undefined;
    const blocks = maxIndex(sd, 'features.') - 1;
    const variant = blocks === 15 ? 'mobilenet_v3_large' : blocks === 11 ? 'mobilenet_v3_small' : undefined;
    if (!variant) return undefined;
    const exact = (variant === 'mobilenet_v3_large' ? 960 : 576) === shapeOf(sd, `features.${blocks + 1}.0.weight`)[0];
    return {
      family: 'mobilenet_v3',
      arch: exact ? variant : `${variant}-like`,
      layout: 'torchvision',
      classifier: { weight: 'classifier.3.weight', bias: sd.has('classifier.3.bias') ? 'classifier.3.bias' : undefined },
      stem: 'features.0.0.weight',
      headInit: 'normal-0.01',
      featureDim: shapeOf(sd, 'classifier.0.weight')[0]!,
      headFits3d: true,
    };
  },

  build(sd: StateDict, detected: Detected, options: BuildOptions): BuiltNetwork {
    const table = V3[detected.arch.replace(/-like$/, '')]!;
    const b = new GraphBuilder(sd, detected.arch);
    const act = (x: string, a: 'RE' | 'HS' | 'none', hint: string) => (a === 'RE' ? b.relu(x, hint) : a === 'HS' ? b.hardswish(x, hint) : x);
    const cna = (x: string, p: string, a: 'RE' | 'HS' | 'none', o: { stride?: number; group?: number } = {}): string => {
      const k = shapeOf(sd, `${p}.0.weight`)[2]!;
      return act(b.bn(b.conv(x, `${p}.0`, { stride: o.stride ?? 1, pad: (k - 1) >> 1, group: o.group ?? 1 }), `${p}.1`, V3_EPS), a, `${p}.2`);
    };
    const cin = shapeOf(sd, 'features.0.0.weight')[1]!;
    let x = b.input('input', ['N', cin, 'H', 'W']);
    x = cna(x, 'features.0', 'HS', { stride: 2 });
    table.forEach(([, se, a, stride], i) => {
      const p = `features.${i + 1}.block`;
      let j = 0;
      let y = x;
      const first = shapeOf(sd, `${p}.0.0.weight`);
      const expand = first[2] === 1;
      const inC = expand ? first[1]! : first[0]!;
      if (expand) y = cna(y, `${p}.${j++}`, a);
      const hidden = shapeOf(sd, `${p}.${j}.0.weight`)[0]!;
      y = cna(y, `${p}.${j++}`, a, { stride, group: hidden });
      if (se) {
        const q = `${p}.${j++}`;
        let s = b.globalAvgPool(y, `${q}.avgpool`);
        s = b.relu(b.conv(s, `${q}.fc1`), `${q}.activation`);
        s = b.hardsigmoid(b.conv(s, `${q}.fc2`), `${q}.scale_activation`);
        y = b.mul(s, y, q);
      }
      y = cna(y, `${p}.${j}`, 'none');
      const outC = shapeOf(sd, `${p}.${j}.0.weight`)[0]!;
      x = stride === 1 && inC === outC ? b.add(y, x, `features.${i + 1}.residual`) : y;
    });
    x = cna(x, `features.${table.length + 1}`, 'HS');
    let out = b.flatten(b.globalAvgPool(x, 'avgpool'), 'flatten');
    out = b.hardswish(b.linear(out, 'classifier.0'), 'classifier.1');
    if (!options.features) out = b.linear(out, 'classifier.3');
    b.output(out, 'output');
    return { graph: b.build(), detected };
  },
};
