/**
 * The ACS split of converters/SPEC-acs.md section 1.2 (groups: sections 1.7 and 12): output
 * channels (or, for grouped convolutions, groups) into axial / coronal / sagittal parts, in
 * that order.
 */
import { InvalidArgumentError } from '../errors.js';

/** Three part sizes: axial, coronal, sagittal. */
export type Split3 = readonly [number, number, number];

/** The default 3-way split of `n`: (q + [r >= 1], q + [r >= 2], q) with q = n div 3, r = n mod 3. */
export function acsSplit(n: number): Split3 {
  const q = Math.floor(n / 3);
  const r = n % 3;
  return [q + (r >= 1 ? 1 : 0), q + (r >= 2 ? 1 : 0), q];
}

/**
 * The channel ranges of the three parts of a convolution with `O` outputs and `g` groups.
 * g == 1 splits the output channels; g > 1 splits the groups (each part takes whole groups,
 * and with them their input channels), which for depthwise convolutions is the same thing.
 * `explicit` is a user's split of the output channels; with g > 1 it must be in whole groups.
 */
export function acsParts(
  O: number,
  Cin: number,
  g: number,
  explicit?: Split3,
  where = 'convolution',
): { out: [number, number]; in: [number, number]; groups: number }[] {
  const perGroupOut = O / g;
  const perGroupIn = Cin / g;
  let outSplit: Split3;
  if (explicit) {
    if (explicit.length !== 3 || explicit.some((v) => !Number.isInteger(v) || v < 0) || explicit[0] + explicit[1] + explicit[2] !== O) {
      throw new InvalidArgumentError(`${where}: split [${explicit.join(', ')}] must be three non-negative integers that sum to ${O}`);
    }
    if (g > 1 && explicit.some((v) => v % perGroupOut !== 0)) {
      throw new InvalidArgumentError(`${where}: with ${g} groups the split [${explicit.join(', ')}] must be in whole groups of ${perGroupOut} channels`);
    }
    outSplit = explicit;
  } else {
    outSplit = g === 1 ? acsSplit(O) : (acsSplit(g).map((n) => n * perGroupOut) as unknown as Split3);
  }
  const parts: { out: [number, number]; in: [number, number]; groups: number }[] = [];
  let o = 0;
  for (const n of outSplit) {
    if (g === 1) parts.push({ out: [o, o + n], in: [0, Cin], groups: 1 });
    else {
      const g0 = o / perGroupOut;
      const gn = n / perGroupOut;
      parts.push({ out: [o, o + n], in: [g0 * perGroupIn, (g0 + gn) * perGroupIn], groups: gn });
    }
    o += n;
  }
  return parts;
}
