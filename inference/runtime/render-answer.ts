/**
 * The answers to an inference that are pictures on the input's grid: a segmentation's labels
 * as gzipped NIfTI, or a PNG preview of the volume with the labels or the classifier's
 * activation map over it. One task, so that the fence resamples, encodes and compresses them
 * off the request thread.
 */
import { InvalidArgumentError } from '../../converters/errors.js';
import { defineTask } from '../../converters/fence/task.js';
import { renderPreview, type LabelMap, type PreviewOverlay } from '../predictions/index.js';
import { resample } from '../preprocess/index.js';
import { encodeNifti, type Volume } from '../volumes/index.js';
import { classActivation, type Activation } from './cam.js';

/** Parameters of `renderAnswer`. */
export interface RenderAnswerParams {
  /** The volume as read: the answer is on its grid. */
  volume: Volume;
  as: 'nifti' | 'png';
  /** A segmentation's labels, on the network's output grid. */
  labels?: LabelMap;
  /** A classifier's activation map (ignored when there are labels). */
  activation?: Activation;
}

/** Encode the answer (see the module comment). */
export async function renderAnswer(p: RenderAnswerParams): Promise<Uint8Array> {
  const { volume } = p;
  const [, d, h, w] = volume.shape;
  let labels: Float32Array | undefined;
  if (p.labels) {
    const [ld, lh, lw] = p.labels.shape;
    labels = Float32Array.from(p.labels.data);
    // Back onto the input's own grid, which its reader bounded: no budget beyond that.
    if (ld !== d || lh !== h || lw !== w) labels = resample({ volume: { data: labels, shape: [1, ld, lh, lw] as const }, size: [d, h, w], mode: 'nearest', budgets: { outputVoxels: d * h * w } }).data;
  }
  if (p.as === 'nifti') {
    if (!labels) throw new InvalidArgumentError('a NIfTI answer needs a label volume');
    return encodeNifti({ data: labels, shape: [1, d, h, w], affine: volume.affine, like: volume, labels: true, gzip: true, description: 'acs-hub segmentation' });
  }
  let overlay: PreviewOverlay | undefined;
  if (labels) overlay = { kind: 'labels', data: labels };
  else if (p.activation) overlay = { kind: 'heatmap', data: classActivation(p.activation.weights, p.activation.featureMap, [d, h, w]), range: [0, 1] };
  return renderPreview({ volume, overlay });
}

/** `renderAnswer` as a fence task. */
export const RENDER_ANSWER = defineTask(import.meta.url, 'RENDER_ANSWER', renderAnswer);
