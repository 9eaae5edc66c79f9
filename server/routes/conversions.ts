/** Conversion jobs: start (or find cached), status, progress as Server-Sent Events, cancel. */
import { Router } from 'express';
import type { ConvertOptions, Mode } from '../../converters/convert.js';
import { LISTED_FILES } from '../../zoo/convert-model.js';
import { httpError } from '../errors.js';
import type { SourceRef } from '../hub-service.js';
import type { Job } from '../jobs.js';
import { param } from '../http/params.js';
import type { Services } from '../services.js';

interface ConversionBody {
  source: SourceRef;
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
    links['files'] = Object.fromEntries(LISTED_FILES.map((f) => [f, `${cp}/files/${f}`]));
  }
  return { ...job, links };
}

/** Routes under /v1/conversions. */
export function conversionRoutes(s: Services): Router {
  const r = Router();
  r.post('/v1/conversions', async (req, res) => {
    if (s.state.shuttingDown) throw httpError('SHUTTING_DOWN', 'the server is shutting down; retry on another replica');
    const body = req.body as ConversionBody;
    const options: ConvertOptions = { ...body.options, mode: body.mode };
    const resolved = await s.hub.resolve(body.source);
    const request = { source: resolved.source, sourceView: resolved.view, options };
    const found = await s.hub.findConverted(resolved, options);
    if (found) {
      res.status(200).json(jobView(s.jobs.cached(request, found.checkpointId)));
      return;
    }
    const job = s.jobs.start(request);
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
