import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import request from 'supertest';
import { encodeOnnx } from '../../../converters/formats/onnx.js';
import { A, graphToModel, type Graph } from '../../../converters/graph/ir.js';
import { decodeNifti, encodeNifti, parseNiftiHeader } from '../../../inference/volumes/index.js';
import { niftiAffine } from '../../../inference/volumes/read-nifti.js';
import { assertClose, cli, fixture, tempDir } from '../../helpers.js';
import { finishedJob, testHub } from '../../server/hub.js';

/** A 3-class network: 1x1x1 convolution, scores [0, 10x, 40x - 12] (air, soft tissue, bone after window and mean 0.5). */
function threeClassModel(): Uint8Array {
  const g: Graph = {
    name: 'seg3',
    opset: 17,
    metadata: {},
    inputs: [{ name: 'input', dtype: 'F32', shape: ['N', 1, 'D', 'H', 'W'] }],
    outputs: [{ name: 'scores', dtype: 'F32', shape: ['N', 3, 'D', 'H', 'W'] }],
    initializers: new Map([
      ['w', { dtype: 'F32', shape: [3, 1, 1, 1, 1], data: Float32Array.from([0, 10, 40]) }],
      ['b', { dtype: 'F32', shape: [3], data: Float32Array.from([0, 0, -12]) }],
    ]),
    nodes: [{ name: 'conv', op: 'Conv', domain: '', inputs: ['input', 'w', 'b'], outputs: ['scores'], attrs: { kernel_shape: A.ints([1, 1, 1]) } }],
  };
  return encodeOnnx(graphToModel(g));
}

const DIMS = [12, 10, 8] as const; // file order i, j, k

/** HU of file voxel (i, j, k): air, a soft-tissue ellipsoid, a bone core. */
function hu(i: number, j: number, k: number): number {
  const r = ((i - 5.5) / 5) ** 2 + ((j - 4.5) / 4) ** 2 + ((k - 3.5) / 3.2) ** 2;
  return r < 0.25 ? 700 : r < 1 ? 50 : -1000;
}

/**
 * An oblique, anisotropic, left-handed NIfTI (sform code 2: aligned to another scan): the
 * grid is rotated 20 degrees about z and tilted, i runs right-to-left, voxels 0.8 x 1.3 x 2.5 mm.
 */
function obliqueNifti(): { bytes: Uint8Array; expected: Uint8Array } {
  const [ni, nj, nk] = DIMS;
  const c = Math.cos(0.35), s = Math.sin(0.35);
  const affine = [-0.8 * c, -1.3 * s, 0.2, 10, -0.8 * s, 1.3 * c, 0.1, -20, 0.05, 0.1, 2.5, 30, 0, 0, 0, 1];
  const data = new Int16Array(ni * nj * nk);
  const expected = new Uint8Array(ni * nj * nk);
  for (let k = 0; k < nk; k++) for (let j = 0; j < nj; j++) for (let i = 0; i < ni; i++) {
    const v = hu(i, j, k);
    data[(k * nj + j) * ni + i] = v;
    expected[(k * nj + j) * ni + i] = v === 700 ? 2 : v === 50 ? 1 : 0;
  }
  // encodeNifti's canonical layout [D, H, W] = file [k, j, i] with the affine given: bytes in file order
  const bytes = encodeNifti({ data, shape: [nk, nj, ni], affine, gzip: true, description: 'oblique phantom' });
  const raw = gunzipSync(bytes);
  new DataView(raw.buffer, raw.byteOffset).setInt16(254, 2, true); // sform_code 2
  return { bytes: new Uint8Array(raw), expected };
}

/** The header of a written NIfTI, its affine, and its voxels (file order). */
async function readBack(bytes: Uint8Array) {
  const raw = bytes[0] === 0x1f ? new Uint8Array(gunzipSync(bytes)) : bytes;
  const h = parseNiftiHeader(raw, 'answer');
  const volume = await decodeNifti(raw, { file: 'answer' });
  return { h, affine: niftiAffine(h, h.dim.slice(1, 1 + h.dim[0]!)).affine, raw, volume };
}

function sameGeometry(answer: Awaited<ReturnType<typeof readBack>>, input: Awaited<ReturnType<typeof readBack>>, what: string): void {
  assert.deepEqual(answer.h.dim.slice(1, 4), [...DIMS], `${what}: dims in the input file's own order`);
  assert.equal(answer.h.sformCode, 2, `${what}: the input's sform code`);
  assertClose(answer.affine, input.affine, { rtol: 1e-6, atol: 1e-5, what: `${what}: affine` });
}

test('cli: labels, probabilities and a preview on an oblique anisotropic input, read back in its own geometry', async (t) => {
  const dir = await tempDir(t);
  const onnx = join(dir, 'seg.onnx');
  await writeFile(onnx, threeClassModel());
  const { bytes, expected } = obliqueNifti();
  const input = join(dir, 'ct.nii');
  await writeFile(input, bytes);
  const out = join(dir, 'labels.nii.gz');
  const probs = join(dir, 'probs.nii.gz');
  const preview = join(dir, 'overlay.png');
  // resampled (size) and windowed (patch larger than W: padded, then cropped back)
  const r = await cli(['infer', onnx, input, '--out', out, '--probabilities', probs, '--preview', preview, '--window=-1000,400', '--mean', '0.5', '--std', '1', '--size', '7,9,11', '--patch', '6,6,12', '--overlap', '0.5']);
  assert.equal(r.code, 0, r.stderr);
  const original = await readBack(bytes);
  const labels = await readBack(readFileSync(out));
  sameGeometry(labels, original, 'labels');
  assert.equal(labels.h.datatype, 2, 'uint8 labels');
  assert.equal(labels.h.intentCode, 1002, 'NIFTI_INTENT_LABEL');
  const fileLabels = labels.raw.subarray(352);
  let agree = 0;
  for (let i = 0; i < expected.length; i++) if (fileLabels[i] === expected[i]) agree++;
  assert.ok(agree / expected.length > 0.85, `labels follow the tissue, voxel for voxel in file order (${((100 * agree) / expected.length).toFixed(1)}%)`);
  assert.ok(new Set(fileLabels).size === 3, 'all three classes present');

  const p = await readBack(readFileSync(probs));
  sameGeometry(p, original, 'probabilities');
  assert.equal(p.h.dim[0], 4);
  assert.equal(p.h.dim[4], 3, 'one volume per class');
  assert.equal(p.h.datatype, 16, 'float32');
  const pv = new Float32Array(p.raw.slice(352).buffer);
  const per = expected.length;
  let argmaxAgree = 0;
  for (let i = 0; i < per; i++) {
    const q = [pv[i]!, pv[per + i]!, pv[2 * per + i]!];
    assert.ok(Math.abs(q[0]! + q[1]! + q[2]! - 1) < 1e-4, `probabilities sum to 1 at ${i}`);
    if (q.indexOf(Math.max(...q)) === fileLabels[i]) argmaxAgree++;
  }
  assert.ok(argmaxAgree / per > 0.8, `labels are the arg-max of the probabilities (${argmaxAgree}/${per})`);

  const png = await sharp(readFileSync(preview)).metadata();
  assert.equal(png.format, 'png');
  assert.ok(png.height! > 256, 'views with a legend under them');

  const bad = await cli(['infer', onnx, input, '--probabilities', join(dir, 'p.npy')]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--probabilities must end in \.nii/);
});

test('REST and KServe: NIfTI labels (gzip or not), probabilities, overlay, and hostile inputs as clear 4xx', async (t) => {
  const { hub } = await testHub(t, { budgets: { outputVoxels: 40_000, slidingWindows: 500 } });
  const onnx = readFileSync(fixture('goldens', 'segmentation', 'fcn.onnx'));
  const up = await request(hub.app).post('/v1/uploads?filename=fcn.onnx').set('Content-Type', 'application/octet-stream').send(onnx).expect(201);
  const job = await request(hub.app).post('/v1/conversions').send({ source: { upload: up.body.id }, mode: 'acs' }).expect(202);
  const done = await finishedJob(hub.app, job.body.id);
  assert.equal(done['status'], 'succeeded', JSON.stringify(done));
  const id = done['checkpointId'] as string;
  const { bytes } = obliqueNifti();
  const original = await readBack(bytes);
  const binary = (res: request.Response, cb: (err: Error | null, body: Buffer) => void) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => cb(null, Buffer.concat(chunks)));
  };
  const post = (query: string, accept: string) => request(hub.app).post(`/v1/checkpoints/${id}/infer${query}`).set('Accept', accept).set('Content-Type', 'application/octet-stream').send(Buffer.from(bytes)).buffer(true).parse(binary);

  const json = await request(hub.app).post(`/v1/checkpoints/${id}/infer?patch=8%2C8%2C8`).set('Content-Type', 'application/octet-stream').send(Buffer.from(bytes)).expect(200);
  assert.equal(json.body.kind, 'segmentation');
  assert.ok(json.body.preprocessing.some((s: string) => s.startsWith('sliding windows 8x8x8')));

  const gz = await post('?patch=8%2C8%2C8', 'application/gzip').expect(200).expect('Content-Type', /application\/gzip/);
  const labels = await readBack(new Uint8Array(gz.body as Buffer));
  sameGeometry(labels, original, 'labels (gzip)');
  const plain = await post('?size=6%2C6%2C6', 'application/octet-stream').expect(200).expect('Content-Type', /application\/octet-stream/);
  assert.equal((plain.body as Buffer)[0], 0x5c, 'uncompressed .nii (sizeof_hdr 348)');
  sameGeometry(await readBack(new Uint8Array(plain.body as Buffer)), original, 'labels (.nii, resampled back)');
  const probs = await post('?output=probabilities', 'application/gzip').expect(200);
  const p = await readBack(new Uint8Array(probs.body as Buffer));
  sameGeometry(p, original, 'probabilities');
  assert.deepEqual([p.h.dim[0], p.h.dim[4], p.h.datatype], [4, 3, 16]);
  const png = await post('', 'image/png').expect(200).expect('Content-Type', /image\/png/);
  assert.equal((await sharp(png.body as Buffer).metadata()).format, 'png');

  // hostile: probabilities over the budget; the network runs on 8^3 (it fits), but 3 classes x
  // the input's 15360 voxels do not
  const big = encodeNifti({ data: new Float32Array(20 * 24 * 32).fill(-500), shape: [20, 24, 32], affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] });
  const over = await request(hub.app).post(`/v1/checkpoints/${id}/infer?output=probabilities&size=8%2C8%2C8`).set('Accept', 'application/gzip').set('Content-Type', 'application/octet-stream').send(Buffer.from(big)).expect(413);
  assert.equal(over.body.code, 'LIMIT_EXCEEDED');
  assert.match(over.body.detail, /probabilities of 3 classes.*outputVoxels/);
  const windows = await request(hub.app).post(`/v1/checkpoints/${id}/infer?patch=1%2C1%2C1&overlap=0.9`).set('Content-Type', 'application/octet-stream').send(Buffer.from(bytes)).expect(413);
  assert.match(windows.body.detail, /slidingWindows/);
  const nan = encodeNifti({ data: Float32Array.from({ length: 64 }, (_, i) => (i === 9 ? NaN : 0)), shape: [4, 4, 4], affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] });
  const refused = await request(hub.app).post(`/v1/checkpoints/${id}/infer`).set('Accept', 'application/gzip').set('Content-Type', 'application/octet-stream').send(Buffer.from(nan)).expect(422);
  assert.match(refused.body.detail, /not finite/);
  const one = encodeNifti({ data: Float32Array.from([40]), shape: [1, 1, 1], affine: [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1] });
  const single = await request(hub.app).post(`/v1/checkpoints/${id}/infer`).set('Content-Type', 'application/octet-stream').send(Buffer.from(one));
  assert.ok(single.status === 200 || (single.status >= 400 && single.status < 500 && typeof single.body.code === 'string'), `a 1-voxel volume without windows: ${single.status} ${JSON.stringify(single.body)}`);
  const windowed = await request(hub.app).post(`/v1/checkpoints/${id}/infer?patch=8%2C8%2C8`).set('Accept', 'application/gzip').set('Content-Type', 'application/octet-stream').send(Buffer.from(one)).buffer(true).parse(binary).expect(200);
  const back = await readBack(new Uint8Array(windowed.body as Buffer));
  assert.deepEqual(back.h.dim.slice(0, 4), [3, 1, 1, 1], 'a 1-voxel volume through padded windows: one label back');

  // KServe: labels and probabilities as output tensors
  const input = { inputs: [{ name: 'input', shape: [1, 3, 5, 6, 7], datatype: 'FP32', data: Array.from({ length: 630 }, (_, i) => Math.sin(i)) }], outputs: [{ name: 'labels' }, { name: 'probabilities' }] };
  const ks = await request(hub.app).post(`/v2/models/${id}/infer`).send(input).expect(200);
  const [l, pr] = ks.body.outputs as { name: string; datatype: string; shape: number[]; data: number[] }[];
  assert.deepEqual([l!.name, l!.datatype, l!.shape], ['labels', 'UINT8', [1, 5, 6, 7]]);
  assert.deepEqual([pr!.name, pr!.datatype, pr!.shape], ['probabilities', 'FP32', [1, 3, 5, 6, 7]]);
  for (let i = 0; i < 210; i++) {
    const q = [pr!.data[i]!, pr!.data[210 + i]!, pr!.data[420 + i]!];
    assert.ok(Math.abs(q[0]! + q[1]! + q[2]! - 1) < 1e-5);
    assert.equal(l!.data[i], q.indexOf(Math.max(...q)), `label ${i} is the arg-max`);
  }
  const unknown = await request(hub.app).post(`/v2/models/${id}/infer`).send({ ...input, outputs: [{ name: 'nope' }] }).expect(400);
  assert.match(unknown.body.error, /labels and probabilities/);
});
