import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { mapChannels, matchChannels, normalizeChannels, percentileBounds, scaleIntensity, slidingWindow, slidingWindowBytes, windowBounds, windowIntensity, windowStarts, windowWeights, type ChannelMap, type WindowOutput } from '../../../inference/preprocess/index.js';
import { assertClose, fixture, prng } from '../../helpers.js';
import { assertSameBits, wholeVolumeBlend } from '../whole-volume.js';

function volume(shape: [number, number, number, number], seed = 3) {
  const r = prng(seed);
  return { data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r() * 10 - 5), shape };
}

const identity = async (batch: Float32Array, shape: readonly number[]): Promise<WindowOutput> => ({ data: batch.slice(), shape });

test('window starts: step floor(window * (1 - overlap)), last window flush with the edge', () => {
  assert.deepEqual(windowStarts(10, 4, 0.5), [0, 2, 4, 6]);
  assert.deepEqual(windowStarts(11, 4, 0.5), [0, 2, 4, 6, 7]);
  assert.deepEqual(windowStarts(4, 4, 0.25), [0]);
  assert.deepEqual(windowStarts(3, 4, 0.25), [0]);
  assert.deepEqual(windowStarts(9, 4, 0), [0, 4, 5]);
});

test('Gaussian weights: unscaled product of axis Gaussians (peak 1 only for odd sizes), floored at 1e-3', () => {
  const w = windowWeights([3, 5, 4], 'gaussian', 0.125);
  // centre of d and h; w has two central voxels at x = +-0.5 (sigma 0.5 voxel): exp(-0.5)
  assertClose([w[(1 * 5 + 2) * 4 + 1]!, w[(1 * 5 + 2) * 4 + 2]!], [Math.exp(-0.5), Math.exp(-0.5)], { rtol: 1e-6 });
  // one step further along h (sigma 0.625 voxels)
  assertClose([w[(1 * 5 + 3) * 4 + 1]!], [Math.exp(-0.5) * Math.exp(-0.5 * (1 / 0.625) ** 2)], { rtol: 1e-6 });
  // a corner is far below 1e-3 (its three factors multiply to ~1e-9): floored
  assert.equal(w[0], Math.fround(1e-3));
  assert.ok(w.every((x) => x >= Math.fround(1e-3)));
  assert.ok(windowWeights([2, 2, 2], 'constant', 0.125).every((x) => x === 1));
});

interface ReferenceCase {
  size: [number, number, number];
  window: [number, number, number];
  overlap: [number, number, number];
  mode: 'constant' | 'gaussian';
  sigmaScale: number;
  windows: number;
  importance: number[];
  output: number[];
}

// The fixed network of tools/sliding_window/reference.py: out[k] = in * (k + 1) + (z + 2y + 3x) / 10, in window coordinates.
const positional = async (batch: Float32Array, shape: readonly number[]): Promise<WindowOutput> => {
  const [n, , d, h, w] = shape as [number, number, number, number, number];
  const per = d * h * w;
  const out = new Float32Array(n * 2 * per);
  for (let b = 0; b < n; b++) {
    for (let k = 0; k < 2; k++) {
      for (let i = 0; i < per; i++) {
        const z = Math.floor(i / (h * w));
        const y = Math.floor(i / w) % h;
        const x = i % w;
        out[(b * 2 + k) * per + i] = batch[b * per + i]! * (k + 1) + (z + 2 * y + 3 * x) / 10;
      }
    }
  }
  return { data: out, shape: [n, 2, d, h, w] };
};

const reference = JSON.parse(readFileSync(fixture('sliding-window', 'monai-reference.json'), 'utf8')) as { cases: ReferenceCase[] };
for (const c of reference.cases) {
  test(`MONAI's sliding_window_inference, recomputed independently: [${c.size.join(', ')}] in ${c.window.join('x')} windows, overlap [${c.overlap.join(', ')}], ${c.mode}`, async () => {
    assertClose(windowWeights(c.window, c.mode, c.sigmaScale), c.importance, { rtol: 1e-6, what: 'importance map' });
    const n = c.size[0] * c.size[1] * c.size[2];
    const data = Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(0.37 * i) * 5));
    const out = await slidingWindow({ volume: { data, shape: [1, ...c.size] }, windowSize: c.window, overlap: c.overlap, blend: c.mode, sigmaScale: c.sigmaScale, batchSize: 4, run: positional });
    assert.equal(out.windows, c.windows);
    assert.deepEqual(out.shape, [2, ...c.size]);
    assertClose(out.data, c.output, { rtol: 1e-5, atol: 1e-5, what: 'blended output' });
  });
}

for (const blend of ['constant', 'gaussian'] as const) {
  for (const batchSize of [1, 3]) {
    test(`an identity network reconstructs the volume exactly (${blend}, batch ${batchSize})`, async () => {
      const v = volume([2, 9, 7, 11]);
      let calls = 0;
      const out = await slidingWindow({
        volume: v,
        windowSize: [4, 4, 5],
        overlap: 0.5,
        blend,
        batchSize,
        run: async (b, s) => {
          calls++;
          assert.ok(s[0] <= batchSize);
          assert.deepEqual(s.slice(1), [2, 4, 4, 5]);
          return identity(b, s);
        },
      });
      assert.equal(out.kind, 'dense');
      assert.deepEqual(out.shape, [2, 9, 7, 11]);
      assert.equal(out.windows, 4 * 3 * 4);
      assert.equal(calls, Math.ceil(out.windows / batchSize));
      assertClose(out.data, v.data, { atol: 1e-5, rtol: 1e-6, what: 'reconstruction' });
    });
  }
}

test('a volume smaller than the window is padded, run once and cropped back', async () => {
  const v = volume([1, 3, 8, 8]);
  const out = await slidingWindow({ volume: v, windowSize: [6, 8, 8], run: async (b, s) => {
    assert.deepEqual(s, [1, 1, 6, 8, 8]);
    assert.equal(b[0], 0, 'padded with padValue 0');
    return identity(b, s);
  } });
  assert.equal(out.windows, 1);
  assertClose(out.data, v.data, { atol: 0 });
});

test('dense outputs with other channel counts: a known function of the input', async () => {
  const v = volume([1, 10, 6, 6]);
  const out = await slidingWindow({
    volume: v,
    windowSize: [4, 6, 6],
    overlap: 0.25,
    run: async (b, s) => {
      const per = s[2] * s[3] * s[4];
      const data = new Float32Array(s[0] * 2 * per);
      for (let n = 0; n < s[0]; n++) for (let i = 0; i < per; i++) {
        data[(n * 2) * per + i] = 2 * b[n * per + i]! + 1;
        data[(n * 2 + 1) * per + i] = -b[n * per + i]!;
      }
      return { data, shape: [s[0], 2, s[2], s[3], s[4]] };
    },
  });
  assert.deepEqual(out.shape, [2, 10, 6, 6]);
  assertClose(out.data.subarray(0, 360), v.data.map((x) => 2 * x + 1), { atol: 1e-5 });
  assertClose(out.data.subarray(360), v.data.map((x) => -x), { atol: 1e-5 });
});

test('vector outputs (classification) are averaged over the windows', async () => {
  const v = volume([1, 8, 4, 4]);
  const seen: number[][] = [];
  const out = await slidingWindow({
    volume: v,
    windowSize: [4, 4, 4],
    overlap: 0.5,
    batchSize: 2,
    run: async (b, s) => {
      const per = 64;
      const data = new Float32Array(s[0] * 3);
      for (let n = 0; n < s[0]; n++) {
        let sum = 0;
        for (let i = 0; i < per; i++) sum += b[n * per + i]!;
        data.set([sum / per, 1, n], n * 3);
        seen.push([sum / per, 1, n]);
      }
      return { data, shape: [s[0], 3] };
    },
  });
  assert.equal(out.kind, 'vector');
  assert.equal(out.windows, 3);
  const mean = [0, 1, 2].map((j) => seen.reduce((a, r) => a + r[j]!, 0) / 3);
  assertClose(out.data, mean, { atol: 1e-6 });
});

test('refuses an output shape it cannot place, and stops when aborted', async () => {
  const v = volume([1, 4, 4, 4]);
  await assert.rejects(slidingWindow({ volume: v, windowSize: [4, 4, 4], run: async (_b, s) => ({ data: new Float32Array(s[0] * 8), shape: [s[0], 1, 2, 2, 2] }) }), { code: 'UNSUPPORTED' });
  await assert.rejects(slidingWindow({ volume: v, windowSize: [4, 4, 4], run: async () => ({ data: new Float32Array(3), shape: [1, 4] }) }), { code: 'INVALID_ARGUMENT' });
  await assert.rejects(slidingWindow({ volume: v, windowSize: [4, 4, 4], overlap: 1, run: identity }), { code: 'INVALID_ARGUMENT' });
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(slidingWindow({ volume: v, windowSize: [2, 2, 2], signal: ac.signal, run: identity }), { name: 'AbortError' });
});

/**
 * A network with random dense outputs (3 classes) that also depend on the window's input (its
 * voxel, and the mean of the whole window, padding included): the values follow one seeded
 * sequence window after window, so two runs over the same windows in the same order get the
 * same outputs whatever their batch sizes.
 */
function randomNetwork(seed: number, classes = 3) {
  const r = prng(seed);
  return async (batch: Float32Array, shape: readonly number[]): Promise<WindowOutput> => {
    const [n, c, d, h, w] = shape as [number, number, number, number, number];
    const per = d * h * w;
    const data = new Float32Array(n * classes * per);
    for (let b = 0; b < n; b++) {
      let mean = 0;
      for (let i = 0; i < c * per; i++) mean += batch[b * c * per + i]! / (c * per);
      for (let k = 0; k < classes; k++) for (let i = 0; i < per; i++) data[(b * classes + k) * per + i] = r() * 10 - 5 + batch[b * c * per + i]! * (k - 1) + mean;
    }
    return { data, shape: [n, classes, d, h, w] };
  };
}

const SLAB_CASES: { size: [number, number, number, number]; window: [number, number, number]; overlap: [number, number, number]; what: string; padValue?: number }[] = [
  { size: [2, 9, 13, 11], window: [4, 6, 5], overlap: [0.5, 0.5, 0.5], what: 'odd sizes, overlap 0.5' },
  { size: [1, 17, 7, 12], window: [5, 5, 5], overlap: [0.6, 0.3, 0], what: 'per-axis overlaps 0.6, 0.3, 0' },
  { size: [1, 23, 9, 8], window: [4, 9, 8], overlap: [0, 0, 0], what: 'overlap 0, one window across H and W' },
  { size: [1, 31, 11, 10], window: [6, 4, 4], overlap: [0.75, 0.25, 0.25], what: 'overlap 0.75 along D' },
  { size: [2, 3, 13, 8], window: [4, 6, 5], overlap: [0.25, 0.5, 0.25], what: 'window deeper than the volume' },
  { size: [1, 5, 9, 11], window: [7, 15, 14], overlap: [0.25, 0.25, 0.25], what: 'window larger than the volume on every axis' },
  { size: [1, 12, 3, 20], window: [5, 6, 7], overlap: [0.5, 0.5, 0.5], what: 'window wider than H only' },
  { size: [2, 14, 9, 5], window: [4, 3, 8], overlap: [0.5, 0.25, 0.25], what: 'window wider than W only, padded with -1.5', padValue: -1.5 },
  { size: [1, 9, 6, 7], window: [4, 4, 8], overlap: [0.5, 0.5, 0.5], what: 'one voxel of padding along W, with 3', padValue: 3 },
  { size: [1, 4, 4, 4], window: [9, 9, 9], overlap: [0.25, 0.25, 0.25], what: 'window more than twice the volume, padded with 2', padValue: 2 },
];

for (const c of SLAB_CASES) {
  for (const blend of ['constant', 'gaussian'] as const) {
    test(`slab by slab = whole-volume blending, bit for bit: ${c.what}, ${blend}`, async () => {
      const v = volume(c.size, 11);
      for (const batchSize of [1, 3, 7]) {
        const expected = await wholeVolumeBlend({ volume: v, window: c.window, overlap: c.overlap, blend, batchSize, padValue: c.padValue, run: randomNetwork(5) });
        const out = await slidingWindow({ volume: v, windowSize: c.window, overlap: c.overlap, blend, batchSize, padValue: c.padValue, run: randomNetwork(5) });
        assert.equal(out.kind, 'dense');
        assert.deepEqual(out.shape, expected.shape);
        assert.equal(out.windows, expected.windows);
        assertSameBits(out.data, expected.data, `batch ${batchSize}`);
        if (out.kind !== 'dense') return;
        assert.equal(out.slabPlanes, c.window[0], 'the ring holds the window depth');
        assert.ok(out.peakPlanes <= out.slabPlanes, `peak ${out.peakPlanes} planes`);
      }
    });
  }
}

test('a sink takes each plane once, in order, as soon as no later window touches it; the ring never holds more than the window depth', async () => {
  const size: [number, number, number, number] = [1, 29, 10, 9];
  const window: [number, number, number] = [6, 5, 5];
  const overlap: [number, number, number] = [0.5, 0.25, 0.25];
  const v = volume(size, 4);
  const expected = await wholeVolumeBlend({ volume: v, window, overlap, blend: 'gaussian', run: randomNetwork(9) });
  // the windows in the order they run: D slowest
  const zs = windowStarts(29, 6, 0.5).flatMap((z) => Array<number>(windowStarts(10, 5, 0.25).length * windowStarts(9, 5, 0.25).length).fill(z));
  for (const batchSize of [1, 4, 9]) {
    const net = randomNetwork(9);
    const delivered: number[] = [];
    const got = new Float32Array(expected.data.length);
    let ran = 0;
    let widest = 0;
    const out = await slidingWindow({
      volume: v,
      windowSize: window,
      overlap,
      batchSize,
      run: async (batch, shape) => {
        if (ran > 0) {
          // every window before this batch has been blended in: planes before the last one's start are finished
          const last = zs[ran - 1]!;
          const end = Math.max(...zs.slice(0, ran)) + window[0];
          assert.ok(delivered.length >= last, `batch at window ${ran}: ${delivered.length} planes finished, window ${ran - 1} starts at ${last}`);
          widest = Math.max(widest, end - delivered.length);
          assert.ok(end - delivered.length <= window[0], `${end - delivered.length} planes pending`);
        }
        ran += shape[0];
        return net(batch, shape);
      },
      sink: (shape) => {
        assert.deepEqual(shape, [3, 29, 10, 9]);
        return (z, plane) => {
          assert.equal(z, delivered.length, 'planes in order');
          assert.equal(plane.length, 3 * 10 * 9);
          delivered.push(z);
          for (let k = 0; k < 3; k++) got.set(plane.subarray(k * 90, (k + 1) * 90), (k * 29 + z) * 90);
        };
      },
    });
    assert.equal(out.kind, 'planes');
    assert.equal(delivered.length, 29);
    assert.ok(widest > 0 && widest <= window[0]);
    if (out.kind === 'planes') assert.ok(out.peakPlanes <= window[0] && out.slabPlanes === window[0]);
    assertSameBits(got, expected.data, `planes handed over, batch ${batchSize}`);
  }
});

test('windows cut through channel maps (intensity, replication, normalisation) = the same maps applied to the whole volume first', async () => {
  const r = prng(21);
  const ct = { data: Float32Array.from({ length: 11 * 7 * 13 }, () => Math.round(r() * 2400 - 1200)), shape: [1, 11, 7, 13] as [number, number, number, number] };
  const maps: ChannelMap[] = [
    { source: 0, intensity: { lo: -1000, hi: 400, range: [0, 1] }, mean: 0.485, std: 0.229 },
    { source: 0, intensity: { lo: -160, hi: 240, range: [0, 1] }, mean: 0.456, std: 0.224 },
    { source: 0, mean: 12, std: 300 },
  ];
  const whole = mapChannels({ volume: ct, channels: maps });
  for (const [window, padValue] of [[[4, 5, 6], 0], [[12, 9, 6], -0.5]] as const) {
    const seen: Float32Array[] = [];
    const record = (n: ReturnType<typeof randomNetwork>) => async (batch: Float32Array, shape: readonly [number, number, number, number, number]) => {
      seen.push(batch.slice());
      return n(batch, shape);
    };
    const lazy = await slidingWindow({ volume: ct, channels: maps, windowSize: window, overlap: 0.5, padValue, batchSize: 2, run: record(randomNetwork(3)) });
    const cutFromWhole: Float32Array[] = [];
    const net = randomNetwork(3);
    const eager = await slidingWindow({ volume: whole, windowSize: window, overlap: 0.5, padValue, batchSize: 2, run: async (b, s) => (cutFromWhole.push(b.slice()), net(b, s)) });
    assert.equal(seen.length, cutFromWhole.length);
    seen.forEach((b, i) => assertSameBits(b, cutFromWhole[i]!, `window batch ${i} (${window.join('x')})`));
    assertSameBits(lazy.data, eager.data, `blended (${window.join('x')})`);
  }
  await assert.rejects(slidingWindow({ volume: ct, channels: [{ source: 1, mean: 0, std: 1 }], windowSize: [4, 4, 4], run: identity }), { code: 'INVALID_ARGUMENT', message: /channels\[0\]\.source/ });
  await assert.rejects(slidingWindow({ volume: ct, channels: [{ source: 0, mean: 0, std: 0 }], windowSize: [4, 4, 4], run: identity }), { code: 'INVALID_ARGUMENT', message: /'std' must be positive/ });
});

test('mapChannels = windowIntensity or scaleIntensity, then matchChannels, then normalizeChannels, bit for bit', () => {
  const r = prng(8);
  const ct = { data: Float32Array.from({ length: 6 * 5 * 7 }, () => Math.round(r() * 2400 - 1200) + r()), shape: [1, 6, 5, 7] as [number, number, number, number] };
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const [lo, hi] = windowBounds('abdomen');
  const eager = normalizeChannels({ volume: matchChannels({ volume: windowIntensity({ volume: ct, window: 'abdomen' }), channels: 3 }), mean, std });
  const mapped = mapChannels({ volume: ct, channels: [0, 1, 2].map((i) => ({ source: 0, intensity: { lo, hi, range: [0, 1] as const }, mean: mean[i]!, std: std[i]! })) });
  assertSameBits(mapped.data, eager.data, 'CT window');
  const mr = { data: Float32Array.from({ length: 2 * 4 * 5 * 6 }, () => r() * 900), shape: [2, 4, 5, 6] as [number, number, number, number] };
  const scaled = normalizeChannels({ volume: scaleIntensity({ volume: mr, percentiles: [0.5, 99.5] }), mean: [0.4, 0.5], std: [0.2, 0.3] });
  const b = percentileBounds(mr, [0.5, 99.5]);
  const mapped2 = mapChannels({ volume: mr, channels: [0, 1].map((i) => ({ source: i, intensity: { lo: b.lo[i]!, hi: b.hi[i]!, range: [0, 1] as const }, mean: [0.4, 0.5][i]!, std: [0.2, 0.3][i]! })) });
  assertSameBits(mapped2.data, scaled.data, 'percentile scaling');
});

test('slidingWindowBytes: the ring, the cropped plane and one batch in and out, twice', () => {
  const b = slidingWindowBytes({ grid: [300, 512, 512], window: [96, 96, 96], channels: 1, classes: 21, batchSize: 1 });
  assert.equal(b.slab, 4 * (22 * 96 * 512 * 512 + 96 ** 3));
  assert.equal(b.batch, 2 * 4 * (96 ** 3 + 21 * 96 ** 3));
  const padded = slidingWindowBytes({ grid: [300, 80, 512], window: [96, 96, 96], channels: 1, classes: 2 });
  assert.equal(padded.slab, 4 * (3 * 96 * 96 * 512 + 2 * 80 * 512 + 96 ** 3), 'over the padded grid, with the plane cropped back');
  assert.equal(slidingWindowBytes({ grid: [300, 512, 512], window: [96, 96, 96], channels: 3, classes: 2048, kind: 'vector', batchSize: 2 }).batch, 2 * 4 * 2 * (3 * 96 ** 3 + 2048));
});

test('one batch buffer for every full batch, dense or vector: no per-window buffers beyond a batch', async () => {
  const v = volume([1, 12, 9, 10], 6);
  for (const vector of [false, true]) {
    const buffers: ArrayBufferLike[] = [];
    const out = await slidingWindow({
      volume: v,
      windowSize: [4, 4, 4],
      overlap: 0.5,
      batchSize: 4,
      run: async (b, s) => {
        buffers.push(b.buffer);
        return vector ? { data: new Float32Array(s[0] * 2), shape: [s[0], 2] } : identity(b, s);
      },
    });
    assert.equal(out.windows, 5 * 4 * 4);
    assert.equal(buffers.length, 20);
    assert.equal(new Set(buffers).size, 1, `${vector ? 'vector' : 'dense'}: the same buffer for all 20 batches`);
  }
});
