/**
 * The index of what a store holds: pulled sources (their records under `index/sources/`) and
 * finished conversions (their cards under `conversions/`).
 */
import type { ConversionCard } from './get-or-convert.js';
import type { SourceRecord } from './pull-model.js';
import { readJson, type ObjectStorage } from './storage/storage.js';

/** What `listCached` returns. */
export interface CachedIndex {
  readonly sources: SourceRecord[];
  readonly conversions: (ConversionCard & { prefix: string })[];
}

/** List the pulled sources and finished conversions of a store. */
export async function listCached(storage: ObjectStorage): Promise<CachedIndex> {
  const sources: SourceRecord[] = [];
  for await (const o of storage.list('index/sources/')) {
    if (!o.key.endsWith('.json')) continue;
    const rec = await readJson<SourceRecord>(storage, o.key);
    if (rec) sources.push(rec);
  }
  const conversions: (ConversionCard & { prefix: string })[] = [];
  for await (const o of storage.list('conversions/')) {
    if (!o.key.endsWith('/card.json')) continue;
    const card = await readJson<ConversionCard>(storage, o.key);
    if (card) conversions.push({ ...card, prefix: o.key.slice(0, -'card.json'.length) });
  }
  sources.sort((a, b) => a.id.localeCompare(b.id));
  conversions.sort((a, b) => a.prefix.localeCompare(b.prefix));
  return { sources, conversions };
}
