/** Channel count to what the network's stem expects. */
import type { Budgets } from '../../converters/budgets.js';
import { InvalidArgumentError } from '../../converters/errors.js';
import type { VolumeArray } from '../volumes/volume.js';
import { checkOutputVoxels, checkVolume } from './geometry.js';

/** Options of `matchChannels`. */
export interface MatchChannelsParams<V extends VolumeArray> {
  volume: V;
  /**
   * Channels the network takes: 3 for a stem kept from an RGB-pretrained 2D model (a
   * one-channel volume is replicated), 1 for a stem adapted to one channel (kept as is).
   */
  channels: number;
  /** How to reduce several channels to one: their mean, or refuse. @default 'refuse' */
  reduce?: 'mean' | 'refuse';
  /** Budgets; a replicated output must fit `outputVoxels`. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/**
 * The source channel of each of `channels` channels made from `from`: the same ones, or one
 * replicated; any other count is refused (`InvalidArgumentError`).
 */
export function channelSources(from: number, channels: number): number[] {
  if (from !== channels && from !== 1) throw new InvalidArgumentError(`the volume has ${from} channels and the network takes ${channels}; only 1 -> N replication is done`);
  return Array.from({ length: channels }, (_, i) => (from === 1 ? 0 : i));
}

/** Replicate one channel to `channels`, keep a matching count, or (on request) average down to one. */
export function matchChannels<V extends VolumeArray>(params: MatchChannelsParams<V>): V {
  const { volume, channels } = params;
  checkVolume(volume);
  if (!Number.isSafeInteger(channels) || channels < 1) throw new InvalidArgumentError(`'channels' must be a positive integer, got ${channels}`);
  const [c, d, h, w] = volume.shape;
  if (c === channels) return volume;
  const per = d * h * w;
  if (c === 1) {
    checkOutputVoxels([channels, d, h, w], `replicating one channel to ${channels}`, params.budgets);
    const out = new Float32Array(channels * per);
    for (let k = 0; k < channels; k++) out.set(volume.data, k * per);
    return { ...volume, data: out, shape: [channels, d, h, w] };
  }
  if (channels === 1 && params.reduce === 'mean') {
    const out = new Float32Array(per);
    for (let k = 0; k < c; k++) for (let i = 0; i < per; i++) out[i]! += volume.data[k * per + i]! / c;
    return { ...volume, data: out, shape: [1, d, h, w] };
  }
  throw new InvalidArgumentError(`the volume has ${c} channels and the network takes ${channels}; only 1 -> N replication${channels === 1 ? " or reduce: 'mean'" : ''} is done`);
}
