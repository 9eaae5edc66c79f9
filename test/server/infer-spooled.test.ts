import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import request from 'supertest';
import { gunzipSync } from 'node:zlib';
import { stagingDir } from '../../server/config.js';
import { encodeNifti, encodeNpy, readVolume } from '../../inference/volumes/index.js';
import { encodeZip } from '../../converters/formats/zip.js';
import { concatChunks } from '../../converters/io.js';
import { ctNifti, deflatedZip, fixture, prng } from '../helpers.js';
import { finishedJob, listeningHub, testHub, type TestHub } from './hub.js';

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

test('infer with sliding windows on a NIfTI body: the body goes to disk and the volume is read a plane at a time, with the answer the same voxels get as an .npy, and nothing left behind', async () => {
  const n = 24;
  const gz = ctNifti(n);
  const values = new Float32Array(gunzipSync(gz).buffer.slice(352));
  const npy = encodeNpy({ data: values, shape: [n, n, n] });
  const query = 'patch=16%2C16%2C16&overlap=0.5&topK=3';
  const first = await infer(gz, query);
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const spooled = first;
  await stagingIsEmpty('.nii.gz');
  const asNpy = await infer(npy, query).expect(200);
  for (const key of ['kind', 'topK', 'output', 'input', 'preprocessing'] as const) assert.deepEqual(spooled.body[key], asNpy.body[key], key);
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

test('infer with sliding windows on a zip of DICOM files or PNG slices, a NumPy array or a TIFF stack: read from disk at offsets, an entry or a plane at a time, with the answer a NIfTI of the same volume gets (a single DICOM file read whole); a zip bomb, a broken archive and too many files are refused by name, and nothing is left behind', async () => {
  const folder = fixture('volumes', 'ct_series');
  const entries = await Promise.all((await readdir(folder)).sort().map(async (name) => ({ name: `ct/${name}`, data: [await readFile(join(folder, name))] })));
  const zip = Buffer.from(concatChunks(encodeZip(entries)));
  const volume = await readVolume(zip, { file: 'ct.zip' });
  const nii = encodeNifti({ data: volume.data, shape: volume.shape, affine: volume.affine, gzip: true });
  const query = 'patch=16%2C16%2C16&overlap=0.5&topK=3';
  // which reads go to the fence (a volume read whole, in a worker)
  const fence = t.hub.services.fence;
  const run = fence.run.bind(fence);
  const fenced: string[] = [];
  fence.run = ((task, input, opts) => {
    fenced.push(opts?.what ?? '');
    return run(task, input, opts);
  }) as typeof fence.run;
  let fromZip: request.Response;
  let fromNpy: request.Response;
  try {
    fromZip = await infer(zip, query);
    assert.deepEqual(fenced, [], 'the zip is spooled, not read whole in the fence');
    fromNpy = await infer(encodeNpy({ data: volume.data, shape: volume.shape.slice(1) }), query).expect(200);
    assert.deepEqual(fenced, [], 'a NumPy array is spooled');
    await infer(await readFile(fixture('volumes', 'png8_slices.zip')), query).expect(200);
    assert.deepEqual(fenced, [], 'a zip of PNG slices is spooled');
    await infer(await readFile(fixture('volumes', 'stack16.tif')), query).expect(200);
    assert.deepEqual(fenced, [], 'a TIFF stack is spooled');
    await infer(await readFile(fixture('volumes', 'enhanced_ct.dcm')), query).expect(200);
    assert.deepEqual(fenced, ['volume'], 'a single DICOM file is read whole in the fence');
  } finally {
    fence.run = run;
  }
  assert.equal(fromZip.status, 200, JSON.stringify(fromZip.body));
  await stagingIsEmpty('DICOM zip');
  const fromNifti = await infer(nii, query).expect(200);
  for (const key of ['kind', 'topK', 'output'] as const) assert.deepEqual(fromZip.body[key], fromNifti.body[key], key);
  for (const key of ['kind', 'topK', 'output'] as const) assert.deepEqual(fromNpy.body[key], fromNifti.body[key], `the same voxels as an .npy: ${key}`);
  // a NIfTI keeps its spacing in float32
  for (const key of ['input', 'volume'] as const) {
    assert.deepEqual(fromZip.body[key].shape, fromNifti.body[key].shape, `${key} shape`);
    fromZip.body[key].spacing.forEach((s: number, i: number) => assert.ok(Math.abs(s - fromNifti.body[key].spacing[i]) < 1e-6, `${key} spacing`));
  }
  assert.deepEqual(fromZip.body.volume.shape, volume.shape);
  // each refusal names what it refused
  const bomb = deflatedZip(Array.from({ length: 3 }, (_, k) => ({ name: `IM${k}.dcm`, data: new Uint8Array(2 * 1024 * 1024) })));
  const refusedBomb = await infer(bomb, query).expect(413);
  assert.match(refusedBomb.body.detail, /volume: entry 'IM0\.dcm' unpacks \d+ bytes to 2097152, a ratio over the budget/);
  const cut = await infer(zip.subarray(0, zip.length - 30), query).expect(422);
  assert.match(cut.body.detail, /volume: no end-of-central-directory record/);
  const npyCut = await infer(await readFile(fixture('volumes', 'hostile', 'truncated.npy')), query).expect(422);
  assert.match(npyCut.body.detail, /^volume: data of \d+ x <f4 needs \d+ bytes after the header, the file has \d+ \(truncated\)/);
  const npyHuge = await infer(await readFile(fixture('volumes', 'hostile', 'huge_shape.npy')), query).expect(413);
  assert.match(npyHuge.body.detail, /^volume: dimensions \[1, 100000, 100000, 100000\] hold more than the limit of \d+ voxels/);
  await stagingIsEmpty('refused archives');
});

test('volumes for sliding windows are read a bounded number at once: one reading, one waiting, the next refused 503 before its body is read; then the waiting one and a new one are served', async (t) => {
  const busy = await listeningHub(t, { fence: { workers: 1, maxPending: 1 } });
  const weights = await readFile(fixture('goldens', 'resnet18', 'model.pth'));
  const up = await request(busy.hub.app).post('/v1/uploads?filename=resnet18.pth').set('Content-Type', 'application/octet-stream').send(weights).expect(201);
  const job = await request(busy.hub.app).post('/v1/conversions').send({ source: { upload: up.body.id }, mode: 'acs', options: { inChannels: 1 } }).expect(202);
  const checkpoint = (await finishedJob(busy.hub.app, job.body.id as string))['checkpointId'] as string;
  const path = `/v1/checkpoints/${checkpoint}/infer?patch=16%2C16%2C16`;
  const gz = ctNifti(24);
  // the first request sends half its body and waits: it holds the only reader
  const first = httpRequest(`${busy.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream', Accept: 'application/json', 'Content-Length': String(gz.byteLength) } });
  const firstAnswer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    first.on('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    first.on('error', reject);
  });
  first.write(gz.subarray(0, gz.byteLength >> 1));
  const queue = busy.hub.services.volumes;
  const until = async (what: string, ok: () => boolean | Promise<boolean>) => {
    for (let i = 0; i < 500 && !(await ok()); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.ok(await ok(), what);
  };
  const staging = join(stagingDir(busy.cfg), 'volumes');
  await until('the first body is being written', async () => (await readdir(staging).catch(() => [])).length === 1);
  // the second waits for it; the third finds no place
  const send = () => request(busy.url).post(path).set('Content-Type', 'application/octet-stream').set('Accept', 'application/json').send(gz);
  const second = send().then((r) => r);
  await until('the second request waits', () => queue.pending === 1);
  const refused = await request(busy.hub.app).post(path).set('Content-Type', 'application/octet-stream').set('Accept', 'application/json').send(gz);
  assert.equal(refused.status, 503, JSON.stringify(refused.body));
  assert.equal(refused.body.code, 'WORKER_UNAVAILABLE');
  assert.match(refused.body.detail, /every reader of volumes is busy and 1 volumes are already waiting; retry later/);
  first.end(gz.subarray(gz.byteLength >> 1));
  const done = await firstAnswer;
  assert.equal(done.status, 200, done.body);
  assert.equal(JSON.parse(done.body).kind, 'classification');
  assert.equal((await second).status, 200, 'the waiting one is served next');
  // the reader is free again
  assert.equal((await send()).status, 200);
});
