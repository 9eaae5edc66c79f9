import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { slidingWindow, windowStarts, windowWeights, type WindowOutput } from '../../../inference/preprocess/index.js';
import { assertClose, fixture, prng } from '../../helpers.js';

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
