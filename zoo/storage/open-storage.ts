/**
 * Open the store the configuration names: S3 when `s3.url` is set, local disk under
 * `<dataDir>/objects` otherwise.
 */
import { join } from 'node:path';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { openLocalStorage } from './local.js';
import type { ObjectStorage } from './storage.js';

/** The storage part of the configuration (the hub's config object has this shape). */
export interface StorageSettings {
  dataDir: string;
  /** Budget of the local store in bytes; 0 for none. @default 0 */
  cacheMaxBytes?: number;
  s3?: {
    /** `s3://bucket/prefix`; empty for local disk. */
    url: string;
    endpoint?: string;
    region?: string;
    forcePathStyle?: boolean;
    conditionalWrites?: 'auto' | 'native' | 'settle';
    partSize?: number;
  };
}

/** `s3://bucket/prefix` split into bucket and prefix. */
export function splitS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m) throw new RangeError(`S3 location '${url}' must look like s3://bucket/prefix`);
  return { bucket: m[1]!, prefix: (m[2] ?? '').replace(/^\/+|\/+$/g, '') };
}

/**
 * Open the configured store. The S3 client is loaded only for an S3 store (it takes a few
 * hundred milliseconds to load, which a command line on local disk need not spend).
 * @param params.credentials - explicit S3 credentials. @default the standard AWS chain
 */
export async function openStorage(settings: StorageSettings, params: { credentials?: S3ClientConfig['credentials'] } = {}): Promise<ObjectStorage> {
  const s3 = settings.s3;
  if (s3 && s3.url !== '') {
    const { bucket, prefix } = splitS3Url(s3.url);
    const { openS3Storage } = await import('./s3.js');
    return openS3Storage({
      bucket,
      prefix,
      endpoint: s3.endpoint || undefined,
      region: s3.region,
      forcePathStyle: s3.forcePathStyle,
      conditionalWrites: s3.conditionalWrites,
      partSize: s3.partSize,
      credentials: params.credentials,
    });
  }
  return openLocalStorage({ root: join(settings.dataDir, 'objects'), maxBytes: settings.cacheMaxBytes ?? 0 });
}
