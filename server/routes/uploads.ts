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
import { INSPECT_CHECKPOINT } from '../../converters/inspect-checkpoint.js';
import { putUpload, readUpload, type UploadRecord } from '../../zoo/store.js';
import { httpError } from '../errors.js';
import { bodyToFile } from '../http/body.js';
import { param } from '../http/params.js';
import type { Services } from '../services.js';

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
      const { format, tensors, parameters, buffers } = await s.fence.run(INSPECT_CHECKPOINT, { path: tmp, name, budgets: s.cfg.budgets }, { what: name });
      const record: UploadRecord = { id: sha256, sha256, size, format, filename, tensors, parameters, buffers, createdAt: new Date().toISOString() };
      await putUpload(s.storage, record, createReadStream(tmp));
      res.status(201).set('Location', `/v1/uploads/${sha256}`).json(record);
    } finally {
      await rm(tmp, { force: true });
    }
  });

  r.get('/v1/uploads/:uploadId', async (req, res) => {
    res.json(await readUpload(s.storage, param(req, 'uploadId')));
  });
  return r;
}
