/**
 * Sliding-window blending into a whole-volume accumulator, written out plainly (pad the volume,
 * cut every window from the padded copy, weigh, add into `K x D x H x W` sums and a `D x H x W`
 * weight map, divide, crop): the reference the plane-by-plane `slidingWindow` must match bit for
 * bit. It shares only the window placement and the weights with it (`windowStarts`,
 * `windowWeights`, both checked against MONAI's definition in `tools/sliding_window/`).
 */
import assert from 'node:assert/strict';
import { padOrCrop, windowStarts, windowWeights, type WindowOutput } from '../../inference/preprocess/index.js';
import type { VolumeArray } from '../../inference/volumes/index.js';

/** Parameters of `wholeVolumeBlend`. */
export interface WholeVolumeParams {
  volume: VolumeArray;
  window: readonly [number, number, number];
  overlap: readonly [number, number, number];
  blend: 'constant' | 'gaussian';
  sigmaScale?: number;
  batchSize?: number;
  padValue?: number;
  run: (batch: Float32Array, shape: readonly [number, number, number, number, number]) => Promise<WindowOutput>;
}

/** The blended dense output `[K, D, H, W]` on the volume's grid. */
export async function wholeVolumeBlend(p: WholeVolumeParams): Promise<{ data: Float32Array; shape: [number, number, number, number]; windows: number }> {
  const [c, d0, h0, w0] = p.volume.shape;
  const win = p.window;
  const size = [Math.max(d0, win[0]), Math.max(h0, win[1]), Math.max(w0, win[2])] as const;
  const vol = padOrCrop({ volume: p.volume, size, value: p.padValue ?? 0 });
  const [, d, h, w] = vol.shape;
  const starts: [number, number, number][] = [];
  for (const z of windowStarts(d, win[0], p.overlap[0])) for (const y of windowStarts(h, win[1], p.overlap[1])) for (const x of windowStarts(w, win[2], p.overlap[2])) starts.push([z, y, x]);
  const weights = windowWeights([...win], p.blend, p.sigmaScale ?? 0.125);
  const per = win[0] * win[1] * win[2];
  const batchSize = p.batchSize ?? 1;
  let acc: Float32Array | undefined;
  const wsum = new Float32Array(d * h * w);
  let k = 0;
  for (let b = 0; b < starts.length; b += batchSize) {
    const group = starts.slice(b, b + batchSize);
    const batch = new Float32Array(group.length * c * per);
    group.forEach(([z0, y0, x0], n) => {
      for (let ci = 0; ci < c; ci++) for (let z = 0; z < win[0]; z++) for (let y = 0; y < win[1]; y++) for (let x = 0; x < win[2]; x++) {
        batch[(((n * c + ci) * win[0] + z) * win[1] + y) * win[2] + x] = vol.data[((ci * d + z0 + z) * h + y0 + y) * w + x0 + x]!;
      }
    });
    const out = await p.run(batch, [group.length, c, ...win]);
    k = out.shape[1]!;
    acc ??= new Float32Array(k * d * h * w);
    group.forEach(([z0, y0, x0], n) => {
      for (let j = 0; j < k; j++) for (let z = 0; z < win[0]; z++) for (let y = 0; y < win[1]; y++) for (let x = 0; x < win[2]; x++) {
        const wi = (z * win[1] + y) * win[2] + x;
        const q = ((z0 + z) * h + y0 + y) * w + x0 + x;
        acc![j * d * h * w + q]! += out.data[(n * k + j) * per + wi]! * weights[wi]!;
        if (j === 0) wsum[q]! += weights[wi]!;
      }
    });
  }
  for (let j = 0; j < k; j++) for (let q = 0; q < d * h * w; q++) acc![j * d * h * w + q] = acc![j * d * h * w + q]! / wsum[q]!;
  const cropped = padOrCrop({ volume: { data: acc!, shape: [k, d, h, w] }, size: [d0, h0, w0] });
  return { data: cropped.data, shape: [k, d0, h0, w0], windows: starts.length };
}

/** Assert two float32 arrays hold the same bits, naming the first element that differs. */
export function assertSameBits(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const b = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]} (bit for bit)`);
  }
}
