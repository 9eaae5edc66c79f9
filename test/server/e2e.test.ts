/**
 * End to end: the real server process (`acs-hub serve --port 0`), its store on a real
 * S3-protocol server, the loopback zoo; driven by the curl binary (the README's session) and
 * by the typed client. Then a graceful shutdown while a slow download is in flight.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { createAcsHubClient } from '../../server/api/client.js';
import { fixture, sha256, tempDir } from '../helpers.js';
import { startFakeZoo, TEST_CATALOGUE } from '../zoo/fake-zoo.js';
import { startS3rver } from '../zoo/s3rver.js';
import { startServer } from './serve.js';

const exec = promisify(execFile);
const KEY = 'e2e-secret-key';

async function curl(args: string[]): Promise<string> {
  const { stdout } = await exec('curl', ['-sS', '--fail-with-body', ...args], { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

test('e2e: real server on S3, the README curl session and the typed client, then a graceful shutdown', async (t) => {
  const zoo = await startFakeZoo(t);
  const s3 = await startS3rver(t, ['acs-hub']);
  const dir = await tempDir(t);
  const server = await startServer(t, {
    ...s3.env,
    ACS_HUB_S3_URL: 's3://acs-hub/e2e',
    ACS_HUB_S3_ENDPOINT: s3.endpoint,
    ACS_HUB_DATA_DIR: join(dir, 'data'),
    ACS_HUB_CATALOGUE: TEST_CATALOGUE,
    ACS_HUB_TORCHVISION_URL: `${zoo.origin}/models`,
    ACS_HUB_API_KEYS: KEY,
    ACS_HUB_LOG_LEVEL: 'warn',
    ACS_HUB_CLAIM_SETTLE_MS: '50',
    ACS_HUB_CLAIM_POLL_MS: '50',
    ACS_HUB_THREADS: '1',
    ACS_HUB_SHUTDOWN_GRACE_MS: '20000',
  });
  const { url } = server;
  const auth = ['-H', `Authorization: Bearer ${KEY}`];

  // 1. the catalogue
  const zooList = JSON.parse(await curl([`${url}/v1/zoo?family=resnet`])) as { models: { id: string }[] };
  assert.ok(zooList.models.some((m) => m.id === 'torchvision/resnet18.imagenet1k_v1'));

  // 2. a conversion job, and its progress as Server-Sent Events
  const job = JSON.parse(await curl([...auth, '-H', 'Content-Type: application/json', '-d', '{"source":{"zoo":"torchvision/resnet18"},"mode":"acs"}', `${url}/v1/conversions`])) as {
    id: string;
    links: { events: string };
  };
  const events = await curl(['-N', `${url}${job.links.events}`]);
  assert.match(events, /event: done/);
  const done = JSON.parse(events.split('event: done\ndata: ')[1]!.split('\n')[0]!) as { checkpointId: string; links: { files: Record<string, string> } };

  // 3. a download, broken off and resumed with curl -C -
  const fileUrl = `${url}${done.links.files['model.safetensors']}`;
  const files = JSON.parse(await curl([`${url}/v1/checkpoints/${done.checkpointId}/files`])) as { files: { name: string; sha256: string; size: number }[] };
  const meta = files.files.find((f) => f.name === 'model.safetensors')!;
  const out = join(dir, 'model.safetensors');
  await curl(['-r', '0-999', '-o', out, fileUrl]);
  assert.equal(readFileSync(out).length, 1000);
  await curl(['-C', '-', '-o', out, fileUrl]);
  assert.equal(sha256(readFileSync(out)), meta.sha256, 'resumed download is byte-exact');
  const headers = await curl(['-sI', fileUrl]);
  assert.match(headers, new RegExp(`etag: "${meta.sha256}"`, 'i'));
  assert.match(headers, /repr-digest: sha-256=:/i);

  // 4. the typed client: upload a checkpoint, convert it, infer on a NIfTI volume
  const hub = createAcsHubClient(url, { apiKey: KEY });
  const list = await hub.GET('/v1/zoo', { params: { query: { q: 'densenet' } } });
  assert.equal(list.data?.models[0]?.arch, 'densenet121');
  const pth = readFileSync(fixture('goldens', 'resnet18', 'model.pth'));
  const upload = JSON.parse(await curl([...auth, '-H', 'Content-Type: application/octet-stream', '--data-binary', `@${fixture('goldens', 'resnet18', 'model.pth')}`, `${url}/v1/uploads?filename=resnet18.pth`])) as { id: string };
  assert.equal(upload.id, sha256(pth));
  const created = await hub.POST('/v1/conversions', { body: { source: { upload: upload.id }, mode: 'acs', options: { inChannels: 1 } } });
  assert.equal(created.response.status, 202);
  let checkpointId: string | undefined;
  for (let i = 0; i < 200 && !checkpointId; i++) {
    const j = await hub.GET('/v1/conversions/{jobId}', { params: { path: { jobId: created.data!.id } } });
    if (j.data?.status === 'failed') assert.fail(JSON.stringify(j.data.problem));
    checkpointId = j.data?.checkpointId;
    if (!checkpointId) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(checkpointId);
  const card = await hub.GET('/v1/checkpoints/{checkpointId}', { params: { path: { checkpointId } } });
  assert.equal((card.data?.card as { mode?: string }).mode, 'acs');
  const answer = JSON.parse(await curl([...auth, '--data-binary', `@${fixture('inference', 'ct_phantom.nii.gz')}`, '-H', 'Content-Type: application/gzip', `${url}/v1/checkpoints/${checkpointId}/infer?topK=3`])) as {
    kind: string;
    topK: { index: number }[];
  };
  const expected = JSON.parse(readFileSync(fixture('inference', 'expected.json'), 'utf8')) as { logits: number[] };
  assert.equal(answer.kind, 'classification');
  assert.equal(answer.topK[0]!.index, expected.logits.indexOf(Math.max(...expected.logits)));

  // 5. KServe v2
  const input = { inputs: [{ name: 'input', shape: [1, 1, 8, 8, 8], datatype: 'FP32', data: Array.from({ length: 512 }, (_, i) => (i % 7) / 7) }] };
  const v2 = JSON.parse(await curl([...auth, '-H', 'Content-Type: application/json', '-d', JSON.stringify(input), `${url}/v2/models/${checkpointId}/infer`])) as { outputs: { shape: number[] }[] };
  assert.deepEqual(v2.outputs[0]!.shape, [1, 10]);
  const denied = await exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', '-H', 'Content-Type: application/json', '-d', '{}', `${url}/v1/conversions`]);
  assert.equal(denied.stdout, '401');

  // 6. graceful shutdown: a slow download in flight finishes; then the process exits 0
  const onnx = files.files.find((f) => f.name === 'model.onnx')!;
  const slowOut = join(dir, 'slow.onnx');
  const slow = exec('curl', ['-sS', '--limit-rate', `${Math.max(20_000, Math.ceil(onnx.size / 3))}`, '-o', slowOut, `${url}/v1/checkpoints/${done.checkpointId}/files/model.onnx`]);
  await new Promise((r) => setTimeout(r, 400));
  server.proc.kill('SIGTERM');
  await slow;
  assert.equal(sha256(readFileSync(slowOut)), onnx.sha256, 'the in-flight download completed');
  const [code] = (await server.exited) as [number | null];
  assert.equal(code, 0, server.stderr());
});
