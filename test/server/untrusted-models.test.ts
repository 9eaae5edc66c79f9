import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import request from 'supertest';
import { oneConvExternal, oneConvOnnx } from '../converters/onnx-models.js';
import { tempDir } from '../helpers.js';
import { finishedJob, testHub, type TestHub } from './hub.js';

/** A loopback server that answers every path with the same bytes (a mirror serving a model). */
async function serveEverywhere(t: { after(fn: () => Promise<void>): void }, bytes: Uint8Array): Promise<string> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': bytes.byteLength });
    res.end(bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Every file the hub stored, with its bytes. */
async function storedFiles(hub: TestHub): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const root = join(hub.dir, 'data');
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const e of entries) if (e.isFile()) files.set(join(e.parentPath, e.name), await readFile(join(e.parentPath, e.name)));
  return files;
}

function assertNoneHolds(files: Map<string, Buffer>, needles: Uint8Array[]): void {
  for (const [path, bytes] of files) {
    for (const needle of needles) assert.equal(bytes.indexOf(needle), -1, `${path} holds bytes of a file of the server`);
  }
}

test('a model fetched from a URL never has its external data read from the server: refused with a 422', async (t) => {
  const dir = await tempDir(t);
  const hub = await testHub(t);
  // A file of the server beside the URL's path taken as a folder, holding exactly the weights
  // the model needs: reading it would make the conversion succeed.
  const secret = oneConvExternal(3, 'secret.bin');
  await writeFile(join(dir, 'secret.bin'), secret.data);
  const needles = [secret.data];
  if (existsSync('/etc/passwd')) needles.push(readFileSync('/etc/passwd').subarray(0, 36));
  if (existsSync('/etc/hostname') && readFileSync('/etc/hostname').byteLength > 0) needles.push(readFileSync('/etc/hostname'));

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
  const files = await storedFiles(hub);
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
  const files = await storedFiles(hub);
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
