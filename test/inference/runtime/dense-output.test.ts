import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classProbabilities, labelsFromScores } from '../../../inference/predictions/index.js';
import { collectDense } from '../../../inference/runtime/dense-output.js';
import { prng } from '../../helpers.js';
import { assertSameBits } from '../whole-volume.js';

/** Scores `[K, D, H, W]` handed to a sink plane by plane, as `slidingWindow` does. */
async function feed(data: Float32Array, shape: [number, number, number, number], sink: (z: number, plane: Float32Array) => void | Promise<void>): Promise<void> {
  const [k, d, h, w] = shape;
  const plane = new Float32Array(k * h * w);
  for (let z = 0; z < d; z++) {
    for (let c = 0; c < k; c++) plane.set(data.subarray((c * d + z) * h * w, (c * d + z + 1) * h * w), c * h * w);
    await sink(z, plane);
    plane.fill(NaN); // the sink must not keep the plane
  }
}

for (const k of [1, 2, 5, 300]) {
  test(`plane by plane = the whole scores: labels, probabilities and scores of ${k} class${k === 1 ? '' : 'es'}`, async () => {
    const shape: [number, number, number, number] = [k, 4, 3, 5];
    const r = prng(k);
    const data = Float32Array.from({ length: k * 60 }, () => r() * 8 - 4);
    const expected = { labels: labelsFromScores({ data, shape }), probabilities: classProbabilities({ data, shape }) };
    for (const keep of ['labels', 'probabilities', 'scores'] as const) {
      const c = collectDense({ shape, keep });
      await feed(data, shape, c.sink);
      const out = c.result();
      assert.deepEqual(out.labels.shape, [4, 3, 5]);
      assert.equal(out.labels.data instanceof Uint8Array, k <= 256, 'uint8 up to 256 classes, else uint16');
      assert.deepEqual(out.labels.data, expected.labels.data, `${keep}: labels`);
      if (keep === 'probabilities') assertSameBits(out.probabilities!.data, expected.probabilities.data, 'probabilities');
      else assert.equal(out.probabilities, undefined);
      if (keep === 'scores') assertSameBits(out.scores!.data, data, 'scores');
      else assert.equal(out.scores, undefined);
      for (const t of [out.probabilities, out.scores]) if (t) assert.deepEqual(t.shape, [1, ...shape]);
    }
  });
}

test('a non-finite score stops the collection, naming the element; a missing plane is noticed', async () => {
  const shape: [number, number, number, number] = [2, 3, 2, 2];
  const data = new Float32Array(24).fill(1);
  data[(1 * 3 + 2) * 4 + 3] = Infinity;
  await assert.rejects(feed(data, shape, collectDense({ shape }).sink), { code: 'INFERENCE_FAILED', message: /non-finite output \(Infinity at element 23\)/ });
  const c = collectDense({ shape });
  await c.sink(0, new Float32Array(8));
  assert.throws(() => c.result(), { code: 'INFERENCE_FAILED', message: /finished 1 of its 3 planes/ });
  assert.throws(() => collectDense({ shape: [2, 300, 300, 300], keep: 'scores', budgets: { outputVoxels: 1e6 } }), { code: 'LIMIT_EXCEEDED', message: /keeping the scores of 2 classes: \[2, 300, 300, 300\].*budgets\.outputVoxels/ });
});
