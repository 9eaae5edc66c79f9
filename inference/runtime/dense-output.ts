/**
 * A segmentation's output taken plane by plane as sliding windows finish it (a `PlaneSink`), so
 * that its scores are never assembled: the labels (`labelsInto`: arg-max, or a threshold for one
 * channel), and only when asked the per-class probabilities (`probabilitiesInto`: softmax, or a
 * sigmoid) or the scores themselves, `K x D x H x W` float32 held against
 * `budgets.outputVoxels` before they are allocated. A score that is not finite stops it.
 */
import type { Budgets } from '../../converters/budgets.js';
import { labelsInto, probabilitiesInto, type LabelMap } from '../predictions/index.js';
import { checkOutputVoxels, type PlaneSink } from '../preprocess/index.js';
import type { FloatTensor } from './engine.js';
import { InferenceFailedError } from './errors.js';

/** What a segmentation keeps beside its labels. */
export type DenseKeep = 'labels' | 'probabilities' | 'scores';

/** What `collectDense` gathered. */
export interface DenseOutput {
  labels: LabelMap;
  /** `[1, K, D, H, W]`, when kept. */
  probabilities?: FloatTensor;
  /** `[1, K, D, H, W]`, when kept. */
  scores?: FloatTensor;
}

/** Parameters of `collectDense`. */
export interface CollectDenseParams {
  /** `[K, D, H, W]`, as `slidingWindow` tells its sink. */
  shape: readonly [number, number, number, number];
  /** @default 'labels' */
  keep?: DenseKeep;
  /** Budgets: kept probabilities or scores must fit `outputVoxels`. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** The sink that takes the planes, and the output once all have come. */
export function collectDense(p: CollectDenseParams): { sink: PlaneSink; result: () => DenseOutput } {
  const [k, d, h, w] = p.shape;
  const keep = p.keep ?? 'labels';
  const hw = h * w;
  const kept = keep === 'labels' ? undefined : (checkOutputVoxels([k, d, h, w], `keeping the ${keep} of ${k} classes`, p.budgets), new Float32Array(k * d * hw));
  const labels = k <= 256 ? new Uint8Array(d * hw) : new Uint16Array(d * hw);
  let planes = 0;
  const sink: PlaneSink = (z, plane) => {
    for (let i = 0; i < plane.length; i++) {
      if (!Number.isFinite(plane[i]!)) {
        const c = Math.floor(i / hw);
        throw new InferenceFailedError(`the network gave a non-finite output (${plane[i]} at element ${(c * d + z) * hw + (i % hw)}): the checkpoint's weights or BatchNorm statistics are broken, or the input holds non-finite values`);
      }
    }
    labelsInto({ scores: plane, at: 0, stride: hw, classes: k, count: hw, out: labels, outAt: z * hw });
    if (keep === 'probabilities') probabilitiesInto({ scores: plane, at: 0, stride: hw, classes: k, count: hw, out: kept!, outAt: z * hw, outStride: d * hw });
    else if (keep === 'scores') for (let c = 0; c < k; c++) kept!.set(plane.subarray(c * hw, (c + 1) * hw), (c * d + z) * hw);
    planes++;
  };
  const result = (): DenseOutput => {
    if (planes !== d) throw new InferenceFailedError(`the segmentation finished ${planes} of its ${d} planes`);
    const tensor = kept && { data: kept, shape: [1, k, d, h, w] };
    return { labels: { data: labels, shape: [d, h, w] }, ...(keep === 'probabilities' ? { probabilities: tensor } : keep === 'scores' ? { scores: tensor } : {}) };
  };
  return { sink, result };
}
