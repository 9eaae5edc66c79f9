/**
 * File input and output shared by the format modules: whole-file reads into one buffer
 * (no second copy, no 2 GiB limit of `fs.readFile`) and atomic writes of a list of chunks.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const CHUNK = 64 * 1024 * 1024;

/** Read a whole file into one freshly allocated buffer. */
export async function readFileBytes(path: string): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const out = new Uint8Array(size);
    let pos = 0;
    while (pos < size) {
      const { bytesRead } = await fh.read(out, pos, Math.min(CHUNK, size - pos), pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
    }
    return pos === size ? out : out.subarray(0, pos);
  } finally {
    await fh.close();
  }
}

/** sha256 (hex) of bytes of any length (a hash's `update` takes under 2 GiB at a time). */
export function sha256Hex(bytes: Uint8Array): string {
  const hash = createHash('sha256');
  for (let at = 0; at < bytes.byteLength; at += CHUNK) hash.update(bytes.subarray(at, Math.min(at + CHUNK, bytes.byteLength)));
  return hash.digest('hex');
}

/** A temporary name beside `path`, as `name.tmp-<random>`. */
export function temporaryPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${randomBytes(6).toString('hex')}`);
}

/**
 * Write chunks to `path` atomically: into a temporary file beside it, fsync, then rename.
 * On any error the temporary file is removed and `path` is untouched.
 */
export async function writeChunksAtomic(path: string, chunks: Iterable<Uint8Array>): Promise<number> {
  const tmp = temporaryPath(path);
  const fh = await open(tmp, 'wx');
  let total = 0;
  try {
    for (const chunk of chunks) {
      let off = 0;
      while (off < chunk.byteLength) {
        const { bytesWritten } = await fh.write(chunk, off, Math.min(CHUNK, chunk.byteLength - off));
        off += bytesWritten;
      }
      total += chunk.byteLength;
    }
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
    return total;
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** Concatenate chunks into one buffer (for callers that need the whole file in memory). */
export function concatChunks(chunks: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const c of chunks) size += c.byteLength;
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}
