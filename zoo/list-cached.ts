/**
 * The index of what a store holds: pulled sources and finished conversions (for `acs-hub zoo
 * cached`), read through the store's own listings.
 */
import type { ObjectStorage } from './storage/storage.js';
import { listManifests, listSourceRecords, type ConversionManifest, type SourceRecord } from './store.js';

/** What `listCached` returns. */
export interface CachedIndex {
  readonly sources: SourceRecord[];
  readonly conversions: (ConversionManifest & { prefix: string })[];
}

/** List the pulled sources and finished conversions of a store. */
export async function listCached(storage: ObjectStorage): Promise<CachedIndex> {
  const [sources, conversions] = await Promise.all([listSourceRecords(storage), listManifests(storage)]);
  conversions.sort((a, b) => a.prefix.localeCompare(b.prefix));
  return { sources, conversions };
}
