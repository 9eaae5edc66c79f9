/**
 * Configuration of the hub: defaults, then an optional JSON config file (`--config` or
 * `ACS_HUB_CONFIG`), then `ACS_HUB_*` environment variables, then command-line overrides;
 * validated once, then frozen. This is the only module that reads `process.env`.
 *
 * A bad setting stops start-up with a `ConfigError` that names it (the file's JSON path or the
 * environment variable) and says what it must be.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_BUDGETS, type Budgets } from '../converters/budgets.js';
import { defineError } from '../converters/errors.js';
import { defaultWorkers } from '../converters/fence/fence.js';

/** Settings of one public source. */
export interface SourceConfig {
  /** Base URL the catalogue's paths are appended to (override to use a mirror or a test server). */
  baseUrl: string;
  /** Milliseconds without an answer or without a byte of the body before an attempt is abandoned. */
  timeoutMs: number;
}

/**
 * The log formats (server/log.ts writes them). Here, not beside the logger, so that reading
 * the configuration does not load pino and pino-pretty.
 */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;

/** How log lines are written: JSON, human-readable, or chosen by whether stdout is a terminal. */
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The whole configuration (frozen once loaded). */
export interface HubConfig {
  /** Local data directory: the local store (objects/) and partial downloads (staging/). */
  dataDir: string;
  /** Size budget of the local store in bytes (LRU eviction above it); 0 for none. */
  cacheMaxBytes: number;
  /**
   * Leftovers of writers that died (partial downloads and uploads in staging/, store
   * temporaries, incomplete multipart uploads, conversion outputs without a card) older than
   * this are removed when the store is opened, unless a live claim covers them. Younger partial
   * downloads are kept, to be resumed. At least twice `claims.leaseMs`.
   */
  sweepAfterMs: number;
  /** Cache only: never fetch from a public source. */
  offline: boolean;
  /** Catalogue file; empty for the shipped zoo/catalogue.json. */
  catalogue: string;
  /** Verbose errors (stack traces) on the command line. */
  debug: boolean;
  s3: {
    /** `s3://bucket/prefix`; empty to use local disk. */
    url: string;
    /** Endpoint of an S3-compatible store (MinIO, Ceph, ...); empty for AWS. */
    endpoint: string;
    region: string;
    /** Path-style addressing (`endpoint/bucket/key`), which most S3-compatible stores need. */
    forcePathStyle: boolean;
    /** How replicas agree on who does a piece of work: `auto` probes the store once. */
    conditionalWrites: 'auto' | 'native' | 'settle';
    /** Multipart part size in bytes (S3's minimum is 5 MiB). */
    partSize: number;
  };
  sources: {
    torchvision: SourceConfig;
    huggingface: SourceConfig & { token: string };
    github: SourceConfig;
  };
  download: {
    /** Largest file a download may be, in bytes. */
    maxBytes: number;
    /** Attempts after the first for a transient failure. */
    retries: number;
    /** First backoff delay; doubled per attempt, with jitter. */
    backoffMs: number;
    maxBackoffMs: number;
    /** How long an upstream's failure is remembered per URL and answered at once, with `Retry-After`; 0 asks again every time. */
    failureMemoryMs: number;
  };
  server: {
    host: string;
    /** 0 picks a free port. */
    port: number;
    /** API keys (comma-separated) accepted as bearer tokens; empty: no key needed. */
    apiKeys: string;
    /** Require a key for reads too. */
    protectReads: boolean;
    /** Hosts URL sources may name (comma-separated; `*.example.com` for subdomains). */
    urlAllowList: string;
    /** Allow URL sources on loopback, private and link-local addresses (tests only). */
    allowPrivateUrls: boolean;
    /** Largest upload, in bytes. */
    maxUploadBytes: number;
    /** Largest volume sent for inference, in bytes. */
    maxVolumeBytes: number;
    /** Largest JSON body, in bytes. */
    maxJsonBytes: number;
    /** A request that takes longer is answered 408 / cut. */
    requestTimeoutMs: number;
    /** On SIGTERM, how long in-flight requests may take to finish. */
    shutdownGraceMs: number;
    /** Answer downloads from an S3 store with a redirect to a presigned URL. */
    redirectDownloads: boolean;
    /** Lifetime of presigned URLs, in seconds. */
    presignSeconds: number;
    /** pino log level (fatal, error, warn, info, debug, trace, silent). */
    logLevel: string;
    /** Log lines: `json`, `pretty` (human-readable) or `auto` (pretty on a terminal, JSON otherwise). */
    logFormat: LogFormat;
    /** Validate responses against openapi.yaml too (tests; costs time). */
    validateResponses: boolean;
  };
  inference: {
    /** cpu, webgpu, cuda or tensorrt (falls back to cpu with a logged reason). */
    device: string;
    /** Intra-op threads; 0 for onnxruntime's choice. */
    threads: number;
    /**
     * Intra-op threads spin between operators during a run instead of sleeping (onnxruntime's
     * default): faster runs; false leaves the cores to other work while a run waits on a thread.
     */
    spinning: boolean;
    /** Memory budget of the session cache, in bytes. */
    cacheBytes: number;
    /** Requests waiting at most. */
    maxPending: number;
    /** Volumes batched into one run at most. */
    maxBatch: number;
    /** Milliseconds a run waits for more requests of the same model and shape to batch with (0: none). */
    batchWindowMs: number;
    /**
     * Measure the candidate graphs per model and input size and run the fastest, keeping the
     * decision in the store (index/lowerings/); false for reproducible runs of the default graph.
     */
    autotune: boolean;
    /** Milliseconds of measuring per model and size after which no further candidate is tried. */
    autotuneMaxMs: number;
  };
  /** Budgets on the work an input may cause (see converters/budgets.ts). */
  budgets: Budgets;
  /** Worker threads that decode, preprocess and convert inputs off the request thread (see converters/fence). */
  fence: {
    /** Workers at most, each with a heap of `budgets.workerHeapBytes`. */
    workers: number;
    /** Tasks waiting for a worker at most; past it a request is answered 503 with Retry-After. */
    maxPending: number;
  };
  claims: {
    /** A claim not refreshed for this long is taken to be dead. */
    leaseMs: number;
    /** Fallback protocol: wait between writing a claim and reading it back. */
    settleMs: number;
    /** How often a waiter looks for the result. */
    pollMs: number;
    /** How long a waiter waits for another worker before giving up. */
    waitMs: number;
  };
}

/** A setting that is missing, malformed or out of range. */
export const ConfigError = defineError('ConfigError', 'CONFIG_INVALID');
/** An instance of `ConfigError`. */
export type ConfigError = InstanceType<typeof ConfigError>;

/** Deep partial, for overrides. */
export type ConfigOverrides = { [K in keyof HubConfig]?: HubConfig[K] extends object ? Partial<HubConfig[K]> : HubConfig[K] };

/** The defaults. */
export function defaultConfig(): HubConfig {
  return {
    dataDir: './data',
    cacheMaxBytes: 0,
    sweepAfterMs: 24 * 3_600_000,
    offline: false,
    catalogue: '',
    debug: false,
    s3: { url: '', endpoint: '', region: 'us-east-1', forcePathStyle: true, conditionalWrites: 'auto', partSize: 16 * 1024 * 1024 },
    sources: {
      torchvision: { baseUrl: 'https://download.pytorch.org/models', timeoutMs: 30_000 },
      huggingface: { baseUrl: 'https://huggingface.co', timeoutMs: 30_000, token: '' },
      github: { baseUrl: 'https://github.com', timeoutMs: 30_000 },
    },
    download: { maxBytes: 4 * 1024 ** 3, retries: 5, backoffMs: 500, maxBackoffMs: 30_000, failureMemoryMs: 30_000 },
    claims: { leaseMs: 60_000, settleMs: 1_000, pollMs: 500, waitMs: 30 * 60_000 },
    server: {
      host: '127.0.0.1',
      port: 8080,
      apiKeys: '',
      protectReads: false,
      urlAllowList: 'huggingface.co,*.huggingface.co,*.hf.co,download.pytorch.org,github.com,objects.githubusercontent.com,release-assets.githubusercontent.com',
      allowPrivateUrls: false,
      maxUploadBytes: 4 * 1024 ** 3,
      maxVolumeBytes: 1024 ** 3,
      maxJsonBytes: 1024 * 1024,
      requestTimeoutMs: 30 * 60_000,
      shutdownGraceMs: 30_000,
      redirectDownloads: false,
      presignSeconds: 900,
      logLevel: 'info',
      logFormat: 'auto',
      validateResponses: false,
    },
    inference: { device: 'cpu', threads: 0, spinning: true, cacheBytes: 2 * 1024 ** 3, maxPending: 32, maxBatch: 4, batchWindowMs: 2, autotune: true, autotuneMaxMs: 20000 },
    budgets: { ...DEFAULT_BUDGETS },
    fence: { workers: defaultWorkers(), maxPending: 32 },
  };
}

const ENUMS: Record<string, readonly string[]> = {
  's3.conditionalWrites': ['auto', 'native', 'settle'],
  'server.logLevel': ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
  'server.logFormat': LOG_FORMATS,
  'inference.device': ['cpu', 'webgpu', 'cuda', 'tensorrt'],
};

/** Environment variables, each with the config path it sets; the first one present wins. */
const ENV: ReadonlyArray<readonly [path: string, names: readonly string[]]> = [
  ['dataDir', ['ACS_HUB_DATA_DIR']],
  ['cacheMaxBytes', ['ACS_HUB_CACHE_MAX_BYTES']],
  ['sweepAfterMs', ['ACS_HUB_SWEEP_AFTER_MS']],
  ['offline', ['ACS_HUB_OFFLINE']],
  ['catalogue', ['ACS_HUB_CATALOGUE']],
  ['debug', ['ACS_HUB_DEBUG']],
  ['s3.url', ['ACS_HUB_S3_URL']],
  ['s3.endpoint', ['ACS_HUB_S3_ENDPOINT']],
  ['s3.region', ['ACS_HUB_S3_REGION']],
  ['s3.forcePathStyle', ['ACS_HUB_S3_FORCE_PATH_STYLE']],
  ['s3.conditionalWrites', ['ACS_HUB_S3_CONDITIONAL_WRITES']],
  ['s3.partSize', ['ACS_HUB_S3_PART_SIZE']],
  ['sources.torchvision.baseUrl', ['ACS_HUB_TORCHVISION_URL']],
  ['sources.huggingface.baseUrl', ['ACS_HUB_HF_ENDPOINT', 'HF_ENDPOINT']],
  ['sources.huggingface.token', ['ACS_HUB_HF_TOKEN', 'HF_TOKEN']],
  ['sources.github.baseUrl', ['ACS_HUB_GITHUB_URL']],
  ['download.maxBytes', ['ACS_HUB_MAX_DOWNLOAD_BYTES']],
  ['download.retries', ['ACS_HUB_DOWNLOAD_RETRIES']],
  ['download.backoffMs', ['ACS_HUB_DOWNLOAD_BACKOFF_MS']],
  ['download.maxBackoffMs', ['ACS_HUB_DOWNLOAD_MAX_BACKOFF_MS']],
  ['download.failureMemoryMs', ['ACS_HUB_DOWNLOAD_FAILURE_MEMORY_MS']],
  ['claims.leaseMs', ['ACS_HUB_CLAIM_LEASE_MS']],
  ['claims.settleMs', ['ACS_HUB_CLAIM_SETTLE_MS']],
  ['claims.pollMs', ['ACS_HUB_CLAIM_POLL_MS']],
  ['claims.waitMs', ['ACS_HUB_CLAIM_WAIT_MS']],
  ['server.host', ['ACS_HUB_HOST']],
  ['server.port', ['ACS_HUB_PORT']],
  ['server.apiKeys', ['ACS_HUB_API_KEYS']],
  ['server.protectReads', ['ACS_HUB_PROTECT_READS']],
  ['server.urlAllowList', ['ACS_HUB_URL_ALLOW_LIST']],
  ['server.allowPrivateUrls', ['ACS_HUB_ALLOW_PRIVATE_URLS']],
  ['server.maxUploadBytes', ['ACS_HUB_MAX_UPLOAD_BYTES']],
  ['server.maxVolumeBytes', ['ACS_HUB_MAX_VOLUME_BYTES']],
  ['server.maxJsonBytes', ['ACS_HUB_MAX_JSON_BYTES']],
  ['server.requestTimeoutMs', ['ACS_HUB_REQUEST_TIMEOUT_MS']],
  ['server.shutdownGraceMs', ['ACS_HUB_SHUTDOWN_GRACE_MS']],
  ['server.redirectDownloads', ['ACS_HUB_REDIRECT_DOWNLOADS']],
  ['server.presignSeconds', ['ACS_HUB_PRESIGN_SECONDS']],
  ['server.logLevel', ['ACS_HUB_LOG_LEVEL']],
  ['server.logFormat', ['ACS_HUB_LOG_FORMAT']],
  ['server.validateResponses', ['ACS_HUB_VALIDATE_RESPONSES']],
  ['inference.device', ['ACS_HUB_DEVICE']],
  ['inference.threads', ['ACS_HUB_THREADS']],
  ['inference.spinning', ['ACS_HUB_INFERENCE_SPINNING']],
  ['inference.cacheBytes', ['ACS_HUB_ENGINE_CACHE_BYTES']],
  ['inference.maxPending', ['ACS_HUB_MAX_PENDING']],
  ['inference.maxBatch', ['ACS_HUB_MAX_BATCH']],
  ['inference.batchWindowMs', ['ACS_HUB_INFERENCE_BATCH_WINDOW_MS']],
  ['inference.autotune', ['ACS_HUB_INFERENCE_AUTOTUNE']],
  ['inference.autotuneMaxMs', ['ACS_HUB_INFERENCE_AUTOTUNE_MAX_MS']],
  ['fence.workers', ['ACS_HUB_FENCE_WORKERS']],
  ['fence.maxPending', ['ACS_HUB_FENCE_MAX_PENDING']],
  // budgets.unpackedEntryBytes <- ACS_HUB_BUDGET_UNPACKED_ENTRY_BYTES, and so on for each budget.
  ...Object.keys(DEFAULT_BUDGETS).map((k) => [`budgets.${k}`, [`ACS_HUB_BUDGET_${k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`]] as const),
];

/** One timeout for every source. */
const TIMEOUT_ENV = 'ACS_HUB_TIMEOUT_MS';

type Node = Record<string, unknown>;

function isNode(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function getAt(root: Node, path: string): unknown {
  return path.split('.').reduce<unknown>((n, k) => (isNode(n) ? n[k] : undefined), root);
}

function setAt(root: Node, path: string, value: unknown): void {
  const keys = path.split('.');
  let n = root;
  for (const k of keys.slice(0, -1)) n = n[k] as Node;
  n[keys[keys.length - 1]!] = value;
}

/** Parse an environment string into the type of the default at `path`. */
function parseEnv(path: string, name: string, raw: string, like: unknown): unknown {
  if (typeof like === 'boolean') {
    const v = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
    throw new ConfigError(`${name}='${raw}' must be a boolean (true/false/1/0)`);
  }
  if (typeof like === 'number') {
    const v = Number(raw.trim());
    if (raw.trim() === '' || !Number.isFinite(v)) throw new ConfigError(`${name}='${raw}' must be a number (for ${path})`);
    return v;
  }
  return raw;
}

/** Merge `src` into `dst` (a copy of the defaults), checking each key and type; `where` names the origin. */
function merge(dst: Node, src: unknown, where: string, prefix = ''): void {
  if (!isNode(src)) throw new ConfigError(`${where}${prefix ? ` '${prefix}'` : ''} must be an object`);
  for (const [k, v] of Object.entries(src)) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (v === undefined) continue;
    if (!Object.hasOwn(dst, k)) throw new ConfigError(`${where}: unknown setting '${path}'`);
    const like = dst[k];
    if (isNode(like)) merge(like, v, where, path);
    else if (typeof v !== typeof like) throw new ConfigError(`${where}: '${path}' must be a ${typeof like}, got ${JSON.stringify(v)}`);
    else dst[k] = v;
  }
}

function check(cfg: HubConfig): void {
  const nonNegative: string[] = ['cacheMaxBytes', 'download.retries', 'download.backoffMs', 'download.maxBackoffMs', 'download.failureMemoryMs', 'claims.settleMs', 'server.port', 'inference.threads', 'inference.batchWindowMs'];
  const positive: string[] = [
    'download.maxBytes',
    'sweepAfterMs',
    'claims.leaseMs',
    'claims.pollMs',
    'claims.waitMs',
    'sources.torchvision.timeoutMs',
    'sources.huggingface.timeoutMs',
    'sources.github.timeoutMs',
    'server.maxUploadBytes',
    'server.maxVolumeBytes',
    'server.maxJsonBytes',
    'server.requestTimeoutMs',
    'server.shutdownGraceMs',
    'server.presignSeconds',
    'inference.cacheBytes',
    'inference.maxPending',
    'inference.maxBatch',
    'inference.autotuneMaxMs',
    'fence.workers',
    'fence.maxPending',
    ...Object.keys(DEFAULT_BUDGETS).map((k) => `budgets.${k}`),
  ];
  for (const p of nonNegative) {
    const v = getAt(cfg as unknown as Node, p) as number;
    if (!Number.isInteger(v) || v < 0) throw new ConfigError(`'${p}' must be an integer >= 0, got ${v}`);
  }
  for (const p of positive) {
    const v = getAt(cfg as unknown as Node, p) as number;
    if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`'${p}' must be an integer > 0, got ${v}`);
  }
  if (cfg.sweepAfterMs < 2 * cfg.claims.leaseMs) {
    throw new ConfigError(`'sweepAfterMs' must be at least twice 'claims.leaseMs' (${2 * cfg.claims.leaseMs}), got ${cfg.sweepAfterMs}: a writer's leftovers must outlive its lease`);
  }
  if (cfg.s3.partSize < 5 * 1024 * 1024) throw new ConfigError(`'s3.partSize' must be at least 5 MiB (S3's minimum part), got ${cfg.s3.partSize}`);
  for (const [path, allowed] of Object.entries(ENUMS)) {
    const v = getAt(cfg as unknown as Node, path);
    if (!allowed.includes(v as string)) throw new ConfigError(`'${path}' must be one of ${allowed.join(', ')}, got '${String(v)}'`);
  }
  if (cfg.s3.url !== '') parseS3Url(cfg.s3.url);
  if (cfg.s3.endpoint !== '') checkUrl('s3.endpoint', cfg.s3.endpoint);
  for (const name of ['torchvision', 'huggingface', 'github'] as const) checkUrl(`sources.${name}.baseUrl`, cfg.sources[name].baseUrl);
  if (cfg.dataDir === '') throw new ConfigError(`'dataDir' must not be empty`);
  if (cfg.server.port > 65535) throw new ConfigError(`'server.port' must be at most 65535, got ${cfg.server.port}`);
  for (const host of cfg.server.urlAllowList.split(',').map((h) => h.trim()).filter(Boolean)) {
    if (!/^(\*\.)?[a-z0-9.-]+(:\d+)?$/i.test(host)) throw new ConfigError(`'server.urlAllowList' entry '${host}' is not a host name (or *.domain)`);
  }
}

function checkUrl(path: string, value: string): void {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ConfigError(`'${path}' must be an http(s) URL, got '${value}'`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`'${path}' must be an http(s) URL, got '${value}'`);
}

/** `s3://bucket/prefix` split into bucket and prefix (without slashes at either end). */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new ConfigError(`S3 location '${url}' must look like s3://bucket/prefix (bucket: 3-63 lowercase letters, digits, dots, hyphens)`);
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix.split('/').some((s) => s === '.' || s === '..')) throw new ConfigError(`S3 prefix in '${url}' must not contain '.' or '..' segments`);
  return { bucket: m[1]!, prefix };
}

/**
 * Load the configuration: defaults, then the config file, then environment variables, then
 * `overrides` (command-line flags). Returns a deeply frozen object.
 * @param params.env - the environment. @default process.env
 * @param params.configFile - a JSON config file. @default env ACS_HUB_CONFIG, else none
 * @param params.overrides - settings that win over everything (from command-line flags).
 */
export function loadConfig(params: { env?: Readonly<Record<string, string | undefined>>; configFile?: string; overrides?: ConfigOverrides } = {}): Readonly<HubConfig> {
  const env = params.env ?? process.env;
  const cfg = defaultConfig();
  const root = cfg as unknown as Node;
  const file = params.configFile ?? env['ACS_HUB_CONFIG'];
  if (file !== undefined && file !== '') {
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`config file ${file}: ${(err as Error).message}`);
    }
    merge(root, doc, `config file ${file}`);
  }
  const timeout = env[TIMEOUT_ENV];
  if (timeout !== undefined) {
    for (const s of ['torchvision', 'huggingface', 'github']) {
      setAt(root, `sources.${s}.timeoutMs`, parseEnv(`sources.${s}.timeoutMs`, TIMEOUT_ENV, timeout, 0));
    }
  }
  for (const [path, names] of ENV) {
    const name = names.find((n) => env[n] !== undefined);
    if (name === undefined) continue;
    setAt(root, path, parseEnv(path, name, env[name]!, getAt(root, path)));
  }
  if (params.overrides) merge(root, params.overrides, 'command line');
  check(cfg);
  cfg.dataDir = resolve(cfg.dataDir);
  if (cfg.catalogue !== '') cfg.catalogue = resolve(cfg.catalogue);
  return deepFreeze(cfg);
}

/** Where the local store keeps its objects. */
export function objectsDir(cfg: Pick<HubConfig, 'dataDir'>): string {
  return join(cfg.dataDir, 'objects');
}

/** Where partial downloads wait to be resumed (never visible as objects). */
export function stagingDir(cfg: Pick<HubConfig, 'dataDir'>): string {
  return join(cfg.dataDir, 'staging');
}

function deepFreeze<T>(o: T): Readonly<T> {
  if (isNode(o)) for (const v of Object.values(o)) deepFreeze(v);
  return Object.freeze(o);
}
