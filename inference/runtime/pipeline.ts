/**
 * One inference, volume to answer: preprocessing from the model card (overridable per
 * request), the network on the engine (whole volume, or sliding windows with blending for
 * volumes larger than the network's input), and the answer: top-k classes, a feature
 * vector, or a label volume on the input's grid.
 */
import type { Budgets } from '../../converters/budgets.js';
import type { Card } from '../../converters/convert.js';
import { InvalidArgumentError } from '../../converters/errors.js';
import { checkSize } from '../preprocess/geometry.js';
import { checkOutputVoxels, checkWindowCount, matchChannels, normalizeChannels, padOrCrop, resample, resampleSize, scaleIntensity, slidingWindow, windowIntensity, CT_WINDOWS } from '../preprocess/index.js';
import { featureVector, labelsFromScores, topK, type ClassScore, type LabelMap } from '../predictions/index.js';
import { VolumeFormatError, type Vec3, type Volume } from '../volumes/index.js';
import type { FloatTensor, InferenceEngine, ModelSource } from './engine.js';
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
}

/** What an inference produced. */
export interface InferResult {
  kind: 'classification' | 'features' | 'segmentation';
  /** The network's first output, as it came out. */
  output: FloatTensor;
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

const isCt = (v: Volume) => v.modality === 'CT' || (v.modality === undefined && minOf(v.data) < -500);

function minOf(a: Float32Array): number {
  let m = Infinity;
  for (let i = 0; i < a.length; i += 97) m = Math.min(m, a[i]!);
  return m;
}

/** What preprocessing needs to know of a model. */
export type ModelFacts = Pick<LoadedModel, 'channels' | 'card'>;

/**
 * Refuse a volume holding NaN or infinite voxels: they would pass through every step and come
 * out of the network as a non-finite answer.
 */
function checkFinite(volume: Volume): void {
  const data = volume.data;
  let bad = 0;
  let first = -1;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) {
      if (first < 0) first = i;
      bad++;
    }
  }
  if (bad === 0) return;
  const [, d, h, w] = volume.shape;
  const at = [Math.floor(first / (d * h * w)), Math.floor(first / (h * w)) % d, Math.floor(first / w) % h, first % w];
  const file = volume.source.file;
  throw new VolumeFormatError(
    `${file}: ${bad} of ${data.length} voxels are not finite numbers (NaN or infinite; the first, ${data[first]}, at [c, d, h, w] = [${at.join(', ')}]); replace them, with the background value say, before inference`,
    { file },
  );
}

/**
 * Preprocess a volume for a model; returns the array and the steps taken. The network input it
 * plans (resampled size, the model's channels, padding to the windows) is held against
 * `budgets.outputVoxels`, and the windows `o.patch` makes against `budgets.slidingWindows`,
 * before any step runs. A volume with NaN or infinite voxels is refused (422).
 */
export function preprocess(volume: Volume, model: ModelFacts, o: InferOptions, budgets?: Partial<Budgets>): { volume: Volume; steps: string[] } {
  checkFinite(volume);
  const steps: string[] = [];
  let v = volume;
  if (o.raw) return { volume: v, steps: ['raw: fed as stored'] };
  const resized = o.size || o.spacing ? resampleSize(v, { size: o.size, spacing: o.spacing }) : ([v.shape[1], v.shape[2], v.shape[3]] as Vec3);
  const patch = o.patch ? checkSize(o.patch, 'patch') : undefined;
  const planned = resized.map((n, a) => Math.max(n, patch?.[a] ?? 0));
  checkOutputVoxels([Math.max(v.shape[0], model.channels), ...planned], `${v.source.file}: preprocessing [${v.shape.join(', ')}] for a ${model.channels}-channel network`, budgets);
  if (patch) {
    const overlap = o.overlap ?? 0.25;
    if (!(overlap >= 0 && overlap < 1)) throw new InvalidArgumentError(`'overlap' must be in [0, 1), got ${overlap}`);
    checkWindowCount(planned, patch, [overlap, overlap, overlap], budgets, v.source.file);
  }
  if (o.size || o.spacing) {
    v = resample({ volume: v, size: o.size, spacing: o.spacing, mode: 'trilinear', budgets });
    steps.push(`resample to ${v.shape.slice(1).join('x')} (spacing ${v.spacing.map((s) => s.toFixed(2)).join(', ')} mm)`);
  }
  if (o.window === 'none') steps.push('no intensity window');
  else if (o.window !== undefined || isCt(v)) {
    const window = o.window ?? 'lung';
    v = windowIntensity({ volume: v, window });
    steps.push(`window ${Array.isArray(window) ? `[${window.join(', ')}]` : `${String(window)} ${JSON.stringify(CT_WINDOWS[window as keyof typeof CT_WINDOWS])}`} -> [0, 1]`);
  } else {
    v = scaleIntensity({ volume: v, percentiles: [0.5, 99.5] });
    steps.push('scale percentiles [0.5, 99.5] -> [0, 1]');
  }
  if (v.shape[0] !== model.channels) {
    steps.push(`channels ${v.shape[0]} -> ${model.channels}`);
    v = matchChannels({ volume: v, channels: model.channels, budgets });
  }
  const mean = o.mean ?? model.card?.preprocessing.mean ?? (model.channels === 3 ? [0.485, 0.456, 0.406] : [0.449]);
  const std = o.std ?? model.card?.preprocessing.std ?? (model.channels === 3 ? [0.229, 0.224, 0.225] : [0.226]);
  if (mean.length !== model.channels || std.length !== model.channels) {
    throw new InvalidArgumentError(`mean/std must have ${model.channels} values (one per input channel)`);
  }
  v = normalizeChannels({ volume: v, mean, std });
  steps.push(`normalise mean [${mean.join(', ')}] std [${std.join(', ')}]`);
  return { volume: v, steps };
}

/** A volume made ready for the network: preprocessed, and padded up to the patch size for sliding windows. */
export interface PreparedInput {
  volume: Volume;
  /** What the preprocessing did, in order. */
  steps: string[];
  ms: number;
  /** The spatial size before the padding to the windows, when there was one: dense outputs are cropped back to it. */
  unpadded?: Vec3;
}

/** Make a volume ready for the network (the work before the engine, which the fence can run). */
export function prepareInput(volume: Volume, model: ModelFacts, o: InferOptions, budgets?: Partial<Budgets>): PreparedInput {
  const t0 = performance.now();
  const { volume: v, steps } = preprocess(volume, model, o, budgets);
  const patch = o.patch;
  const needsPad = patch !== undefined && !o.raw && v.shape.slice(1).some((n, i) => n < patch[i]!);
  const ready = needsPad ? padOrCrop({ volume: v, size: v.shape.slice(1).map((n, i) => Math.max(n, patch[i]!)) as Vec3, budgets }) : v;
  return { volume: ready, steps, ms: performance.now() - t0, ...(needsPad ? { unpadded: v.shape.slice(1) as Vec3 } : {}) };
}

/**
 * Run a model on a volume, within the budgets (see `preprocess` and `slidingWindow`);
 * `prepared` is the volume already made ready (by `prepareInput`).
 */
export async function infer(
  engine: InferenceEngine,
  model: LoadedModel,
  volume: Volume,
  o: InferOptions = {},
  budgets?: Partial<Budgets>,
  prepared: PreparedInput = prepareInput(volume, model, o, budgets),
): Promise<InferResult> {
  const v = prepared.volume;
  const steps = [...prepared.steps];
  const t1 = performance.now();
  const run = (data: Float32Array, shape: readonly number[]) => engine.run(model.source, { data, shape: [...shape] });
  let output: FloatTensor;
  let inputShape: number[];
  if (o.patch && !o.raw) {
    const patch = o.patch;
    const result = await slidingWindow({
      volume: v,
      windowSize: patch,
      overlap: o.overlap ?? 0.25,
      budgets,
      run: async (batch, shape) => {
        const out = await run(batch, shape);
        return first(out);
      },
    });
    output = { data: result.data, shape: [1, ...result.shape] };
    if (result.kind === 'dense' && prepared.unpadded) {
      // the windows' padding (centred) is undone, so that the labels line up with the volume
      const cropped = padOrCrop({ volume: { data: result.data, shape: result.shape }, size: prepared.unpadded, budgets });
      output = { data: cropped.data, shape: [1, ...cropped.shape] };
      steps.push(`crop the padding back to ${prepared.unpadded.join('x')}`);
    }
    inputShape = [1, ...v.shape];
    steps.push(`sliding windows ${patch.join('x')} (overlap ${o.overlap ?? 0.25}, ${result.windows} windows)`);
  } else {
    inputShape = [1, ...v.shape];
    output = first(await run(v.data, inputShape));
  }
  const t2 = performance.now();
  const bad = output.data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    throw new InferenceFailedError(`the network gave a non-finite output (${output.data[bad]} at element ${bad}): the checkpoint's weights or BatchNorm statistics are broken, or the input holds non-finite values`);
  }
  const result: InferResult = { kind: 'classification', output, input: { shape: inputShape, spacing: v.spacing }, steps, ms: { preprocess: prepared.ms, network: t2 - t1 } };
  if (output.shape.length === 5) {
    result.kind = 'segmentation';
    result.labels = labelsFromScores({ data: output.data, shape: output.shape.slice(1) });
    if (model.labels?.length === output.shape[1]) result.classNames = model.labels;
  } else if (model.card?.output.kind === 'features') {
    result.kind = 'features';
    result.features = featureVector({ data: output.data, shape: output.shape });
  } else {
    const classes = output.shape[output.shape.length - 1]!;
    // Labels apply only to the head they were made for (a new head has its own classes).
    const labels = model.labels?.length === classes ? model.labels : undefined;
    result.topK = topK({ scores: output.data.subarray(0, classes), labels, k: o.topK ?? 5 });
  }
  return result;
}

function first(out: Record<string, FloatTensor>): FloatTensor {
  const v = Object.values(out)[0];
  if (!v) throw new InvalidArgumentError('the network has no output');
  return v;
}
