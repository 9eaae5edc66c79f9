/**
 * Conversion jobs: each runs `convertModel` in the background with progress events and can be
 * cancelled; finished jobs stay queryable (the most recent ones, in memory). The conversion
 * itself is coalesced and cached by the zoo layer, so two jobs for the same work share it.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ConvertOptions } from '../converters/convert.js';
import type { Logger } from 'pino';
import type { ConversionProgress, ConversionSource } from '../zoo/convert-model.js';
import { httpError, logMessage, toProblem, type Problem } from './errors.js';

/** A job as the API shows it. */
export interface Job {
  id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  source: Record<string, unknown>;
  mode: string;
  options: Record<string, unknown>;
  progress: { phase: 'queued' | 'downloading' | 'converting' | 'storing' | 'done'; bytes?: number; total?: number | null; file?: string };
  createdAt: string;
  finishedAt?: string;
  cached?: boolean;
  checkpointId?: string;
  problem?: Problem;
}

/** What a job is asked to do. */
export interface JobRequest {
  source: ConversionSource;
  /** The source as the request named it (for display). */
  sourceView: Record<string, unknown>;
  options: ConvertOptions;
}

const KEEP_FINISHED = 1000;

/** What the registry needs: the conversion itself (which records and counts it), and where to log. */
export interface JobDeps {
  /** Get or convert what a job asks for and record the checkpoint; `produced` is false for a cache hit. */
  convert(req: JobRequest, p: { onProgress: (e: ConversionProgress) => void; signal: AbortSignal }): Promise<{ checkpointId: string; produced: boolean }>;
  /** Told when a job is cancelled (to count it). */
  onCancel?: () => void;
  logger: Logger;
}

/** See the module comment. */
export class JobRegistry {
  private readonly jobs = new Map<string, { job: Job; abort: AbortController; done: Promise<void> }>();
  private readonly events = new EventEmitter();

  constructor(private readonly deps: JobDeps) {
    this.events.setMaxListeners(0);
  }

  /** A finished job for a conversion found in the cache. */
  cached(req: JobRequest, checkpointId: string): Job {
    const now = new Date().toISOString();
    const job: Job = { ...this.fresh(req), status: 'succeeded', progress: { phase: 'done' }, finishedAt: now, cached: true, checkpointId };
    this.keep(job, new AbortController(), Promise.resolve());
    return job;
  }

  private fresh(req: JobRequest): Job {
    const { mode, ...rest } = req.options;
    return { id: randomBytes(16).toString('hex'), status: 'queued', source: req.sourceView, mode, options: rest as Record<string, unknown>, progress: { phase: 'queued' }, createdAt: new Date().toISOString() };
  }

  private keep(job: Job, abort: AbortController, done: Promise<void>): void {
    this.jobs.set(job.id, { job, abort, done });
    if (this.jobs.size > KEEP_FINISHED) {
      for (const [id, j] of this.jobs) {
        if (this.jobs.size <= KEEP_FINISHED) break;
        if (j.job.finishedAt) this.jobs.delete(id);
      }
    }
  }

  /** Start a job; it runs in the background. */
  start(req: JobRequest): Job {
    const job = this.fresh(req);
    const abort = new AbortController();
    const s = this.deps;
    const onProgress = (e: ConversionProgress): void => {
      if (job.status === 'queued') job.status = 'running';
      if (e.phase === 'downloading') job.progress = { phase: 'downloading', bytes: e.bytes, total: e.total ?? null };
      else if (e.phase === 'storing') job.progress = { phase: 'storing', file: e.file };
      else if (e.phase === 'converting') job.progress = { phase: 'converting' };
      this.emit(job);
    };
    // Changed by `cancel` while the conversion awaits.
    const cancelled = (): boolean => (job.status as Job['status']) === 'cancelled';
    const done = (async () => {
      job.status = 'running';
      this.emit(job);
      try {
        const r = await s.convert(req, { onProgress, signal: abort.signal });
        if (cancelled()) return;
        job.checkpointId = r.checkpointId;
        job.cached = !r.produced;
        job.status = 'succeeded';
        job.progress = { phase: 'done' };
      } catch (err) {
        if (cancelled()) return;
        job.status = 'failed';
        job.problem = toProblem(err, undefined, `/v1/conversions/${job.id}`);
        if (job.problem.code === 'INTERNAL') s.logger.error({ err, job: job.id }, 'conversion failed');
        else s.logger.info({ job: job.id, code: job.problem.code }, logMessage(err, job.problem));
      } finally {
        job.finishedAt ??= new Date().toISOString();
        this.emit(job);
      }
    })();
    this.keep(job, abort, done);
    return job;
  }

  /** A job, or `JOB_NOT_FOUND`. */
  get(id: string): Job {
    const j = this.jobs.get(id);
    if (!j) throw httpError('JOB_NOT_FOUND', `no conversion job '${id}' on this server`);
    return j.job;
  }

  /** Cancel a running job. */
  cancel(id: string): Job {
    const j = this.jobs.get(id);
    if (!j) throw httpError('JOB_NOT_FOUND', `no conversion job '${id}' on this server`);
    if (j.job.finishedAt) throw httpError('JOB_FINISHED', `job '${id}' has already finished (${j.job.status})`);
    j.job.status = 'cancelled';
    j.job.finishedAt = new Date().toISOString();
    j.abort.abort(new Error('cancelled'));
    this.deps.onCancel?.();
    this.emit(j.job);
    return j.job;
  }

  /** Follow a job's changes; returns the unsubscribe function. */
  subscribe(id: string, listener: (job: Job) => void): () => void {
    const name = `job:${id}`;
    this.events.on(name, listener);
    return () => this.events.off(name, listener);
  }

  private emit(job: Job): void {
    this.events.emit(`job:${job.id}`, job);
  }

  /** Jobs still running. */
  running(): number {
    let n = 0;
    for (const j of this.jobs.values()) if (!j.job.finishedAt) n++;
    return n;
  }

  /** Wait for running jobs (at most `ms`), then cancel the rest and wait for them to stop. */
  async drain(ms: number): Promise<void> {
    const all = [...this.jobs.values()];
    await Promise.race([Promise.all(all.filter((j) => !j.job.finishedAt).map((j) => j.done)), new Promise((r) => setTimeout(r, ms).unref())]);
    for (const j of all) if (!j.job.finishedAt) this.cancel(j.job.id);
    // Cancelled work stops at its next await of the abort signal.
    await Promise.race([Promise.all(all.map((j) => j.done)), new Promise((r) => setTimeout(r, 10_000).unref())]);
  }
}
