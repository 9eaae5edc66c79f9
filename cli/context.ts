/**
 * What the zoo subcommands share: the configuration (with `--config`, `--data`, `--s3` and
 * `--offline` applied), the catalogue it names, and the store it selects.
 */
import { loadConfig, stagingDir, type ConfigOverrides, type HubConfig } from '../server/config.js';
import { loadCatalogue, type Catalogue } from '../zoo/catalogue.js';
import { openStorage } from '../zoo/storage/open-storage.js';
import { sweepDebris, sweepLogFields, sweptCount } from '../zoo/sweep-debris.js';
import type { ObjectStorage } from '../zoo/storage/storage.js';
import type { ConvertOptions } from '../converters/convert.js';
import { parseSource } from '../zoo/convert-model.js';
import { HubService, type Conversion } from '../server/hub-service.js';
import { UsageError } from './args.js';
import { progressPrinter } from './progress.js';

/** The options every zoo subcommand accepts, for `parse`. */
export const STORE_OPTIONS = {
  config: { type: 'string' },
  data: { type: 'string' },
  s3: { type: 'string' },
  offline: { type: 'boolean' },
} as const;

/** The values of `STORE_OPTIONS` after parsing. */
export interface StoreFlags {
  config?: string | boolean;
  data?: string | boolean;
  s3?: string | boolean;
  offline?: string | boolean;
}

/** The configuration with the command line's flags applied. */
export function cliConfig(flags: StoreFlags): Readonly<HubConfig> {
  if (typeof flags.data === 'string' && typeof flags.s3 === 'string') throw new UsageError('--data and --s3 choose different stores: give one');
  const overrides: ConfigOverrides = {};
  if (typeof flags.data === 'string') {
    overrides.dataDir = flags.data;
    overrides.s3 = { url: '' };
  }
  if (typeof flags.s3 === 'string') overrides.s3 = { url: flags.s3 };
  if (flags.offline === true) overrides.offline = true;
  return loadConfig({ configFile: typeof flags.config === 'string' ? flags.config : undefined, overrides });
}

/** The configured catalogue. */
export function cliCatalogue(cfg: Readonly<HubConfig>): Promise<Catalogue> {
  return loadCatalogue({ path: cfg.catalogue || undefined });
}

/** The configured store, cleared of what dead writers left (one line on stderr says what went). */
export async function cliStorage(cfg: Readonly<HubConfig>): Promise<ObjectStorage> {
  const storage = await openStorage(cfg);
  const swept = await sweepDebris({ storage, stagingDir: stagingDir(cfg), olderThanMs: cfg.sweepAfterMs, leaseMs: cfg.claims.leaseMs });
  if (sweptCount(swept) > 0) process.stderr.write(`${JSON.stringify({ level: 'info', msg: 'swept leftovers of dead writers', ...sweepLogFields(swept) })}\n`);
  return storage;
}

export { stagingDir };

/** Convert a zoo id or URL through the configured cache (the server's own hub service), with progress on the terminal. */
export async function cliConvertModel(cfg: Readonly<HubConfig>, storage: ObjectStorage, spec: string, options: ConvertOptions): Promise<Conversion> {
  const catalogue = await cliCatalogue(cfg);
  const hub = new HubService({
    storage,
    catalogue,
    settings: { sources: cfg.sources, stagingDir: stagingDir(cfg), offline: cfg.offline, download: cfg.download, claims: cfg.claims, budgets: cfg.budgets },
  });
  return hub.convert({ source: parseSource(catalogue, spec), options, onProgress: progressPrinter() });
}
