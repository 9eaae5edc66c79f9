/**
 * The Open Inference Protocol (KServe v2) over the converted checkpoints (the model name is a
 * checkpoint id; its one version is "1"): metadata, readiness, and inference with JSON tensors
 * or the binary tensor data extension. Errors are `{"error": "...", "code": "..."}`: the
 * protocol's shape, with the code of the API's catalogue.
 *
 * An inference body is bounded before it is parsed, by what `budgets.kserveElements` allows:
 * JSON at `JSON_BYTES_PER_ELEMENT` bytes an element, the binary extension at the 8 bytes of its
 * widest datatype, plus `server.maxJsonBytes` for the rest of the request (names, shapes,
 * parameters); and never more than `server.maxVolumeBytes`. JSON is read by `parseKServeJson`,
 * which never builds JavaScript arrays for tensor data; then the declared shape is held against
 * the budget and the data before anything is allocated for it.
 *
 * A segmentation network (an output `[N, K, D, H, W]`) also answers two outputs a request may
 * name in `outputs`: `labels` (UINT8, or UINT16 past 256 classes, `[N, D, H, W]`: the arg-max
 * class of each voxel) and `probabilities` (FP32 `[N, K, D, H, W]`: the softmax over classes),
 * both made from the network's first output, whose size `budgets.outputVoxels` bounds.
 */
import { Router, type NextFunction, type Request, type Response } from 'express';
import { budgetSetting, boundMessage, type Budgets } from '../../converters/budgets.js';
import { classProbabilities, labelsFromScores } from '../../inference/predictions/index.js';
import { checkOutputVoxels } from '../../inference/preprocess/index.js';
import type { FloatTensor } from '../../inference/runtime/engine.js';
import { LimitExceededError } from '../../converters/errors.js';
import { httpError, problemHeaders, toProblem } from '../errors.js';
import { readBody } from '../http/body.js';
import { DECODE_INFER_BODY } from '../http/kserve-body.js';
import { param } from '../http/params.js';
import { checkpointModel } from '../models.js';
import type { Services } from '../services.js';

/** Bytes a JSON element may take: the longest float64 text (24 characters) with its comma, a space and brackets. */
const JSON_BYTES_PER_ELEMENT = 32;
/** Bytes of the widest datatype of the binary extension (FP64, INT64). */
const BINARY_BYTES_PER_ELEMENT = 8;

class KServeError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string = status === 401 ? 'UNAUTHORIZED' : status === 404 ? 'NOT_FOUND' : 'VALIDATION_FAILED',
  ) {
    super(message);
  }
}

function handler(fn: (req: Request, res: Response) => Promise<void>) {
  return (req: Request, res: Response, _next: NextFunction): void => {
    fn(req, res).catch((err: unknown) => {
      const problem = toProblem(err, undefined);
      const status = err instanceof KServeError ? err.status : problem.status;
      const message = err instanceof KServeError ? err.message : (problem.detail ?? 'internal error');
      const code = err instanceof KServeError ? err.code : problem.code;
      if (status >= 500 && !(err instanceof KServeError)) req.log?.error({ err }, 'kserve request failed');
      if (!res.headersSent) res.status(status).set(problemHeaders(err)).json({ error: message, code });
    });
  };
}

/** An output tensor of the answer. */
type Answer = FloatTensor | { data: Uint8Array | Uint16Array; shape: number[] };

/** Outputs made from a segmentation network's first output (see the module comment). */
const SEGMENTATION_OUTPUTS: readonly string[] = ['labels', 'probabilities'];

/** `labels` or `probabilities` of each item of a `[N, K, D, H, W]` output; none for any other shape. */
function segmentationOutput(name: 'labels' | 'probabilities', scores: FloatTensor, budgets: Budgets): Answer | undefined {
  if (scores.shape.length !== 5) return undefined;
  const [n, k, d, h, w] = scores.shape as [number, number, number, number, number];
  checkOutputVoxels([n, k, d, h, w], `the ${name} of a [${scores.shape.join(', ')}] output`, budgets);
  const per = k * d * h * w;
  const item = (i: number) => ({ data: scores.data.subarray(i * per, (i + 1) * per), shape: [k, d, h, w] });
  if (name === 'probabilities') {
    const data = new Float32Array(n * per);
    for (let i = 0; i < n; i++) data.set(classProbabilities(item(i)).data, i * per);
    return { data, shape: [...scores.shape] };
  }
  const data = k <= 256 ? new Uint8Array(n * d * h * w) : new Uint16Array(n * d * h * w);
  for (let i = 0; i < n; i++) data.set(labelsFromScores(item(i)).data, i * d * h * w);
  return { data, shape: [n, d, h, w] };
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
      const problem = toProblem(err, undefined);
      throw new KServeError(problem.status, problem.detail ?? 'unknown model', problem.code);
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
    const budgets = s.cfg.budgets;
    const headerBytes = s.cfg.server.maxJsonBytes;
    const headerLength = req.headers['inference-header-content-length'];
    let n: number | undefined;
    if (headerLength !== undefined) {
      n = Number(headerLength);
      if (!Number.isSafeInteger(n) || n < 0) throw new KServeError(400, `Inference-Header-Content-Length '${boundMessage(String(headerLength), 100)}' is not a size`);
      if (n > headerBytes) throw new LimitExceededError(`the JSON header of ${n} bytes is over the limit of ${headerBytes} bytes (server.maxJsonBytes)`);
    }
    const perElement = n === undefined ? JSON_BYTES_PER_ELEMENT : BINARY_BYTES_PER_ELEMENT;
    const budgetCap = (n ?? headerBytes) + budgets.kserveElements * perElement;
    const cap = Math.min(budgetCap, s.cfg.server.maxVolumeBytes);
    const raw = await readBody(req, cap, (limit) =>
      limit === budgetCap
        ? new LimitExceededError(`the body is over ${limit} bytes: ${budgets.kserveElements} elements (${budgetSetting('kserveElements')}) at ${perElement} bytes each, plus ${n === undefined ? `${headerBytes} (server.maxJsonBytes)` : `the ${n}-byte header`}`)
        : httpError('PAYLOAD_TOO_LARGE', `the body is over the limit of ${limit} bytes (server.maxVolumeBytes)`),
    );
    const { request: body, data, shape } = await s.fence.run(
      DECODE_INFER_BODY,
      { body: raw, headerLength: n, inputName: m.card.input.name, maxHeaderBytes: headerBytes, budgets },
      { what: 'the request body' },
    );
    const t0 = performance.now();
    const outputs = await s.engine.run(m.source, { data, shape });
    s.metrics.inference.observe({ kind: 'kserve' }, (performance.now() - t0) / 1000);
    const wanted = body.outputs?.map((o) => o.name) ?? Object.keys(outputs);
    const all: Record<string, Answer> = { ...outputs };
    for (const name of wanted) {
      if (Object.hasOwn(all, name)) continue;
      const derived = SEGMENTATION_OUTPUTS.includes(name) ? segmentationOutput(name as 'labels' | 'probabilities', Object.values(outputs)[0]!, budgets) : undefined;
      if (!derived) throw new KServeError(400, `unknown output '${boundMessage(name, 200)}'; the model's outputs are ${[...Object.keys(outputs), ...SEGMENTATION_OUTPUTS].join(', ')} (${SEGMENTATION_OUTPUTS.join(' and ')} for segmentation networks only)`);
      all[name] = derived;
    }
    const binaryOut = (name: string) => body.parameters?.binary_data_output === true || body.outputs?.find((o) => o.name === name)?.parameters?.binary_data === true;
    const parts: Buffer[] = [];
    const outs = wanted.map((name) => {
      const o = all[name]!;
      const datatype = o.data instanceof Uint8Array ? 'UINT8' : o.data instanceof Uint16Array ? 'UINT16' : 'FP32';
      if (binaryOut(name)) {
        const b = Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength);
        parts.push(b);
        return { name, datatype, shape: o.shape, parameters: { binary_data_size: b.length } };
      }
      return { name, datatype, shape: o.shape, data: Array.from(o.data) };
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
