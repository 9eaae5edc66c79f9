/**
 * One inference, volume to answer: preprocessing from the model card (overridable per
 * request), the network on the engine (whole volume, or sliding windows with blending for
 * volumes larger than the network's input), and the answer: top-k classes, a feature
 * vector, or a label volume on the input's grid.
 *
 * Memory: a whole-volume run holds the network's input and output whole. Sliding windows cut
 * each window through the per-voxel steps from the volume as read (or resampled), and finish a
 * segmentation plane by plane into its labels. A volume kept on disk (`SpooledVolume`, from
 * `spoolNiftiFile`) is read a plane at a time, resampled a plane at a time when asked, and its
 * percentiles found in two passes, so that it is never held whole either: what such a run holds
 * beyond the output is bounded by the window, the classes and one plane's size, whatever the
 * volume's depth (`windowedInferenceBytes` states the bound).
 */
import type { Budgets } from '../../converters/budgets.js';
import type { Card } from '../../converters/convert.js';
import { InvalidArgumentError } from '../../converters/errors.js';
import { checkSize } from '../preprocess/geometry.js';
import { channelSources, checkChannelMaps, checkOutputVoxels, checkWindowCount, mapChannels, percentileBounds, percentileBoundsOfPlanes, resample, resamplePlanes, resampleSize, slidingWindow, slidingWindowBytes, windowBounds, CT_WINDOWS, type ChannelMap, type SlabUse } from '../preprocess/index.js';
import { classProbabilities, featureVector, labelsFromScores, topK, type ClassScore, type LabelMap } from '../predictions/index.js';
import { isSpooled, loadPlaneVolume, VolumeFormatError, type PlaneVolume, type SpooledVolume, type Vec3, type Volume } from '../volumes/index.js';
import type { FloatTensor, InferenceEngine, ModelSource } from './engine.js';
import { collectDense, type DenseKeep, type DenseOutput } from './dense-output.js';
import { InferenceFailedError } from './errors.js';

/** A model ready to run, with what the runtime needs to know about it. */
export interface LoadedModel {
  source: ModelSource;
  /** The card of the conversion, when there is one. */
  card?: Card;
  /** Input channels the network takes. */
  channels: number;
  /** Labels of its classes, when known. */
  labels?: readonly string[];
}

/** Per-request options; unset ones come from the card or the defaults. */
export interface InferOptions {
  /** Feed the array as it is: no windowing, resampling, channel matching or normalisation. */
  raw?: boolean;
  /** Intensity window [low, high] (e.g. HU [-1000, 400]) or a preset name, or 'none'. */
  window?: readonly [number, number] | keyof typeof CT_WINDOWS | 'none';
  /** Resample the volume to this size (D, H, W) first. */
  size?: Vec3;
  /** Resample the volume to this voxel spacing (mm) first. */
  spacing?: Vec3;
  /** Run sliding windows of this size (D, H, W) over the volume. */
  patch?: Vec3;
  /** Overlap of the sliding windows. @default 0.25 */
  overlap?: number;
  /** Number of classes reported. @default 5 */
  topK?: number;
  /** Normalisation override. */
  mean?: number[];
  std?: number[];
  /**
   * What a segmentation keeps beside its labels: its per-class probabilities or its scores, each
   * `K x D x H x W` float32 held against `budgets.outputVoxels`. Through sliding windows only the
   * labels are kept otherwise (the scores are never assembled); a whole-volume run has its
   * scores anyway. @default 'labels'
   */
  keep?: DenseKeep;
}

/** What an inference produced. */
export interface InferResult {
  kind: 'classification' | 'features' | 'segmentation';
  /**
   * The network's first output: its shape, and its values, except for a segmentation through
   * sliding windows that did not keep its scores (`InferOptions.keep`).
   */
  output: { shape: number[]; data?: Float32Array };
  /** A segmentation's per-class probabilities `[1, K, D, H, W]`, when `InferOptions.keep` asked for them. */
  probabilities?: FloatTensor;
  /** A segmentation through sliding windows: the planes its blend accumulator held (see `slidingWindow`). */
  slab?: SlabUse;
  topK?: ClassScore[];
  features?: number[];
  labels?: LabelMap;
  /** Names of a segmentation's classes (the model's labels, when there is one per output channel). */
  classNames?: readonly string[];
  /** The array fed to the network (after preprocessing). */
  input: { shape: number[]; spacing?: Vec3 };
  /** What the preprocessing did, in order. */
  steps: string[];
  ms: { preprocess: number; network: number };
}

/**
 * Is the volume a CT (its intensities in HU, so a CT window applies)? Its modality says, or,
 * where it does not, its least value (air is -1000 HU) on the volume as read.
 */
const isCt = (modality: string | undefined, min: () => number) => modality === 'CT' || (modality === undefined && min() < -500);

function minOf(a: Float32Array): number {
  let m = Infinity;
  for (let i = 0; i < a.length; i++) if (a[i]! < m) m = a[i]!;
  return m;
}

/** What preprocessing needs to know of a model. */
export type ModelFacts = Pick<LoadedModel, 'channels' | 'card'>;

/**
 * Refuse a volume holding NaN or infinite voxels: they would pass through every step and come
 * out of the network as a non-finite answer.
 */
function checkFinite(volume: Volume | SpooledVolume): void {
  let bad = 0;
  let first: { index: number; value: number } | undefined;
  if (isSpooled(volume)) {
    bad = volume.spool.nonFinite;
    first = volume.spool.firstNonFinite;
  } else {
    const data = volume.data;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i]!)) {
        first ??= { index: i, value: data[i]! };
        bad++;
      }
    }
  }
  if (bad === 0 || first === undefined) return;
  const [c, d, h, w] = volume.shape;
  const i = first.index;
  const at = [Math.floor(i / (d * h * w)), Math.floor(i / (h * w)) % d, Math.floor(i / w) % h, i % w];
  const file = volume.source.file;
  throw new VolumeFormatError(
    `${file}: ${bad} of ${c * d * h * w} voxels are not finite numbers (NaN or infinite; the first, ${first.value}, at [c, d, h, w] = [${at.join(', ')}]); replace them, with the background value say, before inference`,
    { file },
  );
}

/** The network's input as a plan: a volume, and the per-voxel maps that make each input channel of it. */
export interface InputPlan<S = Volume> {
  /** The volume as read, or resampled when asked. */
  source: S;
  /** One map per input channel (intensity, replication, normalisation); absent: `source` is fed as it is (`raw`). */
  channels?: readonly ChannelMap[];
  /** What the preprocessing does, in order. */
  steps: string[];
}

/**
 * Hold the planned network input against the budgets, before any step runs: for a whole-volume
 * run the input itself (resampled size, the model's channels) against `budgets.outputVoxels`;
 * for sliding windows (`o.patch`), which never make the input whole, the windows against
 * `budgets.slidingWindows` and all their voxels together against `budgets.outputVoxels`.
 */
function checkPlanned(v: Omit<Volume, 'data'>, model: ModelFacts, o: InferOptions, budgets?: Partial<Budgets>): void {
  const resized = o.size || o.spacing ? resampleSize(v, { size: o.size, spacing: o.spacing }) : ([v.shape[1], v.shape[2], v.shape[3]] as Vec3);
  const what = `${v.source.file}: preprocessing [${v.shape.join(', ')}] for a ${model.channels}-channel network`;
  if (o.patch) {
    const patch = checkSize(o.patch, 'patch');
    const overlap = o.overlap ?? 0.25;
    if (!(overlap >= 0 && overlap < 1)) throw new InvalidArgumentError(`'overlap' must be in [0, 1), got ${overlap}`);
    const planned = resized.map((n, a) => Math.max(n, patch[a]!));
    const windows = checkWindowCount(planned, patch, [overlap, overlap, overlap], budgets, v.source.file);
    checkOutputVoxels([windows, model.channels, ...patch], `${what}: ${windows} windows of ${patch.join('x')}`, budgets);
  } else {
    checkOutputVoxels([Math.max(v.shape[0], model.channels), ...resized], what, budgets);
  }
}

const resampleStep = (v: Omit<Volume, 'data'>) => `resample to ${v.shape.slice(1).join('x')} (spacing ${v.spacing.map((s) => s.toFixed(2)).join(', ')} mm)`;

/** The intensity step: a CT window, none, or percentiles still to be found. */
type IntensityChoice = { kind: 'window'; lo: number; hi: number; step: string } | { kind: 'none' } | { kind: 'percentiles' };

const PERCENTILES: [number, number] = [0.5, 99.5];

function chooseIntensity(o: InferOptions, ct: () => boolean): IntensityChoice {
  if (o.window === 'none') return { kind: 'none' };
  if (o.window !== undefined || ct()) {
    const window = o.window ?? 'lung';
    const [lo, hi] = windowBounds(window);
    return { kind: 'window', lo, hi, step: `window ${Array.isArray(window) ? `[${window.join(', ')}]` : `${String(window)} ${JSON.stringify(CT_WINDOWS[window as keyof typeof CT_WINDOWS])}`} -> [0, 1]` };
  }
  return { kind: 'percentiles' };
}

/** The channel maps and their steps, once the intensity bounds are known (`bounds` for percentiles). */
function finishPlan<S extends { readonly shape: readonly number[] }>(v: S, model: ModelFacts, o: InferOptions, steps: string[], choice: IntensityChoice, bounds?: { lo: number[]; hi: number[] }): InputPlan<S> {
  const c = v.shape[0]!;
  let intensity: ChannelMap['intensity'][] = Array<undefined>(c).fill(undefined);
  if (choice.kind === 'none') steps.push('no intensity window');
  else if (choice.kind === 'window') {
    intensity = intensity.map(() => ({ lo: choice.lo, hi: choice.hi, range: [0, 1] }));
    steps.push(choice.step);
  } else {
    intensity = intensity.map((_, i) => ({ lo: bounds!.lo[i]!, hi: bounds!.hi[i]!, range: [0, 1] }));
    steps.push(`scale percentiles [${PERCENTILES.join(', ')}] -> [0, 1]`);
  }
  if (c !== model.channels) steps.push(`channels ${c} -> ${model.channels}`);
  const sources = channelSources(c, model.channels);
  const mean = o.mean ?? model.card?.preprocessing.mean ?? (model.channels === 3 ? [0.485, 0.456, 0.406] : [0.449]);
  const std = o.std ?? model.card?.preprocessing.std ?? (model.channels === 3 ? [0.229, 0.224, 0.225] : [0.226]);
  if (mean.length !== model.channels || std.length !== model.channels) {
    throw new InvalidArgumentError(`mean/std must have ${model.channels} values (one per input channel)`);
  }
  const channels = sources.map((source, i): ChannelMap => ({ source, ...(intensity[source] ? { intensity: intensity[source] } : {}), mean: mean[i]!, std: std[i]! }));
  checkChannelMaps(channels, c);
  steps.push(`normalise mean [${mean.join(', ')}] std [${std.join(', ')}]`);
  return { source: v, channels, steps };
}

/**
 * Plan the preprocessing of a volume for a model: resample it (when asked), then the per-voxel
 * steps as `ChannelMap`s. Before any step runs, the planned network input is held against the
 * budgets (`checkPlanned`). A volume with NaN or infinite voxels is refused (422).
 */
export function planInput(volume: Volume, model: ModelFacts, o: InferOptions, budgets?: Partial<Budgets>): InputPlan {
  checkFinite(volume);
  if (o.raw) return { source: volume, steps: ['raw: fed as stored'] };
  checkPlanned(volume, model, o, budgets);
  const steps: string[] = [];
  let v = volume;
  if (o.size || o.spacing) {
    v = resample({ volume: v, size: o.size, spacing: o.spacing, mode: 'trilinear', budgets });
    steps.push(resampleStep(v));
  }
  const choice = chooseIntensity(o, () => isCt(volume.modality, () => minOf(volume.data)));
  return finishPlan(v, model, o, steps, choice, choice.kind === 'percentiles' ? percentileBounds(v, PERCENTILES) : undefined);
}

/**
 * `planInput` for a volume kept on disk, equal to it: the resampled volume is read a plane at a
 * time as well (`resamplePlanes`), the CT test and the finite check use what the spool counted,
 * and percentiles are found in two passes over the planes (`percentileBoundsOfPlanes`).
 */
export async function planSpooledInput(volume: SpooledVolume, model: ModelFacts, o: InferOptions, budgets?: Partial<Budgets>): Promise<InputPlan<PlaneVolume>> {
  checkFinite(volume);
  if (o.raw) return { source: volume, steps: ['raw: fed as stored'] };
  checkPlanned(volume, model, o, budgets);
  const steps: string[] = [];
  let v: PlaneVolume = volume;
  if (o.size || o.spacing) {
    v = resamplePlanes({ volume: v, size: o.size, spacing: o.spacing, mode: 'trilinear' });
    steps.push(resampleStep(v));
  }
  const choice = chooseIntensity(o, () => isCt(volume.modality, () => volume.spool.min));
  return finishPlan(v, model, o, steps, choice, choice.kind === 'percentiles' ? await percentileBoundsOfPlanes(v, PERCENTILES) : undefined);
}

/**
 * Preprocess a volume for a model (see `planInput`, for its budgets); returns the network's
 * input as one array and the steps taken.
 */
export function preprocess(volume: Volume, model: ModelFacts, o: InferOptions, budgets?: Partial<Budgets>): { volume: Volume; steps: string[] } {
  const plan = planInput(volume, model, o, budgets);
  return { volume: plan.channels ? mapChannels({ volume: plan.source, channels: plan.channels, budgets }) : plan.source, steps: plan.steps };
}

/**
 * A volume made ready for the network: one array for a whole-volume run, or for sliding
 * windows the source and the maps each window is cut through (the input is never made whole).
 */
export interface PreparedInput {
  /** The network's input (a whole-volume run). */
  volume?: Volume;
  /** The source of the windows (in memory, or read a plane at a time) and the per-voxel maps of each input channel (sliding windows). */
  windows?: { source: Volume | PlaneVolume; channels: readonly ChannelMap[] };
  /** What the preprocessing did, in order. */
  steps: string[];
  ms: number;
}

/** Make a volume ready for the network (the work before the engine, which the fence can run). */
export function prepareInput(volume: Volume, model: ModelFacts, o: InferOptions, budgets?: Partial<Budgets>): PreparedInput {
  const t0 = performance.now();
  const plan = planInput(volume, model, o, budgets);
  if (o.patch && plan.channels) return { windows: { source: plan.source, channels: plan.channels }, steps: plan.steps, ms: performance.now() - t0 };
  const input = plan.channels ? mapChannels({ volume: plan.source, channels: plan.channels, budgets }) : plan.source;
  return { volume: input, steps: plan.steps, ms: performance.now() - t0 };
}

/**
 * `prepareInput` for a volume kept on disk: sliding windows read it a plane at a time, so it is
 * never held whole; a whole-volume run (no `o.patch`, or `raw`) needs it in memory, and reads it.
 */
export async function prepareSpooledInput(volume: SpooledVolume, model: ModelFacts, o: InferOptions, budgets?: Partial<Budgets>): Promise<PreparedInput> {
  const t0 = performance.now();
  if (o.patch && !o.raw) {
    const plan = await planSpooledInput(volume, model, o, budgets);
    return { windows: { source: plan.source, channels: plan.channels! }, steps: plan.steps, ms: performance.now() - t0 };
  }
  if (!o.raw) checkPlanned(volume, model, o, budgets);
  const prepared = prepareInput(await loadPlaneVolume(volume), model, o, budgets);
  return { ...prepared, ms: performance.now() - t0 };
}

/** Parameters of `windowedInferenceBytes`. */
export interface WindowedInferenceBytesParams {
  /** The volume as read, `[C, D, H, W]`. */
  volume: readonly number[];
  /** The grid it is resampled to, when it is. */
  resampled?: readonly number[];
  /** The window `[wd, wh, ww]`. */
  window: readonly number[];
  /** Channels of the network's input. */
  channels: number;
  /** Channels of its output, `K`. */
  classes: number;
  kind: 'dense' | 'vector';
  /** @default 'labels' */
  keep?: DenseKeep;
  /** @default 1 */
  batchSize?: number;
  /** @default 0.25 */
  overlap?: number;
  /** The volume is kept on disk and read a plane at a time (`SpooledVolume`). @default false */
  spooled?: boolean;
}

/** What finding percentiles over planes holds: one plane, and five tables of 65536 counts. */
const PERCENTILE_PASS_BYTES = 5 * 65536 * 8;

/**
 * The bound, in bytes, on what one sliding-window inference holds beside the model's own
 * session (the onnxruntime session's weights and its working memory for one batch):
 *
 *     the volume as read (float32, C x D x H x W x 4; and its resampled copy, when resampling);
 *     for a volume kept on disk, none of it: its ring of input planes instead (counted in
 *     `slidingWindowBytes`), two planes as read when resampling, and the percentile pass
 *   + the output: labels (1 byte a voxel up to 256 classes, else 2), and the probabilities or
 *     scores when kept (K x D x H x W x 4), on the network's grid
 *   + `slidingWindowBytes`: the ring K x wd x H x W x 4 (and its weight sums), one batch of
 *     windows in and one out, twice each
 *
 * None of it grows with the volume but the volume and the output themselves. Reading the volume
 * may hold more for a moment, before any of this (a file's bytes and what they inflate to, except
 * for a NIfTI file, read as a stream by `readNiftiFile`); writing an answer holds its encoding
 * (`encodeNifti`).
 */
export function windowedInferenceBytes(p: WindowedInferenceBytesParams): { input: number; output: number; windows: number; total: number } {
  const [c, ...read] = p.volume as [number, number, number, number];
  const grid = p.resampled ?? read;
  const voxels = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
  const input = p.spooled ? (p.resampled ? 2 * 4 * read[1]! * read[2]! : 0) + 4 * grid[1]! * grid[2]! + PERCENTILE_PASS_BYTES : 4 * c * (voxels(read) + (p.resampled ? voxels(grid) : 0));
  const keep = p.keep ?? 'labels';
  const output = p.kind === 'vector' ? 4 * p.classes : voxels(grid) * ((p.classes <= 256 ? 1 : 2) + (keep === 'labels' ? 0 : 4 * p.classes));
  const windows = slidingWindowBytes({ grid, window: p.window, channels: p.channels, classes: p.classes, kind: p.kind, batchSize: p.batchSize, overlap: p.overlap, ...(p.spooled ? { streamedChannels: c } : {}) }).total;
  return { input, output, windows, total: input + output + windows };
}

/**
 * Run a model on a volume, within the budgets (see `planInput` and `slidingWindow`);
 * `prepared` is the volume already made ready (by `prepareInput`). A dense output through
 * sliding windows is finished plane by plane into its labels (`collectDense`): its scores are
 * assembled only when `o.keep` asks for them or for the probabilities.
 */
export async function infer(
  engine: InferenceEngine,
  model: LoadedModel,
  volume: Volume | SpooledVolume,
  o: InferOptions = {},
  budgets?: Partial<Budgets>,
  prepared?: PreparedInput,
): Promise<InferResult> {
  prepared ??= isSpooled(volume) ? await prepareSpooledInput(volume, model, o, budgets) : prepareInput(volume, model, o, budgets);
  const steps = [...prepared.steps];
  const t1 = performance.now();
  const run = (data: Float32Array, shape: readonly number[]) => engine.run(model.source, { data, shape: [...shape] });
  let output: InferResult['output'];
  let dense: DenseOutput | undefined;
  let input: InferResult['input'];
  let slab: SlabUse | undefined;
  if (prepared.windows) {
    const patch = checkSize(o.patch ?? [], 'patch');
    const { source, channels } = prepared.windows;
    let collected: ReturnType<typeof collectDense> | undefined;
    const result = await slidingWindow({
      volume: source,
      channels,
      windowSize: patch,
      overlap: o.overlap ?? 0.25,
      budgets,
      run: async (batch, shape) => first(await run(batch, shape)),
      sink: (shape) => (collected = collectDense({ shape, keep: o.keep, budgets })).sink,
    });
    const grid = source.shape.slice(1);
    if (grid.some((n, a) => n < patch[a]!)) steps.push(`crop the padding back to ${grid.join('x')}`);
    if (result.kind === 'vector') output = { data: result.data, shape: [1, ...result.shape] };
    else {
      dense = collected!.result();
      slab = { slabPlanes: result.slabPlanes, peakPlanes: result.peakPlanes };
      output = { shape: [1, ...result.shape], ...(dense.scores ? { data: dense.scores.data } : {}) };
    }
    input = { shape: [1, channels.length, ...grid.map((n, a) => Math.max(n, patch[a]!))], spacing: source.spacing };
    steps.push(`sliding windows ${patch.join('x')} (overlap ${o.overlap ?? 0.25}, ${result.windows} windows)`);
  } else {
    const v = prepared.volume;
    if (!v) throw new InvalidArgumentError("'prepared' holds neither the network's input nor its windows");
    input = { shape: [1, ...v.shape], spacing: v.spacing };
    const out = first(await run(v.data, input.shape));
    const bad = out.data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) {
      throw new InferenceFailedError(`the network gave a non-finite output (${out.data[bad]} at element ${bad}): the checkpoint's weights or BatchNorm statistics are broken, or the input holds non-finite values`);
    }
    output = out;
    if (out.shape.length === 5) {
      const scores = { data: out.data, shape: out.shape.slice(1) };
      dense = { labels: labelsFromScores(scores), ...(o.keep === 'probabilities' ? { probabilities: { ...classProbabilities(scores), shape: out.shape } } : {}) };
    }
  }
  const t2 = performance.now();
  const result: InferResult = { kind: 'classification', output, input, steps, ms: { preprocess: prepared.ms, network: t2 - t1 } };
  if (dense) {
    result.kind = 'segmentation';
    result.labels = dense.labels;
    if (dense.probabilities) result.probabilities = dense.probabilities;
    if (slab) result.slab = slab;
    if (model.labels?.length === output.shape[1]) result.classNames = model.labels;
  } else if (model.card?.output.kind === 'features') {
    result.kind = 'features';
    result.features = featureVector({ data: output.data!, shape: output.shape });
  } else {
    const classes = output.shape[output.shape.length - 1]!;
    // Labels apply only to the head they were made for (a new head has its own classes).
    const labels = model.labels?.length === classes ? model.labels : undefined;
    result.topK = topK({ scores: output.data!.subarray(0, classes), labels, k: o.topK ?? 5 });
  }
  return result;
}

function first(out: Record<string, FloatTensor>): FloatTensor {
  const v = Object.values(out)[0];
  if (!v) throw new InvalidArgumentError('the network has no output');
  return v;
}
