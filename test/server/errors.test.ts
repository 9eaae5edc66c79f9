/**
 * Every documented error code, produced through the API: answered directly as problem+json,
 * or carried by a failed conversion job's `problem`. The few that cannot come from a request
 * (start-up configuration, a broken store) are produced where they arise.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import express from 'express';
import request from 'supertest';
import { parse } from 'yaml';
import { encodeSafetensors } from '../../converters/formats/safetensors.js';
import { encodeZip } from '../../converters/formats/zip.js';
import { concatChunks } from '../../converters/io.js';
import type { StateDict } from '../../converters/tensor.js';
import { createApp, OPENAPI_PATH } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { problemMiddleware } from '../../server/errors.js';
import { fixture } from '../helpers.js';
import { cpuPickle } from './hostile-pickles.js';
import { finishedJob, testHub } from './hub.js';

type App = Parameters<typeof request>[0];
const seen = new Set<string>();

async function problem(r: request.Test, status: number): Promise<string> {
  const res = await r.expect(status);
  assert.match(res.headers['content-type'] ?? '', /application\/problem\+json/);
  seen.add(res.body.code as string);
  return res.body.code as string;
}

async function jobProblem(app: App, body: object): Promise<string> {
  const r = await request(app).post('/v1/conversions').send(body).expect(202);
  const j = (await finishedJob(app, r.body.id as string)) as { status: string; problem: { code: string } };
  assert.equal(j.status, 'failed', JSON.stringify(j));
  seen.add(j.problem.code);
  return j.problem.code;
}

async function upload(app: App, bytes: Uint8Array, name: string): Promise<string> {
  const r = await request(app).post(`/v1/uploads?filename=${name}`).set('Content-Type', 'application/octet-stream').send(Buffer.from(bytes)).expect(201);
  return r.body.id as string;
}

test('documented errors, each produced through the API', async (t) => {
  // Six fence workers, so that the burst below reaches the engine at once, not one decode after another.
  const { hub, zoo } = await testHub(t, { server: { maxUploadBytes: 2_000_000 }, inference: { maxPending: 1 }, fence: { workers: 6, maxPending: 32 } });
  const app = hub.app;
  const zero = '0'.repeat(32);

  assert.equal(await problem(request(app).post('/v1/conversions').send({ source: { zoo: 'torchvision/resnet18' }, mode: 'x' }), 400), 'VALIDATION_FAILED');
  assert.equal(await problem(request(app).post('/v1/conversions').send({ source: { url: 'https://nowhere.example/x.pth' }, mode: 'acs' }), 403), 'URL_NOT_ALLOWED');
  assert.equal(await problem(request(app).get('/v1/nothing'), 404), 'NOT_FOUND');
  assert.equal(await problem(request(app).get(`/v1/checkpoints/${zero}`), 404), 'CHECKPOINT_NOT_FOUND');
  assert.equal(await problem(request(app).get(`/v1/conversions/${zero}`), 404), 'JOB_NOT_FOUND');
  assert.equal(await problem(request(app).get(`/v1/uploads/${'0'.repeat(64)}`), 404), 'UPLOAD_NOT_FOUND');
  assert.equal(await problem(request(app).get('/v1/zoo/torchvision/nothing'), 404), 'MODEL_NOT_FOUND');
  assert.equal(await problem(request(app).post('/v1/uploads').set('Content-Type', 'application/octet-stream').send(Buffer.alloc(2_000_001)), 413), 'PAYLOAD_TOO_LARGE');
  assert.equal(await problem(request(app).post('/v1/uploads').set('Content-Type', 'text/plain').send('x'), 415), 'UNSUPPORTED_MEDIA_TYPE');

  // checkpoint format errors, refused at upload
  const hostile = (name: string) => readFileSync(fixture('formats', 'hostile', name));
  const up = (name: string, as: string) => request(app).post(`/v1/uploads?filename=${as}`).set('Content-Type', 'application/octet-stream').send(hostile(name));
  assert.equal(await problem(up('truncated.pth', 'x.pth'), 422), 'CHECKPOINT_FORMAT');
  assert.equal(await problem(up('os_system_zip.pth', 'x.pth'), 422), 'UNSAFE_PICKLE');
  assert.equal(await problem(up('huge_shape.safetensors', 'x.safetensors'), 413), 'LIMIT_EXCEEDED');

  // conversion errors, carried by the failed job
  const unknown: StateDict = new Map([['encoder.weight', { dtype: 'F32', shape: [4, 4], data: new Float32Array(16) }]]);
  const unknownId = await upload(app, concatChunks(encodeSafetensors(unknown)), 'unknown.safetensors');
  assert.equal(await jobProblem(app, { source: { upload: unknownId }, mode: 'acs' }), 'CONVERSION_FAILED');
  const r18 = await upload(app, readFileSync(fixture('goldens', 'resnet18', 'model.pth')), 'resnet18.pth');
  assert.equal(await jobProblem(app, { source: { upload: r18 }, mode: 'acs', options: { splits: { 'conv1.weight': [1, 1, 1] } } }), 'INVALID_ARGUMENT');
  const sd = new Map((await import('../../converters/formats/index.js')).decodeCheckpoint(readFileSync(fixture('goldens', 'resnet18', 'model.pth'))).tensors);
  sd.set('conv1.weight', { dtype: 'F32', shape: [4, 3, 7, 5], data: new Float32Array(4 * 3 * 35) });
  const nonSquare = await upload(app, concatChunks(encodeSafetensors(sd)), 'nonsquare.safetensors');
  assert.equal(await jobProblem(app, { source: { upload: nonSquare }, mode: 'acs' }), 'UNSUPPORTED');

  // the zoo's errors
  assert.equal(await jobProblem(app, { source: { zoo: 'torchvision/resnet34.imagenet1k_v1' }, mode: 'acs' }), 'INTEGRITY_FAILED');
  zoo.fail('/models/densenet121-9c97425b.pth', { kind: 'status', status: 503 }, { kind: 'status', status: 503 }, { kind: 'status', status: 503 });
  assert.equal(await jobProblem(app, { source: { zoo: 'torchvision/densenet121.imagenet1k_v1' }, mode: 'acs' }), 'UPSTREAM_UNAVAILABLE');
  assert.equal(await jobProblem(app, { source: { url: `${zoo.origin}/models/missing.pth` }, mode: 'acs' }), 'UPSTREAM_REFUSED');

  // a finished job cannot be cancelled
  const done = await request(app).post('/v1/conversions').send({ source: { upload: r18 }, mode: 'acs', options: { inChannels: 1 } }).expect(202);
  const cp = (await finishedJob(app, done.body.id as string))['checkpointId'] as string;
  assert.equal(await problem(request(app).delete(`/v1/conversions/${done.body.id as string}`), 409), 'JOB_FINISHED');
  assert.equal(await problem(request(app).get(`/v1/checkpoints/${cp}/files/model.pth`).set('Range', 'bytes=99999999-'), 416), 'RANGE_NOT_SATISFIABLE');

  // inference errors
  const nifti = readFileSync(fixture('inference', 'ct_phantom.nii.gz'));
  const infer = (body: Buffer, query = '', accept = 'application/json') => request(app).post(`/v1/checkpoints/${cp}/infer${query}`).set('Accept', accept).set('Content-Type', 'application/octet-stream').send(body);
  assert.equal(await problem(infer(nifti, '', 'text/csv'), 406), 'NOT_ACCEPTABLE');
  assert.equal(await problem(infer(nifti, '', 'application/gzip'), 406), 'NOT_ACCEPTABLE', 'a classifier gives no label volume');
  await request(app).post(`/v1/checkpoints/${cp}/infer`).set('Accept', 'application/json, text/plain, */*').set('Content-Type', 'application/gzip').send(nifti).expect(200);
  assert.equal(await problem(infer(readFileSync(fixture('volumes', 'hostile', 'truncated.nii'))), 422), 'VOLUME_FORMAT');
  assert.equal(await problem(infer(readFileSync(fixture('volumes', 'hostile', 'jpeg_baseline.dcm'))), 422), 'VOLUME_UNSUPPORTED');
  const mixedDir = fixture('volumes', 'mixed_series');
  const mixed = encodeZip(readdirSync(mixedDir).map((f) => ({ name: f, data: [readFileSync(join(mixedDir, f))] })));
  assert.equal(await problem(infer(Buffer.from(concatChunks(mixed))), 422), 'VOLUME_MIXED_SERIES');
  const rgb = Buffer.from(concatChunks([(await import('../../inference/volumes/index.js')).encodeNpy({ data: new Float32Array(3 * 8 ** 3), shape: [3, 8, 8, 8] })]));
  assert.equal(await problem(infer(rgb, '?raw=true'), 400), 'INVALID_INPUT');
  // Raw volumes of six different sizes: requests of one shape would join one batch, and the
  // network run, not the reading of the request, takes the time, so the runs overlap.
  const { encodeNpy } = await import('../../inference/volumes/index.js');
  const sized = (n: number) => Buffer.from(concatChunks([encodeNpy({ data: new Float32Array(n ** 3).fill(0.5), shape: [1, n, n, n] })]));
  // Start every fence worker first (each takes a while to start), with inputs refused while decoding.
  const truncated = readFileSync(fixture('volumes', 'hostile', 'truncated.nii'));
  await Promise.all(Array.from({ length: 6 }, () => infer(truncated)));
  const busy = await Promise.all([96, 92, 88, 84, 80, 76].map((n) => infer(sized(n), '?raw=true')));
  const codes = busy.map((r) => (r.status === 200 ? 'ok' : (r.body.code as string)));
  assert.ok(codes.includes('ENGINE_BUSY'), `with one waiting place, a burst is refused: ${codes.join(', ')}`);
  seen.add('ENGINE_BUSY');
  // One worker and one waiting place in the fence: of three uploads that each take the worker
  // a while to decode, the third is refused at once.
  const fenced = await testHub(t, { fence: { workers: 1, maxPending: 1 } });
  const slow = cpuPickle(1_500_000);
  const burst = await Promise.all([1, 2, 3].map(() => request(fenced.hub.app).post('/v1/uploads?filename=slow.pth').set('Content-Type', 'application/octet-stream').send(slow)));
  const refused = burst.filter((r) => r.status === 503);
  assert.deepEqual(burst.map((r) => r.status).sort(), [422, 422, 503], burst.map((r) => `${r.status} ${r.body.code}`).join(', '));
  assert.equal(refused[0]!.body.code, 'WORKER_UNAVAILABLE');
  assert.match(refused[0]!.headers['retry-after'] ?? '', /^[1-9][0-9]*$/);
  seen.add('WORKER_UNAVAILABLE');
  const broken = await request(app).get('/v1/zoo/torchvision/resnet18/acs/model.onnx').expect(200);
  const brokenId = /checkpoints\/([0-9a-f]{32})/.exec(broken.headers['content-location'] ?? '')![1]!;
  assert.equal(await problem(request(app).post(`/v1/checkpoints/${brokenId}/infer`).set('Content-Type', 'application/gzip').send(nifti), 500), 'INFERENCE_FAILED');

  hub.services.state.shuttingDown = true;
  assert.equal(await problem(request(app).post('/v1/conversions').send({ source: { upload: r18 }, mode: 'acs' }), 503), 'SHUTTING_DOWN');
  hub.services.state.shuttingDown = false;

  const keyed = await testHub(t, { server: { apiKeys: 'k' } });
  assert.equal(await problem(request(keyed.hub.app).post('/v1/conversions').send({}), 401), 'UNAUTHORIZED');
  const offline = await testHub(t, { offline: true });
  assert.equal(await jobProblem(offline.hub.app, { source: { zoo: 'torchvision/resnet18' }, mode: 'acs' }), 'OFFLINE');
  const small = await testHub(t, { download: { maxBytes: 1000 } });
  assert.equal(await jobProblem(small.hub.app, { source: { zoo: 'torchvision/resnet18' }, mode: 'acs' }), 'DOWNLOAD_TOO_LARGE');

  // start-up errors: a bad setting, a bad catalogue
  assert.throws(() => loadConfig({ env: { ACS_HUB_PORT: 'eighty' } }), (e: unknown) => (e as { code?: string }).code === 'CONFIG_INVALID' && /ACS_HUB_PORT/.test((e as Error).message));
  seen.add('CONFIG_INVALID');
  const badCfg = loadConfig({ env: {}, overrides: { catalogue: fixture('formats', 'dtypes.safetensors'), dataDir: join(small.dir, 'other'), server: { logLevel: 'silent' } } });
  await assert.rejects(createApp(badCfg), (e: unknown) => (e as { code?: string }).code === 'CATALOGUE_INVALID');
  seen.add('CATALOGUE_INVALID');

  // Faults of the store under a running hub: an object deleted behind the index, a record
  // that is not JSON any more, a directory that cannot be written.
  const store = await testHub(t);
  const objects = join(store.cfg.dataDir, 'objects');
  const r18b = await upload(store.hub.app, readFileSync(fixture('goldens', 'resnet18', 'model.pth')), 'resnet18.pth');
  const job = await request(store.hub.app).post('/v1/conversions').send({ source: { upload: r18b }, mode: 'acs' }).expect(202);
  const cpb = (await finishedJob(store.hub.app, job.body.id as string))['checkpointId'] as string;
  const stored = readdirSync(objects, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('model.safetensors'));
  assert.equal(stored.length, 1, stored.join(', '));
  rmSync(join(objects, stored[0]!));
  assert.equal(await problem(request(store.hub.app).get(`/v1/checkpoints/${cpb}/files/model.safetensors`), 404), 'OBJECT_NOT_FOUND');
  writeFileSync(join(objects, 'index', 'uploads', `${r18b}.json`), '{ not json');
  assert.equal(await problem(request(store.hub.app).get(`/v1/uploads/${r18b}`), 404), 'UPLOAD_NOT_FOUND', 'a record that does not parse is no record');
  rmSync(join(objects, 'index'), { recursive: true });
  writeFileSync(join(objects, 'index'), 'a file where the index directory was');
  assert.equal(await problem(request(store.hub.app).post('/v1/uploads?filename=y.safetensors').set('Content-Type', 'application/octet-stream').send(Buffer.from(concatChunks(encodeSafetensors(unknown)))), 503), 'STORAGE_FAILED');

  // An unexpected fault: answered by the same last middleware, without its internals.
  const faulty = express();
  faulty.get('/boom', () => {
    throw new TypeError("Cannot read properties of undefined (reading 'secret')");
  });
  faulty.use(problemMiddleware());
  const internal = await request(faulty).get('/boom').expect(500).expect('Content-Type', /application\/problem\+json/);
  assert.equal(internal.body.code, 'INTERNAL');
  assert.doesNotMatch(JSON.stringify(internal.body), /secret|TypeError|stack/, 'no internals leak');
  seen.add('INTERNAL');

  // What is left cannot come from one hub alone: a claim held by another process past its
  // deadline (produced in the claim tests).
  const spec = parse(readFileSync(OPENAPI_PATH, 'utf8')) as { components: { schemas: { Problem: { properties: { code: { enum: string[] } } } } } };
  const missing = spec.components.schemas.Problem.properties.code.enum.filter((c) => !seen.has(c));
  assert.deepEqual(missing, ['CLAIM_TIMEOUT'], 'every other documented code was produced');
});
