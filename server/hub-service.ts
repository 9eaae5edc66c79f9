/**
 * The hub service: "get or convert, record the checkpoint, count" written once, for every way
 * in: the REST conversion routes and their jobs, the zoo's one-line download, KServe, and the
 * command line (which has no metrics). It also resolves what a request names (a zoo id, a URL,
 * an upload) into a source, so that no route does.
 */
import type { Logger } from 'pino';
import { CONVERTER_VERSION, type ConvertOptions } from '../converters/convert.js';
import type { Budgets } from '../converters/budgets.js';
import type { Fence } from '../converters/fence/fence.js';
import { findModel, type Catalogue } from '../zoo/catalogue.js';
import { canonicalOptions, convertModel, urlEntry, type ConversionProgress, type ConversionSource, type ConvertedModel } from '../zoo/convert-model.js';
import { FailureMemory } from '../zoo/fetch/failure-memory.js';
import type { SourceSettings } from '../zoo/fetch/resolve-source.js';
import { findPulled, type DownloadSettings } from '../zoo/pull-model.js';
import type { ClaimOptions } from '../zoo/storage/claim.js';
import type { ObjectStorage } from '../zoo/storage/storage.js';
import { checkpointIdOf, conversionPrefix, readManifest, readUpload, recordCheckpoint } from '../zoo/store.js';
import type { Metrics } from './metrics.js';
import { checkUrl, type UrlPolicy } from './url-guard.js';

/** Where sources come from and how they are fetched and converted. */
export interface HubSettings {
  sources: SourceSettings;
  stagingDir: string;
  offline: boolean;
  download?: DownloadSettings;
  claims?: ClaimOptions;
  budgets?: Partial<Budgets>;
}

/** What the service is made of. */
export interface HubServiceParams {
  storage: ObjectStorage;
  catalogue: Catalogue;
  settings: HubSettings;
  /** Where conversions run. @default in the caller's thread */
  fence?: Fence;
  /** Fetch for the catalogue's sources. @default globalThis.fetch */
  zooFetch?: typeof fetch;
  /** Fetch for user-given URLs (the server's allow-list and address checks). @default globalThis.fetch */
  urlFetch?: typeof fetch;
  /** The URL policy a request's URL source must pass; none for the command line. */
  urlPolicy?: UrlPolicy;
  /** Where conversions are counted (`acs_hub_conversions_total{result}`); none for the command line. */
  metrics?: Pick<Metrics, 'conversions'>;
  logger?: Logger;
}

/** A request's source as the API names it: exactly one of the three. */
export interface SourceRef {
  zoo?: string;
  url?: string;
  upload?: string;
}

/** A source, resolved. */
export interface ResolvedSource {
  source: ConversionSource;
  /** The source as the request named it, for display. */
  view: Record<string, unknown>;
  /** Its sha256 when it is already known (pinned in the catalogue, pulled, or uploaded). */
  sha256?: string;
}

/** A conversion that exists, with its checkpoint id. */
export type Conversion = ConvertedModel & { checkpointId: string };

/** What one conversion is asked for. */
export interface ConversionRequest {
  source: ConversionSource;
  options: ConvertOptions;
  /** Only serve a stored conversion (`OFFLINE` otherwise); not counted as a conversion. */
  cacheOnly?: boolean;
  onProgress?: (e: ConversionProgress) => void;
  signal?: AbortSignal;
}

/** See the module comment. */
export class HubService {
  /** Recent failures of upstreams, answered at once with `Retry-After` (`download.failureMemoryMs`). */
  private readonly failures: FailureMemory;

  constructor(private readonly p: HubServiceParams) {
    this.failures = new FailureMemory({ ttlMs: p.settings.download?.failureMemoryMs });
  }

  /** The source a request names; a URL must pass the URL policy, an upload must exist. */
  async resolve(ref: SourceRef): Promise<ResolvedSource> {
    const { storage, catalogue } = this.p;
    if (ref.zoo !== undefined) {
      const entry = findModel(catalogue, ref.zoo);
      const pulled = await findPulled(storage, entry);
      return { source: { kind: 'zoo', entry }, view: { zoo: entry.id }, sha256: pulled?.sha256 ?? entry.sha256 };
    }
    if (ref.url !== undefined) {
      const url = this.p.urlPolicy ? checkUrl(ref.url, this.p.urlPolicy).href : ref.url;
      const pulled = await findPulled(storage, urlEntry(url));
      return { source: { kind: 'url', url }, view: { url }, sha256: pulled?.sha256 };
    }
    const rec = await readUpload(storage, ref.upload ?? '');
    return { source: { kind: 'blob', sha256: rec.sha256, name: rec.filename ?? `upload.${rec.format}` }, view: { upload: rec.id }, sha256: rec.sha256 };
  }

  /** The stored conversion of a source whose sha256 is known, without fetching or converting anything. */
  async findConverted(resolved: ResolvedSource, options: ConvertOptions): Promise<{ checkpointId: string } | undefined> {
    if (!resolved.sha256) return undefined;
    const arch = options.arch ?? (resolved.source.kind === 'zoo' ? resolved.source.entry.arch : undefined);
    const spec = { sourceSha256: resolved.sha256, mode: options.mode, options: canonicalOptions({ ...options, arch }), converterVersion: CONVERTER_VERSION };
    const manifest = await readManifest(this.p.storage, spec);
    if (!manifest) return undefined;
    const prefix = conversionPrefix(spec);
    await recordCheckpoint(this.p.storage, prefix, manifest);
    this.count('cached');
    return { checkpointId: checkpointIdOf(prefix) };
  }

  /** Get or convert, record the checkpoint, count the outcome. */
  async convert(req: ConversionRequest): Promise<Conversion> {
    const { storage, settings } = this.p;
    try {
      const converted = await convertModel({
        storage,
        source: req.source,
        options: req.options,
        sources: settings.sources,
        stagingDir: settings.stagingDir,
        offline: settings.offline || req.cacheOnly === true,
        cacheOnly: req.cacheOnly,
        download: settings.download,
        failures: this.failures,
        claims: settings.claims,
        budgets: settings.budgets,
        fetch: req.source.kind === 'url' ? this.p.urlFetch : this.p.zooFetch,
        fence: this.p.fence,
        onProgress: req.onProgress,
        signal: req.signal,
      });
      await recordCheckpoint(storage, converted.prefix, converted.manifest);
      this.count(converted.produced ? 'produced' : 'cached');
      return { ...converted, checkpointId: checkpointIdOf(converted.prefix) };
    } catch (err) {
      if (!req.cacheOnly && !req.signal?.aborted) this.count('failed');
      throw err;
    }
  }

  /** Count a conversion's outcome: the one definition of `acs_hub_conversions_total`. */
  count(result: 'produced' | 'cached' | 'failed' | 'cancelled'): void {
    this.p.metrics?.conversions.inc({ result });
  }
}
