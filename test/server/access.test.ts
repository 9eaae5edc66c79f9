import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import request from 'supertest';
import { parse } from 'yaml';
import { ACCESS, accessOf } from '../../server/access.js';
import { createApp, OPENAPI_PATH } from '../../server/app.js';
import { fixture } from '../helpers.js';
import { finishedJob, testConfig, testHub } from './hub.js';

const KEY = 'access-test-key';

interface Operation {
  method: string;
  path: string;
  security?: { bearer?: string[] }[];
  responses: Record<string, unknown>;
}

/** A path of the Hugging Face Hub's protocol. */
function hubPath(path: string): boolean {
  return path.startsWith('/api/') || path.includes('{revision}');
}

function operations(): Operation[] {
  const spec = parse(readFileSync(OPENAPI_PATH, 'utf8')) as { paths: Record<string, Record<string, Omit<Operation, 'method' | 'path'>>> };
  return Object.entries(spec.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ ...op, method: method.toUpperCase(), path })));
}

test('access table: every operation of openapi.yaml is in the table, and only those; the contract documents what the table says', () => {
  const ops = operations();
  assert.ok(ops.length >= 25, `${ops.length} operations`);
  for (const op of ops) {
    const entry = ACCESS.find((r) => r.method === op.method && r.path === op.path);
    assert.ok(entry, `${op.method} ${op.path} is not in the access table (server/access.ts)`);
    const concrete = op.path.replace(/\{[^}]+\}/g, 'x1');
    assert.deepEqual(accessOf(op.method, concrete), entry, `${op.method} ${concrete} resolves to its own entry`);
    assert.equal('401' in op.responses, entry.access !== 'public', `${op.method} ${op.path}: a 401 is documented exactly when it can need a key`);
    const bearer = (op.security ?? []).some((s) => s.bearer !== undefined);
    assert.equal(bearer, entry.access === 'key', `${op.method} ${op.path}: the operation declares the bearer scheme exactly when it always needs a key`);
  }
  for (const r of ACCESS) assert.ok(ops.some((op) => op.method === r.method && op.path === r.path), `${r.method} ${r.path} is in the table but not in openapi.yaml`);
  assert.equal(accessOf('PATCH', '/v1/zoo'), undefined);
  assert.equal(accessOf('GET', '/v1/nothing'), undefined);
  assert.equal(accessOf('HEAD', '/healthz')?.access, 'public', 'HEAD falls back to GET');
  assert.equal(accessOf('GET', '/V2/Models/abc/READY/')?.access, 'key', 'matched as express routes: any case, a trailing slash');
});

test('with keys set, keyed operations answer 401 problem+json without a (valid) key and load, convert or store nothing', async (t) => {
  const { hub, zoo, dir } = await testHub(t, { server: { apiKeys: KEY } });
  const auth = { Authorization: `Bearer ${KEY}` };
  const job = await request(hub.app).post('/v1/conversions').set(auth).send({ source: { zoo: 'torchvision/resnet18' }, mode: 'acs' }).expect(202);
  const done = await finishedJob(hub.app, job.body.id);
  assert.equal(done['status'], 'succeeded', JSON.stringify(done['problem']));
  const id = done['checkpointId'] as string;
  // The same store behind a second app that protects reads too.
  const locked = await createApp(testConfig(zoo, dir, { server: { apiKeys: KEY, protectReads: true } }), { storage: hub.services.storage, catalogue: hub.services.catalogue });
  t.after(() => locked.close());

  const values: Record<string, string> = { namespace: 'torchvision', name: 'resnet18', mode: 'i3d', revision: 'i3d', file: 'model.onnx', jobId: job.body.id, uploadId: 'f'.repeat(64), checkpointId: id, modelName: id, modelVersion: '1' };
  const shape = [1, 3, 16, 16, 16];
  const bodies: Record<string, { type: string; body: string | Buffer }> = {
    '/v1/conversions': { type: 'application/json', body: JSON.stringify({ source: { zoo: 'torchvision/resnet50' }, mode: 'acs' }) },
    '/v1/uploads': { type: 'application/octet-stream', body: readFileSync(fixture('goldens', 'resnet18', 'model.pth')) },
    '/v1/checkpoints/{checkpointId}/infer': { type: 'application/gzip', body: readFileSync(fixture('inference', 'ct_phantom.nii.gz')) },
    '/api/models/{namespace}/{name}/paths-info/{revision}': { type: 'application/json', body: JSON.stringify({ paths: ['model.onnx'] }) },
  };
  const kserveBody = { type: 'application/json', body: JSON.stringify({ inputs: [{ name: 'input', shape, datatype: 'FP32', data: new Array(16 ** 3 * 3).fill(0.5) }] }) };
  // Conversions that ran or failed (a read of a stored one, as the Hub routes' reads of main are, counts as cached).
  const ran = async () => (await hub.services.metrics.conversions.get()).values.filter((v) => v.labels['result'] !== 'cached').reduce((a, v) => a + v.value, 0);
  const conversionsBefore = await ran();
  const jobStatus = (await request(hub.app).get(`/v1/conversions/${job.body.id}`).set(auth).expect(200)).body.status as string;

  let refused = 0;
  for (const app of [hub, locked]) {
    const protectReads = app.services.cfg.server.protectReads;
    for (const op of ACCESS) {
      const url = op.path.replace(/\{([^}]+)\}/g, (_m, p: string) => values[p]!);
      const payload = bodies[op.path] ?? (op.path.endsWith('/infer') ? kserveBody : undefined);
      for (const credential of [undefined, 'Bearer not-the-key', `Basic ${Buffer.from(`u:${KEY}`).toString('base64')}`]) {
        let r = request(app.app)[op.method.toLowerCase() as 'get' | 'head' | 'post' | 'delete'](url);
        if (credential) r = r.set('Authorization', credential);
        if (payload) r = r.set('Content-Type', payload.type).send(payload.body);
        const res = await r;
        const needsKey = op.access === 'key' || (op.access !== 'public' && protectReads);
        const what = `${op.method} ${url} (${credential ?? 'no key'}, protectReads ${protectReads})`;
        if (needsKey) {
          assert.equal(res.status, 401, what);
          if (op.method !== 'HEAD') {
            // The Hugging Face routes answer in the Hub's shape: JSON with `error`, beside the code.
            assert.match(res.headers['content-type'] ?? '', hubPath(op.path) ? /^application\/json/ : /^application\/problem\+json/, what);
            assert.equal(res.body.code, 'UNAUTHORIZED', what);
          }
          assert.match(res.headers['www-authenticate'] ?? '', /^Bearer /, what);
          refused++;
        } else if (op.path === '/v1/zoo/{namespace}/{name}/{mode}/{file}' || (op.path.includes('{revision}') && !/\/(resolve|raw)\//.test(op.path))) {
          // Not converted in this mode yet: serving it would convert, which needs a key.
          assert.equal(res.status, 401, `${what}: a cached read that would convert`);
        } else if (op.path.includes('{revision}')) {
          // A file of an alias: first the relative redirect to the catalogue id, which converts nothing.
          assert.equal(res.status, 307, what);
        } else {
          assert.notEqual(res.status, 401, what);
        }
      }
    }
    assert.equal(app.services.engine.loaded.size, 0, 'no model was loaded');
  }
  assert.ok(refused >= 2 * 3 * 10, `${refused} refusals`);
  assert.equal((await hub.services.metrics.inference.get()).values.filter((v) => v.metricName?.endsWith('_count')).reduce((a, v) => a + v.value, 0), 0, 'no inference ran');
  assert.equal(await ran(), conversionsBefore, 'no conversion ran');
  const stored: string[] = [];
  for await (const o of hub.services.storage.list()) stored.push(o.key);
  assert.deepEqual(stored.filter((k) => k.startsWith('index/uploads/') || /^conversions\/[0-9a-f]+\/i3d\//.test(k)), [], 'no upload stored, nothing converted in another mode');
  assert.equal((await request(hub.app).get(`/v1/conversions/${job.body.id}`).set(auth).expect(200)).body.status, jobStatus, 'the job was not touched');

  // The cached result is a read; the key loads a model, which the checks above would have seen.
  await request(hub.app).get('/v1/zoo/torchvision/resnet18/acs/card.json').expect(200);
  await request(hub.app).get('/api/models/torchvision/resnet18/revision/acs').expect(200);
  await request(hub.app).head('/torchvision/resnet18.imagenet1k_v1/resolve/main/model.onnx').expect(200);
  await request(hub.app).get(`/v2/models/${id}/ready`).set(auth).expect(200);
  assert.equal(hub.services.engine.loaded.size, 1);
  await request(locked.app).get('/healthz').expect(200);
  await request(locked.app).get('/metrics').set(auth).expect(200);
  // Fail closed: a request that matches no entry needs a key before it even gets its 404.
  await request(locked.app).get('/v1/not-a-route').expect(401);
  await request(hub.app).get('/v1/not-a-route').expect(401);
  await request(hub.app).get('/v1/not-a-route').set(auth).expect(404);
});
