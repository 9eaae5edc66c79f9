/**
 * The inference engine: sessions from the memory-bounded cache, runs through the bounded
 * queue, a warm-up run when a model is loaded, and batching of same-shape requests that
 * arrive together (several volumes in one run, then split back). The sessions live in a
 * worker thread (`worker-host.ts`), so the caller's event loop stays free while they run,
 * and each is specialised for the spatial size it serves (`graph/specialize.ts`).
 */
import debug from 'debug';
import { CANDIDATES, candidateNamed, chooseFastest, decisionKey, machineKey, median, memoryDecisions, type AutotuneParams, type Candidate, type Choice, type Decisions } from './autotune.js';
import { EngineBusyError, InferenceFailedError, InvalidInputError } from './errors.js';
import type { Device } from './providers.js';
import { RunQueue } from '../../converters/fence/queue.js';
import { estimateSessionBytes, SessionCache, type Lease } from './session-cache.js';
import { SessionHost, type CreatedWorkerSession, type WireTensor } from './worker-host.js';

const log = debug('acs-hub:runtime');

/** A float32 array with its shape. */
export interface FloatTensor {
  data: Float32Array;
  shape: number[];
}

/** Options of the engine. */
export interface EngineParams {
  device?: Device;
  /** Intra-op threads (0 = onnxruntime's default). @default 0 */
  threads?: number;
  /**
   * Intra-op threads spin between operators during a run instead of sleeping (faster runs),
   * see `providers.ts`. @default true
   */
  spinning?: boolean;
  /** Memory budget of the session cache. @default 2 GiB */
  cacheBytes?: number;
  /** Runs at once. @default 1 */
  concurrency?: number;
  /** Requests waiting at most. @default 32 */
  maxPending?: number;
  /** Input bytes held by waiting requests at most. @default 1 GiB */
  maxPendingBytes?: number;
  /** Most volumes batched into one run. @default 4 */
  maxBatch?: number;
  /**
   * Specialise sessions for the spatial size of their inputs (`graph/specialize.ts`): ACS
   * views become 2D convolutions. @default true
   */
  specialize?: boolean;
  /** Spatial sizes specialised for per model; other sizes use the general session. @default 4 */
  maxShapes?: number;
  /**
   * Wait this long for more requests of the same model and shape before a run, so that
   * requests arriving a little apart share a batch; a full batch starts at once. @default 0
   */
  batchWindowMs?: number;
  /**
   * Measure the candidate graphs for each model and input size and run the fastest
   * (`autotune.ts`); false runs the default specialised graph (reproducible runs). @default false
   */
  autotune?: boolean | AutotuneParams;
  /** Where decisions are kept across restarts (the store); in memory when absent. */
  decisions?: Decisions;
  /** Called after each candidate is timed (trial runs are counted here). */
  onTrial?: (info: { key: string; candidate: string; ms: number; runs: number }) => void;
  /** Called once per loaded session with the device it runs on, why it fell back, and what specialisation did. */
  onLoad?: (info: { key: string; device: Device; fallback?: string; warmupMs: number; specialized?: string; choice?: Choice }) => void;
}

/** A model the engine can load. */
export interface ModelSource {
  /** Stable key (e.g. the content hash of the ONNX file). */
  key: string;
  /** Size of the ONNX bytes, for the cache's budget. */
  bytes: number;
  /** The ONNX bytes (or a path to them). */
  load: () => Promise<Uint8Array | string>;
  /** Input for the warm-up run, shape included. */
  warmupShape?: number[];
}

interface Pending {
  input: FloatTensor;
  resolve: (out: Record<string, FloatTensor>) => void;
  reject: (err: unknown) => void;
}

/** See the module comment. */
export class InferenceEngine {
  private readonly cache: SessionCache<CreatedWorkerSession>;
  private readonly host = new SessionHost();
  private readonly queue: RunQueue;
  private readonly batches = new Map<string, Pending[]>();
  /** Batches waiting out their window, by batch key: call to start the batch now. */
  private readonly windows = new Map<string, () => void>();
  readonly loaded = new Map<string, { device: Device; fallback?: string }>();
  /** Spatial sizes that have (or had) a specialised session, per model key. */
  private readonly shapes = new Map<string, Set<string>>();
  /** Counters: session runs and the volumes they carried. */
  readonly stats = { runs: 0, volumes: 0 };
  /** Decisions of this process by decision key (shared by concurrent loads). */
  private readonly choices = new Map<string, Promise<Choice>>();
  private readonly decisions: Decisions;

  constructor(private readonly params: EngineParams = {}) {
    this.decisions = params.decisions ?? memoryDecisions();
    this.cache = new SessionCache({ maxBytes: params.cacheBytes });
    this.queue = new RunQueue({ concurrency: params.concurrency, maxPending: params.maxPending, maxPendingBytes: params.maxPendingBytes, refuse: (message) => new EngineBusyError(message) });
  }

  /** Load (or find) a model's session, warming it up once; specialised for its warm-up shape. */
  async prepare(model: ModelSource): Promise<{ device: Device; fallback?: string }> {
    const lease = await this.lease(model, model.warmupShape);
    lease.release();
    return { device: lease.created.device, fallback: lease.created.fallback };
  }

  /**
   * Which session serves inputs of `shape`: one specialised for its spatial size (the first
   * `maxShapes` sizes of each model), else the model's general one.
   */
  private variant(model: ModelSource, shape: readonly number[] | undefined): { key: string; specializeFor?: number[] } {
    if (this.params.specialize === false || !shape || shape.length !== 5) return { key: model.key };
    const spatial = shape.slice(2).join('x');
    let sizes = this.shapes.get(model.key);
    if (!sizes) this.shapes.set(model.key, (sizes = new Set()));
    if (!sizes.has(spatial) && sizes.size >= (this.params.maxShapes ?? 4)) return { key: model.key };
    sizes.add(spatial);
    return { key: `${model.key}@${spatial}`, specializeFor: [1, ...shape.slice(1)] };
  }

  /** Borrow the session for `shape`, loading it again when the worker that held it has stopped. */
  private async lease(model: ModelSource, shape: readonly number[] | undefined): Promise<Lease<CreatedWorkerSession>> {
    const v = this.variant(model, shape);
    const lease = await this.acquire(model, v);
    if (!lease.created.session.lost) return lease;
    lease.release();
    this.cache.forget(v.key);
    return this.acquire(model, v);
  }

  private acquire(model: ModelSource, v: { key: string; specializeFor?: number[] }): Promise<Lease<CreatedWorkerSession>> {
    return this.cache.acquire(v.key, estimateSessionBytes(model.bytes), async () => {
      const bytes = await model.load();
      let candidate: Candidate = CANDIDATES[0]!;
      let choice: Choice | undefined;
      if (v.specializeFor && this.params.autotune) {
        choice = await this.choose(model.key, bytes, v.specializeFor);
        candidate = candidateNamed(choice.candidate) ?? candidate;
      }
      const specializeFor = candidate.specialize === false ? undefined : v.specializeFor;
      // On a GPU, the first answer is checked against the CPU's at the shape the session serves.
      const verifyShape = v.specializeFor ?? model.warmupShape;
      const created = await this.host.create(bytes, { ...this.sessionParams(), verifyShape }, specializeFor, candidate.specialize || undefined);
      const t0 = performance.now();
      // A specialised session takes only its own spatial size: warm it up when that is the
      // model's warm-up shape (otherwise the request that asked for it is its first run).
      const warm = model.warmupShape;
      if (warm && (!specializeFor || warm.slice(1).join('x') === specializeFor.slice(1).join('x'))) {
        const n = warm.reduce((a, b) => a * b, 1);
        await created.session.run({ [created.session.inputNames[0]!]: { data: new Float32Array(n), dims: warm } }, { give: true });
      }
      const warmupMs = performance.now() - t0;
      this.loaded.set(model.key, { device: created.device, fallback: created.fallback });
      log('loaded %s on %s%s (warm-up %d ms; %s)', v.key, created.device, created.fallback ? ` (fell back: ${created.fallback})` : '', warmupMs, created.specialized ?? 'general');
      this.params.onLoad?.({ key: model.key, device: created.device, fallback: created.fallback, warmupMs, specialized: created.specialized, choice });
      return created;
    });
  }

  private sessionParams() {
    return { device: this.params.device, threads: this.params.threads, spinning: this.params.spinning };
  }

  /**
   * The graph to run for `model` at `shape`: the decision kept for this machine, model and
   * shape, or one measured now (and kept).
   */
  private choose(modelKey: string, bytes: Uint8Array | string, shape: number[]): Promise<Choice> {
    const machine = machineKey(this.params.device ?? 'cpu', this.params.threads ?? 0, this.params.spinning);
    const key = decisionKey(machine, modelKey, shape);
    let choice = this.choices.get(key);
    if (!choice) {
      choice = (async () => {
        const known = await this.decisions.get(key);
        if (known && candidateNamed(known.candidate)) {
          log('lowering for %s at %s: %s (kept decision %s)', modelKey, shape.join('x'), known.candidate, key);
          return known;
        }
        const measured = await this.measure(modelKey, bytes, shape);
        const list = (t: Record<string, number>, unit = ' ms') => Object.entries(t).map(([k, v]) => `${k} ${v}${unit}`).join(', ');
        const ratios = measured.ratios ? `; each over the default in the same rounds: ${list(measured.ratios, '')}` : '';
        const runOff = measured.runOff ? `; run-off: ${list(measured.runOff)}, median ratio of its rounds ${measured.runOffRatio}` : '';
        log('lowering for %s at %s: %s (measured: %s%s%s; decision %s)', modelKey, shape.join('x'), measured.candidate, list(measured.timings), ratios, runOff, key);
        await this.decisions.put(key, measured);
        return measured;
      })();
      this.choices.set(key, choice);
      choice.catch(() => this.choices.delete(key));
    }
    return choice;
  }

  /**
   * Measure the candidates for a model at `shape` (`chooseFastest`): the default graph's session
   * is loaded first and stays live while each other candidate is loaded, runs in turn with it,
   * and is released.
   */
  private async measure(modelKey: string, bytes: Uint8Array | string, shape: number[]): Promise<Choice> {
    const fallback = CANDIDATES[0]!;
    let reference: CreatedWorkerSession | undefined;
    const trial = (c: Candidate, ms: number, runs: number) => this.params.onTrial?.({ key: modelKey, candidate: c.name, ms, runs });
    try {
      return await chooseFastest(
        async (c, runs) => {
          const s = await this.load(bytes, shape, c);
          if (c === fallback) reference = s;
          try {
            const [times] = await this.turns([s], [s], shape, runs);
            const ms = median(times!);
            trial(c, ms, runs);
            return ms;
          } finally {
            if (s !== reference) await s.session.release();
          }
        },
        this.params.autotune === true ? {} : this.params.autotune || {},
        async (c, runs, stage) => {
          if (!reference) throw new Error('the default graph is not loaded');
          const s = await this.load(bytes, shape, c);
          try {
            const [a, b] = (await this.turns([s, reference], [s], shape, runs)) as [number[], number[]];
            if (stage === 'first-pass') trial(c, median(a), runs);
            return [a, b];
          } finally {
            await s.session.release();
          }
        },
      );
    } finally {
      if (reference) await reference.session.release();
    }
  }

  /** A candidate's session; one the device refuses (it would run on the CPU instead) is not a lowering for this device. */
  private async load(bytes: Uint8Array | string, shape: number[], c: Candidate): Promise<CreatedWorkerSession> {
    const s = await this.host.create(bytes, this.sessionParams(), c.specialize === false ? undefined : shape, c.specialize || undefined);
    const requested = this.params.device ?? 'cpu';
    if (s.device !== requested) {
      await s.session.release();
      throw new Error(`runs on ${s.device}, not ${requested}: ${s.fallback ?? ''}`);
    }
    return s;
  }

  /**
   * The times of sessions on a zero input, round by round: `warm` (new ones) run once first,
   * then each of `sessions` in turn, `runs` rounds.
   */
  private async turns(sessions: CreatedWorkerSession[], warm: CreatedWorkerSession[], shape: number[], runs: number): Promise<number[][]> {
    const n = shape.reduce((x, y) => x * y, 1);
    const feeds = (s: CreatedWorkerSession) => ({ [s.session.inputNames[0]!]: { data: new Float32Array(n), dims: shape } });
    for (const s of warm) await s.session.run(feeds(s), { give: true });
    const times: number[][] = sessions.map(() => []);
    for (let i = 0; i < runs; i++) {
      for (const [k, s] of sessions.entries()) {
        const input = feeds(s);
        const t0 = performance.now();
        await s.session.run(input, { give: true });
        times[k]!.push(performance.now() - t0);
      }
    }
    return times;
  }

  /**
   * Run one input (N, C, D, H, W). Requests for the same model and shape that wait together
   * (or arrive within `batchWindowMs` of the first) are run as one batch of up to `maxBatch` volumes.
   */
  async run(model: ModelSource, input: FloatTensor): Promise<Record<string, FloatTensor>> {
    const expected = input.shape.reduce((a, b) => a * b, 1);
    if (input.data.length !== expected) throw new InvalidInputError(`input has ${input.data.length} values but shape [${input.shape.join(', ')}] needs ${expected}`);
    const batchKey = `${model.key}|${input.shape.join('x')}`;
    return new Promise((resolve, reject) => {
      let group = this.batches.get(batchKey);
      if (!group) {
        group = [];
        this.batches.set(batchKey, group);
        const take = () => {
          const all = this.batches.get(batchKey) ?? [];
          const max = this.params.maxBatch ?? 4;
          const batch = all.splice(0, max);
          if (all.length === 0) this.batches.delete(batchKey);
          return batch;
        };
        const go = (): void => {
          this.windows.delete(batchKey);
          this.queue
            .run(input.data.byteLength, async () => {
              const batch = take();
              if (this.batches.has(batchKey)) setImmediate(go);
              if (batch.length > 0) await this.runBatch(model, batch);
            })
            .catch((err: unknown) => {
              for (const p of take()) p.reject(err);
            });
        };
        const window = this.params.batchWindowMs ?? 0;
        if (window > 0) {
          // Wait for company, unless a full batch gathers first.
          const timer = setTimeout(go, window);
          this.windows.set(batchKey, () => {
            clearTimeout(timer);
            go();
          });
        } else {
          setImmediate(go);
        }
      }
      group.push({ input, resolve, reject });
      if (group.length >= (this.params.maxBatch ?? 4)) {
        const now = this.windows.get(batchKey);
        this.windows.delete(batchKey);
        now?.();
      }
    });
  }

  private async runBatch(model: ModelSource, batch: Pending[]): Promise<void> {
    let lease;
    try {
      lease = await this.lease(model, batch[0]!.input.shape);
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    try {
      const { session } = lease.created;
      const shape = batch[0]!.input.shape;
      const per = batch[0]!.input.data.length;
      const data = batch.length === 1 ? batch[0]!.input.data : new Float32Array(per * batch.length);
      if (batch.length > 1) batch.forEach((p, i) => data.set(p.input.data, i * per));
      const n = shape[0]!;
      const feeds = { [session.inputNames[0]!]: { data, dims: [n * batch.length, ...shape.slice(1)] } };
      let out: Record<string, WireTensor>;
      try {
        this.stats.runs++;
        this.stats.volumes += batch.length;
        // A batch of several is an array of the engine's own, given away; one request's array stays its caller's.
        out = await session.run(feeds, { give: batch.length > 1 });
      } catch (err) {
        // The worker stopped: the next lease loads the model again.
        if (session.lost) throw err;
        const msg = (err as Error).message;
        const bad = /shape|dimension|rank|size|invalid/i.test(msg);
        throw bad ? new InvalidInputError(`the network cannot take an input of shape [${shape.join(', ')}]: ${msg.split('\n')[0]}`) : new InferenceFailedError(msg.split('\n')[0]!);
      }
      batch.forEach((p, i) => {
        const result: Record<string, FloatTensor> = {};
        for (const [name, t] of Object.entries(out)) {
          const dims = t.dims;
          const all = t.data;
          const each = all.length / batch.length;
          // one request takes the array as it came from the worker; several share it out in copies
          result[name] = { data: batch.length === 1 ? all : all.slice(i * each, (i + 1) * each), shape: [dims[0]! / batch.length, ...dims.slice(1)] };
        }
        p.resolve(result);
      });
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      lease.release();
    }
  }

  /** Release every session. */
  async close(): Promise<void> {
    await this.cache.close();
    await this.host.terminate();
  }

  /** Stop the worker that holds the sessions (as if it had crashed); the next run loads again. */
  async stopWorker(): Promise<void> {
    await this.host.terminate();
  }
}
