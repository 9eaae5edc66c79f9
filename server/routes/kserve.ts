/**
 * The Open Inference Protocol (KServe v2) over the converted checkpoints (the model name is a
 * checkpoint id; its one version is "1"): metadata, readiness, and inference with JSON tensors
 * or the binary tensor data extension. Errors are `{"error": "..."}`, as the protocol says.
 */
import { Router, type NextFunction, type Request, type Response } from 'express';
import { toProblem } from '../errors.js';
import { readBody } from '../http/body.js';
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

interface TensorIn {
  name: string;
  shape: number[];
  datatype: string;
  data?: unknown[];
  parameters?: { binary_data_size?: number };
}

interface InferBody {
  id?: string;
  parameters?: { binary_data_output?: boolean };
  inputs: TensorIn[];
  outputs?: { name: string; parameters?: { binary_data?: boolean } }[];
}

const READERS: Record<string, { bytes: number; read: (v: DataView, o: number) => number }> = {
  FP32: { bytes: 4, read: (v, o) => v.getFloat32(o, true) },
  FP64: { bytes: 8, read: (v, o) => v.getFloat64(o, true) },
  INT8: { bytes: 1, read: (v, o) => v.getInt8(o) },
  UINT8: { bytes: 1, read: (v, o) => v.getUint8(o) },
  INT16: { bytes: 2, read: (v, o) => v.getInt16(o, true) },
  UINT16: { bytes: 2, read: (v, o) => v.getUint16(o, true) },
  INT32: { bytes: 4, read: (v, o) => v.getInt32(o, true) },
  INT64: { bytes: 8, read: (v, o) => Number(v.getBigInt64(o, true)) },
};

function handler(fn: (req: Request, res: Response) => Promise<void>) {
  return (req: Request, res: Response, _next: NextFunction): void => {
    fn(req, res).catch((err: unknown) => {
      const status = err instanceof KServeError ? err.status : toProblem(err, undefined).status;
      const message = err instanceof KServeError ? err.message : (toProblem(err, undefined).detail ?? 'internal error');
      if (status >= 500 && !(err instanceof KServeError)) req.log?.error({ err }, 'kserve request failed');
      if (!res.headersSent) res.status(status).json({ error: message });
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
    const m = await model(req);
    const raw = await readBody(req, s.cfg.server.maxVolumeBytes).catch((err: unknown) => {
      throw new KServeError(toProblem(err, undefined).status, toProblem(err, undefined).detail ?? 'bad body');
    });
    const headerLength = req.headers['inference-header-content-length'];
    let body: InferBody;
    let binary: Buffer = Buffer.alloc(0);
    try {
      if (headerLength !== undefined) {
        const n = Number(headerLength);
        if (!Number.isSafeInteger(n) || n < 0 || n > raw.length) throw new KServeError(400, `Inference-Header-Content-Length ${headerLength} does not fit the ${raw.length}-byte body`);
        body = JSON.parse(raw.subarray(0, n).toString('utf8')) as InferBody;
        binary = raw.subarray(n);
      } else {
        body = JSON.parse(raw.toString('utf8')) as InferBody;
      }
    } catch (err) {
      if (err instanceof KServeError) throw err;
      throw new KServeError(400, 'the request is not valid JSON');
    }
    if (!Array.isArray(body.inputs) || body.inputs.length !== 1) throw new KServeError(400, `the model takes exactly one input ('${m.card.input.name}')`);
    const input = body.inputs[0]!;
    if (input.name !== m.card.input.name) throw new KServeError(400, `unknown input '${input.name}'; the model's input is '${m.card.input.name}'`);
    const reader = READERS[input.datatype];
    if (!reader) throw new KServeError(400, `datatype '${input.datatype}' is not supported; use FP32`);
    if (!Array.isArray(input.shape) || input.shape.length !== 5 || input.shape.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new KServeError(400, `input shape [${String(input.shape)}] must be (N, C, D, H, W)`);
    }
    const count = input.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(count);
    const size = input.parameters?.binary_data_size;
    if (size !== undefined) {
      if (size !== count * reader.bytes || binary.length < size) throw new KServeError(400, `binary_data_size ${size} does not match ${count} x ${input.datatype} (or the body is short)`);
      const view = new DataView(binary.buffer, binary.byteOffset, size);
      for (let i = 0; i < count; i++) data[i] = reader.read(view, i * reader.bytes);
    } else {
      const flat = (input.data ?? []).flat(Infinity) as unknown[];
      if (flat.length !== count) throw new KServeError(400, `input has ${flat.length} values, shape [${input.shape.join(', ')}] needs ${count}`);
      for (let i = 0; i < count; i++) {
        const v = Number(flat[i]);
        if (!Number.isFinite(v)) throw new KServeError(400, `input value ${i} is not a number`);
        data[i] = v;
      }
    }
    const t0 = performance.now();
    const outputs = await s.engine.run(m.source, { data, shape: input.shape });
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
