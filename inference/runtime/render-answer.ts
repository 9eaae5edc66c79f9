/**
 * The answers to an inference that are pictures on the input's grid: a segmentation's labels
 * or its per-class probabilities as NIfTI, or a PNG preview of the volume with the labels (and
 * a legend naming the classes) or the classifier's activation map over it. One task, so that
 * the fence resamples, encodes and compresses them off the request thread.
 *
 * Whatever the preprocessing did to the grid (resampling to a size or spacing; the padding to
 * the windows is undone by `infer`), the answer goes back onto the grid the volume was read
 * on: nearest neighbour for labels, trilinear for probabilities; the NIfTI is written in the
 * input file's own voxel order with its affine and sform/qform codes (`encodeNifti`'s `like`).
 */
import type { Budgets } from '../../converters/budgets.js';
import { InvalidArgumentError } from '../../converters/errors.js';
import { defineTask } from '../../converters/fence/task.js';
import { classProbabilities, renderPreview, type LabelMap, type PreviewOverlay } from '../predictions/index.js';
import { checkOutputVoxels, resample } from '../preprocess/index.js';
import { encodeNifti, type Volume } from '../volumes/index.js';
import { classActivation, type Activation } from './cam.js';

/** Parameters of `renderAnswer`. */
export interface RenderAnswerParams {
  /** The volume as read: the answer is on its grid. Its voxels are needed only for a preview. */
  volume: Volume | Omit<Volume, 'data'>;
  /** Labels as NIfTI, probabilities as a 4D float32 NIfTI (one volume per class), or a PNG preview. */
  as: 'nifti' | 'probabilities' | 'png';
  /** A segmentation's labels, on the network's output grid. */
  labels?: LabelMap;
  /** A segmentation's per-class probabilities `[1, K, d, h, w]` on the network's output grid (for `probabilities`). */
  probabilities?: { data: Float32Array; shape: readonly number[] };
  /** Or its scores, the probabilities made from them (`classProbabilities`); ignored without values. */
  scores?: { data?: Float32Array; shape: readonly number[] };
  /** Names of the classes, for the preview's legend. */
  names?: readonly string[];
  /** A classifier's activation map (ignored when there are labels). */
  activation?: Activation;
  /** gzip the NIfTI. @default true */
  gzip?: boolean;
  /** Budgets: the probabilities on the input's grid (classes x voxels) must fit `outputVoxels`. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** Encode the answer (see the module comment). */
export async function renderAnswer(p: RenderAnswerParams): Promise<Uint8Array> {
  const { volume } = p;
  const [, d, h, w] = volume.shape;
  const gzip = p.gzip ?? true;
  if (p.as === 'probabilities') {
    const given = p.probabilities ?? (p.scores?.data ? { data: p.scores.data, shape: p.scores.shape } : undefined);
    if (!given || given.shape.length !== 5) throw new InvalidArgumentError('a probability answer needs a segmentation output [1, K, D, H, W]');
    const [, k, sd, sh, sw] = given.shape as [number, number, number, number, number];
    checkOutputVoxels([k, d, h, w], `per-class probabilities of ${k} classes on the input grid [${d}, ${h}, ${w}]`, p.budgets);
    let probs = p.probabilities ? given.data : classProbabilities(given).data;
    if (sd !== d || sh !== h || sw !== w) probs = resample({ volume: { data: probs, shape: [k, sd, sh, sw] as const }, size: [d, h, w], mode: 'trilinear', budgets: p.budgets }).data;
    return encodeNifti({ data: probs, shape: [k, d, h, w], affine: volume.affine, like: volume, gzip, description: 'acs-hub class probabilities (softmax)' });
  }
  let labels: Uint8Array | Uint16Array | Float32Array | undefined = p.labels?.data;
  if (p.labels) {
    const [ld, lh, lw] = p.labels.shape;
    // Back onto the input's own grid, which its reader bounded: no budget beyond that.
    if (ld !== d || lh !== h || lw !== w) labels = resample({ volume: { data: Float32Array.from(p.labels.data), shape: [1, ld, lh, lw] as const }, size: [d, h, w], mode: 'nearest', budgets: { outputVoxels: d * h * w } }).data;
  }
  if (p.as === 'nifti') {
    if (!labels) throw new InvalidArgumentError('a NIfTI answer needs a label volume');
    const data = labels instanceof Float32Array ? (p.labels!.data instanceof Uint8Array ? Uint8Array.from(labels) : Uint16Array.from(labels)) : labels;
    return encodeNifti({ data, shape: [1, d, h, w], affine: volume.affine, like: volume, labels: true, gzip, description: 'acs-hub segmentation' });
  }
  let overlay: PreviewOverlay | undefined;
  if (labels) overlay = { kind: 'labels', data: labels, names: p.names };
  else if (p.activation) overlay = { kind: 'heatmap', data: classActivation(p.activation.weights, p.activation.featureMap, [d, h, w]), range: [0, 1] };
  if (!('data' in volume)) throw new InvalidArgumentError("a preview draws the volume: 'volume' needs its voxels");
  return renderPreview({ volume, overlay });
}

/** `renderAnswer` as a fence task. */
export const RENDER_ANSWER = defineTask(import.meta.url, 'RENDER_ANSWER', renderAnswer);
