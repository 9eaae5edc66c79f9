import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import request from 'supertest';
import { oneConvExternal, oneConvOnnx } from '../converters/onnx-models.js';
import { tempDir } from '../helpers.js';
import { finishedJob, testHub } from './hub.js';
import { assertNoneHolds, serveEverywhere, serverFileNeedles, storedFiles } from './origins.js';

test('a model fetched from a URL never has its external data read from the server: refused with a 422', async (t) => {
  const dir = await tempDir(t);
  const hub = await testHub(t);
  // A file of the server beside the URL's path taken as a folder, holding exactly the weights
  // the model needs: reading it would make the conversion succeed.
  const secret = oneConvExternal(3, 'secret.bin');
  await writeFile(join(dir, 'secret.bin'), secret.data);
  const needles = [secret.data, ...serverFileNeedles()];

  const cases = [
    { path: `${dir}/model.onnx`, location: 'secret.bin' },
    { path: '/etc/model.onnx', location: 'passwd' },
    { path: '/models/model.onnx', location: '/etc/hostname' },
  ];
  for (const c of cases) {
    const origin = await serveEverywhere(t, oneConvExternal(3, c.location).model);
    const r = await request(hub.hub.app).post('/v1/conversions').send({ source: { url: `${origin}${c.path}` }, mode: 'acs' }).expect(202);
    const job = await finishedJob(hub.hub.app, r.body.id);
    assert.equal(job['status'], 'failed', `${c.location}: ${JSON.stringify(job)}`);
    const problem = job['problem'] as { status: number; code: string; detail: string };
    assert.equal(problem.status, 422);
    assert.equal(problem.code, 'UNSUPPORTED');
    assert.ok(
      problem.detail.endsWith(`external data '${c.location}' is not read for a model fetched from a URL; embed the weights (onnx.save(..., save_as_external_data=False))`),
      problem.detail,
    );
  }
  const files = await storedFiles(join(hub.dir, 'data'));
  assert.ok([...files.keys()].some((k) => k.includes('blobs')), 'the downloaded models were stored');
  assert.ok(![...files.keys()].some((k) => k.includes('conversions')), 'no conversion was stored');
  assertNoneHolds(files, needles);
});

test('an uploaded model that names external data is refused with a 422 and not stored', async (t) => {
  const hub = await testHub(t);
  for (const location of ['passwd', '/etc/hostname', '../../secret.bin']) {
    const r = await request(hub.hub.app)
      .post('/v1/uploads?filename=model.onnx')
      .set('Content-Type', 'application/octet-stream')
      .send(Buffer.from(oneConvExternal(3, location).model))
      .expect(422);
    assert.equal(r.body.code, 'UNSUPPORTED');
    assert.match(r.body.detail, new RegExp(`external data '${location.replace(/[./]/g, '\\$&')}' is not read for a model fetched from an upload; embed the weights`));
  }
  const files = await storedFiles(join(hub.dir, 'data'));
  assert.deepEqual([...files.keys()].filter((k) => !k.includes('staging')), [], 'nothing stored');
});

test('a conversion whose output would pass budgets.conversionOutputBytes fails with LIMIT_EXCEEDED and stores nothing', async (t) => {
  const hub = await testHub(t);
  // 4 MiB: one 1024x1024 kernel; i3d would make it 4 GiB, written three times.
  const up = await request(hub.hub.app).post('/v1/uploads?filename=big.onnx').set('Content-Type', 'application/octet-stream').send(Buffer.from(oneConvOnnx(1024))).expect(201);
  const rss = process.memoryUsage().rss;
  const r = await request(hub.hub.app).post('/v1/conversions').send({ source: { upload: up.body.id }, mode: 'i3d' }).expect(202);
  const job = await finishedJob(hub.hub.app, r.body.id);
  assert.ok(process.memoryUsage().rss - rss < 512 * 1024 * 1024, `rss grew by ${(process.memoryUsage().rss - rss) / 2 ** 20} MiB`);
  assert.equal(job['status'], 'failed');
  const problem = job['problem'] as { status: number; code: string; detail: string };
  assert.equal(problem.code, 'LIMIT_EXCEEDED');
  assert.equal(problem.status, 413);
  assert.match(problem.detail, /the i3d conversion of 'one_conv' would write up to \d+ bytes \(model\.safetensors \d+, model\.pth \d+, model\.onnx \d+\), more than 8589934592 \(budgets\.conversionOutputBytes\)/);
  const keys: string[] = [];
  for await (const o of hub.hub.services.storage.list('conversions/')) keys.push(o.key);
  assert.deepEqual(keys, [], 'nothing partial in the store');
});
