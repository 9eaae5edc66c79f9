/** Conversion jobs: start (or find cached), status, progress as Server-Sent Events, cancel. */
import { Router } from 'express';
import { CONVERTER_VERSION, type ConvertOptions, type Mode } from '../../converters/convert.js';
import { findModel } from '../../zoo/catalogue.js';
import { canonicalOptions, urlEntry, type ConversionSource } from '../../zoo/convert-model.js';
import { findPulled } from '../../zoo/pull-model.js';
import { readJson } from '../../zoo/storage/storage.js';
import { conversionPrefix } from '../../zoo/storage/layout.js';
import { checkpointIdOf, findConversion, recordCheckpoint } from '../checkpoints.js';
import { httpError } from '../errors.js';
import type { Job } from '../jobs.js';
import { param } from '../http/params.js';
import type { Services } from '../services.js';
import { checkUrl } from '../url-guard.js';
import { uploadKey, type UploadRecord } from './uploads.js';

interface ConversionBody {
  source: { zoo?: string; url?: string; upload?: string };
  mode: Mode;
  options?: Omit<ConvertOptions, 'mode'>;
}

/** The job with its links. */
export function jobView(job: Job): Record<string, unknown> {
  const self = `/v1/conversions/${job.id}`;
  const links: Record<string, unknown> = { self, events: `${self}/events` };
  if (job.checkpointId) {
    const cp = `/v1/checkpoints/${job.checkpointId}`;
    links['checkpoint'] = cp;
    links['files'] = Object.fromEntries(['model.safetensors', 'model.pth', 'model.onnx', 'model.py', 'card.json'].map((f) => [f, `${cp}/files/${f}`]));
  }
  return { ...job, links };
}

async function resolveSource(s: Services, body: ConversionBody): Promise<{ source: ConversionSource; view: Record<string, unknown>; sha256?: string }> {
  if (body.source.zoo !== undefined) {
    const entry = findModel(s.catalogue, body.source.zoo);
    const pulled = await findPulled(s.storage, entry);
    return { source: { kind: 'zoo', entry }, view: { zoo: entry.id }, sha256: pulled?.sha256 ?? entry.sha256 };
  }
  if (body.source.url !== undefined) {
    const url = checkUrl(body.source.url, s.urlPolicy).href;
    const pulled = await findPulled(s.storage, urlEntry(url));
    return { source: { kind: 'url', url }, view: { url }, sha256: pulled?.sha256 };
  }
  const id = body.source.upload!;
  const rec = await readJson<UploadRecord>(s.storage, uploadKey(id));
  if (!rec) throw httpError('UPLOAD_NOT_FOUND', `no upload '${id}'`);
  return { source: { kind: 'blob', sha256: rec.sha256, name: rec.filename ?? `upload.${rec.format}` }, view: { upload: id }, sha256: rec.sha256 };
}

/** Routes under /v1/conversions. */
export function conversionRoutes(s: Services): Router {
  const r = Router();
  r.post('/v1/conversions', async (req, res) => {
    if (s.state.shuttingDown) throw httpError('SHUTTING_DOWN', 'the server is shutting down; retry on another replica');
    const body = req.body as ConversionBody;
    const options: ConvertOptions = { ...body.options, mode: body.mode };
    const { source, view, sha256 } = await resolveSource(s, body);
    const arch = options.arch ?? (source.kind === 'zoo' ? source.entry.arch : undefined);
    if (sha256) {
      const spec = { sourceSha256: sha256, mode: options.mode, options: canonicalOptions({ ...options, arch }), converterVersion: CONVERTER_VERSION };
      const card = await findConversion(s.storage, spec);
      if (card) {
        const prefix = conversionPrefix(spec);
        await recordCheckpoint(s.storage, prefix, card);
        s.metrics.cacheHits.inc({ kind: 'conversion' });
        const job = s.jobs.cached({ source, sourceView: view, options }, checkpointIdOf(prefix));
        res.status(200).json(jobView(job));
        return;
      }
    }
    const job = s.jobs.start({ source, sourceView: view, options });
    res.status(202).set('Location', `/v1/conversions/${job.id}`).json(jobView(job));
  });

  r.get('/v1/conversions/:jobId', (req, res) => {
    res.json(jobView(s.jobs.get(param(req, 'jobId'))));
  });

  r.delete('/v1/conversions/:jobId', (req, res) => {
    res.json(jobView(s.jobs.cancel(param(req, 'jobId'))));
  });

  r.get('/v1/conversions/:jobId/events', (req, res) => {
    const job = s.jobs.get(param(req, 'jobId'));
    res.status(200).set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.flushHeaders();
    let open = true;
    const send = (j: Job): void => {
      if (!open) return;
      const event = j.status === 'succeeded' ? 'done' : j.status === 'failed' ? 'failed' : j.status === 'cancelled' ? 'cancelled' : 'progress';
      res.write(`event: ${event}\ndata: ${JSON.stringify(jobView(j))}\n\n`);
      if (event !== 'progress') close();
    };
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    heartbeat.unref();
    let unsubscribe = (): void => undefined;
    const close = (): void => {
      if (!open) return;
      open = false;
      clearInterval(heartbeat);
      unsubscribe();
      res.end();
    };
    req.on('close', close);
    unsubscribe = s.jobs.subscribe(job.id, send);
    send(job);
  });
  return r;
}
