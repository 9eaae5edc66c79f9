/**
 * Every documented error code, each in its own test, produced through the API: answered
 * directly as problem+json, or carried by a failed conversion job's `problem`. The few that
 * cannot come from a request (start-up configuration, a broken store) are produced where they
 * arise. A last test checks that every code of the catalogue has its test here (or, for
 * CLAIM_TIMEOUT, which needs two processes, in the claim tests).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import request from 'supertest';
import { encodeSafetensors } from '../../converters/formats/safetensors.js';
import { encodeZip } from '../../converters/formats/zip.js';
import { concatChunks } from '../../converters/io.js';
import type { StateDict } from '../../converters/tensor.js';
import { ERRORS } from '../../converters/errors.js';
import { createApp } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { problemMiddleware } from '../../server/errors.js';
import { fixture } from '../helpers.js';
import { cpuPickle } from './hostile-pickles.js';
import { encodeNpy } from '../../inference/volumes/index.js';
import { finishedJob, testHub } from './hub.js';

type App = Parameters<typeof request>[0];

/** Each problem's status, code and `retryable` as the catalogue says. */
async function problem(r: request.Test, status: number): Promise<string> {
  const res = await r.expect(status);
  assert.match(res.headers['content-type'] ?? '', /application\/problem\+json/);
  const code = res.body.code as keyof typeof ERRORS;
  assert.equal(res.body.retryable, ERRORS[code].retryable, `${code}: retryable as the catalogue says`);
  return code;
}

async function jobProblem(app: App, body: object): Promise<string> {
  const r = await request(app).post('/v1/conversions').send(body).expect(202);
  const j = (await finishedJob(app, r.body.id as string)) as { status: string; problem: { code: string } };
  assert.equal(j.status, 'failed', JSON.stringify(j));
  return j.problem.code;
}

async function upload(app: App, bytes: Uint8Array, name: string): Promise<string> {
  const r = await request(app).post(`/v1/uploads?filename=${name}`).set('Content-Type', 'application/octet-stream').send(Buffer.from(bytes)).expect(201);
  return r.body.id as string;
}

/** Hubs made in `before`, closed in `after`. */
const closers: (() => Promise<void>)[] = [];
const life = { after: (fn: () => Promise<void>) => void closers.push(fn) };
const tested = new Set<string>();

/** A test of one code. */
function codeTest(code: keyof typeof ERRORS, fn: () => Promise<void> | void): void {
  tested.add(code);
  test(code, fn);
}

describe('documented errors, one test per code', () => {
  let app: App;
  let zoo: Awaited<ReturnType<typeof testHub>>['zoo'];
  let r18: string;
  let cp: string;
  const zero = '0'.repeat(32);
  const unknown: StateDict = new Map([['encoder.weight', { dtype: 'F32', shape: [4, 4], data: new Float32Array(16) }]]);
  const nifti = readFileSync(fixture('inference', 'ct_phantom.nii.gz'));
  const infer = (body: Buffer, query = '', accept = 'application/json') =>
    request(app).post(`/v1/checkpoints/${cp}/infer${query}`).set('Accept', accept).set('Content-Type', 'application/octet-stream').send(body);
  const hostile = (name: string) => readFileSync(fixture('formats', 'hostile', name));
  const up = (name: string, as: string) => request(app).post(`/v1/uploads?filename=${as}`).set('Content-Type', 'application/octet-stream').send(hostile(name));

  before(async () => {
    // Six fence workers, so that the burst of ENGINE_BUSY reaches the engine at once, not one decode after another.
    const made = await testHub(life, { server: { maxUploadBytes: 2_000_000 }, inference: { maxPending: 1 }, fence: { workers: 6, maxPending: 32 } });
    app = made.hub.app;
    zoo = made.zoo;
    r18 = await upload(app, readFileSync(fixture('goldens', 'resnet18', 'model.pth')), 'resnet18.pth');
    const done = await request(app).post('/v1/conversions').send({ source: { upload: r18 }, mode: 'acs', options: { inChannels: 1 } }).expect(202);
    cp = (await finishedJob(app, done.body.id as string))['checkpointId'] as string;
  });
  after(async () => {
    for (const close of closers.reverse()) await close();
  });

  codeTest('VALIDATION_FAILED', async () => {
    assert.equal(await problem(request(app).post('/v1/conversions').send({ source: { zoo: 'torchvision/resnet18' }, mode: 'x' }), 400), 'VALIDATION_FAILED');
  });
  test('a path that is not valid percent-encoding is VALIDATION_FAILED on every kind of route, never a 500', async () => {
    // Static files, the API, the Hub's paths and the path that matches no route.
    for (const path of ['/web/app.js%', '/docs/index.html%zz', '/v1/zoo/torchvision/resnet18%', `/v1/checkpoints/${zero}%E0%A4%A/files/card.json`, '/timm/resnet50%/resolve/main/config.json', '/v1/nothing%']) {
      const res = await request(app).get(path);
      if (path === '/v1/nothing%') {
        assert.equal(res.status, 404, path);
        continue;
      }
      assert.equal(res.status, 400, `${path}: ${res.status} ${JSON.stringify(res.body)}`);
      assert.equal(res.body.code, 'VALIDATION_FAILED', path);
      assert.match(res.body.detail ?? res.body.error, /percent-encoding|malformed/, path);
    }
    await request(app).get('/healthz').expect(200);
  });
  codeTest('URL_NOT_ALLOWED', async () => {
    assert.equal(await problem(request(app).post('/v1/conversions').send({ source: { url: 'https://nowhere.example/x.pth' }, mode: 'acs' }), 403), 'URL_NOT_ALLOWED');
  });
  codeTest('NOT_FOUND', async () => {
    assert.equal(await problem(request(app).get('/v1/nothing'), 404), 'NOT_FOUND');
  });
  codeTest('CHECKPOINT_NOT_FOUND', async () => {
    assert.equal(await problem(request(app).get(`/v1/checkpoints/${zero}`), 404), 'CHECKPOINT_NOT_FOUND');
    // Named without the store's location.
    const { body } = await request(app).get(`/v1/checkpoints/${zero}/files/model.py`).expect(404);
    assert.equal(body.detail, `no checkpoint '${zero}' in <store>`);
  });
  codeTest('JOB_NOT_FOUND', async () => {
    assert.equal(await problem(request(app).get(`/v1/conversions/${zero}`), 404), 'JOB_NOT_FOUND');
  });
  codeTest('UPLOAD_NOT_FOUND', async () => {
    assert.equal(await problem(request(app).get(`/v1/uploads/${'0'.repeat(64)}`), 404), 'UPLOAD_NOT_FOUND');
  });
  codeTest('MODEL_NOT_FOUND', async () => {
    assert.equal(await problem(request(app).get('/v1/zoo/torchvision/nothing'), 404), 'MODEL_NOT_FOUND');
  });
  codeTest('PAYLOAD_TOO_LARGE', async () => {
    assert.equal(await problem(request(app).post('/v1/uploads').set('Content-Type', 'application/octet-stream').send(Buffer.alloc(2_000_001)), 413), 'PAYLOAD_TOO_LARGE');
  });
  codeTest('UNSUPPORTED_MEDIA_TYPE', async () => {
    assert.equal(await problem(request(app).post('/v1/uploads').set('Content-Type', 'text/plain').send('x'), 415), 'UNSUPPORTED_MEDIA_TYPE');
  });
  codeTest('CHECKPOINT_FORMAT', async () => {
    assert.equal(await problem(up('truncated.pth', 'x.pth'), 422), 'CHECKPOINT_FORMAT');
  });
  codeTest('UNSAFE_PICKLE', async () => {
    assert.equal(await problem(up('os_system_zip.pth', 'x.pth'), 422), 'UNSAFE_PICKLE');
  });
  codeTest('LIMIT_EXCEEDED', async () => {
    assert.equal(await problem(up('huge_shape.safetensors', 'x.safetensors'), 413), 'LIMIT_EXCEEDED');
  });
  codeTest('CONVERSION_FAILED', async () => {
    const unknownId = await upload(app, concatChunks(encodeSafetensors(unknown)), 'unknown.safetensors');
    assert.equal(await jobProblem(app, { source: { upload: unknownId }, mode: 'acs' }), 'CONVERSION_FAILED');
  });
  codeTest('INVALID_ARGUMENT', async () => {
    assert.equal(await jobProblem(app, { source: { upload: r18 }, mode: 'acs', options: { splits: { 'conv1.weight': [1, 1, 1] } } }), 'INVALID_ARGUMENT');
  });
  codeTest('UNSUPPORTED', async () => {
    // Integer convolution weights: well-formed, but a network this converter does not handle.
    const sd = new Map((await import('../../converters/formats/index.js')).decodeCheckpoint(readFileSync(fixture('goldens', 'resnet18', 'model.pth'))).tensors);
    sd.set('conv1.weight', { dtype: 'I32', shape: [64, 3, 7, 7], data: new Int32Array(64 * 3 * 49) });
    const odd = await upload(app, concatChunks(encodeSafetensors(sd)), 'odd.safetensors');
    assert.equal(await jobProblem(app, { source: { upload: odd }, mode: 'acs' }), 'UNSUPPORTED');
  });
  codeTest('INTEGRITY_FAILED', async () => {
    assert.equal(await jobProblem(app, { source: { zoo: 'torchvision/resnet34.imagenet1k_v1' }, mode: 'acs' }), 'INTEGRITY_FAILED');
  });
  codeTest('UPSTREAM_UNAVAILABLE', async () => {
    zoo.fail('/models/densenet121-9c97425b.pth', { kind: 'status', status: 503 }, { kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    assert.equal(await jobProblem(app, { source: { zoo: 'torchvision/densenet121.imagenet1k_v1' }, mode: 'acs' }), 'UPSTREAM_UNAVAILABLE');
  });
  codeTest('UPSTREAM_REFUSED', async () => {
    assert.equal(await jobProblem(app, { source: { url: `${zoo.origin}/models/missing.pth` }, mode: 'acs' }), 'UPSTREAM_REFUSED');
  });
  codeTest('JOB_FINISHED', async () => {
    const done = await request(app).post('/v1/conversions').send({ source: { upload: r18 }, mode: 'acs', options: { inChannels: 2 } }).expect(202);
    await finishedJob(app, done.body.id as string);
    assert.equal(await problem(request(app).delete(`/v1/conversions/${done.body.id as string}`), 409), 'JOB_FINISHED');
  });
  codeTest('RANGE_NOT_SATISFIABLE', async () => {
    assert.equal(await problem(request(app).get(`/v1/checkpoints/${cp}/files/model.pth`).set('Range', 'bytes=99999999-'), 416), 'RANGE_NOT_SATISFIABLE');
  });
  codeTest('NOT_ACCEPTABLE', async () => {
    assert.equal(await problem(infer(nifti, '', 'text/csv'), 406), 'NOT_ACCEPTABLE');
    assert.equal(await problem(infer(nifti, '', 'application/gzip'), 406), 'NOT_ACCEPTABLE', 'a classifier gives no label volume');
    await request(app).post(`/v1/checkpoints/${cp}/infer`).set('Accept', 'application/json, text/plain, */*').set('Content-Type', 'application/gzip').send(nifti).expect(200);
  });
  codeTest('VOLUME_FORMAT', async () => {
    assert.equal(await problem(infer(readFileSync(fixture('volumes', 'hostile', 'truncated.nii'))), 422), 'VOLUME_FORMAT');
  });
  codeTest('VOLUME_UNSUPPORTED', async () => {
    assert.equal(await problem(infer(readFileSync(fixture('volumes', 'hostile', 'jpeg_baseline.dcm'))), 422), 'VOLUME_UNSUPPORTED');
  });
  codeTest('VOLUME_MIXED_SERIES', async () => {
    const mixedDir = fixture('volumes', 'mixed_series');
    const mixed = encodeZip(readdirSync(mixedDir).map((f) => ({ name: f, data: [readFileSync(join(mixedDir, f))] })));
    assert.equal(await problem(infer(Buffer.from(concatChunks(mixed))), 422), 'VOLUME_MIXED_SERIES');
  });
  codeTest('INVALID_INPUT', async () => {
    const rgb = Buffer.from(concatChunks([encodeNpy({ data: new Float32Array(3 * 8 ** 3), shape: [3, 8, 8, 8] })]));
    assert.equal(await problem(infer(rgb, '?raw=true'), 400), 'INVALID_INPUT');
  });
  codeTest('ENGINE_BUSY', async () => {
    // Raw volumes of six different sizes: requests of one shape would join one batch, and the
    // network run, not the reading of the request, takes the time, so the runs overlap.
    const sized = (n: number) => Buffer.from(concatChunks([encodeNpy({ data: new Float32Array(n ** 3).fill(0.5), shape: [1, n, n, n] })]));
    // Start every fence worker first (each takes a while to start), with inputs refused while decoding.
    const truncated = readFileSync(fixture('volumes', 'hostile', 'truncated.nii'));
    await Promise.all(Array.from({ length: 6 }, () => infer(truncated)));
    const busy = await Promise.all([96, 92, 88, 84, 80, 76].map((n) => infer(sized(n), '?raw=true')));
    const refused = busy.filter((r) => r.status !== 200);
    assert.ok(refused.some((r) => r.body.code === 'ENGINE_BUSY'), `with one waiting place, a burst is refused: ${busy.map((r) => r.status).join(', ')}`);
    for (const r of refused) assert.deepEqual([r.status, r.body.code, r.body.retryable], [503, 'ENGINE_BUSY', true]);
  });
  codeTest('WORKER_UNAVAILABLE', async () => {
    // One worker and one waiting place in the fence: of three uploads that each take the worker
    // a while to decode, the third is refused at once.
    const fenced = await testHub(life, { fence: { workers: 1, maxPending: 1 } });
    const slow = cpuPickle(1_500_000);
    const burst = await Promise.all([1, 2, 3].map(() => request(fenced.hub.app).post('/v1/uploads?filename=slow.pth').set('Content-Type', 'application/octet-stream').send(slow)));
    const refused = burst.filter((r) => r.status === 503);
    assert.deepEqual(burst.map((r) => r.status).sort(), [422, 422, 503], burst.map((r) => `${r.status} ${r.body.code}`).join(', '));
    assert.equal(refused[0]!.body.code, 'WORKER_UNAVAILABLE');
    assert.equal(refused[0]!.body.retryable, true);
    assert.match(refused[0]!.headers['retry-after'] ?? '', /^[1-9][0-9]*$/);
  });
  codeTest('INFERENCE_FAILED', async () => {
    const broken = await request(app).get('/v1/zoo/torchvision/resnet18/acs/model.onnx').expect(200);
    const brokenId = /checkpoints\/([0-9a-f]{32})/.exec(broken.headers['content-location'] ?? '')![1]!;
    assert.equal(await problem(request(app).post(`/v1/checkpoints/${brokenId}/infer`).set('Content-Type', 'application/gzip').send(nifti), 500), 'INFERENCE_FAILED');
  });
  codeTest('SHUTTING_DOWN', async () => {
    const closing = await testHub(life);
    closing.hub.services.state.shuttingDown = true;
    assert.equal(await problem(request(closing.hub.app).post('/v1/conversions').send({ source: { zoo: 'torchvision/resnet18' }, mode: 'acs' }), 503), 'SHUTTING_DOWN');
  });
  codeTest('UNAUTHORIZED', async () => {
    const keyed = await testHub(life, { server: { apiKeys: 'k' } });
    assert.equal(await problem(request(keyed.hub.app).post('/v1/conversions').send({}), 401), 'UNAUTHORIZED');
  });
  codeTest('OFFLINE', async () => {
    const offline = await testHub(life, { offline: true });
    assert.equal(await jobProblem(offline.hub.app, { source: { zoo: 'torchvision/resnet18' }, mode: 'acs' }), 'OFFLINE');
    // The message names the store for the operator; a client reads '<store>', on every kind of route.
    const r = await request(offline.hub.app).post('/v1/conversions').send({ source: { zoo: 'torchvision/resnet18' }, mode: 'acs' }).expect(202);
    const job = (await finishedJob(offline.hub.app, r.body.id as string)) as { problem: { detail: string } };
    const hf = await request(offline.hub.app).get('/api/models/timm/resnet18.tiny_test').expect(503);
    const download = await request(offline.hub.app).get('/v1/zoo/torchvision/resnet18/acs/model.safetensors').expect(503);
    for (const [route, detail] of [['job', job.problem.detail], ['Hub body', hf.body.error], ['Hub header', hf.headers['x-error-message']], ['download', download.body.detail]]) {
      assert.match(String(detail), /not in the cache \(<store>\)/, `${route}: ${detail}`);
      assert.ok(!String(detail).includes(offline.cfg.dataDir), `${route}: ${detail}`);
    }
  });
  codeTest('DOWNLOAD_TOO_LARGE', async () => {
    const small = await testHub(life, { download: { maxBytes: 1000 } });
    assert.equal(await jobProblem(small.hub.app, { source: { zoo: 'torchvision/resnet18' }, mode: 'acs' }), 'DOWNLOAD_TOO_LARGE');
  });
  codeTest('CONFIG_INVALID', () => {
    assert.throws(() => loadConfig({ env: { ACS_HUB_PORT: 'eighty' } }), (e: unknown) => (e as { code?: string }).code === 'CONFIG_INVALID' && /ACS_HUB_PORT/.test((e as Error).message));
  });
  codeTest('CATALOGUE_INVALID', async () => {
    const other = await testHub(life);
    const badCfg = loadConfig({ env: {}, overrides: { catalogue: fixture('formats', 'dtypes.safetensors'), dataDir: join(other.dir, 'other'), server: { logLevel: 'silent' } } });
    await assert.rejects(createApp(badCfg), (e: unknown) => (e as { code?: string }).code === 'CATALOGUE_INVALID');
  });

  // Faults of the store under a running hub: an object deleted behind the index, a record
  // that is not JSON any more, a directory that cannot be written.
  codeTest('OBJECT_NOT_FOUND', async () => {
    const store = await testHub(life);
    const objects = join(store.cfg.dataDir, 'objects');
    const id = await upload(store.hub.app, readFileSync(fixture('goldens', 'resnet18', 'model.pth')), 'resnet18.pth');
    const job = await request(store.hub.app).post('/v1/conversions').send({ source: { upload: id }, mode: 'acs' }).expect(202);
    const cpb = (await finishedJob(store.hub.app, job.body.id as string))['checkpointId'] as string;
    const stored = readdirSync(objects, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('model.safetensors'));
    assert.equal(stored.length, 1, stored.join(', '));
    rmSync(join(objects, stored[0]!));
    assert.equal(await problem(request(store.hub.app).get(`/v1/checkpoints/${cpb}/files/model.safetensors`), 404), 'OBJECT_NOT_FOUND');
    writeFileSync(join(objects, 'index', 'uploads', `${id}.json`), '{ not json');
    assert.equal(await problem(request(store.hub.app).get(`/v1/uploads/${id}`), 404), 'UPLOAD_NOT_FOUND', 'a record that does not parse is no record');
  });
  codeTest('STORAGE_FAILED', async () => {
    const store = await testHub(life);
    const objects = join(store.cfg.dataDir, 'objects');
    await upload(store.hub.app, readFileSync(fixture('goldens', 'resnet18', 'model.pth')), 'resnet18.pth');
    rmSync(join(objects, 'index'), { recursive: true });
    writeFileSync(join(objects, 'index'), 'a file where the index directory was');
    const body = Buffer.from(concatChunks(encodeSafetensors(unknown)));
    const r = request(store.hub.app).post('/v1/uploads?filename=y.safetensors').set('Content-Type', 'application/octet-stream').send(body);
    assert.equal(await problem(r, 503), 'STORAGE_FAILED');
    // Node's message names the file; the client reads it under '<store>'.
    const { detail } = (await r).body as { detail: string };
    assert.match(detail, /<store>\/index/);
    assert.ok(!detail.includes(store.cfg.dataDir), detail);
  });
  codeTest('INTERNAL', async () => {
    // An unexpected fault: answered by the same last middleware, without its internals.
    const faulty = express();
    faulty.get('/boom', () => {
      throw new TypeError("Cannot read properties of undefined (reading 'secret')");
    });
    faulty.use(problemMiddleware());
    const internal = await request(faulty).get('/boom').expect(500).expect('Content-Type', /application\/problem\+json/);
    assert.equal(internal.body.code, 'INTERNAL');
    assert.doesNotMatch(JSON.stringify(internal.body), /secret|TypeError|stack/, 'no internals leak');
  });

  test('every code of the catalogue has its test (CLAIM_TIMEOUT, which needs two processes, in the claim tests)', () => {
    assert.deepEqual(Object.keys(ERRORS).filter((c) => !tested.has(c)), ['CLAIM_TIMEOUT']);
  });
});
