/** Several volumes of one shape into one `[N, C, D, H, W]` batch. */
import { InvalidArgumentError } from '../../converters/errors.js';
import type { VolumeArray } from '../volumes/volume.js';
import { checkVolume } from './geometry.js';

/** A batch of volumes: float32, C order. */
export interface Batch {
  readonly data: Float32Array;
  readonly shape: readonly [number, number, number, number, number];
}

/** Stack volumes of the same `[C, D, H, W]` along a new leading axis. */
export function stackBatch(params: { volumes: readonly VolumeArray[] }): Batch {
  const { volumes } = params;
  if (volumes.length === 0) throw new InvalidArgumentError("'volumes' is empty");
  const s = volumes[0]!.shape;
  volumes.forEach((v, i) => {
    checkVolume(v, `volumes[${i}]`);
    if (v.shape.some((d, a) => d !== s[a])) throw new InvalidArgumentError(`'volumes[${i}]' has shape [${v.shape.join(', ')}], 'volumes[0]' has [${s.join(', ')}]; resample or pad them to one shape first`);
  });
  const per = s[0] * s[1] * s[2] * s[3];
  const data = new Float32Array(volumes.length * per);
  volumes.forEach((v, i) => data.set(v.data, i * per));
  return { data, shape: [volumes.length, s[0], s[1], s[2], s[3]] };
}
