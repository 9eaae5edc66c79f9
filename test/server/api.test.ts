import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import request from 'supertest';
import { parse } from 'yaml';
import { OPENAPI_PATH } from '../../server/app.js';
import { ERRORS } from '../../converters/errors.js';
import { HTTP_STATUS } from '../../server/errors.js';
import { fixture, sha256 } from '../helpers.js';
import { finishedJob as finished, testHub } from './hub.js';

test('the catalogue, the HTTP statuses and openapi.yaml list the same error codes', () => {
  const spec = parse(readFileSync(OPENAPI_PATH, 'utf8')) as { components: { schemas: { Problem: { properties: { code: { enum: string[] } } } } } };
  const documented = [...spec.components.schemas.Problem.properties.code.enum].sort();
  assert.deepEqual(documented, Object.keys(ERRORS).sort(), 'openapi.yaml documents exactly the catalogue');
  assert.deepEqual(Object.keys(HTTP_STATUS).sort(), Object.keys(ERRORS).sort(), 'every code has one HTTP status');
});

test('zoo: list with filters and text search, one entry, unknown ids as problem+json', async (t) => {
  const { hub } = await testHub(t);
  const all = await request(hub.app).get('/v1/zoo').expect(200);
  assert.ok(all.body.models.length >= 5);
  const hf = await request(hub.app).get('/v1/zoo?source=huggingface').expect(200);
  assert.ok(hf.body.models.every((m: { source: string }) => m.source === 'huggingface'));
  const q = await request(hub.app).get('/v1/zoo?q=densenet').expect(200);
  assert.deepEqual(q.body.models.map((m: { arch: string }) => m.arch), ['densenet121']);
  const one = await request(hub.app).get('/v1/zoo/torchvision/resnet18').expect(200);
  assert.equal(one.body.id, 'torchvision/resnet18.imagenet1k_v1');
  assert.equal(one.body.downloads.acs['model.safetensors'], '/v1/zoo/torchvision/resnet18.imagenet1k_v1/acs/model.safetensors');
  const missing = await request(hub.app).get('/v1/zoo/torchvision/nothing').expect(404).expect('content-type', /application\/problem\+json/);
  assert.equal(missing.body.code, 'MODEL_NOT_FOUND');
  assert.ok(missing.body.requestId);
  const bad = await request(hub.app).get('/v1/zoo?source=ftp').expect(400);
  assert.equal(bad.body.code, 'VALIDATION_FAILED');
  await request(hub.app).get('/v1/zoo?unknown=1').expect(400);
});

test('conversions: 202 and a job, progress over SSE, the result; the same request again is 200 from the cache', async (t) => {
  const { hub, zoo } = await testHub(t);
  const body = { source: { zoo: 'torchvision/resnet18' }, mode: 'acs', options: { inChannels: 1 } };
  const r = await request(hub.app).post('/v1/conversions').send(body).expect(202);
  assert.match(r.headers['location'] ?? '', /^\/v1\/conversions\/[0-9a-f]{32}$/);
  const events = await request(hub.app).get(r.body.links.events).buffer(true).parse((res, cb) => {
    let text = '';
    res.on('data', (c: Buffer) => (text += c.toString()));
    res.on('end', () => cb(null, text));
  });
  assert.match(events.headers['content-type'] ?? '', /^text\/event-stream/);
  const text = events.body as string;
  assert.match(text, /event: done\ndata: /);
  const done = JSON.parse(text.split('event: done\ndata: ')[1]!.split('\n')[0]!) as { status: string; checkpointId: string };
  assert.equal(done.status, 'succeeded');
  const job = await finished(hub.app, r.body.id);
  assert.equal(job['checkpointId'], done.checkpointId);
  const requests = zoo.requests.length;
  const again = await request(hub.app).post('/v1/conversions').send(body).expect(200);
  assert.equal(again.body.status, 'succeeded');
  assert.equal(again.body.cached, true);
  assert.equal(again.body.checkpointId, done.checkpointId);
  assert.equal(zoo.requests.length, requests, 'no download');
  const metrics = await request(hub.app).get('/metrics').expect(200);
  assert.match(metrics.text, /acs_hub_conversions_total\{result="produced"\} 1/);
  assert.match(metrics.text, /acs_hub_conversions_total\{result="cached"\} 1/);
});

test('checkpoints: card, files, downloads with Range, ETag/If-None-Match, HEAD, Repr-Digest, 416', async (t) => {
  const { hub } = await testHub(t);
  const job = (await request(hub.app).post('/v1/conversions').send({ source: { zoo: 'torchvision/resnet18' }, mode: '2.5d' }).expect(202)).body as { id: string };
  const done = await finished(hub.app, job.id);
  const id = done['checkpointId'] as string;
  const cp = await request(hub.app).get(`/v1/checkpoints/${id}`).expect(200);
  assert.equal(cp.body.spec.mode, '2.5d');
  assert.equal(cp.body.card.mode, '2.5d');
  const files = await request(hub.app).get(`/v1/checkpoints/${id}/files`).expect(200);
  assert.deepEqual(files.body.files.map((f: { name: string }) => f.name).sort(), ['card.json', 'model.onnx', 'model.pth', 'model.py', 'model.safetensors']);
  const py = files.body.files.find((f: { name: string }) => f.name === 'model.py') as { url: string };
  const source = await request(hub.app).get(py.url).buffer(true).parse(binary).expect(200);
  assert.match((source.body as Buffer).toString('utf8'), /^class Model\(nn\.Module\):$/m, 'model.py, the network as PyTorch source');
  const st = files.body.files.find((f: { name: string }) => f.name === 'model.safetensors') as { size: number; sha256: string; url: string };
  const full = await request(hub.app).get(st.url).buffer(true).parse(binary).expect(200);
  assert.equal(full.headers['etag'], `"${st.sha256}"`);
  assert.equal(full.headers['repr-digest'], `sha-256=:${Buffer.from(st.sha256, 'hex').toString('base64')}:`);
  assert.match(full.headers['content-disposition'] ?? '', /attachment; filename="resnet18-2.5d-model.safetensors"/);
  assert.equal(sha256(full.body as Buffer), st.sha256);
  const part = await request(hub.app).get(st.url).set('Range', 'bytes=10-99').buffer(true).parse(binary).expect(206);
  assert.equal(part.headers['content-range'], `bytes 10-99/${st.size}`);
  assert.deepEqual(part.body, (full.body as Buffer).subarray(10, 100));
  const tail = await request(hub.app).get(st.url).set('Range', `bytes=${st.size - 5}-`).buffer(true).parse(binary).expect(206);
  assert.equal((tail.body as Buffer).length, 5);
  await request(hub.app).get(st.url).set('If-None-Match', `"${st.sha256}"`).expect(304);
  const head = await request(hub.app).head(st.url).expect(200);
  assert.equal(head.headers['content-length'], String(st.size));
  const out = await request(hub.app).get(st.url).set('Range', `bytes=${st.size}-`).expect(416);
  assert.equal(out.body.code, 'RANGE_NOT_SATISFIABLE');
  assert.equal(out.headers['content-range'], `bytes */${st.size}`);
  await request(hub.app).get(`/v1/checkpoints/${id}/files/nope.bin`).expect(404);
  await request(hub.app).get(`/v1/checkpoints/${'0'.repeat(32)}`).expect(404);
  await request(hub.app).get('/v1/checkpoints/..%2F..%2Fetc').expect(400);
  const list = await request(hub.app).get('/v1/checkpoints').expect(200);
  assert.deepEqual(list.body.checkpoints.map((c: { id: string }) => c.id), [id]);
});

test('the one-line download converts on first request, then serves from the cache', async (t) => {
  const { hub } = await testHub(t);
  const r = await request(hub.app).get('/v1/zoo/torchvision/resnet18/acs/model.onnx').buffer(true).parse(binary).expect(200);
  assert.match(r.headers['content-location'] ?? '', /^\/v1\/checkpoints\/[0-9a-f]{32}\/files\/model\.onnx$/);
  assert.ok((r.body as Buffer).length > 1000);
  const card = await request(hub.app).get('/v1/zoo/torchvision/resnet18/acs/card.json').expect(200);
  const parsed = JSON.parse(card.text) as { mode: string; files: { name: string; size: number; sha256: string }[] };
  assert.equal(parsed.mode, 'acs');
  assert.deepEqual(parsed.files.map((f) => f.name).sort(), ['model.onnx', 'model.pth', 'model.py', 'model.safetensors'], "card.json lists the conversion's files");
  assert.ok(parsed.files.every((f) => f.size > 0 && /^[0-9a-f]{64}$/.test(f.sha256)));
});

test('uploads: streamed, hashed, format-checked; hostile pickles refused; converted like any source', async (t) => {
  const { hub } = await testHub(t, { server: { maxUploadBytes: 1_000_000 } });
  const bytes = readFileSync(fixture('goldens', 'resnet18', 'model.pth'));
  const up = await request(hub.app).post('/v1/uploads?filename=resnet18.pth').set('Content-Type', 'application/octet-stream').send(bytes).expect(201);
  assert.equal(up.body.id, sha256(bytes));
  assert.equal(up.body.format, 'pth');
  await request(hub.app).get(`/v1/uploads/${up.body.id}`).expect(200);
  const evil = await request(hub.app).post('/v1/uploads?filename=x.pth').set('Content-Type', 'application/octet-stream').send(readFileSync(fixture('formats', 'hostile', 'os_system_zip.pth'))).expect(422);
  assert.equal(evil.body.code, 'UNSAFE_PICKLE');
  assert.match(evil.body.detail, /posix\.system/);
  const big = await request(hub.app).post('/v1/uploads').set('Content-Type', 'application/octet-stream').send(Buffer.alloc(1_000_001)).expect(413);
  assert.equal(big.body.code, 'PAYLOAD_TOO_LARGE');
  await request(hub.app).post('/v1/uploads').set('Content-Type', 'text/plain').send('hello').expect(415);
  const job = await request(hub.app).post('/v1/conversions').send({ source: { upload: up.body.id }, mode: 'acs', options: { inChannels: 1 } }).expect(202);
  const done = await finished(hub.app, job.body.id);
  assert.equal(done['status'], 'succeeded');
  await request(hub.app).post('/v1/conversions').send({ source: { upload: 'f'.repeat(64) }, mode: 'acs' }).expect(404);

  // inference on the converted checkpoint
  const id = done['checkpointId'] as string;
  const nifti = readFileSync(fixture('inference', 'ct_phantom.nii.gz'));
  const inf = await request(hub.app).post(`/v1/checkpoints/${id}/infer?topK=3`).set('Content-Type', 'application/gzip').send(nifti).expect(200);
  assert.equal(inf.body.kind, 'classification');
  assert.equal(inf.body.topK.length, 3);
  const expected = JSON.parse(readFileSync(fixture('inference', 'expected.json'), 'utf8')) as { logits: number[] };
  assert.equal(inf.body.topK[0].index, expected.logits.indexOf(Math.max(...expected.logits)), 'the same answer as PyTorch');
  // The comma-separated values as curl sends them (raw commas), and as a browser's URLSearchParams does (%2C): the same answer.
  const raw = await request(hub.app).post(`/v1/checkpoints/${id}/infer?topK=3&window=-1000,400&size=24,24,24&patch=16,16,16`).set('Content-Type', 'application/gzip').send(nifti).expect(200);
  const encoded = await request(hub.app).post(`/v1/checkpoints/${id}/infer?topK=3&window=-1000%2C400&size=24%2C24%2C24&patch=16%2C16%2C16`).set('Content-Type', 'application/gzip').send(nifti).expect(200);
  assert.deepEqual(raw.body.topK, encoded.body.topK);
  await request(hub.app).post(`/v1/checkpoints/${id}/infer?spacing=1.5,1.5,1.5`).set('Content-Type', 'application/gzip').send(nifti).expect(200);
  await request(hub.app).post(`/v1/checkpoints/${id}/infer?patch=16,16`).set('Content-Type', 'application/gzip').send(nifti).expect(400);
  const png = await request(hub.app).post(`/v1/checkpoints/${id}/infer`).set('Accept', 'image/png').set('Content-Type', 'application/gzip').send(nifti).buffer(true).parse(binary).expect(200);
  assert.deepEqual([...(png.body as Buffer).subarray(1, 4)], [0x50, 0x4e, 0x47]);
  const gz = await request(hub.app).post(`/v1/checkpoints/${id}/infer`).set('Accept', 'application/gzip').set('Content-Type', 'application/gzip').send(nifti).expect(406);
  assert.equal(gz.body.code, 'NOT_ACCEPTABLE');
  const junk = await request(hub.app).post(`/v1/checkpoints/${id}/infer`).set('Content-Type', 'application/octet-stream').send(Buffer.from('not a volume at all')).expect(422);
  assert.match(junk.body.code, /^VOLUME_/);

  // KServe v2 on the same checkpoint
  await request(hub.app).get('/v2/health/live').expect(200);
  await request(hub.app).get('/v2/health/ready').expect(200);
  const meta = await request(hub.app).get(`/v2/models/${id}`).expect(200);
  assert.deepEqual(meta.body.inputs, [{ name: 'input', datatype: 'FP32', shape: [-1, 1, -1, -1, -1] }]);
  await request(hub.app).get(`/v2/models/${id}/ready`).expect(200);
  await request(hub.app).get(`/v2/models/${id}/versions/1`).expect(200);
  const missing = await request(hub.app).get(`/v2/models/${id}/versions/2`).expect(404);
  assert.ok(typeof missing.body.error === 'string');
  const shape = [1, 1, 16, 16, 16];
  const data = Array.from({ length: 16 ** 3 }, (_, i) => Math.sin(i));
  const json = await request(hub.app).post(`/v2/models/${id}/infer`).send({ id: 'r1', inputs: [{ name: 'input', shape, datatype: 'FP32', data }] }).expect(200);
  assert.equal(json.body.model_name, id);
  assert.equal(json.body.id, 'r1');
  assert.deepEqual(json.body.outputs[0].shape, [1, 10]);
  const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape, datatype: 'FP32', parameters: { binary_data_size: data.length * 4 } }], outputs: [{ name: 'output', parameters: { binary_data: true } }] }));
  const tensor = Buffer.from(Float32Array.from(data).buffer);
  const bin = await request(hub.app)
    .post(`/v2/models/${id}/infer`)
    .set('Content-Type', 'application/octet-stream')
    .set('Inference-Header-Content-Length', String(header.length))
    .send(Buffer.concat([header, tensor]))
    .buffer(true)
    .parse(binary)
    .expect(200);
  const n = Number(bin.headers['inference-header-content-length']);
  const head = JSON.parse((bin.body as Buffer).subarray(0, n).toString()) as { outputs: { parameters: { binary_data_size: number } }[] };
  assert.equal(head.outputs[0]!.parameters.binary_data_size, 40);
  const logits = new Float32Array((bin.body as Buffer).buffer.slice((bin.body as Buffer).byteOffset + n, (bin.body as Buffer).byteOffset + n + 40));
  json.body.outputs[0].data.forEach((v: number, i: number) => assert.ok(Math.abs(v - logits[i]!) < 1e-5));
  const badShape = await request(hub.app).post(`/v2/models/${id}/infer`).send({ inputs: [{ name: 'input', shape: [1, 1, 2, 2, 2], datatype: 'FP32', data: [1, 2] }] }).expect(400);
  assert.match(badShape.body.error, /needs 8/);
  const badName = await request(hub.app).post(`/v2/models/${id}/infer`).send({ inputs: [{ name: 'x', shape, datatype: 'FP32', data }] }).expect(400);
  assert.match(badName.body.error, /unknown input 'x'/);
  await request(hub.app).post(`/v2/models/${'a'.repeat(32)}/infer`).send({ inputs: [] }).expect(404);
});

test('cancel a running job; a finished job cannot be cancelled', async (t) => {
  const { hub, zoo } = await testHub(t);
  zoo.fail('/models/resnet152-73fdccd0.pth', { kind: 'trickle', chunk: 4096, intervalMs: 50 });
  const job = await request(hub.app).post('/v1/conversions').send({ source: { zoo: 'torchvision/resnet152.imagenet1k_v1' }, mode: 'acs' }).expect(202);
  const cancelled = await request(hub.app).delete(`/v1/conversions/${job.body.id}`).expect(200);
  assert.equal(cancelled.body.status, 'cancelled');
  const again = await request(hub.app).delete(`/v1/conversions/${job.body.id}`).expect(409);
  assert.equal(again.body.code, 'JOB_FINISHED');
  await request(hub.app).get(`/v1/conversions/${'0'.repeat(32)}`).expect(404);
});

test('safety: API keys for writes, protected reads, URL allow-list and inside addresses', async (t) => {
  const keyed = await testHub(t, { server: { apiKeys: 'k1,k2' } });
  const denied = await request(keyed.hub.app).post('/v1/conversions').send({ source: { zoo: 'torchvision/resnet18' }, mode: 'acs' }).expect(401);
  assert.equal(denied.body.code, 'UNAUTHORIZED');
  assert.match(denied.headers['www-authenticate'] ?? '', /Bearer/);
  await request(keyed.hub.app).post('/v1/conversions').set('Authorization', 'Bearer wrong').send({ source: { zoo: 'torchvision/resnet18' }, mode: 'acs' }).expect(401);
  await request(keyed.hub.app).post('/v1/conversions').set('Authorization', 'Bearer k2').send({ source: { zoo: 'torchvision/resnet18' }, mode: 'acs' }).expect(202);
  await request(keyed.hub.app).get('/v1/zoo').expect(200);
  const kserve = await request(keyed.hub.app).post(`/v2/models/${'a'.repeat(32)}/infer`).send({}).expect(401);
  assert.equal(kserve.body.code, 'UNAUTHORIZED');
  assert.match(kserve.body.detail, /needs an API key/);

  const locked = await testHub(t, { server: { apiKeys: 'k1', protectReads: true } });
  await request(locked.hub.app).get('/v1/zoo').expect(401);
  await request(locked.hub.app).get('/v1/zoo').set('Authorization', 'Bearer k1').expect(200);

  const strict = await testHub(t, { server: { urlAllowList: 'huggingface.co', allowPrivateUrls: false } });
  const host = await request(strict.hub.app).post('/v1/conversions').send({ source: { url: 'https://evil.example.com/x.pth' }, mode: 'acs' }).expect(403);
  assert.equal(host.body.code, 'URL_NOT_ALLOWED');
  const inside = await testHub(t, { server: { urlAllowList: '127.0.0.1,169.254.169.254', allowPrivateUrls: false } });
  const meta = await request(inside.hub.app).post('/v1/conversions').send({ source: { url: 'http://169.254.169.254/latest/meta-data' }, mode: 'acs' }).expect(403);
  assert.match(meta.body.detail, /private or link-local/);
  const scheme = await request(inside.hub.app).post('/v1/conversions').send({ source: { url: 'file:///etc/passwd' }, mode: 'acs' });
  assert.ok([400, 403].includes(scheme.status));
});

test('a URL whose name resolves to an inside address is refused when the connection is made', async (t) => {
  const { hub } = await testHub(t, { server: { urlAllowList: 'localhost', allowPrivateUrls: false } });
  const r = await request(hub.app).post('/v1/conversions').send({ source: { url: 'http://localhost:65530/model.pth' }, mode: 'acs' }).expect(202);
  const done = await finished(hub.app, r.body.id);
  assert.equal(done['status'], 'failed');
  assert.match(JSON.stringify(done['problem']), /loopback, private or link-local/);
});

test('operations: healthz, readyz, metrics, request ids', async (t) => {
  const { hub } = await testHub(t);
  await request(hub.app).get('/healthz').expect(200, { status: 'ok' });
  const ready = await request(hub.app).get('/readyz').expect(200);
  assert.equal(ready.body.status, 'ready');
  const r = await request(hub.app).get('/v1/zoo').set('X-Request-Id', 'my-request-1').expect(200);
  assert.equal(r.headers['x-request-id'], 'my-request-1');
  const m = await request(hub.app).get('/metrics').expect(200);
  assert.match(m.text, /acs_hub_http_requests_total\{method="GET",route="\/v1\/zoo",status="200"\}/);
  assert.match(m.text, /acs_hub_http_request_duration_seconds_bucket/);
  hub.services.state.shuttingDown = true;
  await request(hub.app).get('/readyz').expect(503);
  const refused = await request(hub.app).post('/v1/conversions').send({ source: { zoo: 'torchvision/resnet18' }, mode: 'acs' }).expect(503);
  assert.equal(refused.body.code, 'SHUTTING_DOWN');
});

function binary(res: request.Response, cb: (err: Error | null, body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => cb(null, Buffer.concat(chunks)));
}

test('S3 store: downloads can be answered with a redirect to a presigned URL', async (t) => {
  const { startS3rver } = await import('../zoo/s3rver.js');
  const { openStorage } = await import('../../zoo/storage/open-storage.js');
  const s3 = await startS3rver(t, ['presign']);
  const { hub, cfg } = await testHub(t, { s3: { url: 's3://presign/hub', endpoint: s3.endpoint, conditionalWrites: 'settle' }, server: { redirectDownloads: true, presignSeconds: 60 } });
  await hub.close();
  const storage = await openStorage(cfg, { credentials: s3.credentials });
  const { createApp } = await import('../../server/app.js');
  const app = await createApp(cfg, { storage });
  t.after(async () => {
    await app.close();
    await storage.close();
  });
  const job = await request(app.app).post('/v1/conversions').send({ source: { zoo: 'torchvision/resnet18' }, mode: 'acs' }).expect(202);
  const done = await finished(app.app, job.body.id);
  assert.equal(done['status'], 'succeeded', JSON.stringify(done['problem']));
  const r = await request(app.app).get(`/v1/checkpoints/${done['checkpointId'] as string}/files/model.onnx`).expect(307);
  const location = r.headers['location'] ?? '';
  assert.ok(location.startsWith(`${s3.endpoint}/presign/hub/conversions/`), location);
  assert.match(location, /X-Amz-Signature=/);
  const bytes = Buffer.from(await (await fetch(location)).arrayBuffer());
  const files = await request(app.app).get(`/v1/checkpoints/${done['checkpointId'] as string}/files`).expect(200);
  assert.equal(sha256(bytes), files.body.files.find((f: { name: string }) => f.name === 'model.onnx').sha256);
});
