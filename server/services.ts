/**
 * What the app's routes share: configuration, store, catalogue, inference engine, jobs,
 * metrics and logger, built once from the configuration (or given by a test).
 */
import type { Logger } from 'pino';
import type { HubConfig } from './config.js';
import { stagingDir } from './config.js';
import { workerUnavailable } from '../converters/fence/errors.js';
import { WorkerFence, type Fence } from '../converters/fence/fence.js';
import { RunQueue } from '../converters/fence/queue.js';
import { InferenceEngine } from '../inference/runtime/engine.js';
import type { Device } from '../inference/runtime/providers.js';
import { loadCatalogue, type Catalogue } from '../zoo/catalogue.js';
import { openStorage } from '../zoo/storage/open-storage.js';
import { loweringDecisions } from '../zoo/store.js';
import { sweepDebris, sweepLogFields, sweptCount } from '../zoo/sweep-debris.js';
import type { ObjectStorage } from '../zoo/storage/storage.js';
import { HubService } from './hub-service.js';
import { JobRegistry } from './jobs.js';
import { createLogger } from './log.js';
import { createMetrics, type Metrics } from './metrics.js';
import { guardedFetch, parseAllowList, type UrlPolicy } from './url-guard.js';

/** See the module comment. */
export interface Services {
  cfg: Readonly<HubConfig>;
  storage: ObjectStorage;
  catalogue: Catalogue;
  engine: InferenceEngine;
  /** Where decoding, preprocessing and conversion of inputs run. */
  fence: Fence;
  /**
   * Volumes for sliding windows, read to disk and spooled there (not in the fence): as many at
   * once as the fence has workers, `fence.maxPending` waiting; past that a request is refused
   * (503, retry later) before its body is read.
   */
  volumes: RunQueue;
  /** Get or convert, record, count: the one place conversions are made. */
  hub: HubService;
  jobs: JobRegistry;
  metrics: Metrics;
  logger: Logger;
  stagingDir: string;
  urlPolicy: UrlPolicy;
  /** Fetch for user-given URLs (allow-list and address checks). */
  urlFetch: typeof fetch;
  /** Fetch for the catalogue's configured sources. */
  zooFetch: typeof fetch | undefined;
  /** Set when the server starts shutting down. */
  state: { shuttingDown: boolean };
  apiKeys: string[];
  close(): Promise<void>;
}

/** Parts a caller (a test) may supply instead of building them from the configuration. */
export interface ServiceOverrides {
  storage?: ObjectStorage;
  catalogue?: Catalogue;
  logger?: Logger;
  engine?: InferenceEngine;
  zooFetch?: typeof fetch;
}

/** Build the services. */
export async function createServices(cfg: Readonly<HubConfig>, o: ServiceOverrides = {}): Promise<Services> {
  const apiKeys = cfg.server.apiKeys.split(',').map((k) => k.trim()).filter(Boolean);
  const logger = o.logger ?? createLogger({ level: cfg.server.logLevel, format: cfg.server.logFormat, secrets: [...apiKeys, cfg.sources.huggingface.token] });
  const storage = o.storage ?? (await openStorage(cfg));
  if (!o.storage) {
    // Whoever opens the store clears what dead writers left; a failure here only delays that.
    try {
      const swept = await sweepDebris({ storage, stagingDir: stagingDir(cfg), olderThanMs: cfg.sweepAfterMs, leaseMs: cfg.claims.leaseMs });
      logger[sweptCount(swept) > 0 ? 'info' : 'debug']({ ...sweepLogFields(swept), olderThanMs: cfg.sweepAfterMs }, 'swept leftovers of dead writers');
    } catch (err) {
      logger.warn({ err }, 'could not sweep leftovers of dead writers');
    }
  }
  const catalogue = o.catalogue ?? (await loadCatalogue({ path: cfg.catalogue || undefined }));
  const engine =
    o.engine ??
    new InferenceEngine({
      device: cfg.inference.device as Device,
      threads: cfg.inference.threads,
      spinning: cfg.inference.spinning,
      cacheBytes: cfg.inference.cacheBytes,
      maxPending: cfg.inference.maxPending,
      maxBatch: cfg.inference.maxBatch,
      batchWindowMs: cfg.inference.batchWindowMs,
      autotune: cfg.inference.autotune && { maxMs: cfg.inference.autotuneMaxMs },
      decisions: loweringDecisions(storage),
      onLoad: (i) => {
        if (i.choice) logger.debug({ model: i.key, lowering: i.choice.candidate, timings: i.choice.timings }, 'lowering chosen');
        if (i.fallback) logger.warn({ model: i.key, device: i.device, reason: i.fallback }, 'execution provider fell back');
        else logger.info({ model: i.key, device: i.device, warmupMs: Math.round(i.warmupMs), graph: i.specialized ?? 'general' }, 'model loaded');
      },
    });
  const fence = new WorkerFence({ workers: cfg.fence.workers, maxPending: cfg.fence.maxPending, heapBytes: cfg.budgets.workerHeapBytes });
  const urlPolicy: UrlPolicy = { allowList: parseAllowList(cfg.server.urlAllowList), allowPrivate: cfg.server.allowPrivateUrls };
  const metrics = createMetrics(true);
  const urlFetch = guardedFetch(urlPolicy);
  const hub = new HubService({
    storage,
    catalogue,
    settings: { sources: cfg.sources, stagingDir: stagingDir(cfg), offline: cfg.offline, download: cfg.download, claims: cfg.claims, budgets: cfg.budgets },
    fence,
    zooFetch: o.zooFetch,
    urlFetch,
    urlPolicy,
    metrics,
    logger,
  });
  const jobs = new JobRegistry({
    logger,
    convert: (req, { onProgress, signal }) => hub.convert({ source: req.source, options: req.options, onProgress, signal }),
    onCancel: () => hub.count('cancelled'),
  });
  const services: Services = {
    cfg,
    storage,
    catalogue,
    engine,
    fence,
    volumes: new RunQueue({
      concurrency: cfg.fence.workers,
      maxPending: cfg.fence.maxPending,
      what: 'volumes',
      refuse: (message) => workerUnavailable(`every reader of volumes is busy and ${message}`),
    }),
    hub,
    jobs,
    metrics,
    logger,
    stagingDir: stagingDir(cfg),
    urlPolicy,
    urlFetch,
    zooFetch: o.zooFetch,
    state: { shuttingDown: false },
    apiKeys,
    close: async () => {
      await services.jobs.drain(0);
      await engine.close();
      await fence.close();
      if (!o.storage) await storage.close();
    },
  };
  return services;
}
