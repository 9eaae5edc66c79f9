/**
 * S3 storage (`@aws-sdk/client-s3` v3, `@aws-sdk/lib-storage` for multipart): AWS S3, MinIO,
 * Ceph and other S3-compatible stores, under `s3://bucket/prefix`.
 *
 * A PutObject or a CompleteMultipartUpload makes the object visible whole or not at all, so
 * writes are atomic by the protocol itself. A writer killed mid-upload leaves only invisible
 * parts of an incomplete multipart upload; `sweepTemporaries` aborts old ones under the prefix
 * where the store can list them, and a bucket lifecycle rule (AbortIncompleteMultipartUpload)
 * reclaims them on stores that cannot.
 *
 * Conditional writes (`If-None-Match: *`) are honoured by AWS S3 (since 2024) and recent MinIO;
 * many S3-compatible stores (and s3rver) ignore the header. `probeConditionalWrites` tells which,
 * and `conditionalWrites` on the instance records the answer for the claim protocol.
 */
import { randomBytes } from 'node:crypto';
import { pipeline, Readable, Transform } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { objectNotFound, StorageError } from '../errors.js';
import { assertKey, assertPrefix, assertRange, type ObjectInfo, type ObjectStorage, type ReadOptions, type WriteBody, type WriteOptions, type WriteResult } from './storage.js';

/** Parameters of `openS3Storage`. */
export interface S3StorageParams {
  bucket: string;
  /** Key prefix inside the bucket, without slashes at either end. @default '' */
  prefix?: string;
  /** Endpoint of an S3-compatible store; undefined for AWS. */
  endpoint?: string;
  /** @default 'us-east-1' */
  region?: string;
  /** Path-style addressing (`endpoint/bucket/key`). @default true */
  forcePathStyle?: boolean;
  /** Explicit credentials; by default the standard AWS chain (environment, profile, instance role). */
  credentials?: S3ClientConfig['credentials'];
  /**
   * Whether the store enforces `If-None-Match: *`: `auto` probes it once at open, `native` trusts
   * it, `settle` does not (claims then use the settle protocol, see claim.ts).
   * @default 'auto'
   */
  conditionalWrites?: 'auto' | 'native' | 'settle';
  /** Multipart part size in bytes (minimum 5 MiB). @default 16 MiB */
  partSize?: number;
  /** Parts uploaded at once. @default 4 */
  queueSize?: number;
  /** A ready client (tests, custom middleware); built from the fields above otherwise. */
  client?: S3Client;
}

function statusOf(err: unknown): number | undefined {
  return err instanceof S3ServiceException ? err.$metadata.httpStatusCode : (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const name = (err as { name?: string })?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || statusOf(err) === 404;
}

function isPreconditionFailed(err: unknown): boolean {
  const name = (err as { name?: string })?.name;
  // 409 ConditionalRequestConflict: a concurrent conditional write won; the key is taken either way.
  return name === 'PreconditionFailed' || statusOf(err) === 412 || name === 'ConditionalRequestConflict';
}

function isAbort(err: unknown): boolean {
  return (err as { name?: string })?.name === 'AbortError';
}

/** The S3 backend. Create it with `openS3Storage`. */
export class S3Storage implements ObjectStorage {
  readonly location: string;
  conditionalWrites = false;
  readonly client: S3Client;
  readonly bucket: string;
  private readonly prefix: string;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly ownsClient: boolean;

  /** Use `openS3Storage`, which also settles `conditionalWrites`. */
  constructor(params: S3StorageParams) {
    this.bucket = params.bucket;
    this.prefix = params.prefix ? `${params.prefix.replace(/^\/+|\/+$/g, '')}/` : '';
    this.location = `s3://${this.bucket}/${this.prefix}`;
    this.partSize = params.partSize ?? 16 * 1024 * 1024;
    this.queueSize = params.queueSize ?? 4;
    this.ownsClient = params.client === undefined;
    this.client =
      params.client ??
      new S3Client({
        endpoint: params.endpoint,
        region: params.region ?? 'us-east-1',
        forcePathStyle: params.forcePathStyle ?? true,
        credentials: params.credentials,
        // S3-compatible stores often lack the newer default integrity checksums (CRC32 trailers).
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
  }

  private full(key: string): string {
    assertKey(key);
    return this.prefix + key;
  }

  private fail(what: string, key: string, err: unknown): never {
    if (isAbort(err)) throw err;
    const status = statusOf(err);
    throw new StorageError(`S3 ${what} '${key}' in ${this.location} failed${status ? ` (HTTP ${status})` : ''}: ${(err as Error).message}`, {
      cause: err,
      store: this.location,
      retryable: status === undefined || status >= 500 || status === 429,
    });
  }

  async has(key: string): Promise<boolean> {
    return (await this.stat(key)) !== undefined;
  }

  /** A presigned GET URL of an object, valid for `seconds`. */
  async presignGet(key: string, seconds: number, filename?: string): Promise<string> {
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: this.full(key),
      ResponseContentDisposition: filename ? `attachment; filename="${filename}"` : undefined,
    });
    return getSignedUrl(this.client, command, { expiresIn: seconds });
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.full(key) }));
      return { key, size: r.ContentLength ?? 0, modified: r.LastModified ?? new Date(0), etag: r.ETag };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      return this.fail('HEAD', key, err);
    }
  }

  async read(key: string, options: ReadOptions = {}): Promise<Readable> {
    assertRange(options.range);
    const r = options.range;
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key), Range: r ? `bytes=${r.start}-${r.end ?? ''}` : undefined }),
        { abortSignal: options.signal },
      );
      if (!(out.Body instanceof Readable)) throw new StorageError(`S3 GET '${key}': the SDK returned no Node.js stream`, { store: this.location });
      return out.Body;
    } catch (err) {
      if (isNotFound(err)) throw objectNotFound(key, err);
      if (statusOf(err) === 416) throw new RangeError(`range start ${r?.start} is past the end of '${key}'`);
      return this.fail('GET', key, err);
    }
  }

  async write(key: string, body: WriteBody, options: WriteOptions = {}): Promise<WriteResult> {
    const Key = this.full(key);
    if (options.ifAbsent && !this.conditionalWrites && (await this.has(key))) {
      // Best effort only: without store support, check-then-write can race (see zoo/storage/claim.ts).
      if (body instanceof Readable) body.destroy();
      return { written: false, size: 0 };
    }
    const IfNoneMatch = options.ifAbsent && this.conditionalWrites ? '*' : undefined;
    try {
      if (typeof body === 'string' || body instanceof Uint8Array) {
        const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: bytes, ContentLength: bytes.byteLength, IfNoneMatch }), {
          abortSignal: options.signal,
        });
        return { written: true, size: bytes.byteLength };
      }
      let size = 0;
      const counted = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          size += chunk.byteLength;
          cb(null, chunk);
        },
      });
      pipeline(body, counted, () => undefined);
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key, Body: counted, IfNoneMatch },
        partSize: this.partSize,
        queueSize: this.queueSize,
        leavePartsOnError: false,
      });
      const onAbort = (): void => void upload.abort().catch(() => undefined);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await upload.done();
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
      }
      return { written: true, size };
    } catch (err) {
      if (body instanceof Readable) body.destroy();
      if (options.ifAbsent && isPreconditionFailed(err)) return { written: false, size: 0 };
      return this.fail('PUT', key, err);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.full(key) }));
    } catch (err) {
      if (!isNotFound(err)) this.fail('DELETE', key, err);
    }
  }

  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    assertPrefix(prefix);
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }));
      } catch (err) {
        return this.fail('LIST', prefix, err);
      }
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined) continue;
        const key = o.Key.slice(this.prefix.length);
        if (key.split('/').some((s) => s.startsWith('.'))) continue;
        yield { key, size: o.Size ?? 0, modified: o.LastModified ?? new Date(0), etag: o.ETag };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async sweepTemporaries(params: { before: Date; keep: (key: string) => Promise<boolean> }): Promise<string[]> {
    const removed: string[] = [];
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix, KeyMarker, UploadIdMarker }));
      } catch (err) {
        // Stores that cannot list uploads (s3rver) leave them to a lifecycle rule.
        if ((err as { name?: string }).name === 'NotImplemented' || statusOf(err) === 501) return removed;
        return this.fail('LIST uploads', this.prefix, err);
      }
      for (const u of page.Uploads ?? []) {
        if (u.Key === undefined || u.UploadId === undefined || (u.Initiated?.getTime() ?? Infinity) >= params.before.getTime()) continue;
        const key = u.Key.slice(this.prefix.length);
        if (await params.keep(key)) continue;
        try {
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }));
          removed.push(`${key} (upload ${u.UploadId})`);
        } catch (err) {
          if (!isNotFound(err)) this.fail('ABORT upload', key, err);
        }
      }
      KeyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      UploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (KeyMarker);
    return removed;
  }

  /**
   * Whether the store enforces `If-None-Match: *` on PutObject: write a probe object twice
   * under a dot-name (never listed), and see whether the second write is refused.
   */
  async probeConditionalWrites(): Promise<boolean> {
    const Key = `${this.prefix}.probe/${randomBytes(8).toString('hex')}`;
    const put = () => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: 'probe', IfNoneMatch: '*' }));
    try {
      await put();
      try {
        await put();
        return false;
      } catch (err) {
        if (isPreconditionFailed(err)) return true;
        throw err;
      }
    } catch (err) {
      return this.fail('probe PUT', '.probe', err);
    } finally {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.client.destroy();
  }
}

/** Open an S3 store and settle whether it enforces conditional writes (probing when `auto`). */
export async function openS3Storage(params: S3StorageParams): Promise<S3Storage> {
  const storage = new S3Storage(params);
  const mode = params.conditionalWrites ?? 'auto';
  storage.conditionalWrites = mode === 'native' ? true : mode === 'settle' ? false : await storage.probeConditionalWrites();
  return storage;
}
