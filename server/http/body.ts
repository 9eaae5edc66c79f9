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
import { httpError } from '../errors.js';

/** How a body over its limit is refused (given its declared size when it has one); the message names the limit's setting. */
export type TooLarge = (limit: number, declared?: number) => Error;

const payloadTooLarge: TooLarge = (limit, declared) => httpError('PAYLOAD_TOO_LARGE', `the body${declared === undefined ? '' : ` of ${declared} bytes`} is over the limit of ${limit} bytes`);

function declaredLength(req: Request, limit: number, tooLarge: TooLarge = payloadTooLarge): number | undefined {
  const raw = req.headers['content-length'];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw httpError('VALIDATION_FAILED', `Content-Length '${raw}' is not a size`);
  if (n > limit) throw tooLarge(limit, n);
  return n;
}

function limiter(limit: number, hash?: ReturnType<typeof createHash>, tooLarge: TooLarge = payloadTooLarge): Transform & { bytes: number } {
  const t = new Transform({
    transform(chunk: Buffer, _e, cb) {
      t.bytes += chunk.length;
      if (t.bytes > limit) return cb(tooLarge(limit));
      hash?.update(chunk);
      cb(null, chunk);
    },
  }) as Transform & { bytes: number };
  t.bytes = 0;
  return t;
}

/** How long a connection whose body was refused keeps dropping what still arrives after the answer. */
const LINGER_MS = 2_000;

/**
 * Drop the rest of a refused body; once answered, half-close the connection and keep dropping
 * until the client closes its side, for at most LINGER_MS. A socket closed at once with bytes
 * still arriving is reset by the kernel, and the client may lose the answer with it.
 */
function lingerAfterAnswer(req: Request): void {
  req.resume();
  req.res?.once('finish', () => {
    if (req.complete) return;
    const socket = req.socket;
    socket.end();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref();
    socket.once('close', () => clearTimeout(timer));
  });
}

/**
 * Read a whole body into memory, up to `limit` bytes: a declared Content-Length over it is
 * refused before a byte is read; a body that grows past it is refused at once, its rest read
 * and dropped, and the connection closed after the answer (so the client reads the 413
 * instead of a reset).
 */
export function readBody(req: Request, limit: number, tooLarge: TooLarge = payloadTooLarge): Promise<Buffer> {
  const expected = declaredLength(req, limit, tooLarge);
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      stop();
      chunks.length = 0;
      lingerAfterAnswer(req);
      reject(tooLarge(limit));
    };
    const onEnd = (): void => {
      stop();
      if (expected !== undefined && size !== expected) reject(httpError('VALIDATION_FAILED', `the body has ${size} bytes, Content-Length said ${expected}`));
      else if (size === 0) reject(httpError('VALIDATION_FAILED', 'the body is empty'));
      else resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      stop();
      reject(err);
    };
    const onClose = (): void => {
      stop();
      reject(httpError('VALIDATION_FAILED', `the body was cut off after ${size} bytes`));
    };
    if (req.readableEnded) {
      onEnd();
      return;
    }
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** Stream a body into `path` while hashing it; the file is removed on any failure. */
export async function bodyToFile(req: Request, path: string, limit: number, tooLarge: TooLarge = payloadTooLarge): Promise<{ size: number; sha256: string }> {
  declaredLength(req, limit, tooLarge);
  const hash = createHash('sha256');
  const count = limiter(limit, hash, tooLarge);
  try {
    await pipeline(req, count, createWriteStream(path, { flags: 'wx' }));
  } catch (err) {
    await rm(path, { force: true });
    throw err;
  }
  if (count.bytes === 0) {
    await rm(path, { force: true });
    throw httpError('VALIDATION_FAILED', 'the body is empty');
  }
  return { size: count.bytes, sha256: hash.digest('hex') };
}
