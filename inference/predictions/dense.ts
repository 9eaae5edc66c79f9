/** Dense and feature outputs: per-voxel labels from class scores, and feature vectors. */
import { InvalidArgumentError } from '../../converters/errors.js';

/** A label map `[D, H, W]`: Uint8Array for up to 256 classes, Uint16Array beyond. */
export interface LabelMap {
  readonly data: Uint8Array | Uint16Array;
  readonly shape: readonly [number, number, number];
}

/** Options of `labelsFromScores`. */
export interface LabelsFromScoresParams {
  /** Scores `[K, D, H, W]` or `[1, K, D, H, W]`. */
  data: Float32Array;
  shape: readonly number[];
  /** For one channel (K = 1, a sigmoid output or logit): the foreground threshold. @default 0 (logit 0 = probability 0.5) */
  threshold?: number;
}

/** Where `labelsInto` and `probabilitiesInto` read and write: `count` voxels, `classes` scores each. */
export interface PerVoxelParams {
  /** Scores: class `c` of voxel `i` at `at + c * stride + i`. */
  scores: Float32Array;
  at: number;
  stride: number;
  classes: number;
  count: number;
}

/**
 * Labels of `count` voxels into `out` from `outAt`: the arg-max over classes (ties to the lower
 * class), or for one channel whether the score is above `threshold` (default 0, logit 0 =
 * probability 0.5). `labelsFromScores` on a whole volume, and a segmentation finished plane by
 * plane, both use it.
 */
export function labelsInto(p: PerVoxelParams & { out: Uint8Array | Uint16Array; outAt: number; threshold?: number }): void {
  const { scores, at, stride, classes: k, count, out, outAt } = p;
  if (k === 1) {
    const t = p.threshold ?? 0;
    for (let i = 0; i < count; i++) out[outAt + i] = scores[at + i]! > t ? 1 : 0;
    return;
  }
  for (let i = 0; i < count; i++) {
    let best = 0;
    let bv = scores[at + i]!;
    for (let c = 1; c < k; c++) {
      const v = scores[at + c * stride + i]!;
      if (v > bv) {
        bv = v;
        best = c;
      }
    }
    out[outAt + i] = best;
  }
}

/**
 * Per-class probabilities of `count` voxels into `out` (class `c` of voxel `i` at
 * `outAt + c * outStride + i`): a softmax over the classes computed stably from the largest
 * score, or for one channel the sigmoid of the logit. `classProbabilities` and a segmentation
 * finished plane by plane both use it.
 */
export function probabilitiesInto(p: PerVoxelParams & { out: Float32Array; outAt: number; outStride: number }): void {
  const { scores, at, stride, classes: k, count, out, outAt, outStride } = p;
  if (k === 1) {
    for (let i = 0; i < count; i++) out[outAt + i] = 1 / (1 + Math.exp(-scores[at + i]!));
    return;
  }
  for (let i = 0; i < count; i++) {
    let max = -Infinity;
    for (let c = 0; c < k; c++) max = Math.max(max, scores[at + c * stride + i]!);
    let sum = 0;
    for (let c = 0; c < k; c++) sum += out[outAt + c * outStride + i] = Math.exp(scores[at + c * stride + i]! - max);
    for (let c = 0; c < k; c++) out[outAt + c * outStride + i] = out[outAt + c * outStride + i]! / sum;
  }
}

/** Arg-max over classes (K > 1; ties to the lower class) or a threshold (K = 1) for every voxel. */
export function labelsFromScores(params: LabelsFromScoresParams): LabelMap {
  let s = [...params.shape];
  if (s.length === 5 && s[0] === 1) s = s.slice(1);
  if (s.length !== 4 || !s.every((d) => Number.isSafeInteger(d) && d > 0)) throw new InvalidArgumentError(`'shape' must be [K, D, H, W] or [1, K, D, H, W], got [${params.shape.join(', ')}]`);
  const [k, d, h, w] = s as [number, number, number, number];
  const per = d * h * w;
  if (params.data.length !== k * per) throw new InvalidArgumentError(`'data' holds ${params.data.length} values, shape [${s.join(', ')}] needs ${k * per}`);
  const out = k <= 256 ? new Uint8Array(per) : new Uint16Array(per);
  labelsInto({ scores: params.data, at: 0, stride: per, classes: k, count: per, out, outAt: 0, threshold: params.threshold });
  return { data: out, shape: [d, h, w] };
}

/**
 * A network's feature output as a plain vector: `[K]`, `[1, K]`, or `[1, K, d, h, w]`
 * (then averaged over the spatial positions: global average pooling).
 */
export function featureVector(params: { data: Float32Array; shape: readonly number[] }): number[] {
  const s = params.shape;
  const n = s.reduce((a, b) => a * b, 1);
  if (params.data.length !== n || s.length < 1) throw new InvalidArgumentError(`'data' holds ${params.data.length} values for shape [${s.join(', ')}]`);
  if (s.length === 1) return Array.from(params.data);
  if (s[0] !== 1) throw new InvalidArgumentError(`feature output has batch size ${s[0]}; give one item`);
  const k = s[1]!;
  const per = n / k;
  const out: number[] = [];
  for (let c = 0; c < k; c++) {
    let sum = 0;
    for (let i = c * per; i < (c + 1) * per; i++) sum += params.data[i]!;
    out.push(sum / per);
  }
  return out;
}

/**
 * Per-voxel class probabilities `[K, D, H, W]` from scores `[K, D, H, W]` or `[1, K, D, H, W]`:
 * a softmax over the classes (K > 1, computed stably from the largest score), or for one channel
 * the sigmoid of the logit.
 */
export function classProbabilities(params: { data: Float32Array; shape: readonly number[] }): { data: Float32Array; shape: [number, number, number, number] } {
  let s = [...params.shape];
  if (s.length === 5 && s[0] === 1) s = s.slice(1);
  if (s.length !== 4 || !s.every((d) => Number.isSafeInteger(d) && d > 0)) throw new InvalidArgumentError(`'shape' must be [K, D, H, W] or [1, K, D, H, W], got [${params.shape.join(', ')}]`);
  const [k, d, h, w] = s as [number, number, number, number];
  const per = d * h * w;
  if (params.data.length !== k * per) throw new InvalidArgumentError(`'data' holds ${params.data.length} values, shape [${s.join(', ')}] needs ${k * per}`);
  const out = new Float32Array(k * per);
  probabilitiesInto({ scores: params.data, at: 0, stride: per, classes: k, count: per, out, outAt: 0, outStride: per });
  return { data: out, shape: [k, d, h, w] };
}
