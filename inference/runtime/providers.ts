/**
 * Execution providers: which ones the installed onnxruntime-node has, and session creation
 * that falls back to the CPU with the reason spelled out when a requested one cannot start
 * (no GPU adapter for WebGPU, CUDA provider libraries not installed, ...).
 */
import * as ort from 'onnxruntime-node';
import { InvalidArgumentError } from '../../converters/errors.js';
import { decodeOnnx } from '../../converters/formats/onnx.js';
import { readFileBytes } from '../../converters/io.js';

// The runtime reports a provider that cannot start itself (see `fallback`); keep
// onnxruntime's own logger from printing the same failure as an error line.
ort.env.logLevel = 'fatal';

/** Devices a user can ask for. */
export const DEVICES = ['cpu', 'webgpu', 'cuda', 'tensorrt'] as const;
export type Device = (typeof DEVICES)[number];

/** Session options the runtime sets. */
export interface SessionParams {
  /** Requested device. @default 'cpu' */
  device?: Device;
  /** Intra-op threads of the CPU provider (0 = onnxruntime's default). @default 0 */
  threads?: number;
  /**
   * Let the intra-op threads spin between operators during a run instead of sleeping
   * (onnxruntime's own default): 6-17% faster on ACS networks on a 2-core machine (bench/inference),
   * whose few hundred operators would otherwise each wake the threads again; the price is
   * the cores spent spinning while a run is in progress. @default true
   */
  spinning?: boolean;
  /** Write onnxruntime's profile of the runs to `<profilePrefix>_<time>.json` (bench/). */
  profilePrefix?: string;
  /**
   * On a device other than the CPU, the input shape to check the device's answer at: the model
   * runs once on a fixed input there and on the CPU, and where the two differ (beyond a share of
   * the largest value, `AGREEMENT`) the session is the CPU's, with the reason. GPU providers
   * have computed wrong answers without an error: onnxruntime 1.30's WebGPU provider, for 2D
   * convolutions whose input channels are a multiple of 3 but not 3 and not a multiple of 4
   * (6, 9, 15, 18, 21), kernels over 1x1, on both Vulkan drivers tried
   * (test/inference/runtime/webgpu.test.ts).
   */
  verifyShape?: readonly number[];
}

/** A created session and the provider it really got. */
export interface CreatedSession {
  session: ort.InferenceSession;
  /** The device running the session. */
  device: Device;
  /** Why the requested device was not used, when it was not. */
  fallback?: string;
}

/** Devices whose provider ships inside the installed onnxruntime-node package. */
export function bundledDevices(): Device[] {
  return ort
    .listSupportedBackends()
    .filter((b) => b.bundled && (DEVICES as readonly string[]).includes(b.name))
    .map((b) => b.name as Device);
}

/**
 * The options of a session on `device`. The intra-op threads spin only while a run is in
 * progress: onnxruntime's `force_spinning_stop` makes them sleep as soon as the run returns,
 * so an idle session (or the one that ran before another model's) keeps no core busy.
 */
export function sessionOptions(device: Device, p: SessionParams): ort.InferenceSession.SessionOptions {
  const threads = p.threads ?? 0;
  return {
    executionProviders: device === 'cpu' ? ['cpu'] : [device, 'cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    logSeverityLevel: 3,
    extra: { session: { intra_op: { allow_spinning: p.spinning === false ? '0' : '1' }, force_spinning_stop: '1' } },
    ...(p.profilePrefix ? { enableProfiling: true, profileFilePrefix: p.profilePrefix } : {}),
  };
}

/** Create a session on the requested device, or on the CPU with the reason it fell back. */
export async function createSession(model: Uint8Array | string, p: SessionParams = {}): Promise<CreatedSession> {
  const device = p.device ?? 'cpu';
  if (!(DEVICES as readonly string[]).includes(device)) throw new InvalidArgumentError(`unknown device '${String(device)}'; use one of ${DEVICES.join(', ')}`);
  const create = (d: Device) => (typeof model === 'string' ? ort.InferenceSession.create(model, sessionOptions(d, p)) : ort.InferenceSession.create(model, sessionOptions(d, p)));
  if (device === 'cpu') return { session: await create('cpu'), device: 'cpu' };
  const refused = await unsupportedOn(device, model);
  if (refused) return { session: await create('cpu'), device: 'cpu', fallback: refused };
  let session: ort.InferenceSession;
  try {
    session = await create(device);
  } catch (err) {
    const reason = explain(device, (err as Error).message);
    return { session: await create('cpu'), device: 'cpu', fallback: reason };
  }
  if (!p.verifyShape || session.inputNames.length !== 1) return { session, device };
  const cpu = await create('cpu');
  const wrong = await compareAnswers(session, cpu, p.verifyShape, AGREEMENT[device]);
  if (!wrong) {
    await cpu.release();
    return { session, device };
  }
  await session.release();
  return { session: cpu, device: 'cpu', fallback: `${device}: ${wrong}` };
}

/**
 * How close a device's answer must be to the CPU's, as a share of the output's largest value.
 * WebGPU computes in float32 (differences of about 1e-7 here); CUDA and TensorRT may use TF32,
 * whose 10-bit mantissa leaves about 1e-3 per product. The faults it catches are of order 1.
 */
const AGREEMENT: Record<Device, number> = { cpu: 0, webgpu: 1e-3, cuda: 1e-2, tensorrt: 1e-2 };

/**
 * What is wrong with a device's answer to a fixed input, against the CPU's (the same model):
 * its run failed, or an output element differs (which, and the two values); undefined when
 * they agree.
 */
async function compareAnswers(device: ort.InferenceSession, cpu: ort.InferenceSession, shape: readonly number[], tolerance: number): Promise<string | undefined> {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i * 0.7071) * Math.cos(i * 0.013);
  const feeds = () => ({ [cpu.inputNames[0]!]: new ort.Tensor('float32', data, [...shape]) });
  let a: ort.InferenceSession.OnnxValueMapType;
  try {
    a = await device.run(feeds());
  } catch (err) {
    return `its first run failed: ${(err as Error).message.split('\n')[0]}`;
  }
  const b = await cpu.run(feeds());
  for (const name of cpu.outputNames) {
    const x = a[name]?.data as Float32Array | undefined;
    const y = b[name]!.data as Float32Array;
    if (!x || x.length !== y.length) return `its answer differs from the CPU's (output '${name}' has another size)`;
    let scale = 1e-3;
    for (const v of y) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < y.length; i++) {
      if (!(Math.abs(x[i]! - y[i]!) <= tolerance * scale)) return `its answer differs from the CPU's (output '${name}' element ${i}: ${x[i]} against ${y[i]}, on a fixed input of shape ${shape.join('x')})`;
    }
  }
  return undefined;
}

/**
 * Why `device` cannot run this model although its provider takes it on, when that is known:
 * onnxruntime's WebGPU provider claims every ConvTranspose, then fails every run of a 3D one
 * ("Only Conv2d or Conv1d are supported"). The engine's graphs, specialised for a size, have
 * 2D ones only (graph/specialize.ts); the general graph of an ACS U-Net has 3D ones.
 */
async function unsupportedOn(device: Device, model: Uint8Array | string): Promise<string | undefined> {
  if (device !== 'webgpu') return undefined;
  const graph = decodeOnnx(typeof model === 'string' ? await readFileBytes(model) : model).graph!;
  const ranks = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', (t.dims ?? []).length]));
  for (const n of graph.node ?? []) {
    if (n.opType !== 'ConvTranspose' || (n.domain ?? '') !== '') continue;
    const kernel = (n.attribute ?? []).find((a) => a.name === 'kernel_shape')?.ints?.length ?? (ranks.get(n.input?.[1] ?? '') ?? 0) - 2;
    if (kernel > 2) return `webgpu: onnxruntime's WebGPU provider runs only 1D and 2D ConvTranspose, and this model has a ${kernel}D one ('${n.name ?? ''}')`;
  }
  return undefined;
}

function explain(device: Device, message: string): string {
  const first = message.split('\n')[0]!.replace(/^\/[^ ]*:\d+ /, '').trim();
  if (device === 'webgpu' && /adapter/i.test(message)) return `webgpu: no WebGPU adapter (no GPU or no Vulkan driver on this machine): ${first}`;
  if ((device === 'cuda' || device === 'tensorrt') && /shared library|cannot open shared object/i.test(message)) {
    return `${device}: the ${device.toUpperCase()} provider libraries are not installed (onnxruntime-node ships CPU and WebGPU only; install its CUDA binaries with ONNXRUNTIME_NODE_INSTALL=cuda12 and a CUDA 12 runtime)`;
  }
  return `${device}: ${first}`;
}
