/**
 * Where things live in the store (the same layout on local disk and in S3):
 *
 *     blobs/sha256/<hex>                               source files, content-addressed
 *     index/sources/<model id>.json                    one record per pulled catalogue entry
 *     conversions/<source sha256>/<mode>/<digest>/     one conversion's files, and its card.json
 *     claims/<kind>/<digest>                           who is producing what (see claim.ts)
 *
 * A conversion's digest is the sha256 of the canonical JSON of (source sha256, mode, options,
 * converter version): the same request always lands on the same key, in every replica.
 * The index is one small object per entry rather than one shared file, so that replicas never
 * read-modify-write the same object.
 */
import { createHash } from 'node:crypto';

/** What identifies a conversion. */
export interface ConversionSpec {
  /** sha256 (hex) of the source checkpoint. */
  sourceSha256: string;
  /** Conversion mode (`acs`, `2.5d`, `i3d`, ...). */
  mode: string;
  /** Every option that changes the output; JSON values only. */
  options: Readonly<Record<string, unknown>>;
  /** Version of the converter that produces it; a new version never reuses old outputs. */
  converterVersion: string;
}

const SHA256 = /^[0-9a-f]{64}$/;
const MODE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** JSON with object keys sorted at every level; rejects values JSON cannot carry faithfully. */
export function canonicalJson(value: unknown, path = 'options'): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`'${path}' is ${value}, which JSON cannot carry`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v, i) => canonicalJson(v, `${path}[${i}]`)).join(',')}]`;
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v, `${path}.${k}`)}`).join(',')}}`;
  }
  throw new RangeError(`'${path}' is a ${typeof value}: only JSON values (null, booleans, numbers, strings, arrays, plain objects) are allowed`);
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Check a sha256 hex string. */
export function assertSha256(sha256: string, what = 'sha256'): void {
  if (!SHA256.test(sha256)) throw new RangeError(`'${what}' must be 64 lowercase hex digits, got '${sha256}'`);
}

/** Key of a source blob. */
export function blobKey(sha256: string): string {
  assertSha256(sha256);
  return `blobs/sha256/${sha256}`;
}

/** Key of the index record of a pulled catalogue entry. */
export function sourceIndexKey(modelId: string): string {
  return `index/sources/${modelId}.json`;
}

/** Key prefix (ending in '/') under which a conversion's files and card.json live. */
export function conversionPrefix(spec: ConversionSpec): string {
  assertSha256(spec.sourceSha256, 'sourceSha256');
  if (!MODE.test(spec.mode)) throw new RangeError(`'mode' must match ${String(MODE)}, got '${spec.mode}'`);
  if (spec.converterVersion === '') throw new RangeError(`'converterVersion' must not be empty`);
  const digest = sha256Hex(
    canonicalJson({ sourceSha256: spec.sourceSha256, mode: spec.mode, options: spec.options, converterVersion: spec.converterVersion }, 'spec'),
  );
  return `conversions/${spec.sourceSha256}/${spec.mode}/${digest.slice(0, 32)}/`;
}

/** The conversion prefix a key lies under (`conversions/<sha256>/<mode>/<digest>/`), if any. */
export function conversionPrefixOf(key: string): string | undefined {
  const parts = key.split('/');
  return parts[0] === 'conversions' && parts.length > 4 ? `${parts.slice(0, 4).join('/')}/` : undefined;
}

/** Key of a conversion's card (written last: its presence means the conversion is complete). */
export function conversionCardKey(spec: ConversionSpec): string {
  return cardKeyUnder(conversionPrefix(spec));
}

/** Key of the card of the conversion under `prefix` (from `conversionPrefix` or `conversionPrefixOf`). */
export function cardKeyUnder(prefix: string): string {
  return `${prefix}card.json`;
}

/** Key of the claim on a piece of work identified by `kind` and `name`. */
export function claimKey(kind: 'pull' | 'conversion', name: string): string {
  return `claims/${kind}/${sha256Hex(name).slice(0, 32)}`;
}
