/**
 * Measure, then choose: which graph the engine runs for a model and an input size. The best
 * lowering is not the same on every CPU (the fused views beat the plain ones on one machine and
 * lose on another), so instead of a choice fixed in code the engine times the candidates it can
 * make from a model.onnx on the machine it runs on, keeps the fastest, and remembers the
 * decision under the machine (CPU features, onnxruntime version, device, threads, spinning), the model
 * and the size, so that a restart with the same store does not measure again.
 *
 * Measuring is bounded: each candidate gets `runs` timed runs after one warm-up, each in turn
 * with a run of the default graph, and once `maxMs` have been spent no further candidate is
 * tried (the default is always tried first, so a choice always exists). The candidate that beat
 * the default by the most must then beat it again in a run-off of twice the runs, by a margin,
 * to be kept.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import type { SpecializeOptions } from '../../converters/graph/specialize.js';

/** A graph the engine can run for one input size: general, or specialised with these options. */
export interface Candidate {
  /** Stable name, stored in decisions. */
  name: string;
  /** Specialisation options, or false for the model as it is. */
  specialize: SpecializeOptions | false;
}

/**
 * The candidates, the engine's default first: the fold of every view or only the stride-1 ones,
 * 1x1x1 kernels as 2D ones or not, the stem's pooling done while folded or after the fold
 * back, a strided view's planes gathered in its fold or sliced after it, the stem's
 * convolution over the space-to-depth of its planes, and the general graph. On the CPU a
 * view pooled while folded has its output channels padded to the block onnxruntime's blocked
 * kernels use on the machine (`channel-block.ts`), read rather than tried: padded to another
 * block it is either pooled in the plain layout (8 where the kernels use 16) or computes zero
 * filters for nothing (16 where they use 8).
 */
export const CANDIDATES: readonly Candidate[] = [
  { name: 'specialized', specialize: {} },
  { name: 'specialized-pointwise', specialize: { pointwise: true } },
  { name: 'specialized-sliced-planes', specialize: { planes: 'after-fold' } },
  { name: 'specialized-unfolded-pools', specialize: { foldedPools: false, planes: 'before-fold' } },
  { name: 'specialized-s2d-stem', specialize: { stem: 'space-to-depth' } },
  { name: 'specialized-stride1', specialize: { strided: false } },
  { name: 'specialized-stride1-no-pools', specialize: { strided: false, pools: false } },
  { name: 'general', specialize: false },
];

/**
 * The version of what the candidates make: part of every decision key, so that decisions
 * measured on graphs this version no longer makes are measured again.
 */
export const CANDIDATES_VERSION = 7;

/** The candidate of a stored name (undefined for a name this version no longer makes). */
export function candidateNamed(name: string): Candidate | undefined {
  return CANDIDATES.find((c) => c.name === name);
}

/** A decision: the candidate kept, and the median of each candidate tried (ms). */
export interface Choice {
  candidate: string;
  timings: Record<string, number>;
  /**
   * Each candidate's time over the default's in the same round of the first pass (the median
   * of its rounds), when they were timed in turn with it.
   */
  ratios?: Record<string, number>;
  /** The medians of the run-off between the fastest of the first pass and the default, when there was one (ms). */
  runOff?: Record<string, number>;
  /**
   * The run-off's verdict: the median, over its rounds, of the challenger's time over the
   * default's in the same round (below 1: the challenger was faster).
   */
  runOffRatio?: number;
  /** When the decision was made (ISO 8601). */
  decidedAt: string;
}

/** Where decisions are kept (the store, in the server and the CLI); injected, so this layer stays free of it. */
export interface Decisions {
  get(key: string): Promise<Choice | undefined>;
  put(key: string, choice: Choice): Promise<void>;
}

/** Bounds on the measuring. */
export interface AutotuneParams {
  /** Timed runs per candidate (after one warm-up run), each in turn with one of the default. @default 3 */
  runs?: number;
  /** Milliseconds of measuring after which no further candidate is tried. @default 20000 */
  maxMs?: number;
  /**
   * A candidate other than the default is kept only if, in a run-off against the default
   * (their runs alternating, `2 * runs` each), its time over the default's in the same round
   * is, in the median round, below 1 by this fraction. @default 0.02
   */
  margin?: number;
}

/** The CPU's features: the `flags` line of /proc/cpuinfo where there is one, else the CPU model; and the architecture. */
export function cpuFeatures(): string {
  let flags = '';
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => /^(flags|Features)\s*:/.test(l));
    if (line) flags = line.replace(/^[^:]*:\s*/, '').split(/\s+/).sort().join(' ');
  } catch {
    // Not Linux: the model name stands for the features.
  }
  return `${os.arch()} ${flags || (os.cpus()[0]?.model ?? 'unknown')}`;
}

/** What a decision depends on, besides the model and the size. */
export interface MachineKey {
  cpu: string;
  onnxruntime: string;
  device: string;
  threads: number;
  /** Whether the intra-op threads spin between operators (it changes every timing). */
  spinning: boolean;
}

/** This machine's key for `device`, `threads` and `spinning`. */
export function machineKey(device: string, threads: number, spinning = true): MachineKey {
  return { cpu: cpuFeatures(), onnxruntime: ort.env.versions.common ?? 'unknown', device, threads, spinning };
}

/** The decision key: 32 hex digits of the sha256 of the candidates' version, machine, model and input shape. */
export function decisionKey(machine: MachineKey, model: string, shape: readonly number[]): string {
  const text = JSON.stringify([CANDIDATES_VERSION, machine.cpu, machine.onnxruntime, machine.device, machine.threads, machine.spinning, model, shape]);
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/** One candidate's timing, as measured. */
export interface Trial {
  candidate: string;
  ms: number;
}

/** Which measuring a paired timing is for: the first pass over the candidates, or the run-off. */
export type Stage = 'first-pass' | 'run-off';

/**
 * Times of a candidate and of the default, run in turn: `runs` rounds, each one run of the
 * candidate then one of the default; the two lists round by round.
 */
export type Beside = (c: Candidate, runs: number, stage: Stage) => Promise<[number[], number[]]>;

/**
 * Measure the candidates within the bounds and keep the fastest.
 *
 * The default is timed with `time` (which builds its session, runs it once to warm up, then
 * `runs` times, and returns the median). Each other candidate is timed with `beside`: in turn
 * with the default, whose session stays live, and judged by its time over the default's in the
 * same round (the median of those ratios). The one whose ratio is lowest, if below 1, then
 * meets the default again in a run-off of twice the runs, and is kept only if its ratio there
 * is below 1 by `margin`. One pass of a few runs each on a noisy machine otherwise picks graphs
 * that are not faster.
 *
 * Rounds, not medians, because a shared machine's speed changes by a factor of several from one
 * moment to the next (on a throttled virtual machine, 4x, for a few hundred milliseconds at a
 * time). The two runs of one round meet the same speed, so their ratio keeps the difference
 * between the graphs; a median of each can fall on a fast run for one and a slow one for the
 * other, and candidates timed one after another meet different speeds altogether.
 *
 * Without `beside` (or when the default cannot be built), every candidate is timed alone with
 * `time` and the fastest median is kept.
 */
export async function chooseFastest(time: (c: Candidate, runs: number) => Promise<number>, p: AutotuneParams = {}, beside?: Beside): Promise<Choice> {
  const runs = p.runs ?? 3;
  const maxMs = p.maxMs ?? 20000;
  const t0 = performance.now();
  const fallback = CANDIDATES[0]!;
  const timings: Record<string, number> = {};
  const ratios: Record<string, number> = {};
  let best: Trial | undefined;
  let lowest: { candidate: string; ratio: number } | undefined;
  for (const c of CANDIDATES) {
    if ((best || lowest) && performance.now() - t0 >= maxMs) break;
    try {
      if (beside && c !== fallback && timings[fallback.name] !== undefined) {
        const [a, b] = await beside(c, runs, 'first-pass');
        const ratio = roundRatio(a, b);
        if (ratio === undefined) continue;
        timings[c.name] = round(median(a));
        ratios[c.name] = ratio;
        if (!lowest || ratio < lowest.ratio) lowest = { candidate: c.name, ratio };
      } else {
        const ms = await time(c, runs);
        timings[c.name] = round(ms);
        if (!best || ms < best.ms) best = { candidate: c.name, ms };
      }
    } catch {
      continue; // A candidate that cannot be built or run is simply not chosen.
    }
  }
  const decide = (candidate: string, runOff?: Pick<Choice, 'runOff' | 'runOffRatio'>): Choice => ({
    candidate,
    timings,
    ...(Object.keys(ratios).length > 0 ? { ratios } : {}),
    ...runOff,
    decidedAt: new Date().toISOString(),
  });
  if (!beside || !lowest) return decide(best?.candidate ?? fallback.name);
  if (lowest.ratio >= 1) return decide(fallback.name);
  const challenger = candidateNamed(lowest.candidate)!;
  let a: number[];
  let b: number[];
  try {
    [a, b] = await beside(challenger, 2 * runs, 'run-off');
  } catch {
    return decide(fallback.name);
  }
  const ratio = roundRatio(a, b);
  if (ratio === undefined) return decide(fallback.name);
  const kept = ratio < 1 - (p.margin ?? 0.02) ? challenger.name : fallback.name;
  return decide(kept, { runOff: { [challenger.name]: round(median(a)), [fallback.name]: round(median(b)) }, runOffRatio: ratio });
}

/** The median, over the rounds, of the first time over the second, to 0.001; undefined without rounds. */
function roundRatio(a: readonly number[], b: readonly number[]): number | undefined {
  const rounds = Math.min(a.length, b.length);
  if (rounds === 0) return undefined;
  return Math.round(median(Array.from({ length: rounds }, (_, i) => a[i]! / b[i]!)) * 1000) / 1000;
}

/** The median of a list of numbers (the upper one of an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/** Decisions kept in this process only (when there is no store). */
export function memoryDecisions(): Decisions {
  const m = new Map<string, Choice>();
  return {
    get: async (k) => m.get(k),
    put: async (k, c) => void m.set(k, c),
  };
}
