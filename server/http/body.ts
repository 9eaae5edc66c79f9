/**
 * Request bodies that are files: streamed (never buffered beyond their limit), counted and
 * hashed as they arrive; a body over the limit stops the transfer with 413.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Request } from 'express';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HttpError } from '../errors.js';

function declaredLength(req: Request, limit: number): number | undefined {
  const raw = req.headers['content-length'];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new HttpError('VALIDATION_FAILED', `Content-Length '${raw}' is not a size`);
  if (n > limit) throw new HttpError('PAYLOAD_TOO_LARGE', `the body of ${n} bytes is over the limit of ${limit} bytes`);
  return n;
}

function limiter(limit: number, hash?: ReturnType<typeof createHash>): Transform & { bytes: number } {
  const t = new Transform({
    transform(chunk: Buffer, _e, cb) {
      t.bytes += chunk.length;
      if (t.bytes > limit) return cb(new HttpError('PAYLOAD_TOO_LARGE', `the body is over the limit of ${limit} bytes`));
      hash?.update(chunk);
      cb(null, chunk);
    },
  }) as Transform & { bytes: number };
  t.bytes = 0;
  return t;
}

/** Read a whole body into memory, up to `limit` bytes. */
export async function readBody(req: Request, limit: number): Promise<Buffer> {
  const expected = declaredLength(req, limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.destroy();
      throw new HttpError('PAYLOAD_TOO_LARGE', `the body is over the limit of ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  if (expected !== undefined && size !== expected) throw new HttpError('VALIDATION_FAILED', `the body has ${size} bytes, Content-Length said ${expected}`);
  if (size === 0) throw new HttpError('VALIDATION_FAILED', 'the body is empty');
  return Buffer.concat(chunks, size);
}

/** Stream a body into `path` while hashing it; the file is removed on any failure. */
export async function bodyToFile(req: Request, path: string, limit: number): Promise<{ size: number; sha256: string }> {
  declaredLength(req, limit);
  const hash = createHash('sha256');
  const count = limiter(limit, hash);
  try {
    await pipeline(req, count, createWriteStream(path, { flags: 'wx' }));
  } catch (err) {
    await rm(path, { force: true });
    throw err;
  }
  if (count.bytes === 0) {
    await rm(path, { force: true });
    throw new HttpError('VALIDATION_FAILED', 'the body is empty');
  }
  return { size: count.bytes, sha256: hash.digest('hex') };
}
