/**
 * A model.py made before converter 4 wrote names from the checkpoint as escaped text may carry a
 * hostile ONNX graph name as code: a checkpoint whose manifest says so serves its other files,
 * never that model.py, on every route.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import request from 'supertest';
import { CONVERTER_VERSION } from '../../converters/convert.js';
import { listManifests, manifestKeyUnder, SAFE_MODEL_PY_SINCE, type ConversionManifest } from '../../zoo/store.js';
import { readJson } from '../../zoo/storage/storage.js';
import { fixture } from '../helpers.js';
import { finishedJob, testHub } from './hub.js';

test('a checkpoint made by a converter before model.py escaped names serves every file but its model.py', async (t) => {
  assert.ok(Number(CONVERTER_VERSION) >= SAFE_MODEL_PY_SINCE, 'this converter writes a safe model.py');
  const { hub } = await testHub(t);
  const up = await request(hub.app).post('/v1/uploads?filename=resnet18.pth').set('Content-Type', 'application/octet-stream').send(readFileSync(fixture('goldens', 'resnet18', 'model.pth'))).expect(201);
  const job = await request(hub.app).post('/v1/conversions').send({ source: { upload: up.body.id }, mode: 'acs' }).expect(202);
  const id = (await finishedJob(hub.app, job.body.id as string))['checkpointId'] as string;
  // As a store written by converter 3 holds it: the same files, its manifest naming that version.
  const storage = hub.services.storage;
  const conversions = await listManifests(storage);
  assert.equal(conversions.length, 1);
  const key = manifestKeyUnder(conversions[0]!.prefix);
  const manifest = (await readJson<ConversionManifest>(storage, key))!;
  assert.ok(manifest.files.some((f) => f.name === 'model.py'), 'the conversion wrote a model.py');
  await storage.write(key, JSON.stringify({ ...manifest, spec: { ...manifest.spec, converterVersion: '3' } }));

  const missing = await request(hub.app).get(`/v1/checkpoints/${id}/files/model.py`).expect(404);
  assert.match(missing.body.detail, /has no file 'model\.py' \(it has model\.safetensors, model\.pth, model\.onnx, card\.json\)/);
  const listed = await request(hub.app).get(`/v1/checkpoints/${id}/files`).expect(200);
  assert.deepEqual(listed.body.files.map((f: { name: string }) => f.name).sort(), ['card.json', 'model.onnx', 'model.pth', 'model.safetensors']);
  await request(hub.app).get(`/v1/checkpoints/${id}/files/model.safetensors`).expect(200);
  // The Hub's view of the same checkpoint.
  const tree = await request(hub.app).get(`/api/models/checkpoints/${id}/tree/main`).expect(200);
  assert.ok(!tree.body.some((f: { path: string }) => f.path === 'model.py'), JSON.stringify(tree.body));
  await request(hub.app).get(`/checkpoints/${id}/resolve/main/model.py`).expect(404);
  await request(hub.app).get(`/checkpoints/${id}/resolve/main/model.safetensors`).expect(200);
});
