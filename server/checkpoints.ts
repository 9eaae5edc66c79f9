/**
 * Converted checkpoints as the API names them: a checkpoint id is the digest part of its
 * conversion's key prefix, and an index record (`index/checkpoints/<id>.json`) maps it back,
 * written by whichever replica finished or found the conversion.
 */
import { conversionCardKey, type ConversionSpec } from '../zoo/storage/layout.js';
import { readJson, type ObjectStorage } from '../zoo/storage/storage.js';
import type { ConversionCard } from '../zoo/get-or-convert.js';
import { httpError } from './errors.js';

/** What the index keeps of a checkpoint. */
export interface CheckpointRecord {
  id: string;
  prefix: string;
  mode: string;
  arch: string;
  source: Record<string, unknown>;
  createdAt: string;
}

const ID = /^[0-9a-f]{32}$/;

/** The checkpoint id of a conversion prefix (`conversions/<sha>/<mode>/<digest>/`). */
export function checkpointIdOf(prefix: string): string {
  const id = prefix.split('/').filter(Boolean).pop() ?? '';
  if (!ID.test(id)) throw new RangeError(`'${prefix}' is not a conversion prefix`);
  return id;
}

function indexKey(id: string): string {
  if (!ID.test(id)) throw httpError('CHECKPOINT_NOT_FOUND', `'${id}' is not a checkpoint id`);
  return `index/checkpoints/${id}.json`;
}

/** Record a finished conversion in the index (idempotent). */
export async function recordCheckpoint(storage: ObjectStorage, prefix: string, card: ConversionCard): Promise<CheckpointRecord> {
  const id = checkpointIdOf(prefix);
  const inner = card.card as { architecture?: { arch?: string }; source?: Record<string, unknown> };
  const record: CheckpointRecord = { id, prefix, mode: card.spec.mode, arch: inner.architecture?.arch ?? 'unknown', source: inner.source ?? {}, createdAt: card.createdAt };
  await storage.write(indexKey(id), JSON.stringify(record, null, 2), { ifAbsent: true });
  return record;
}

/** Cards read recently, by store and id (a conversion never changes once its card exists). */
const recent = new WeakMap<ObjectStorage, Map<string, { record: CheckpointRecord; card: ConversionCard }>>();
const RECENT = 1000;

/** A checkpoint's record and card, or `CHECKPOINT_NOT_FOUND`. */
export async function loadCheckpoint(storage: ObjectStorage, id: string): Promise<{ record: CheckpointRecord; card: ConversionCard }> {
  let cache = recent.get(storage);
  if (!cache) recent.set(storage, (cache = new Map()));
  const hit = cache.get(id);
  // Still there? (a file may have been evicted or deleted by hand)
  if (hit && (await storage.has(`${hit.record.prefix}card.json`))) return hit;
  const record = await readJson<CheckpointRecord>(storage, indexKey(id));
  const card = record ? await readJson<ConversionCard>(storage, `${record.prefix}card.json`) : undefined;
  if (!record || !card) throw httpError('CHECKPOINT_NOT_FOUND', `no checkpoint '${id}' in ${storage.location}`);
  cache.set(id, { record, card });
  if (cache.size > RECENT) cache.delete(cache.keys().next().value!);
  return { record, card };
}

/** Every indexed checkpoint. */
export async function listCheckpoints(storage: ObjectStorage): Promise<CheckpointRecord[]> {
  const out: CheckpointRecord[] = [];
  for await (const o of storage.list('index/checkpoints/')) {
    const r = await readJson<CheckpointRecord>(storage, o.key);
    if (r) out.push(r);
  }
  return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** The stored card of a conversion, if it is complete. */
export function findConversion(storage: ObjectStorage, spec: ConversionSpec): Promise<ConversionCard | undefined> {
  return readJson<ConversionCard>(storage, conversionCardKey(spec));
}
