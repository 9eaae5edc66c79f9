/**
 * Turning network outputs into answers: ranked classes with labels, feature vectors, label
 * maps (written with `writeNifti` from `inference/volumes/`), and PNG previews.
 */
export { softmax, topK, type ClassScore, type TopKParams } from './top-k.js';
export { classProbabilities, featureVector, labelsFromScores, labelsInto, probabilitiesInto, type LabelMap, type LabelsFromScoresParams, type PerVoxelParams } from './dense.js';
export { labelColour, renderPreview, type PreviewOverlay, type RenderPreviewParams } from './render-preview.js';
