/**
 * The main thread's side of the inference worker (`session-worker.ts`): sessions live in one
 * worker thread and are driven by messages, so a run never blocks the event loop. Inputs and
 * models are moved to the worker: a copy of each (the caller keeps its arrays), or, for a run
 * that gives them away, the arrays' own buffers; outputs come back the same way. (Moving a
 * buffer is free; the structured clone it replaces cost 5 ms for a 1x3x64^3 volume and 23 ms
 * for 1x3x128^3, against 0.7 and 5 ms for one copy that is then moved.)
 *
 * If the worker dies (a native fault, or `terminate()`), the calls in flight fail with
 * `InferenceFailedError`, its sessions are lost (`WorkerSession.lost`), and the next creation
 * starts a new worker. The worker keeps the process alive only while calls are in flight.
 *
 * `terminate()` never ends the worker inside onnxruntime: a worker thread ended during a native
 * run takes the whole process down (onnxruntime-node throws from its N-API callback into the
 * dead thread's environment, and C++ aborts). It raises a flag the worker shares; the worker
 * skips whatever is queued and exits once its current call returns.
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import debug from 'debug';
import { InvalidArgumentError } from '../../converters/errors.js';
import { InferenceFailedError } from './errors.js';
import type { SpecializeOptions } from '../../converters/graph/specialize.js';
import { DEVICES, type Device, type SessionParams } from './providers.js';

const log = debug('acs-hub:runtime');

/** A tensor as it crosses to and from the worker. */
export interface WireTensor {
  data: Float32Array;
  dims: number[];
}

/** Messages to the worker. */
export type HostRequest =
  | { op: 'create'; id: number; session: number; model: Uint8Array | string; params: SessionParams; specializeFor?: number[]; specializeOptions?: SpecializeOptions }
  | { op: 'run'; id: number; session: number; feeds: Record<string, WireTensor> }
  | { op: 'release'; id: number; session: number }
  | { op: 'stop'; id: number };

/** What a worker starts with: the flag that asks it to stop (1), shared with the host. */
export interface WorkerStart {
  stop: Int32Array;
}

/** Messages from the worker. */
export type HostReply =
  | { id: number; ok: true; inputNames?: string[]; device?: Device; fallback?: string; specialized?: string; outputs?: Record<string, WireTensor> }
  | { id: number; ok: false; message: string; name: string };

type Success = Extract<HostReply, { ok: true }>;

/** A session held by the worker. */
export interface WorkerSession {
  readonly inputNames: readonly string[];
  /** True once the worker holding it has stopped; such a session cannot run again. */
  readonly lost: boolean;
  run(feeds: Record<string, WireTensor>, options?: RunOptions): Promise<Record<string, WireTensor>>;
  release(): Promise<void>;
}

/** How a run's inputs reach the worker. */
export interface RunOptions {
  /**
   * Give the feeds' arrays to the worker: their buffers are moved there without a copy and
   * the caller's arrays are left empty (detached). An array that shares its buffer with other
   * data is copied all the same. Without it, each array is copied once and the copy moved.
   */
  give?: boolean;
}

/** A session the worker created, and the device it really got. */
export interface CreatedWorkerSession {
  session: WorkerSession;
  device: Device;
  fallback?: string;
  /** What shape specialisation did, when it was asked for. */
  specialized?: string;
}

/** See the module comment. */
export class SessionHost {
  private worker: Worker | undefined;
  /** The current worker's stop flag (see the module comment). */
  private stopFlag: Int32Array | undefined;
  private generation = 0;
  private nextId = 1;
  private readonly calls = new Map<number, { resolve: (r: Success) => void; reject: (e: Error) => void }>();

  /** Load a model into a new session in the worker, specialised for one input shape (with `options`) if given. */
  async create(model: Uint8Array | string, params: SessionParams = {}, specializeFor?: number[], specializeOptions?: SpecializeOptions): Promise<CreatedWorkerSession> {
    const device = params.device ?? 'cpu';
    if (!(DEVICES as readonly string[]).includes(device)) throw new InvalidArgumentError(`unknown device '${String(device)}'; use one of ${DEVICES.join(', ')}`);
    const session = this.nextId++;
    const generation = this.start();
    // A copy (not `slice()`: a Node Buffer's slice is a view of the same memory).
    const own = typeof model === 'string' ? model : new Uint8Array(model);
    const reply = await this.call({ op: 'create', id: 0, session, model: own, params, specializeFor, specializeOptions }, typeof own === 'string' ? [] : [own.buffer as ArrayBuffer]);
    const lost = () => this.generation !== generation;
    const call = (req: HostRequest, transfer?: ArrayBuffer[]) => this.call(req, transfer);
    const proxy: WorkerSession = {
      inputNames: reply.inputNames ?? [],
      get lost() {
        return lost();
      },
      async run(feeds, options = {}) {
        if (lost()) throw new InferenceFailedError('the inference worker stopped; the model must be loaded again');
        const moved: Record<string, WireTensor> = {};
        const transfer: ArrayBuffer[] = [];
        for (const [name, t] of Object.entries(feeds)) {
          const data = options.give && ownsBuffer(t.data) && !transfer.includes(t.data.buffer as ArrayBuffer) ? t.data : new Float32Array(t.data);
          moved[name] = { data, dims: t.dims };
          transfer.push(data.buffer as ArrayBuffer);
        }
        return (await call({ op: 'run', id: 0, session, feeds: moved }, transfer)).outputs ?? {};
      },
      async release() {
        if (!lost()) await call({ op: 'release', id: 0, session });
      },
    };
    return { session: proxy, device: reply.device ?? device, fallback: reply.fallback, specialized: reply.specialized };
  }

  /**
   * Stop the worker: calls in flight fail now and every session is lost; resolves when the
   * worker has ended (after the native call it is in, if any, returns).
   */
  async terminate(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    this.lose(new InferenceFailedError('the inference worker was stopped'));
    Atomics.store(this.stopFlag!, 0, 1);
    // Held until it ends: a process that exits under a worker in a native call aborts too.
    w.ref();
    const exited = once(w, 'exit');
    w.postMessage({ op: 'stop', id: 0 } satisfies HostRequest);
    await exited;
  }

  private start(): number {
    if (this.worker) return this.generation;
    this.stopFlag = new Int32Array(new SharedArrayBuffer(4));
    const w = new Worker(new URL('./session-worker.js', import.meta.url), { workerData: { stop: this.stopFlag } satisfies WorkerStart });
    w.unref();
    w.on('message', (m: HostReply) => {
      const call = this.calls.get(m.id);
      if (!call) return;
      this.calls.delete(m.id);
      if (this.calls.size === 0) w.unref();
      if (m.ok) call.resolve(m);
      else call.reject(new InferenceFailedError(m.message.split('\n')[0]!));
    });
    w.on('error', (err) => {
      log('inference worker failed: %s', err.message);
      if (this.worker === w) this.lose(new InferenceFailedError(`the inference worker failed: ${err.message}`));
    });
    w.on('exit', (code) => {
      if (this.worker === w) this.lose(new InferenceFailedError(`the inference worker exited with code ${code}`));
    });
    this.worker = w;
    return this.generation;
  }

  /** Forget the worker: fail its calls, mark its sessions lost. */
  private lose(err: Error): void {
    this.worker = undefined;
    this.generation++;
    const calls = [...this.calls.values()];
    this.calls.clear();
    for (const c of calls) c.reject(err);
  }

  private call(req: HostRequest, transfer: ArrayBuffer[] = []): Promise<Success> {
    const w = this.worker;
    if (!w) return Promise.reject(new InferenceFailedError('the inference worker stopped; the model must be loaded again'));
    const id = this.nextId++;
    return new Promise<Success>((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      w.ref();
      w.postMessage({ ...req, id }, transfer);
    });
  }
}

/** Whether an array is the whole of a buffer that can be moved (not shared with other views or threads). */
export function ownsBuffer(data: Float32Array): boolean {
  return data.buffer instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
}
