/**
 * Serving a stored file: GET and HEAD, a single `Range` (so `curl -C -` resumes), `If-Range`,
 * `ETag` = the sha256, `If-None-Match` -> 304, `Content-Disposition`, `Repr-Digest`, and an
 * optional redirect to a presigned S3 URL.
 */
import type { Request, Response } from 'express';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import type { ConversionFile } from '../../zoo/get-or-convert.js';
import { httpError } from '../errors.js';
import type { Services } from '../services.js';

const TYPES: Record<string, string> = { json: 'application/json', onnx: 'application/octet-stream', safetensors: 'application/octet-stream', pth: 'application/octet-stream', data: 'application/octet-stream' };

/** Parse `bytes=a-b`, `bytes=a-` or `bytes=-n` against a size; undefined for none or several ranges. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (!Number.isSafeInteger(start) || start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => {
    const v = t.trim().replace(/^W\//, '');
    return v === '*' || v === etag;
  });
}

/** A file to send: stored under `key`, or (for generated ones) held in `bytes`. */
export type ServedFile = Pick<ConversionFile, 'name' | 'size' | 'sha256'> & ({ key: string; bytes?: undefined } | { key?: undefined; bytes: Buffer });

/** Send one stored (or generated) file. */
export async function sendStoredFile(req: Request, res: Response, s: Services, file: ServedFile, downloadName: string): Promise<void> {
  const etag = `"${file.sha256}"`;
  const ext = file.name.split('.').pop() ?? '';
  res.set({
    ETag: etag,
    'Accept-Ranges': 'bytes',
    'Content-Disposition': `attachment; filename="${downloadName.replace(/[^A-Za-z0-9._-]/g, '_')}"`,
    'Repr-Digest': `sha-256=:${Buffer.from(file.sha256, 'hex').toString('base64')}:`,
    'Cache-Control': 'public, max-age=31536000, immutable',
    'Content-Type': TYPES[ext] ?? 'application/octet-stream',
  });
  if (etagMatches(req.headers['if-none-match'], etag)) {
    res.status(304).end();
    return;
  }
  if (s.cfg.server.redirectDownloads && file.key !== undefined && 'presignGet' in s.storage) {
    const url = await (s.storage as unknown as { presignGet(k: string, sec: number, name?: string): Promise<string> }).presignGet(file.key, s.cfg.server.presignSeconds, downloadName);
    res.status(307).set('Location', url).end();
    return;
  }
  let range = parseRange(req.headers.range, file.size);
  const ifRange = req.headers['if-range'];
  if (range && ifRange && ifRange !== etag) range = undefined;
  if (range === 'unsatisfiable') {
    throw httpError('RANGE_NOT_SATISFIABLE', `range '${req.headers.range}' is outside the ${file.size} bytes of ${file.name}`, { 'Content-Range': `bytes */${file.size}` });
  }
  if (range) {
    res.status(206).set({ 'Content-Range': `bytes ${range.start}-${range.end}/${file.size}`, 'Content-Length': String(range.end - range.start + 1) });
  } else {
    res.status(200).set('Content-Length', String(file.size));
  }
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  if (file.bytes) {
    const part = range ? file.bytes.subarray(range.start, range.end + 1) : file.bytes;
    s.metrics.bytesServed.inc({ route: 'card' }, part.length);
    res.end(part);
    return;
  }
  const body = await s.storage.read(file.key, range ? { range: { start: range.start, end: range.end } } : {});
  const route = (req.route as { path?: string } | undefined)?.path ?? 'file';
  const count = new Transform({
    transform(chunk: Buffer, _e, cb) {
      s.metrics.bytesServed.inc({ route }, chunk.length);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(body, count, res);
  } catch (err) {
    // The client went away mid-download: nothing to answer.
    if (!res.writableEnded) res.destroy();
    if ((err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') req.log?.warn({ err }, 'download interrupted');
  }
}
