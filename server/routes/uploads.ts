/**
 * Uploads of a user's own 2D checkpoint: streamed to a staging file (never buffered whole),
 * hashed and counted as it arrives, refused past the size limit, and parsed (format and, for
 * pickles, the allow-list of globals; in the fence, off the request thread) before it is
 * accepted into the store by its sha256.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Router } from 'express';
import type { CheckpointFormat } from '../../converters/formats/index.js';
import { INSPECT_CHECKPOINT } from '../../converters/inspect-checkpoint.js';
import { blobKey } from '../../zoo/storage/layout.js';
import { readJson } from '../../zoo/storage/storage.js';
import { httpError } from '../errors.js';
import { bodyToFile } from '../http/body.js';
import { param } from '../http/params.js';
import type { Services } from '../services.js';

/** What the store keeps of an upload. */
export interface UploadRecord {
  id: string;
  sha256: string;
  size: number;
  format: CheckpointFormat;
  filename?: string;
  tensors: number;
  parameters: number;
  createdAt: string;
}

/** Key of an upload's record. */
export function uploadKey(id: string): string {
  if (!/^[0-9a-f]{64}$/.test(id)) throw httpError('UPLOAD_NOT_FOUND', `'${id}' is not an upload id`);
  return `index/uploads/${id}.json`;
}

/** Routes under /v1/uploads. */
export function uploadRoutes(s: Services): Router {
  const r = Router();
  r.post('/v1/uploads', async (req, res) => {
    if (!req.is('application/octet-stream')) throw httpError('UNSUPPORTED_MEDIA_TYPE', 'send the checkpoint as application/octet-stream');
    const filename = typeof req.query['filename'] === 'string' ? req.query['filename'] : undefined;
    const dir = join(s.stagingDir, 'uploads');
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `${randomBytes(8).toString('hex')}.part`);
    try {
      const { size, sha256 } = await bodyToFile(req, tmp, s.cfg.server.maxUploadBytes);
      const name = filename ?? 'upload';
      const { format, tensors, parameters } = await s.fence.run(INSPECT_CHECKPOINT, { path: tmp, name, budgets: s.cfg.budgets }, { what: name });
      const record: UploadRecord = { id: sha256, sha256, size, format, filename, tensors, parameters, createdAt: new Date().toISOString() };
      if (!(await s.storage.stat(blobKey(sha256)))) await s.storage.write(blobKey(sha256), createReadStream(tmp));
      await s.storage.write(uploadKey(sha256), JSON.stringify(record, null, 2));
      res.status(201).set('Location', `/v1/uploads/${sha256}`).json(record);
    } finally {
      await rm(tmp, { force: true });
    }
  });

  r.get('/v1/uploads/:uploadId', async (req, res) => {
    const rec = await readJson<UploadRecord>(s.storage, uploadKey(param(req, 'uploadId')));
    if (!rec) throw httpError('UPLOAD_NOT_FOUND', `no upload '${req.params['uploadId']}'`);
    res.json(rec);
  });
  return r;
}
