/**
 * The Open Inference Protocol (KServe v2) over the converted checkpoints (the model name is a
 * checkpoint id; its one version is "1"): metadata, readiness, and inference with JSON tensors
 * or the binary tensor data extension. Errors are `{"error": "..."}`, as the protocol says.
 */
import { Router, type NextFunction, type Request, type Response } from 'express';
import { authorised } from '../auth.js';
import { problemHeaders, toProblem } from '../errors.js';
import { readBody } from '../http/body.js';
import { DECODE_INFER_BODY } from '../http/kserve-body.js';
import { param } from '../http/params.js';
import { checkpointModel } from '../models.js';
import type { Services } from '../services.js';

class KServeError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function handler(fn: (req: Request, res: Response) => Promise<void>) {
  return (req: Request, res: Response, _next: NextFunction): void => {
    fn(req, res).catch((err: unknown) => {
      const status = err instanceof KServeError ? err.status : toProblem(err, undefined).status;
      const message = err instanceof KServeError ? err.message : (toProblem(err, undefined).detail ?? 'internal error');
      if (status >= 500 && !(err instanceof KServeError)) req.log?.error({ err }, 'kserve request failed');
      if (!res.headersSent) res.status(status).set(problemHeaders(err)).json({ error: message });
    });
  };
}

/** Routes under /v2. */
export function kserveRoutes(s: Services, version: string): Router {
  const r = Router();
  const model = async (req: Request) => {
    const v = (req.params as Record<string, string>)['modelVersion'];
    if (v !== undefined && v !== '1') throw new KServeError(404, `model '${param(req, 'modelName')}' has no version '${v}' (only '1')`);
    try {
      return await checkpointModel(s, param(req, 'modelName'));
    } catch (err) {
      throw new KServeError(toProblem(err, undefined).status, toProblem(err, undefined).detail ?? 'unknown model');
    }
  };

  r.get('/v2', (_req, res) => {
    res.json({ name: 'acs-hub', version, extensions: ['binary_tensor_data', 'model_repository_readonly'] });
  });
  r.get('/v2/health/live', (_req, res) => {
    res.status(200).end();
  });
  r.get('/v2/health/ready', (_req, res) => {
    res.status(s.state.shuttingDown ? 503 : 200).end();
  });

  const metadata = handler(async (req, res) => {
    const m = await model(req);
    res.json({
      name: param(req, 'modelName'),
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: m.card.input.name, datatype: 'FP32', shape: [-1, m.card.input.channels, -1, -1, -1] }],
      outputs: [{ name: m.card.output.name, datatype: 'FP32', shape: [-1, m.card.output.size ?? -1] }],
    });
  });
  r.get('/v2/models/:modelName', metadata);
  r.get('/v2/models/:modelName/versions/:modelVersion', metadata);

  const ready = handler(async (req, res) => {
    const m = await model(req);
    await s.engine.prepare(m.source);
    res.status(200).end();
  });
  r.get('/v2/models/:modelName/ready', ready);
  r.get('/v2/models/:modelName/versions/:modelVersion/ready', ready);

  const inferHandler = handler(async (req, res) => {
    if (s.apiKeys.length > 0 && !authorised(req.headers.authorization, s)) throw new KServeError(401, 'this request needs an API key: send Authorization: Bearer <key>');
    const m = await model(req);
    const raw = await readBody(req, s.cfg.server.maxVolumeBytes).catch((err: unknown) => {
      throw new KServeError(toProblem(err, undefined).status, toProblem(err, undefined).detail ?? 'bad body');
    });
    const headerLength = req.headers['inference-header-content-length'];
    const { request: body, data, shape } = await s.fence.run(
      DECODE_INFER_BODY,
      { body: raw, headerLength: typeof headerLength === 'string' ? headerLength : undefined, inputName: m.card.input.name },
      { what: 'the request body' },
    );
    const t0 = performance.now();
    const outputs = await s.engine.run(m.source, { data, shape });
    s.metrics.inference.observe({ kind: 'kserve' }, (performance.now() - t0) / 1000);
    const wanted = body.outputs?.map((o) => o.name) ?? Object.keys(outputs);
    for (const name of wanted) if (!outputs[name]) throw new KServeError(400, `unknown output '${name}'; the model's outputs are ${Object.keys(outputs).join(', ')}`);
    const binaryOut = (name: string) => body.parameters?.binary_data_output === true || body.outputs?.find((o) => o.name === name)?.parameters?.binary_data === true;
    const parts: Buffer[] = [];
    const outs = wanted.map((name) => {
      const o = outputs[name]!;
      if (binaryOut(name)) {
        const b = Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength);
        parts.push(b);
        return { name, datatype: 'FP32', shape: o.shape, parameters: { binary_data_size: b.length } };
      }
      return { name, datatype: 'FP32', shape: o.shape, data: Array.from(o.data) };
    });
    const header = JSON.stringify({ model_name: param(req, 'modelName'), model_version: '1', ...(body.id ? { id: body.id } : {}), outputs: outs });
    if (parts.length === 0) {
      res.type('application/json').send(header);
      return;
    }
    const head = Buffer.from(header, 'utf8');
    res.status(200).set({ 'Inference-Header-Content-Length': String(head.length), 'Content-Type': 'application/octet-stream' }).send(Buffer.concat([head, ...parts]));
  });
  r.post('/v2/models/:modelName/infer', inferHandler);
  r.post('/v2/models/:modelName/versions/:modelVersion/infer', inferHandler);
  return r;
}
