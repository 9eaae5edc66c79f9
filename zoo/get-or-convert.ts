/**
 * The conversion cache: return the stored outputs of a conversion, running the converter only
 * when no process sharing the store has produced them yet, and only once for any number of
 * simultaneous requests (see storage/claim.ts).
 *
 * A conversion's files go under `conversionPrefix(spec)`; its `manifest.json` is written last,
 * and a conversion exists exactly when its manifest does, listing every file with its size and sha256.
 * Files of a producer that died before its manifest are invisible to readers and overwritten by the
 * next producer.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { claimKey, conversionFileKey, conversionPrefix, manifestKey, readManifest, MANIFEST, type ConversionFile, type ConversionManifest, type ConversionSpec } from './store.js';
import { runOnce, type ClaimOptions } from './storage/claim.js';
import { OfflineError } from './errors.js';
import type { ObjectStorage, WriteBody } from './storage/storage.js';

export type { ConversionFile, ConversionManifest } from './store.js';

/** What a producer gets. */
export interface ConversionContext {
  /** The key prefix of this conversion. */
  readonly prefix: string;
  /** Aborted when the caller gives up. */
  readonly signal: AbortSignal;
  /** Store one output file (atomically); resolves to its size and sha256. */
  writeFile(name: string, body: WriteBody): Promise<ConversionFile>;
}

/** Produces a conversion's files (through `ctx.writeFile`) and returns its model card. */
export type ConversionProducer = (ctx: ConversionContext) => Promise<Record<string, unknown>>;

/** Parameters of `getOrConvert`. */
export interface GetOrConvertParams extends ConversionSpec {
  storage: ObjectStorage;
  /** Timing of the claim protocol. */
  claims?: ClaimOptions;
  /** Only look: throw `OfflineError` rather than produce. @default false */
  cacheOnly?: boolean;
  signal?: AbortSignal;
}

/** What `getOrConvert` returns. */
export interface CacheResult {
  /** The key prefix of the conversion's files. */
  readonly prefix: string;
  readonly manifest: ConversionManifest;
  /** True in the one caller whose producer ran. */
  readonly produced: boolean;
}

const FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}$/;

async function lookup(storage: ObjectStorage, spec: ConversionSpec): Promise<ConversionManifest | undefined> {
  const manifest = await readManifest(storage, spec);
  if (!manifest) return undefined;
  for (const f of manifest.files) {
    const st = await storage.stat(f.key);
    if (st?.size !== f.size) {
      // A file went missing (evicted, deleted by hand): the conversion is incomplete; redo it.
      await storage.delete(manifestKey(spec));
      return undefined;
    }
  }
  return manifest;
}

function toStream(body: WriteBody): Readable {
  if (typeof body === 'string') return Readable.from([Buffer.from(body, 'utf8')]);
  if (body instanceof Uint8Array) return Readable.from([body]);
  return body;
}

/**
 * The cached outputs of the conversion `(sourceSha256, mode, options, converterVersion)`;
 * `produce` runs only when they are not stored yet, once across every process sharing the store.
 * A producer that throws publishes nothing, and the next call tries again.
 */
export async function getOrConvert(params: GetOrConvertParams, produce: ConversionProducer): Promise<CacheResult> {
  const { storage } = params;
  const spec: ConversionSpec = {
    sourceSha256: params.sourceSha256,
    mode: params.mode,
    options: params.options,
    converterVersion: params.converterVersion,
  };
  const prefix = conversionPrefix(spec);
  const key = manifestKey(spec);
  if (params.cacheOnly) {
    const manifest = await lookup(storage, spec);
    if (!manifest) throw new OfflineError(`conversion ${prefix} is not in the cache (${storage.location}) and producing it is not allowed here`, { store: storage.location });
    return { prefix, manifest, produced: false };
  }
  const { value, produced } = await runOnce<ConversionManifest>({
    ...params.claims,
    storage,
    claimKey: claimKey('conversion', prefix),
    signal: params.signal,
    lookup: () => lookup(storage, spec),
    produce: async ({ signal }) => {
      const files = new Map<string, ConversionFile>();
      const writeFile = async (name: string, body: WriteBody): Promise<ConversionFile> => {
        if (!FILE_NAME.test(name) || name === MANIFEST) throw new RangeError(`output file name '${name}' is invalid: use [A-Za-z0-9._-], not '${MANIFEST}'`);
        const hash = createHash('sha256');
        const hashing = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            hash.update(chunk);
            cb(null, chunk);
          },
        });
        const source = toStream(body);
        const fileKey = conversionFileKey(prefix, name);
        const [written] = await Promise.all([storage.write(fileKey, hashing, { signal }), pipeline(source, hashing)]);
        const file = { name, key: fileKey, size: written.size, sha256: hash.digest('hex') };
        files.set(name, file);
        return file;
      };
      const modelCard = await produce({ prefix, signal, writeFile });
      const stored: ConversionManifest = { spec, files: [...files.values()], createdAt: new Date().toISOString(), modelCard };
      const r = await storage.write(key, JSON.stringify(stored, null, 2), { ifAbsent: true, signal });
      if (!r.written) return (await lookup(storage, spec)) ?? stored;
      return stored;
    },
  });
  return { prefix, manifest: value, produced };
}
