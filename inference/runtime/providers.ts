/**
 * Execution providers: which ones the installed onnxruntime-node has, and session creation
 * that falls back to the CPU with the reason spelled out when a requested one cannot start
 * (no GPU adapter for WebGPU, CUDA provider libraries not installed, ...).
 */
import * as ort from 'onnxruntime-node';
import { InvalidArgumentError } from '../../converters/errors.js';

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
  try {
    return { session: await create(device), device };
  } catch (err) {
    const reason = explain(device, (err as Error).message);
    return { session: await create('cpu'), device: 'cpu', fallback: reason };
  }
}

function explain(device: Device, message: string): string {
  const first = message.split('\n')[0]!.replace(/^\/[^ ]*:\d+ /, '').trim();
  if (device === 'webgpu' && /adapter/i.test(message)) return `webgpu: no WebGPU adapter (no GPU or no Vulkan driver on this machine): ${first}`;
  if ((device === 'cuda' || device === 'tensorrt') && /shared library|cannot open shared object/i.test(message)) {
    return `${device}: the ${device.toUpperCase()} provider libraries are not installed (onnxruntime-node ships CPU and WebGPU only; install its CUDA binaries with ONNXRUNTIME_NODE_INSTALL=cuda12 and a CUDA 12 runtime)`;
  }
  return `${device}: ${first}`;
}
