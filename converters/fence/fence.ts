/**
 * The fence: heavy work on untrusted input (decoding a checkpoint or a volume, preprocessing,
 * converting) runs in a pool of worker threads, so that one request can neither stall the
 * event loop that answers every other request nor, by its memory, kill the process.
 *
 * Each worker runs one task at a time under V8 resource limits: its heap (old generation) is
 * `heapBytes` (`budgets.workerHeapBytes`). A task that needs more ends its worker and fails
 * with `LimitExceededError` (413) naming the budget; a worker that dies otherwise fails its
 * task with `WorkerUnavailableError` (503, retry later), and the next task starts a new one.
 * The limit is on the JavaScript heap: the bytes of typed arrays live outside it and are
 * bounded by the readers' own budgets (voxels, unpacked bytes), checked before they allocate.
 * Limit: V8 ends the whole process, not only the worker, when one allocation overshoots the
 * heap limit by more than the 16 MiB Node grants a dying worker (a huge array or string made
 * at once, as `JSON.parse` makes them), or when an array passes V8's largest length (2^27
 * elements); the readers' budgets must keep any one allocation well inside the heap budget.
 *
 * At most `workers` tasks run at once, at most `maxPending` wait (holding at most
 * `maxPendingBytes` of input); beyond that a task is refused at once with
 * `WorkerUnavailableError`. Large buffers are moved across (see `transfer.ts`), not copied:
 * an input's large typed arrays are empty on the caller's side once its task has started.
 *
 * `IN_PROCESS` runs the same tasks in the caller's thread, for the command line and for
 * measuring what the fence costs.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import debug from 'debug';
import { budgetSetting, DEFAULT_BUDGETS } from '../budgets.js';
import { LimitExceededError } from '../errors.js';
import { RunQueue } from './queue.js';
import { fromWireError, workerUnavailable, type WireError } from './errors.js';
import type { Task } from './task.js';
import { bytesHeld, transferList } from './transfer.js';

const log = debug('acs-hub:fence');

const MiB = 1024 * 1024;

/** Options of one run. */
export interface RunOptions {
  /** Names the input in messages (a file name). @default the task's name */
  what?: string;
  /** Ends the task (and the worker running it). */
  signal?: AbortSignal;
}

/** Runs tasks (see the module comment). */
export interface Fence {
  /**
   * Run `task` on `input`. A function as input is called once the task may start (so that
   * a waiting task holds nothing yet), and its result is the input.
   */
  run<I, O>(task: Task<I, O>, input: I | (() => Promise<I>), options?: RunOptions): Promise<O>;
  /** Stop the workers; tasks still running fail. */
  close(): Promise<void>;
}

function resolveInput<I>(input: I | (() => Promise<I>)): Promise<I> | I {
  return typeof input === 'function' ? (input as () => Promise<I>)() : input;
}

/** Runs tasks in the caller's thread (no isolation). */
export const IN_PROCESS: Fence = {
  async run(task, input, options) {
    options?.signal?.throwIfAborted();
    return task.run(await resolveInput(input));
  },
  async close() {},
};

/** A message to a fence worker. */
export interface FenceRequest {
  module: string;
  name: string;
  input: unknown;
}

/** A message from a fence worker. */
export type FenceReply = { ok: true; value: unknown } | { ok: false; error: WireError };

/** Options of `WorkerFence`. */
export interface WorkerFenceParams {
  /** Worker threads at most. @default max(1, min(4, cores - 1)) */
  workers?: number;
  /** Tasks waiting for a worker at most. @default 32 */
  maxPending?: number;
  /** Input bytes held by waiting tasks at most. @default 1 GiB */
  maxPendingBytes?: number;
  /** Heap of one worker, in bytes. @default DEFAULT_BUDGETS.workerHeapBytes */
  heapBytes?: number;
}

/** The default number of workers: the cores but one (which the event loop keeps), at most 4. */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

interface Slot {
  worker: Worker;
  /** The task it runs now. */
  job?: { what: string; resolve: (value: unknown) => void; reject: (err: Error) => void };
  dead: boolean;
}

const WORKER = new URL('./fence-worker.js', import.meta.url);

/** Runs tasks in a pool of worker threads (see the module comment). */
export class WorkerFence implements Fence {
  private readonly idle: Slot[] = [];
  private readonly slots = new Set<Slot>();
  private readonly queue: RunQueue;
  private readonly heapBytes: number;
  private closed = false;

  constructor(params: WorkerFenceParams = {}) {
    this.heapBytes = params.heapBytes ?? DEFAULT_BUDGETS.workerHeapBytes;
    this.queue = new RunQueue({
      concurrency: params.workers ?? defaultWorkers(),
      maxPending: params.maxPending ?? 32,
      maxPendingBytes: params.maxPendingBytes,
      what: 'tasks',
      refuse: (message) => workerUnavailable(`every worker is busy and ${message}`),
    });
  }

  async run<I, O>(task: Task<I, O>, input: I | (() => Promise<I>), options: RunOptions = {}): Promise<O> {
    if (this.closed) throw workerUnavailable('the workers are stopped');
    const bytes = typeof input === 'function' ? 0 : bytesHeld(input);
    return this.queue.run(bytes, async () => {
      options.signal?.throwIfAborted();
      const value = await resolveInput(input);
      return (await this.dispatch(task as Task<unknown, unknown>, value, options)) as O;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = [...this.slots];
    for (const s of slots) this.retire(s, workerUnavailable('the workers are stopped'));
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private dispatch(task: Task<unknown, unknown>, input: unknown, options: RunOptions): Promise<unknown> {
    if (this.closed) return Promise.reject(workerUnavailable('the workers are stopped'));
    const slot = this.idle.pop() ?? this.spawn();
    const { signal } = options;
    return new Promise((resolve, reject) => {
      const onAbort = () => this.retire(slot, signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      const done = () => signal?.removeEventListener('abort', onAbort);
      slot.job = {
        what: options.what ?? task.name,
        resolve: (v) => {
          done();
          resolve(v);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      slot.worker.ref();
      const message: FenceRequest = { module: task.module, name: task.name, input };
      try {
        slot.worker.postMessage(message, transferList(input));
      } catch (err) {
        // Not cloneable: a caller's mistake, not the worker's.
        slot.job = undefined;
        done();
        this.release(slot);
        reject(err as Error);
      }
    });
  }

  private spawn(): Slot {
    const heapMb = Math.max(16, Math.floor(this.heapBytes / MiB));
    const worker = new Worker(WORKER, {
      resourceLimits: { maxOldGenerationSizeMb: heapMb, maxYoungGenerationSizeMb: Math.min(64, Math.max(8, Math.floor(heapMb / 16))), stackSizeMb: 4 },
    });
    worker.unref();
    const slot: Slot = { worker, dead: false };
    worker.on('message', (m: FenceReply) => {
      const job = slot.job;
      if (!job) return;
      slot.job = undefined;
      this.release(slot);
      if (m.ok) job.resolve(m.value);
      else job.reject(fromWireError(m.error));
    });
    worker.on('error', (err: Error & { code?: string }) => {
      const what = slot.job?.what ?? 'a task';
      log('worker failed (%s): %s', what, err.message);
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        this.retire(slot, new LimitExceededError(`${what}: needs more than ${this.heapBytes} bytes of worker heap (${budgetSetting('workerHeapBytes')})`));
      } else {
        this.retire(slot, workerUnavailable(`${what}: the worker failed (${err.message.split('\n')[0]}); retry later`));
      }
    });
    worker.on('exit', (code) => this.retire(slot, workerUnavailable(`${slot.job?.what ?? 'a task'}: the worker stopped (exit code ${code}); retry later`)));
    this.slots.add(slot);
    return slot;
  }

  private release(slot: Slot): void {
    if (slot.dead) return;
    slot.worker.unref();
    this.idle.push(slot);
  }

  /** Take a worker out of the pool, failing its task with `err`, and end it. */
  private retire(slot: Slot, err: Error): void {
    if (slot.dead) return;
    slot.dead = true;
    this.slots.delete(slot);
    const i = this.idle.indexOf(slot);
    if (i >= 0) this.idle.splice(i, 1);
    const job = slot.job;
    slot.job = undefined;
    job?.reject(err);
    void slot.worker.terminate();
  }
}
