import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import request from 'supertest';
import { gunzipSync } from 'node:zlib';
import { stagingDir } from '../../server/config.js';
import { encodeNpy } from '../../inference/volumes/index.js';
import { ctNifti, fixture, prng } from '../helpers.js';
import { finishedJob, testHub, type TestHub } from './hub.js';

let t: TestHub;
let id: string;
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const fn of cleanups) await fn();
});

const MAX_VOLUME_BYTES = 300_000;

before(async () => {
  t = await testHub({ after: (fn) => cleanups.push(fn) }, { server: { maxVolumeBytes: MAX_VOLUME_BYTES } });
  const weights = await readFile(fixture('goldens', 'resnet18', 'model.pth'));
  const up = await request(t.hub.app).post('/v1/uploads?filename=resnet18.pth').set('Content-Type', 'application/octet-stream').send(weights).expect(201);
  const job = await request(t.hub.app).post('/v1/conversions').send({ source: { upload: up.body.id }, mode: 'acs', options: { inChannels: 1 } }).expect(202);
  const done = await finishedJob(t.hub.app, job.body.id as string);
  assert.equal(done['status'], 'succeeded', JSON.stringify(done));
  id = done['checkpointId'] as string;
});

const infer = (body: Buffer | Uint8Array, query: string, accept = 'application/json') =>
  request(t.hub.app).post(`/v1/checkpoints/${id}/infer?${query}`).set('Content-Type', 'application/octet-stream').set('Accept', accept).send(Buffer.from(body));

/** Nothing of a request is left in the staging folder: neither its body nor its spooled volume. */
async function stagingIsEmpty(what: string): Promise<void> {
  const dir = join(stagingDir(t.cfg), 'volumes');
  assert.deepEqual(await readdir(dir).catch(() => []), [], `${what}: the staging folder is empty`);
}

test('infer with sliding windows on a NIfTI body: the body goes to disk and the volume is read a plane at a time, with the answer the same voxels in memory get (an .npy), and nothing left behind', async () => {
  const n = 24;
  const gz = ctNifti(n);
  const values = new Float32Array(gunzipSync(gz).buffer.slice(352));
  const npy = encodeNpy({ data: values, shape: [n, n, n] });
  const query = 'patch=16%2C16%2C16&overlap=0.5&topK=3';
  const first = await infer(gz, query);
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const spooled = first;
  await stagingIsEmpty('.nii.gz');
  const inMemory = await infer(npy, query).expect(200);
  for (const key of ['kind', 'topK', 'output', 'input', 'preprocessing'] as const) assert.deepEqual(spooled.body[key], inMemory.body[key], key);
  assert.ok(spooled.body.preprocessing.some((s: string) => s.startsWith('sliding windows 16x16x16 (overlap 0.5, 8 windows)')), spooled.body.preprocessing.join('; '));
  assert.deepEqual(spooled.body.volume, { shape: [1, n, n, n], spacing: [1, 1, 1] });
  // a preview draws the volume: a spooled one is read whole for it
  const png = await infer(gz, query, 'image/png').expect(200);
  assert.equal(png.type, 'image/png');
  assert.deepEqual([...(png.body as Buffer).subarray(1, 4)], [0x50, 0x4e, 0x47]);
  await stagingIsEmpty('preview');
});

test('infer with sliding windows: a truncated or corrupt NIfTI, non-finite voxels, an empty or too large body are refused with a problem naming them, and nothing is left behind', async () => {
  const gz = ctNifti(24);
  const query = 'patch=16%2C16%2C16';
  const truncated = await infer(gz.subarray(0, gz.byteLength - 500), query).expect(422);
  assert.match(truncated.body.detail, /volume: gzip stream (inflates to \d+ bytes, fewer than|is corrupt)/);
  const nan = Float32Array.from({ length: 24 ** 3 }, (_, i) => (i === 100 ? NaN : -1000 + (i % 900)));
  const bad = await infer(ctNifti(24, 1, nan), query).expect(422);
  assert.match(bad.body.detail, /1 of 13824 voxels are not finite numbers/);
  const empty = await infer(Buffer.alloc(0), query);
  assert.equal(empty.status, 400, JSON.stringify(empty.body));
  assert.match(empty.body.detail, /empty/);
  const r = prng(2);
  const noise = Buffer.from(Uint8Array.from({ length: MAX_VOLUME_BYTES + 1000 }, () => Math.floor(r() * 256)));
  const big = await infer(noise, query).expect(413);
  assert.match(big.body.detail, /over the limit of 300000 bytes \(server\.maxVolumeBytes\)/);
  await stagingIsEmpty('refused bodies');
});
