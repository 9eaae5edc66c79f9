import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import request from 'supertest';
import sharp from 'sharp';
import { concatChunks } from '../../converters/io.js';
import { encodeZip } from '../../converters/formats/zip.js';
import { encodeNifti } from '../../inference/volumes/index.js';
import { brokenGeometryNiftis, cli, ctNifti as ct, fixture, rssGrowth } from '../helpers.js';
import { finishedJob, testHub, type TestHub } from './hub.js';
import { streamPost } from './serve.js';

const MiB = 1024 * 1024;
/** What a hostile request may add to the process at most: far under 1 GB. */
const RSS_LIMIT = 256 * MiB;
/** The test server's element budget: one 16^3 volume. */
const ELEMENTS = 16 ** 3;

let t: TestHub;
let id: string;
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const fn of cleanups) await fn();
});

before(async () => {
  t = await testHub({ after: (fn) => cleanups.push(fn) }, { budgets: { kserveElements: ELEMENTS, volumeFiles: 4 } });
  const weights = readFileSync(fixture('goldens', 'resnet18', 'model.pth'));
  const up = await request(t.hub.app).post('/v1/uploads?filename=resnet18.pth').set('Content-Type', 'application/octet-stream').send(weights).expect(201);
  const job = await request(t.hub.app).post('/v1/conversions').send({ source: { upload: up.body.id }, mode: 'acs', options: { inChannels: 1 } }).expect(202);
  const done = await finishedJob(t.hub.app, job.body.id as string);
  assert.equal(done['status'], 'succeeded', JSON.stringify(done));
  id = done['checkpointId'] as string;
});

/** The query string of `params`, encoded as the API contract wants it. */
const q = (params: Record<string, string>) => `?${new URLSearchParams(params).toString()}`;

const infer = (body: Buffer, query = '', accept = 'application/json') =>
  request(t.hub.app).post(`/v1/checkpoints/${id}/infer${query}`).set('Content-Type', 'application/octet-stream').set('Accept', accept).send(body);

/** Send a hostile request: the expected problem document, and far less than 1 GB more memory. */
async function refused(send: () => PromiseLike<request.Response>, status: number, code: string, mentions: RegExp): Promise<void> {
  const { result: res, growth } = await rssGrowth(async () => send());
  assert.equal(res.status, status, JSON.stringify(res.body));
  const body = res.body as { code?: string; detail?: string; error?: string };
  assert.equal(body.code, code, JSON.stringify(body));
  assert.match(body.detail ?? body.error ?? '', mentions);
  assert.ok(growth < RSS_LIMIT, `rss grew by ${(growth / MiB).toFixed(0)} MiB`);
}

test('infer: size, spacing and patch are held against budgets.outputVoxels and slidingWindows', async () => {
  const small = ct(16);
  assert.ok(small.length < 16 * 1024, `${small.length} bytes`);
  await infer(small, q({ size: '32,32,32' })).expect(200);
  await refused(() => infer(small, q({ size: '800,800,800' })), 413, 'LIMIT_EXCEEDED', /\[1, 800, 800, 800\] is 512000000 voxels, over the budget of 268435456 \(budgets\.outputVoxels\)/);
  await refused(() => infer(small, q({ size: '9999,9999,9999' })), 413, 'LIMIT_EXCEEDED', /budgets\.outputVoxels/);
  // a small file whose header asks for 60 mm voxels: at 0.25 mm it would be 3840^3
  await refused(() => infer(ct(16, 60), q({ spacing: '0.25,0.25,0.25' })), 413, 'LIMIT_EXCEEDED', /\[1, 3840, 3840, 3840\].*budgets\.outputVoxels/);
  await refused(() => infer(ct(24), q({ patch: '1,1,1', overlap: '0.5' })), 413, 'LIMIT_EXCEEDED', /24 x 24 x 24 = 13824 windows, over the budget of 10000 \(budgets\.slidingWindows\)/);
  await refused(() => infer(small, q({ patch: '9999,9999,9999' })), 413, 'LIMIT_EXCEEDED', /budgets\.outputVoxels/);
  // nonsense values are the caller's error
  await refused(() => infer(small, q({ size: '0,8,8' })), 400, 'INVALID_ARGUMENT', /'size' must be three positive integers/);
  await refused(() => infer(small, q({ spacing: '0,1,1' })), 400, 'INVALID_ARGUMENT', /'spacing' must be three positive numbers/);
  await refused(() => infer(small, q({ spacing: '1.2.3,1,1' })), 400, 'INVALID_ARGUMENT', /'spacing'/);
  await refused(() => infer(small, q({ patch: '0,4,4' })), 400, 'INVALID_ARGUMENT', /'patch'/);
  await refused(() => infer(small, q({ size: 'abc' })), 400, 'VALIDATION_FAILED', /size/);
});

test('infer: unpacked bytes and slice files of the volume are budgeted', async () => {
  // 2 MiB of zeros in a few kilobytes of gzip
  const bomb = Buffer.from(encodeNifti({ data: new Uint8Array(128 ** 3), shape: [128, 128, 128], affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], gzip: true }));
  await refused(() => infer(bomb), 413, 'LIMIT_EXCEEDED', /volume: \d+ compressed bytes inflate to 2097504.*budgets\.compressionRatio/);
  const png = (k: number) => sharp(Buffer.alloc(16 * 16, k * 20), { raw: { width: 16, height: 16, channels: 1 } }).png().toBuffer();
  const zip = async (n: number) => Buffer.from(concatChunks(encodeZip(await Promise.all(Array.from({ length: n }, async (_, k) => ({ name: `s${k}.png`, data: [await png(k)] }))))));
  await infer(await zip(4)).expect(200);
  await refused(async () => infer(await zip(5)), 413, 'LIMIT_EXCEEDED', /more than 4 files.*budgets\.volumeFiles/);
});

test('infer: NaN voxels and broken geometry are a 422 or a sane fallback, never a 500', async () => {
  const values = new Float32Array(16 ** 3).fill(-500);
  values[100] = NaN;
  for (const accept of ['application/json', 'image/png']) {
    await refused(() => infer(ct(16, 1, values), '', accept), 422, 'VOLUME_FORMAT', /^volume: 1 of 4096 voxels are not finite/);
  }
  for (const bytes of brokenGeometryNiftis()) {
    const json = await infer(bytes).expect(200);
    assert.deepEqual(json.body.volume.spacing, [2, 2, 2]);
    const preview = await infer(bytes, '', 'image/png').buffer(true).parse(binary).expect(200);
    assert.deepEqual([...(preview.body as Buffer).subarray(1, 4)], [0x50, 0x4e, 0x47]);
  }
});

const kserve = () => request(t.hub.app).post(`/v2/models/${id}/infer`);
const tensorJson = (shape: number[], data: unknown[]) => ({ inputs: [{ name: 'input', shape, datatype: 'FP32', data }] });

test('KServe: shapes past budgets.kserveElements are a 413; shapes that do not fit the data a 400', async () => {
  await refused(() => kserve().send(tensorJson([1, 1, 1e5, 1e5, 1e5], [1, 2, 3])), 413, 'LIMIT_EXCEEDED', /holds 1000000000000000 elements, over the budget of 4096 \(budgets\.kserveElements\)/);
  await refused(() => kserve().send(tensorJson([1, 1, 16, 16, 17], [1])), 413, 'LIMIT_EXCEEDED', /4352 elements.*budgets\.kserveElements/);
  await refused(() => kserve().send(tensorJson([1, 1, 1.5, 2, 2], [1])), 400, 'VALIDATION_FAILED', /positive integers/);
  await refused(() => kserve().send(tensorJson([1, 1, 2, 2, 2], [1, 2])), 400, 'VALIDATION_FAILED', /needs 8/);
  await refused(() => kserve().send(tensorJson([1, 1, 2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 'x'])), 400, 'VALIDATION_FAILED', /element 7 is not a number/);
  await refused(() => kserve().send({ inputs: [null] }), 400, 'VALIDATION_FAILED', /must be a JSON object/);
  await refused(() => kserve().send({ ...tensorJson([1, 1, 2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]), outputs: 5 }), 400, 'VALIDATION_FAILED', /'outputs'/);
  const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [1, 1, 2, 2, 2], datatype: 'FP32', parameters: { binary_data_size: 32 } }] }));
  const nan = Buffer.from(Float32Array.from([1, 2, 3, NaN, 5, 6, 7, 8]).buffer);
  await refused(() => kserve().set('Content-Type', 'application/octet-stream').set('Inference-Header-Content-Length', String(header.length)).send(Buffer.concat([header, nan])), 400, 'VALIDATION_FAILED', /input value 3 is not a finite float32/);
});

test('KServe: the body is capped by the element budget before it is parsed (JSON and binary)', async () => {
  // JSON: 4096 elements at 32 bytes each, plus server.maxJsonBytes for the rest
  const cap = t.cfg.server.maxJsonBytes + ELEMENTS * 32;
  const head = '{"inputs":[{"name":"input","shape":[1,1,16,16,16],"datatype":"FP32","data":[';
  const numbers = Array.from({ length: ELEMENTS }, (_, i) => (Math.sin(i) / 2).toFixed(3)).join(',');
  const tail = ']}]}';
  // a string: superagent would serialise a Buffer sent as JSON
  const body = (size: number) => head + ' '.repeat(size - head.length - numbers.length - tail.length) + numbers + tail;
  const ok = await kserve().set('Content-Type', 'application/json').send(body(cap));
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.deepEqual(ok.body.outputs[0].shape, [1, 10]);
  await refused(() => kserve().set('Content-Type', 'application/json').send(body(cap + 1)), 413, 'LIMIT_EXCEEDED', new RegExp(`over ${cap} bytes: 4096 elements \\(budgets\\.kserveElements\\) at 32 bytes each`));
  // binary: the header, plus 4096 elements at 8 bytes (FP64, the widest)
  const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [1, 1, 16, 16, 16], datatype: 'FP32', parameters: { binary_data_size: ELEMENTS * 4 } }] }));
  const binaryBody = (size: number) => Buffer.concat([header, Buffer.from(Float32Array.from({ length: ELEMENTS }, (_, i) => Math.cos(i)).buffer), Buffer.alloc(size - header.length - ELEMENTS * 4)]);
  const post = (b: Buffer) => kserve().set('Content-Type', 'application/octet-stream').set('Inference-Header-Content-Length', String(header.length)).send(b);
  await post(binaryBody(header.length + ELEMENTS * 8)).expect(200);
  await refused(() => post(binaryBody(header.length + ELEMENTS * 8 + 1)), 413, 'LIMIT_EXCEEDED', /budgets\.kserveElements\) at 8 bytes each/);
  await refused(() => post(Buffer.concat([Buffer.alloc(2 * MiB, 0x20), header])).set('Inference-Header-Content-Length', String(2 * MiB)), 413, 'LIMIT_EXCEEDED', /JSON header of 2097152 bytes is over the limit of 1048576 bytes \(server\.maxJsonBytes\)/);
});

/** Stream a body to the app on a loopback port (see `streamPost`), closing the port afterwards. */
async function stream(path: string, headers: Record<string, string>, total: number, chunk: Buffer): Promise<{ status?: number; body: string; sent: number }> {
  const server = t.hub.app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    return await streamPost(`http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`, headers, total, chunk);
  } finally {
    server.closeAllConnections();
    await new Promise((res) => server.close(res));
  }
}

test('KServe: a 300 MB body streamed to the server is cut at the cap, with a 413 and little memory', { timeout: 60_000 }, async () => {
  const cap = t.cfg.server.maxJsonBytes + ELEMENTS * 32;
  const chunk = Buffer.from('0,'.repeat(32 * 1024));
  for (const headers of [{ 'Content-Type': 'application/json' }, { 'Content-Type': 'application/json', 'Content-Length': String(300 * 1000 * 1000) }] as Record<string, string>[]) {
    const { result, growth } = await rssGrowth(() => stream(`/v2/models/${id}/infer`, headers, 300 * 1000 * 1000, chunk));
    assert.equal(result.status, 413, `${JSON.stringify(headers)}: ${result.body}`);
    const answer = JSON.parse(result.body) as { error: string; code: string };
    assert.equal(answer.code, 'LIMIT_EXCEEDED');
    assert.match(answer.error, new RegExp(`over ${cap} bytes.*budgets\\.kserveElements`));
    assert.ok(result.sent < 64 * MiB, `the client sent ${(result.sent / MiB).toFixed(0)} MiB before the answer`);
    assert.ok(growth < RSS_LIMIT, `rss grew by ${(growth / MiB).toFixed(0)} MiB`);
  }
  // the server still answers
  await kserve().send(tensorJson([1, 1, 16, 16, 16], Array.from({ length: ELEMENTS }, (_, i) => Math.sin(i)))).expect(200);
});

test('cli infer takes its budgets from the configuration (ACS_HUB_BUDGET_*)', async () => {
  const args = ['infer', fixture('goldens', 'resnet18', 'model.pth'), '--input', fixture('inference', 'ct_phantom.nii.gz'), '--size', '40,40,40'];
  const r = await cli(args, { env: { ACS_HUB_BUDGET_OUTPUT_VOXELS: '60000' } });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /\[3, 40, 40, 40\] is 192000 voxels, over the budget of 60000 \(budgets\.outputVoxels\)/);
});

function binary(res: request.Response, cb: (err: Error | null, body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => cb(null, Buffer.concat(chunks)));
}
