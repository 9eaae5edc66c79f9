/**
 * The main thread's side of the inference worker (`session-worker.ts`): sessions live in one
 * worker thread and are driven by messages, so a run never blocks the event loop. Inputs are
 * copied to the worker (the caller keeps its arrays); outputs come back by transfer.
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
  run(feeds: Record<string, WireTensor>): Promise<Record<string, WireTensor>>;
  release(): Promise<void>;
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
  private stopFlag = new Int32Array(new SharedArrayBuffer(4));
  private generation = 0;
  private nextId = 1;
  private readonly calls = new Map<number, { resolve: (r: Success) => void; reject: (e: Error) => void }>();

  /** Load a model into a new session in the worker, specialised for one input shape (with `options`) if given. */
  async create(model: Uint8Array | string, params: SessionParams = {}, specializeFor?: number[], specializeOptions?: SpecializeOptions): Promise<CreatedWorkerSession> {
    const device = params.device ?? 'cpu';
    if (!(DEVICES as readonly string[]).includes(device)) throw new InvalidArgumentError(`unknown device '${String(device)}'; use one of ${DEVICES.join(', ')}`);
    const session = this.nextId++;
    const generation = this.start();
    const reply = await this.call({ op: 'create', id: 0, session, model, params, specializeFor, specializeOptions });
    const lost = () => this.generation !== generation;
    const call = (req: HostRequest) => this.call(req);
    const proxy: WorkerSession = {
      inputNames: reply.inputNames ?? [],
      get lost() {
        return lost();
      },
      async run(feeds) {
        if (lost()) throw new InferenceFailedError('the inference worker stopped; the model must be loaded again');
        return (await call({ op: 'run', id: 0, session, feeds })).outputs ?? {};
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
    Atomics.store(this.stopFlag, 0, 1);
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

  private call(req: HostRequest): Promise<Success> {
    const w = this.worker;
    if (!w) return Promise.reject(new InferenceFailedError('the inference worker stopped; the model must be loaded again'));
    const id = this.nextId++;
    return new Promise<Success>((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      w.ref();
      w.postMessage({ ...req, id });
    });
  }
}
