/**
 * Preprocessing of volumes for a network, and sliding-window inference: pure functions on
 * float32 `[C, D, H, W]` arrays that return new arrays (geometry updated where it changes).
 * A typical CT pipeline: `resample` (to a spacing) -> `windowIntensity` -> `matchChannels`
 * -> `normalizeChannels` (the model card's mean/std) -> `padOrCrop` or `slidingWindow`; the three
 * per-voxel steps in the middle can also be one `ChannelMap` per channel (`mapChannels`), which
 * `slidingWindow` applies to each window as it cuts it.
 */
export { resample, resamplePlanes, resampleSize, type ResampleParams, type ResamplePlanesParams } from './resample.js';
export { CT_WINDOWS, windowBounds, percentileBounds, percentileBoundsOfPlanes, windowIntensity, scaleIntensity, normalizeChannels, type WindowParams, type ScaleParams, type NormalizeParams } from './intensity.js';
export { channelSources, matchChannels, type MatchChannelsParams } from './channels.js';
export { applyChannelMap, checkChannelMaps, mapChannels, type ChannelMap, type MapChannelsParams } from './channel-map.js';
export { padOrCrop, padCropOffsets, type PadOrCropParams } from './pad-crop.js';
export { stackBatch, type Batch } from './batch.js';
export { checkWindowCount, inputRingPlanes, slidingWindow, slidingWindowBytes, windowStarts, windowWeights, type PlaneSink, type SlabUse, type SlidingWindowBytesParams, type SlidingWindowParams, type SlidingWindowResult, type WindowOutput } from './sliding-window.js';
export { checkOutputVoxels, type MaybeGeometry } from './geometry.js';
