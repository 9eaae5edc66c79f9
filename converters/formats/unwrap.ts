/**
 * Finding the state dict inside what people publish: the dict itself, or a wrapper such as
 * `{"state_dict": ...}`, `{"model": ...}`, `{"net": ...}`, with the `module.` prefix that
 * DataParallel adds and the `_metadata` entry that `state_dict()` carries.
 */
import { boundMessage } from '../budgets.js';
import { CheckpointFormatError } from '../errors.js';
import { describeValue, PyDict } from './pickle.js';

/** Keys under which checkpoints nest their state dict, in order of preference. */
const WRAPPER_KEYS = ['state_dict', 'model_state_dict', 'model', 'net', 'network', 'module', 'model_ema', 'ema', 'params', 'weights'];

/** Where the state dict was found and what was done to its keys. */
export interface StateDictOrigin {
  /** Path of wrapper keys that led to it, e.g. `['state_dict']`; empty for a bare state dict. */
  readonly path: string[];
  /** A prefix removed from every key (`module.`), if any. */
  readonly strippedPrefix: string | undefined;
  /** Non-tensor entries that were left out. */
  readonly skipped: string[];
}

/**
 * Extract the tensors of the state dict inside a decoded pickle, in order. Keys that are not
 * strings are named by `describeValue`; `maxMessage` bounds the error message.
 */
export function extractStateDict<T>(
  value: unknown,
  isTensor: (v: unknown) => v is T,
  file: string,
  maxMessage?: number,
): { entries: [string, T][]; origin: StateDictOrigin } {
  const path: string[] = [];
  let current = value;
  for (let depth = 0; depth < 8; depth++) {
    if (!(current instanceof PyDict)) break;
    const values = [...current.map.values()];
    const tensorCount = values.filter(isTensor).length;
    if (tensorCount > 0 && tensorCount >= values.length - countNonTensorExtras(current)) {
      return collect(current, isTensor, path);
    }
    const key = WRAPPER_KEYS.find((k) => current instanceof PyDict && current.map.get(k) instanceof PyDict);
    if (key === undefined) break;
    path.push(key);
    current = current.map.get(key);
  }
  const keys = current instanceof PyDict ? [...current.map.keys()].slice(0, 12).map((k) => boundMessage(keyName(k), 100)) : [];
  throw new CheckpointFormatError(
    boundMessage(
      `${file}: no state dict found${path.length ? ` under '${path.join('.')}'` : ''}` +
        (keys.length ? `; top-level keys are ${keys.map((k) => `'${k}'`).join(', ')}` : `; the pickle holds ${describe(current)}`),
      maxMessage,
    ),
    { file },
  );
}

function countNonTensorExtras(d: PyDict): number {
  let n = 0;
  for (const k of d.map.keys()) if (typeof k === 'string' && (k === '_metadata' || k.endsWith('_extra_state'))) n++;
  return n;
}

function collect<T>(d: PyDict, isTensor: (v: unknown) => v is T, path: string[]): { entries: [string, T][]; origin: StateDictOrigin } {
  const entries: [string, T][] = [];
  const skipped: string[] = [];
  for (const [k, v] of d.map) {
    if (isTensor(v)) entries.push([keyName(k), v]);
    else skipped.push(keyName(k));
  }
  let strippedPrefix: string | undefined;
  for (const prefix of ['module.', '_orig_mod.']) {
    if (entries.length > 0 && entries.every(([k]) => k.startsWith(prefix))) {
      for (const e of entries) e[0] = e[0].slice(prefix.length);
      strippedPrefix = (strippedPrefix ?? '') + prefix;
    }
  }
  return { entries, origin: { path, strippedPrefix, skipped } };
}

/** A dict key as a tensor name: state dicts have string keys; others are described. */
function keyName(k: unknown): string {
  return typeof k === 'string' ? k : describeValue(k);
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (Array.isArray(v)) return `a list of ${v.length} items`;
  if (v instanceof PyDict) return 'an empty dict';
  return `a ${typeof v}`;
}
