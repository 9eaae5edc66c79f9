/** Converted checkpoints: card, files, downloads, and inference on an uploaded volume. */
import { Router } from 'express';
import { mkdir, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { readFileBytes } from '../../converters/io.js';
import { infer, type InferOptions, type PreparedInput } from '../../inference/runtime/pipeline.js';
import { PREPARE_VOLUME } from '../../inference/runtime/prepare-volume.js';
import { RENDER_ANSWER } from '../../inference/runtime/render-answer.js';
import { geometryOf, isSpooled, spoolFile, wholeVolume, type SpooledVolume, type Vec3, type Volume } from '../../inference/volumes/index.js';
import { listCheckpoints, loadCheckpoint } from '../../zoo/store.js';
import { httpError } from '../errors.js';
import { bodyToFile, readBody, type TooLarge } from '../http/body.js';
import { sendStoredFile } from '../http/download.js';
import { param } from '../http/params.js';
import { checkpointModel } from '../models.js';
import type { Services } from '../services.js';
import { activationFeatures } from '../../inference/runtime/cam.js';
import { modelCardFile, servedFile } from './zoo.js';

function triple(v: unknown): Vec3 | undefined {
  return typeof v === 'string' ? (v.split(',').map(Number) as Vec3) : undefined;
}

function inferOptions(q: Record<string, unknown>): InferOptions {
  const w = q['window'];
  let window: InferOptions['window'];
  if (typeof w === 'string') window = /^-?[0-9.]+,-?[0-9.]+$/.test(w) ? (w.split(',').map(Number) as [number, number]) : (w as InferOptions['window']);
  if (Array.isArray(window) && window[0] >= window[1]) throw httpError('VALIDATION_FAILED', `window '${String(w)}' must be L,H with L < H`);
  return {
    raw: q['raw'] === true || q['raw'] === 'true',
    window,
    size: triple(q['size']),
    spacing: triple(q['spacing']),
    patch: triple(q['patch']),
    overlap: q['overlap'] === undefined ? undefined : Number(q['overlap']),
    topK: q['topK'] === undefined ? undefined : Number(q['topK']),
  };
}

/** Routes under /v1/checkpoints. */
export function checkpointRoutes(s: Services): Router {
  const r = Router();
  r.get('/v1/checkpoints', async (_req, res) => {
    const list = await listCheckpoints(s.storage);
    res.json({ checkpoints: list.map((c) => ({ id: c.id, mode: c.mode, arch: c.arch, source: c.source, url: `/v1/checkpoints/${c.id}` })) });
  });

  r.get('/v1/checkpoints/:checkpointId', async (req, res) => {
    const id = param(req, 'checkpointId');
    const { manifest } = await loadCheckpoint(s.storage, id);
    res.json({
      id,
      spec: manifest.spec,
      files: manifest.files.map((f) => ({ name: f.name, size: f.size, sha256: f.sha256, url: `/v1/checkpoints/${id}/files/${f.name}` })),
      card: manifest.modelCard,
      createdAt: manifest.createdAt,
      links: { self: `/v1/checkpoints/${id}`, infer: `/v1/checkpoints/${id}/infer`, kserve: `/v2/models/${id}` },
    });
  });

  r.get('/v1/checkpoints/:checkpointId/files', async (req, res) => {
    const id = param(req, 'checkpointId');
    const { manifest } = await loadCheckpoint(s.storage, id);
    const { bytes: _bytes, ...cardFile } = modelCardFile(manifest);
    const files = [...manifest.files.map((f) => ({ name: f.name, size: f.size, sha256: f.sha256 })), cardFile];
    res.json({ files: files.map((f) => ({ ...f, url: `/v1/checkpoints/${id}/files/${f.name}` })) });
  });

  const download = async (req: Parameters<Parameters<typeof r.get>[1]>[0], res: Parameters<Parameters<typeof r.get>[1]>[1]) => {
    const id = param(req, 'checkpointId');
    const name = param(req, 'file');
    const { manifest, record } = await loadCheckpoint(s.storage, id);
    const served = await servedFile(s, res, manifest, name, req.query['size']);
    if (!served) throw httpError('NOT_FOUND', `checkpoint ${id} has no file '${name}' (it has ${manifest.files.map((f) => f.name).join(', ')}, card.json)`);
    await sendStoredFile(req, res, s, served.file, `${record.arch}-${record.mode}-${served.tag}${name}`);
  };
  r.get('/v1/checkpoints/:checkpointId/files/:file', download);
  r.head('/v1/checkpoints/:checkpointId/files/:file', download);

  r.post('/v1/checkpoints/:checkpointId/infer', async (req, res) => {
    const id = param(req, 'checkpointId');
    const accept = req.accepts(['application/json', 'application/gzip', 'application/octet-stream', 'image/png']);
    if (!accept) throw httpError('NOT_ACCEPTABLE', 'answers are application/json, application/gzip (.nii.gz), application/octet-stream (.nii) or image/png');
    const probabilities = req.query['output'] === 'probabilities';
    const model = await checkpointModel(s, id);
    const nifti = accept === 'application/gzip' || accept === 'application/octet-stream';
    const options = { ...inferOptions(req.query as Record<string, unknown>), keep: nifti && probabilities ? ('probabilities' as const) : ('labels' as const) };
    const budgets = s.cfg.budgets;
    const tooLarge: TooLarge = (limit, declared) => httpError('PAYLOAD_TOO_LARGE', `the volume${declared === undefined ? '' : ` of ${declared} bytes`} is over the limit of ${limit} bytes (server.maxVolumeBytes)`);
    const read = { file: 'volume', seriesInstanceUid: typeof req.query['series'] === 'string' ? req.query['series'] : undefined };
    const prepare = (bytes: Uint8Array) =>
      s.fence.run(
        PREPARE_VOLUME,
        {
          bytes,
          read,
          model: { channels: model.channels, card: model.card },
          options,
          budgets,
        },
        { what: 'volume' },
      );
    let volume: Volume | SpooledVolume;
    let prepared: PreparedInput | undefined;
    if (options.patch && !options.raw) {
      // Sliding windows: the body goes to disk, and a NIfTI, a zip of DICOM or PNG slices, a NumPy
      // array or a TIFF stack is kept there and read a plane at a time (`spoolFile`), so that
      // neither the body nor the volume is ever held whole; a bounded number at once.
      const dir = join(s.stagingDir, 'volumes');
      await mkdir(dir, { recursive: true });
      const tmp = join(dir, `${randomBytes(8).toString('hex')}.part`);
      ({ volume, prepared } = await s.volumes.run(0, async () => {
        try {
          await bodyToFile(req, tmp, s.cfg.server.maxVolumeBytes, tooLarge);
          const spooled = await spoolFile(tmp, { ...read, budgets, dir });
          if (spooled) return { volume: spooled, prepared: undefined };
          return await prepare(await readFileBytes(tmp));
        } finally {
          await rm(tmp, { force: true });
        }
      }));
    } else {
      ({ volume, prepared } = await prepare(await readBody(req, s.cfg.server.maxVolumeBytes, tooLarge)));
    }
    try {
      const whole = wholeVolume(volume);
      const result = await infer(s.engine, model, volume, options, budgets, prepared);
      s.metrics.inference.observe({ kind: result.kind }, result.ms.network / 1000);
      if (accept === 'application/json') {
        res.json({
          kind: result.kind,
          ...(result.topK ? { topK: result.topK } : {}),
          ...(result.features ? { features: result.features } : {}),
          ...(result.labels ? { labels: { shape: [...result.labels.shape], classes: [...new Set(result.labels.data)].sort((a, b) => a - b) } } : {}),
          output: { shape: result.output.shape },
          input: { shape: result.input.shape, spacing: result.input.spacing },
          volume: { shape: volume.shape, spacing: volume.spacing },
          device: s.engine.loaded.get(id)?.device ?? 'cpu',
          preprocessing: result.steps,
          ms: { preprocess: Math.round(result.ms.preprocess), network: Math.round(result.ms.network) },
        });
        return;
      }
      if (nifti && !result.labels) throw httpError('NOT_ACCEPTABLE', 'this network is a classifier: it gives no volume; ask for application/json');
      const activation = result.labels ? undefined : await activationFeatures(s.engine, model, result, await whole(), options, { input: prepared?.volume, fence: s.fence, budgets });
      const as = !nifti ? 'png' : probabilities ? 'probabilities' : 'nifti';
      const gzip = accept === 'application/gzip';
      const answer = await s.fence.run(RENDER_ANSWER, { volume: as === 'png' ? await whole() : { ...geometryOf(volume), shape: volume.shape }, as, labels: result.labels, probabilities: result.probabilities, scores: result.output, names: result.classNames, activation, gzip, budgets }, { what: `the ${as} answer` });
      if (nifti) {
        const name = `${probabilities ? 'probabilities' : 'labels'}.nii${gzip ? '.gz' : ''}`;
        res.type(accept).set('Content-Disposition', `attachment; filename="${name}"`).send(Buffer.from(answer.buffer, answer.byteOffset, answer.byteLength));
        return;
      }
      res.type('image/png').send(Buffer.from(answer.buffer, answer.byteOffset, answer.byteLength));
    } finally {
      if (isSpooled(volume)) await volume.close();
    }
  });
  return r;
}
