/**
 * A conversion through the cache, from any source: a catalogue entry or a URL (fetched and
 * verified into the store first), or a blob already in the store (an upload). The outputs of
 * one conversion are `model.safetensors`, `model.pth`, `model.onnx` (and `model.onnx.data` for
 * networks beyond protobuf's limit), `model.py` (the network as PyTorch source) and the card;
 * N simultaneous identical requests, in one process or in several sharing a store, cost one
 * download and one conversion.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { CONVERTER_VERSION, normaliseOptions, type ConvertOptions, type Card } from '../converters/convert.js';
import { CONVERT_TO_FILES } from '../converters/convert-file.js';
import { IN_PROCESS, type Fence } from '../converters/fence/fence.js';
import type { OutputFormat } from '../converters/outputs.js';
import type { Budgets } from '../converters/budgets.js';
import { findModel, loadLabels, type Catalogue, type CatalogueEntry, type PullableEntry } from './catalogue.js';
import type { DownloadProgress } from './fetch/download-file.js';
import type { FailureMemory } from './fetch/failure-memory.js';
import type { SourceSettings } from './fetch/resolve-source.js';
import { getOrConvert } from './get-or-convert.js';
import { pullModel, type DownloadSettings, type SourceRecord } from './pull-model.js';
import { blobKey, type ConversionManifest } from './store.js';
import type { ClaimOptions } from './storage/claim.js';
import { readAll, type ObjectStorage } from './storage/storage.js';

/** Where the 2D weights come from. */
export type ConversionSource = { kind: 'zoo'; entry: CatalogueEntry } | { kind: 'url'; url: string } | { kind: 'blob'; sha256: string; name: string };

/** A step of a conversion, for progress reports. */
export type ConversionProgress =
  | { phase: 'downloading'; bytes: number; total: number | undefined }
  | { phase: 'converting' }
  | { phase: 'storing'; file: string }
  | { phase: 'done'; cached: boolean };

/** Parameters of `convertModel`. */
export interface ConvertModelParams {
  storage: ObjectStorage;
  source: ConversionSource;
  options: ConvertOptions;
  sources: SourceSettings;
  stagingDir: string;
  offline?: boolean;
  /** Serve only a conversion that is already stored; never convert (`OfflineError` otherwise). @default false */
  cacheOnly?: boolean;
  download?: DownloadSettings;
  /** Recent failures of upstreams, answered at once. @default none */
  failures?: FailureMemory;
  claims?: ClaimOptions;
  /** The network (tests inject one). @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Where the conversion itself runs (decode, convert, encode). @default IN_PROCESS */
  fence?: Fence;
  onProgress?: (e: ConversionProgress) => void;
  signal?: AbortSignal;
  /** Budgets on the work the source may cause (the conversion's output bytes among them). */
  budgets?: Partial<Budgets>;
}

/** What `convertModel` returns. */
export interface ConvertedModel {
  /** Key prefix of the outputs in the store. */
  prefix: string;
  /** The stored manifest: the files and the model card. */
  manifest: ConversionManifest;
  /** The model card written by the converter. */
  modelCard: Card;
  /** True when this call ran the conversion. */
  produced: boolean;
  /** The source's record (id, sha256, where it came from). */
  source: { id: string; sha256: string; url?: string };
}

/** The names of a conversion's files. */
export const OUTPUT_FILES: Record<OutputFormat, string> = { safetensors: 'model.safetensors', pth: 'model.pth', onnx: 'model.onnx', py: 'model.py' };

/** The files a conversion's links list: its outputs and the model card. */
export const LISTED_FILES: readonly string[] = [...Object.values(OUTPUT_FILES), 'card.json'];

/** The options that change a conversion's output, as `convert` itself normalises them: the cache key (the mode is keyed apart). */
export function canonicalOptions(o: ConvertOptions): Record<string, unknown> {
  const { mode: _mode, ...rest } = normaliseOptions(o);
  return rest;
}

/** A URL as a fetchable entry (its id derived from the URL). */
export function urlEntry(url: string): PullableEntry {
  const id = `url/${createHash('sha256').update(url).digest('hex').slice(0, 24)}`;
  return { id, source: { type: 'url', url } };
}

/** Where each kind of source comes from, for messages. */
const ORIGINS: Record<ConversionSource['kind'], string> = { zoo: 'the zoo', url: 'a URL', blob: 'an upload' };

async function fetchSource(p: ConvertModelParams): Promise<SourceRecord | { id: string; sha256: string; key: string; url?: string }> {
  if (p.source.kind === 'blob') return { id: `upload/${p.source.sha256}`, sha256: p.source.sha256, key: blobKey(p.source.sha256) };
  const entry = p.source.kind === 'zoo' ? p.source.entry : urlEntry(p.source.url);
  return pullModel({
    entry,
    storage: p.storage,
    sources: p.sources,
    stagingDir: p.stagingDir,
    offline: p.offline,
    download: p.download,
    failures: p.failures,
    claims: p.claims,
    fetch: p.fetch,
    signal: p.signal,
    onProgress: (e: DownloadProgress) => p.onProgress?.({ phase: 'downloading', bytes: e.bytes, total: e.total }),
  });
}

/** Convert (or find converted) a model; see the module comment. */
export async function convertModel(p: ConvertModelParams): Promise<ConvertedModel> {
  const record = await fetchSource(p);
  const entry = p.source.kind === 'zoo' ? p.source.entry : undefined;
  const options: ConvertOptions = { ...p.options, arch: p.options.arch ?? entry?.arch };
  const result = await getOrConvert(
    {
      storage: p.storage,
      sourceSha256: record.sha256,
      mode: options.mode,
      options: canonicalOptions(options),
      converterVersion: CONVERTER_VERSION,
      claims: p.claims,
      cacheOnly: p.cacheOnly,
      signal: p.signal,
    },
    async (ctx) => {
      p.onProgress?.({ phase: 'converting' });
      const name = p.source.kind === 'blob' ? p.source.name : entry ? `${entry.id}.${entry.format}` : new URL((p.source as { url: string }).url).pathname;
      const labels = entry ? await loadLabels(entry) : undefined;
      const converted = await (p.fence ?? IN_PROCESS).run(
        CONVERT_TO_FILES,
        async () => ({
          name,
          bytes: await readAll(p.storage, record.key, { signal: ctx.signal }),
          options,
          origin: ORIGINS[p.source.kind],
          budgets: p.budgets,
          info: {
            source: {
              ...(entry ? { id: entry.id, url: entry.url, licence: entry.licence } : p.source.kind === 'url' ? { url: p.source.url } : { file: name }),
              sha256: record.sha256,
              ...('repoCommit' in record && record.repoCommit ? { repoCommit: record.repoCommit } : {}),
            },
            labels,
            preprocessing: entry ? { mean: [...entry.preprocessing.mean], std: [...entry.preprocessing.std] } : undefined,
          },
          // model.py is left out for a network with an operator that has no PyTorch translation.
          outputs: (['safetensors', 'pth', 'onnx', 'py'] as const).map((format) => ({ format, name: OUTPUT_FILES[format], optional: format === 'py' })),
        }),
        { what: name, signal: ctx.signal },
      );
      for (const [file, chunks] of converted.files) {
        p.onProgress?.({ phase: 'storing', file });
        await ctx.writeFile(file, Readable.from(chunks));
      }
      return converted.card as unknown as Record<string, unknown>;
    },
  );
  p.onProgress?.({ phase: 'done', cached: !result.produced });
  return {
    prefix: result.prefix,
    manifest: result.manifest,
    modelCard: result.manifest.modelCard as unknown as Card,
    produced: result.produced,
    source: { id: record.id, sha256: record.sha256, url: 'url' in record ? record.url : undefined },
  };
}

/** Resolve a command-line or API source string: a catalogue id or alias, or an http(s) URL. */
export function parseSource(catalogue: Catalogue, spec: string): ConversionSource {
  if (/^https?:\/\//i.test(spec)) return { kind: 'url', url: spec };
  return { kind: 'zoo', entry: findModel(catalogue, spec) };
}
