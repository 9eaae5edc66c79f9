/**
 * The store: the one module that knows every object key, and the domain operations on them
 * (the same layout on local disk and in S3). No other file builds a key.
 *
 *     blobs/sha256/<hex>                               source files, content-addressed
 *     index/sources/<model id>.json                    one record per pulled catalogue entry or URL
 *     index/uploads/<sha256>.json                      one record per accepted upload
 *     index/checkpoints/<checkpoint id>.json           checkpoint id -> its conversion's prefix
 *     conversions/<source sha256>/<mode>/<digest>/     one conversion's files, and its manifest.json
 *       specialized/v<V>/<D>x<H>x<W>/model.onnx, file.json
 *                                                      its model.onnx specialised for one input
 *                                                      size by specializer version V, and that
 *                                                      file's record (written last)
 *     claims/<kind>/<digest>                           who is producing what (see storage/claim.ts)
 *     index/lowerings/<decision key>.json              the graph the engine measured fastest for a
 *                                                      machine, model and input size
 *
 * A conversion's digest is the sha256 of the canonical JSON of (source sha256, mode, options,
 * converter version): the same request always lands on the same key, in every replica. Its
 * `manifest.json` (the stored list of files with their sizes and hashes, and the model card)
 * is written last: a conversion exists exactly when its manifest does. A checkpoint id is the
 * first 32 hex digits of the digest. The indexes are one small object per entry rather than one
 * shared file, so that replicas never read-modify-write the same object.
 */
import { createHash } from 'node:crypto';
import type { CheckpointFormat } from '../converters/formats/index.js';
import { makeError } from '../converters/errors.js';
import { SPECIALIZE_VERSION } from '../converters/graph/specialize.js';
import { readJson, type ObjectStorage, type WriteBody } from './storage/storage.js';

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
  return `${AREAS.blobs}sha256/${sha256}`;
}

/** Key prefix (ending in '/') under which a conversion's files and manifest.json live. */
export function conversionPrefix(spec: ConversionSpec): string {
  assertSha256(spec.sourceSha256, 'sourceSha256');
  if (!MODE.test(spec.mode)) throw new RangeError(`'mode' must match ${String(MODE)}, got '${spec.mode}'`);
  if (spec.converterVersion === '') throw new RangeError(`'converterVersion' must not be empty`);
  const digest = sha256Hex(
    canonicalJson({ sourceSha256: spec.sourceSha256, mode: spec.mode, options: spec.options, converterVersion: spec.converterVersion }, 'spec'),
  );
  return `${AREAS.conversions}${spec.sourceSha256}/${spec.mode}/${digest.slice(0, 32)}/`;
}

/** The conversion prefix a key lies under (`conversions/<sha256>/<mode>/<digest>/`), if any. */
export function conversionPrefixOf(key: string): string | undefined {
  const parts = key.split('/');
  return parts[0] === 'conversions' && parts.length > 4 ? `${parts.slice(0, 4).join('/')}/` : undefined;
}

/** Key of a conversion's manifest (written last: its presence means the conversion is complete). */
export function manifestKey(spec: ConversionSpec): string {
  return manifestKeyUnder(conversionPrefix(spec));
}

/** Key of the manifest of the conversion under `prefix` (from `conversionPrefix` or `conversionPrefixOf`). */
export function manifestKeyUnder(prefix: string): string {
  return `${prefix}${MANIFEST}`;
}

/** The name of a conversion's manifest; no output file may take it. */
export const MANIFEST = 'manifest.json';

/** Key of one output file of the conversion under `prefix`. */
export function conversionFileKey(prefix: string, name: string): string {
  if (name === MANIFEST || name.includes('/')) throw new RangeError(`output file name '${name}' is invalid here`);
  return `${prefix}${name}`;
}

/** Whether the store answers: a metadata request for a key that never exists (for readiness). */
export async function probeStore(storage: ObjectStorage): Promise<void> {
  await storage.stat('index/ready-probe');
}

/** Where each kind of object lives: for listing and sweeping. */
export const AREAS = {
  blobs: 'blobs/',
  sources: 'index/sources/',
  uploads: 'index/uploads/',
  checkpoints: 'index/checkpoints/',
  conversions: 'conversions/',
  claims: 'claims/',
  lowerings: 'index/lowerings/',
} as const;

/** Key of the claim on a piece of work identified by `kind` and `name`. */
export function claimKey(kind: 'pull' | 'conversion', name: string): string {
  return `${AREAS.claims}${kind}/${sha256Hex(name).slice(0, 32)}`;
}

/** One stored output file of a conversion. */
export interface ConversionFile {
  readonly name: string;
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
}

/** The stored manifest of a conversion: what identifies it, its files, and the model card its producer made. */
export interface ConversionManifest {
  readonly spec: ConversionSpec;
  readonly files: readonly ConversionFile[];
  readonly createdAt: string;
  /** The model card (provenance, parameter count, preprocessing, labels, ...): served as `card.json`. */
  readonly modelCard: Readonly<Record<string, unknown>>;
}

/**
 * The first converter version whose model.py writes names from the checkpoint only as escaped
 * string literals. An older model.py may carry a hostile ONNX graph name as code, so a manifest
 * read from the store no longer lists it: that checkpoint serves its other files, and converting
 * the source again (a new cache key) makes a safe model.py.
 */
export const SAFE_MODEL_PY_SINCE = 4;

/** The manifest at `key` as the store serves it: without a model.py made before `SAFE_MODEL_PY_SINCE`. */
async function readManifestAt(storage: ObjectStorage, key: string): Promise<ConversionManifest | undefined> {
  const m = await readJson<ConversionManifest>(storage, key);
  if (!m || Number(m.spec.converterVersion) >= SAFE_MODEL_PY_SINCE) return m;
  return { ...m, files: m.files.filter((f) => f.name !== 'model.py') };
}

/** The manifest of a conversion, if it is complete. */
export function readManifest(storage: ObjectStorage, spec: ConversionSpec): Promise<ConversionManifest | undefined> {
  return readManifestAt(storage, manifestKey(spec));
}

/** Every complete conversion in the store, with its prefix. */
export async function listManifests(storage: ObjectStorage): Promise<(ConversionManifest & { prefix: string })[]> {
  const out: (ConversionManifest & { prefix: string })[] = [];
  for await (const o of storage.list(AREAS.conversions)) {
    const prefix = conversionPrefixOf(o.key);
    if (prefix === undefined || o.key !== manifestKeyUnder(prefix)) continue;
    const m = await readManifestAt(storage, o.key);
    if (m) out.push({ ...m, prefix });
  }
  return out;
}

// -- Source blobs and their index --------------------------------------------------------------

/** Key of the index record of a pulled catalogue entry. */
function sourceIndexKey(modelId: string): string {
  return `${AREAS.sources}${modelId}.json`;
}

/** The id of the entry whose index record is at `key`, if it is one. */
export function sourceIdOfIndexKey(key: string): string | undefined {
  return key.startsWith(AREAS.sources) && key.endsWith('.json') ? key.slice(AREAS.sources.length, -'.json'.length) : undefined;
}

/** The index record of a pulled catalogue entry or URL. */
export interface SourceRecord {
  readonly id: string;
  readonly sha256: string;
  readonly size: number;
  /** Key of the blob in the store. */
  readonly key: string;
  /** Where it was fetched from (after the configured base URL, before redirects). */
  readonly url: string;
  /** The upstream's entity tag, for revalidation. */
  readonly etag?: string;
  /** Hugging Face: the commit the revision resolved to (`X-Repo-Commit`). */
  readonly repoCommit?: string;
  readonly fetchedAt: string;
}

/** The index record of a pulled entry, if it was pulled. */
export function readSourceRecord(storage: ObjectStorage, id: string): Promise<SourceRecord | undefined> {
  return readJson<SourceRecord>(storage, sourceIndexKey(id));
}

/** Write the index record of a pulled entry. */
export async function writeSourceRecord(storage: ObjectStorage, record: SourceRecord, signal?: AbortSignal): Promise<void> {
  await storage.write(sourceIndexKey(record.id), JSON.stringify(record, null, 2), { signal });
}

/** Every pulled entry's record, by id. */
export async function listSourceRecords(storage: ObjectStorage): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const o of storage.list(AREAS.sources)) {
    if (sourceIdOfIndexKey(o.key) === undefined) continue;
    const rec = await readJson<SourceRecord>(storage, o.key);
    if (rec) out.push(rec);
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

/** Store a source blob under its sha256, unless it is there already. */
export async function putBlob(storage: ObjectStorage, sha256: string, body: WriteBody, signal?: AbortSignal): Promise<void> {
  const key = blobKey(sha256);
  if (!(await storage.stat(key))) await storage.write(key, body, { signal });
}

// -- Uploads -----------------------------------------------------------------------------------

/** What the store keeps of an upload. */
export interface UploadRecord {
  id: string;
  sha256: string;
  size: number;
  format: CheckpointFormat;
  filename?: string;
  tensors: number;
  /** Trainable parameters, as PyTorch counts them (BatchNorm statistics are buffers). */
  parameters: number;
  /** Elements of buffers (BatchNorm statistics); absent in records written before buffers were counted apart. */
  buffers?: number;
  createdAt: string;
}

function uploadKey(id: string): string {
  if (!SHA256.test(id)) throw makeError('UPLOAD_NOT_FOUND', `'${id}' is not an upload id`);
  return `${AREAS.uploads}${id}.json`;
}

/** Accept an upload: its bytes as a blob, then its record. */
export async function putUpload(storage: ObjectStorage, record: UploadRecord, body: WriteBody): Promise<void> {
  await putBlob(storage, record.sha256, body);
  await storage.write(uploadKey(record.id), JSON.stringify(record, null, 2));
}

/** An upload's record, or `UPLOAD_NOT_FOUND`. */
export async function readUpload(storage: ObjectStorage, id: string): Promise<UploadRecord> {
  const rec = await readJson<UploadRecord>(storage, uploadKey(id));
  if (!rec) throw makeError('UPLOAD_NOT_FOUND', `no upload '${id}'`);
  return rec;
}

// -- Checkpoints -------------------------------------------------------------------------------

/** What the index keeps of a checkpoint. */
export interface CheckpointRecord {
  id: string;
  prefix: string;
  mode: string;
  arch: string;
  source: Record<string, unknown>;
  createdAt: string;
}

const CHECKPOINT_ID = /^[0-9a-f]{32}$/;

/** The checkpoint id of a conversion prefix (`conversions/<sha>/<mode>/<digest>/`). */
export function checkpointIdOf(prefix: string): string {
  const id = prefix.split('/').filter(Boolean).pop() ?? '';
  if (!CHECKPOINT_ID.test(id)) throw new RangeError(`'${prefix}' is not a conversion prefix`);
  return id;
}

function checkpointKey(id: string): string {
  if (!CHECKPOINT_ID.test(id)) throw makeError('CHECKPOINT_NOT_FOUND', `'${id}' is not a checkpoint id`);
  return `${AREAS.checkpoints}${id}.json`;
}

/** Record a finished conversion in the checkpoint index (idempotent). */
export async function recordCheckpoint(storage: ObjectStorage, prefix: string, manifest: ConversionManifest): Promise<CheckpointRecord> {
  const id = checkpointIdOf(prefix);
  const card = manifest.modelCard as { architecture?: { arch?: string }; source?: Record<string, unknown> };
  const record: CheckpointRecord = { id, prefix, mode: manifest.spec.mode, arch: card.architecture?.arch ?? 'unknown', source: card.source ?? {}, createdAt: manifest.createdAt };
  await storage.write(checkpointKey(id), JSON.stringify(record, null, 2), { ifAbsent: true });
  return record;
}

/** Manifests read recently, by store and id (a conversion never changes once its manifest exists). */
const recent = new WeakMap<ObjectStorage, Map<string, { record: CheckpointRecord; manifest: ConversionManifest }>>();
const RECENT = 1000;

/** A checkpoint's record and manifest, or `CHECKPOINT_NOT_FOUND`. */
export async function loadCheckpoint(storage: ObjectStorage, id: string): Promise<{ record: CheckpointRecord; manifest: ConversionManifest }> {
  let cache = recent.get(storage);
  if (!cache) recent.set(storage, (cache = new Map()));
  const hit = cache.get(id);
  // Still there? (a file may have been evicted or deleted by hand)
  if (hit && (await storage.has(manifestKeyUnder(hit.record.prefix)))) return hit;
  const record = await readJson<CheckpointRecord>(storage, checkpointKey(id));
  const manifest = record ? await readManifestAt(storage, manifestKeyUnder(record.prefix)) : undefined;
  if (!record || !manifest) throw makeError('CHECKPOINT_NOT_FOUND', `no checkpoint '${id}' in ${storage.location}`, { store: storage.location });
  cache.set(id, { record, manifest });
  if (cache.size > RECENT) cache.delete(cache.keys().next().value!);
  return { record, manifest };
}

/** Every indexed checkpoint, oldest first. */
export async function listCheckpoints(storage: ObjectStorage): Promise<CheckpointRecord[]> {
  const out: CheckpointRecord[] = [];
  for await (const o of storage.list(AREAS.checkpoints)) {
    const r = await readJson<CheckpointRecord>(storage, o.key);
    if (r) out.push(r);
  }
  return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** The engine's decision for one machine, model and input size (`inference/runtime/autotune.ts`). */
export interface LoweringRecord {
  /** The candidate graph kept. */
  readonly candidate: string;
  /** Median milliseconds of each candidate measured. */
  readonly timings: Readonly<Record<string, number>>;
  /** Each candidate's time over the default's in the same rounds of the first pass (medians of the rounds). */
  readonly ratios?: Readonly<Record<string, number>>;
  /** Medians of the run-off between the fastest of the first pass and the default, when there was one. */
  readonly runOff?: Readonly<Record<string, number>>;
  /** The run-off's median, over its rounds, of the challenger's time over the default's (what decided it). */
  readonly runOffRatio?: number;
  /** When it was measured (ISO 8601). */
  readonly decidedAt: string;
}

const DECISION_KEY = /^[0-9a-f]{32}$/;

function loweringKey(decisionKey: string): string {
  if (!DECISION_KEY.test(decisionKey)) throw makeError('INVALID_ARGUMENT', `'decisionKey' must be 32 lowercase hex digits, got '${decisionKey.slice(0, 80)}'`);
  return `${AREAS.lowerings}${decisionKey}.json`;
}

/** The kept lowering decision of `decisionKey`, if one was made (a malformed record counts as none). */
export async function readLoweringDecision(storage: ObjectStorage, decisionKey: string): Promise<LoweringRecord | undefined> {
  const r = await readJson<LoweringRecord>(storage, loweringKey(decisionKey));
  if (!r || typeof r.candidate !== 'string' || typeof r.timings !== 'object' || r.timings === null) return undefined;
  return r;
}

/** Keep a lowering decision (the last measurement wins: every replica measures the same thing). */
export async function writeLoweringDecision(storage: ObjectStorage, decisionKey: string, record: LoweringRecord): Promise<void> {
  await storage.write(loweringKey(decisionKey), JSON.stringify(record, null, 2));
}

/** Lowering decisions kept in the store, in the shape the inference engine takes (`EngineParams.decisions`). */
export function loweringDecisions(storage: ObjectStorage): { get(key: string): Promise<LoweringRecord | undefined>; put(key: string, record: LoweringRecord): Promise<void> } {
  return { get: (key) => readLoweringDecision(storage, key), put: (key, record) => writeLoweringDecision(storage, key, record) };
}

/** A conversion's model.onnx specialised for one input size, as stored. */
export interface SpecializedOnnxRecord extends ConversionFile {
  /** The spatial size (D, H, W) it is valid for. */
  readonly specializedFor: readonly [number, number, number];
  /** What the specialisation did. */
  readonly note: string;
}

/**
 * The keys of a specialised model.onnx and its record: under the specializer's version, so
 * that a file an older version made (slower, or unable to run where the new one runs) is not
 * served but made again; the older objects are left as they are.
 */
function specializedOnnxKeys(prefix: string, size: readonly [number, number, number], version: number): { file: string; record: string } {
  if (!conversionPrefixOf(`${prefix}x`) || !prefix.endsWith('/')) throw new RangeError(`'prefix' must be a conversion prefix, got '${prefix}'`);
  if (!size.every((n) => Number.isSafeInteger(n) && n > 0)) throw new RangeError(`'size' must be three positive integers, got ${size.join(',')}`);
  if (!Number.isSafeInteger(version) || version < 1) throw new RangeError(`'version' must be a positive integer, got ${version}`);
  const dir = `${prefix}specialized/v${version}/${size.join('x')}/`;
  return { file: `${dir}model.onnx`, record: `${dir}file.json` };
}

/** The stored model.onnx of the conversion under `prefix` specialised for `size` (by this specializer version), if it was made. */
export async function readSpecializedOnnx(storage: ObjectStorage, prefix: string, size: readonly [number, number, number], version = SPECIALIZE_VERSION): Promise<SpecializedOnnxRecord | undefined> {
  const keys = specializedOnnxKeys(prefix, size, version);
  const r = await readJson<SpecializedOnnxRecord>(storage, keys.record);
  if (!r || r.key !== keys.file || typeof r.sha256 !== 'string' || typeof r.size !== 'number' || !(await storage.has(keys.file))) return undefined;
  return r;
}

/** Store a specialised model.onnx (the file, then its record) and return the record; `version`: the specializer's that made it. */
export async function writeSpecializedOnnx(storage: ObjectStorage, prefix: string, size: readonly [number, number, number], bytes: Uint8Array, note: string, version = SPECIALIZE_VERSION): Promise<SpecializedOnnxRecord> {
  const keys = specializedOnnxKeys(prefix, size, version);
  await storage.write(keys.file, bytes);
  const record: SpecializedOnnxRecord = {
    name: 'model.onnx',
    key: keys.file,
    size: bytes.byteLength,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    specializedFor: [size[0], size[1], size[2]],
    note,
  };
  await storage.write(keys.record, JSON.stringify(record, null, 2));
  return record;
}
