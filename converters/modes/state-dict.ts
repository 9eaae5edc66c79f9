/**
 * The state dict each mode's PyTorch reference model expects (converters/SPEC-acs.md sections
 * 1.8, 3, 4, 5 and 13): ACS and mean-ACS keep every tensor as it is; 2.5D gives each conv
 * kernel a unit axis (a view, no copy); i3d inflates each kernel k-fold; soft-ACS adds
 * `<conv>.soft_w_core`, zeros (O, 3).
 */
import { inflate, type ConvMode, type SpatialAxis } from '../graph/lower-conv.js';
import type { StateDict, Tensor } from '../tensor.js';

/**
 * Convert the state dict for a mode; `convWeights` are the keys of the convolution kernels,
 * `transposed` those of transposed ones (weight `(Cin, Cout/g, kh, kw)`), whose `soft_w_core`
 * has one row per OUTPUT channel, `groups` times the kernel's second axis.
 */
export function convertStateDict(
  sd: StateDict,
  convWeights: ReadonlySet<string>,
  mode: ConvMode,
  axis: SpatialAxis,
  transposed: ReadonlyMap<string, { groups: number }> = new Map(),
): StateDict {
  if (mode === 'acs' || mode === 'mean-acs') return sd;
  const out: StateDict = new Map();
  const pendingSoft = new Map<string, Tensor>();
  for (const [key, t] of sd) {
    if (!convWeights.has(key)) {
      out.set(key, t);
      const owner = key.replace(/\.bias$/, '.weight');
      if (key.endsWith('.bias') && pendingSoft.has(owner)) {
        out.set(soft(owner), pendingSoft.get(owner)!);
        pendingSoft.delete(owner);
      }
      continue;
    }
    if (mode === '2.5d') {
      const shape = [...t.shape];
      shape.splice(2 + axis, 0, 1);
      out.set(key, { ...t, shape });
    } else if (mode === 'i3d') {
      out.set(key, inflate(t, axis));
    } else {
      out.set(key, t);
      const tr = transposed.get(key);
      const O = tr ? t.shape[1]! * tr.groups : t.shape[0]!;
      const core: Tensor = { dtype: 'F32', shape: [O, 3], data: new Float32Array(O * 3) };
      if (sd.has(key.replace(/\.weight$/, '.bias'))) pendingSoft.set(key, core);
      else out.set(soft(key), core);
    }
  }
  for (const [owner, core] of pendingSoft) out.set(soft(owner), core);
  return out;
}

function soft(weightKey: string): string {
  return `${weightKey.replace(/\.weight$/, '')}.soft_w_core`;
}
