/**
 * model.onnx specialised for a size, as a download option: `?size=D,H,W` on both download
 * routes, stored once as its own object, the same outputs as the general file in plain
 * onnxruntime, named in the card; hostile sizes refused.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import request from 'supertest';
import { decodeOnnx } from '../../converters/formats/onnx.js';
import { SPECIALIZE_VERSION } from '../../converters/graph/specialize.js';
import { parseSpecializeSize } from '../../converters/specialize-file.js';
import { createSession } from '../../inference/runtime/providers.js';
import { conversionPrefixOf, loadCheckpoint, readSpecializedOnnx, writeSpecializedOnnx } from '../../zoo/store.js';
import { assertClose, detTensor, fixture } from '../helpers.js';
import { finishedJob, testHub } from './hub.js';

function binary(res: request.Response, cb: (err: Error | null, body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => cb(null, Buffer.concat(chunks)));
}

async function run(bytes: Buffer, data: Float32Array, shape: number[]): Promise<Float32Array> {
  const { session } = await createSession(new Uint8Array(bytes), { threads: 1 });
  const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', data, shape) });
  const first = Object.values(out)[0] as ort.Tensor;
  await session.release();
  return first.data as Float32Array;
}

test('download: model.onnx specialised for a size, stored once, same outputs, named in the card', async (t) => {
  const { hub } = await testHub(t);
  const get = (path: string) => request(hub.app).get(path).buffer(true).parse(binary);
  const zoo = await get('/v1/zoo/torchvision/resnet18/acs/model.onnx?size=32,24,40').expect(200);
  assert.match(zoo.headers['content-location'] ?? '', /^\/v1\/checkpoints\/[0-9a-f]{32}\/files\/model\.onnx\?size=32%2C24%2C40$/);
  assert.match(zoo.headers['content-disposition'] ?? '', /32x24x40-model\.onnx/);

  // Real weights (the golden ResNet-18), so that the outputs compared are finite numbers.
  const up = await request(hub.app).post('/v1/uploads?filename=resnet18.pth').set('Content-Type', 'application/octet-stream').send(readFileSync(fixture('goldens', 'resnet18', 'model.pth'))).expect(201);
  const job = await request(hub.app).post('/v1/conversions').send({ source: { upload: up.body.id }, mode: 'acs', options: { inChannels: 1 } }).expect(202);
  const id = (await finishedJob(hub.app, job.body.id))['checkpointId'] as string;
  const general = await get(`/v1/checkpoints/${id}/files/model.onnx`).expect(200);
  const special = await get(`/v1/checkpoints/${id}/files/model.onnx?size=32,24,40`).expect(200);
  assert.notEqual(special.headers['etag'], general.headers['etag'], 'its own file, its own ETag');
  assert.notDeepEqual(special.body, general.body);
  const shape = [2, 1, 32, 24, 40];
  const data = detTensor(shape, 7);
  const expected = await run(general.body as Buffer, data, shape);
  assert.ok(expected.every(Number.isFinite));
  assertClose(await run(special.body as Buffer, data, shape), expected, { rtol: 1e-4, atol: 1e-4, what: 'specialised vs general' });
  const card = await request(hub.app).get(`/v1/checkpoints/${id}/files/card.json?size=32,24,40`).expect(200);
  const onnx = JSON.parse(card.text).onnx as { specializedFor: number[]; sha256: string; note: string };
  assert.deepEqual(onnx.specializedFor, [32, 24, 40]);
  assert.equal(`"${onnx.sha256}"`, special.headers['etag']);
  assert.match(onnx.note, /specialised for 32x24x40/);
  const plainCard = await request(hub.app).get(`/v1/checkpoints/${id}/files/card.json`).expect(200);
  assert.equal(JSON.parse(plainCard.text).onnx, undefined, 'the general card names no size');

  const again = await get(`/v1/checkpoints/${id}/files/model.onnx?size=32,24,40`).expect(200);
  assert.deepEqual(again.body, special.body);
  const { manifest } = await loadCheckpoint(hub.services.storage, id);
  const prefix = conversionPrefixOf(manifest.files.find((f) => f.name === 'model.onnx')!.key)!;
  const stored = await readSpecializedOnnx(hub.services.storage, prefix, [32, 24, 40]);
  assert.equal(stored?.size, (special.body as Buffer).length, 'kept in the store');
  await request(hub.app).head(`/v1/checkpoints/${id}/files/model.onnx?size=32,24,40`).expect(200).expect('etag', special.headers['etag']!);
  await request(hub.app).get(`/v1/checkpoints/${id}/files/model.onnx?size=32,24,40`).set('If-None-Match', special.headers['etag']!).expect(304);
});

test('download: a file an older specializer made is made again, not served', async (t) => {
  const { hub } = await testHub(t);
  const get = (path: string) => request(hub.app).get(path).buffer(true).parse(binary);
  const first = await request(hub.app).get('/v1/zoo/torchvision/resnet18/acs/card.json').expect(200);
  const id = /checkpoints\/([0-9a-f]{32})\//.exec(first.headers['content-location']!)![1]!;
  const { manifest } = await loadCheckpoint(hub.services.storage, id);
  const prefix = conversionPrefixOf(manifest.files.find((f) => f.name === 'model.onnx')!.key)!;
  const stale = new TextEncoder().encode('made by an older specializer');
  await writeSpecializedOnnx(hub.services.storage, prefix, [32, 32, 32], stale, 'old', SPECIALIZE_VERSION - 1);
  const res = await get(`/v1/checkpoints/${id}/files/model.onnx?size=32,32,32`).expect(200);
  const body = new Uint8Array(res.body as Buffer);
  assert.notDeepEqual(body, stale);
  // This version's graph: the stem's strided folds of D and H are Gathers, and it loads.
  assert.ok(decodeOnnx(body).graph!.node!.some((n) => n.opType === 'Gather'), 'made by this specializer');
  await (await createSession(body, { threads: 1 })).session.release();
  const current = await readSpecializedOnnx(hub.services.storage, prefix, [32, 32, 32]);
  assert.equal(current?.size, body.byteLength);
  assert.match(current!.key, new RegExp(`/specialized/v${SPECIALIZE_VERSION}/32x32x32/model\\.onnx$`));
  assert.equal((await readSpecializedOnnx(hub.services.storage, prefix, [32, 32, 32], SPECIALIZE_VERSION - 1))?.note, 'old', 'the older file is left as it is');
});

test('download: hostile sizes are a 400, sizes over budgets.outputVoxels a 413; never a 500', async (t) => {
  const { hub } = await testHub(t, { budgets: { outputVoxels: 3 * 64 ** 3 } });
  const first = await request(hub.app).get('/v1/zoo/torchvision/resnet18/acs/card.json').expect(200);
  const id = /checkpoints\/([0-9a-f]{32})\//.exec(first.headers['content-location']!)![1]!;
  const url = (q: string, file = 'model.onnx') => `/v1/checkpoints/${id}/files/${file}?${q}`;
  for (const q of ['size=abc', 'size=0,32,32', 'size=32,32', 'size=-1,32,32', 'size=1e3,32,32', 'size=32,32,32,32', 'size=', 'size=12345678,1,1', 'size=32,32,32&size=16,16,16', `size=${'9'.repeat(39)}`]) {
    const r = await request(hub.app).get(url(q)).expect('content-type', /problem\+json/);
    assert.equal(r.status, 400, `${q}: ${r.text}`);
  }
  const tooBig = await request(hub.app).get(url('size=65,64,64')).expect(413);
  assert.match(tooBig.body.detail, /budgets\.outputVoxels/);
  await request(hub.app).get(url('size=64,64,64')).expect(200);
  const other = await request(hub.app).get(url('size=32,32,32', 'model.pth')).expect(400);
  assert.match(other.body.detail, /'size' applies to model\.onnx and card\.json/);
  await request(hub.app).get(`/v1/zoo/torchvision/resnet18/acs/model.onnx?size=${encodeURIComponent('64;rm -rf')}`).expect(400);
});

test('download: with API keys, specialising needs one; a stored specialisation is served like any file', async (t) => {
  const { hub } = await testHub(t, { server: { apiKeys: 'k1' } });
  const auth = { Authorization: 'Bearer k1' };
  const first = await request(hub.app).get('/v1/zoo/torchvision/resnet18/acs/card.json').set(auth).expect(200);
  const id = /checkpoints\/([0-9a-f]{32})\//.exec(first.headers['content-location']!)![1]!;
  await request(hub.app).get(`/v1/checkpoints/${id}/files/model.onnx?size=32,32,32`).expect(401);
  await request(hub.app).get(`/v1/checkpoints/${id}/files/model.onnx?size=32,32,32`).set(auth).expect(200);
  await request(hub.app).get(`/v1/checkpoints/${id}/files/model.onnx?size=32,32,32`).expect(200);
});

test('parseSpecializeSize: the voxel budget counts the channels', () => {
  assert.deepEqual(parseSpecializeSize(' 8,16,32 ', 1, { outputVoxels: 4096 }), [8, 16, 32]);
  assert.throws(() => parseSpecializeSize('8,16,32', 2, { outputVoxels: 4096 }), (e: unknown) => (e as { code?: string }).code === 'LIMIT_EXCEEDED');
});
