/** Helpers to read a network's structure from its state dict keys and shapes. */
import { ConversionError } from '../errors.js';
import type { StateDict } from '../tensor.js';

/** The largest integer `i` such that some key starts with `${prefix}${i}.`, or -1. */
export function maxIndex(sd: StateDict, prefix: string): number {
  let max = -1;
  for (const k of sd.keys()) {
    if (!k.startsWith(prefix)) continue;
    const m = /^(\d+)\./.exec(k.slice(prefix.length));
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max;
}

/** Sorted distinct integers `i` such that some key starts with `${prefix}${i}.`. */
export function indices(sd: StateDict, prefix: string): number[] {
  const set = new Set<number>();
  for (const k of sd.keys()) {
    if (!k.startsWith(prefix)) continue;
    const m = /^(\d+)\./.exec(k.slice(prefix.length));
    if (m) set.add(Number(m[1]));
  }
  return [...set].sort((a, b) => a - b);
}

/** Shape of a tensor that must exist. */
export function shapeOf(sd: StateDict, key: string): readonly number[] {
  const t = sd.get(key);
  if (!t) throw new ConversionError(`state dict has no tensor '${key}'`);
  return t.shape;
}
