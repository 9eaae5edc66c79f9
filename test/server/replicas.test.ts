/**
 * Two real server processes sharing one bucket on the S3-protocol server, asked for the same
 * conversion at the same moment: the zoo file is downloaded once, the conversion is published
 * once, and both replicas serve it.
 */
import assert from 'node:assert/strict';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { join } from 'node:path';
import { test } from 'node:test';
import { sha256, tempDir } from '../helpers.js';
import { startFakeZoo, TEST_CATALOGUE } from '../zoo/fake-zoo.js';
import { startS3rver } from '../zoo/s3rver.js';
import { startServer } from './serve.js';

interface JobView {
  id: string;
  status: string;
  checkpointId?: string;
  cached?: boolean;
  createdAt?: string;
  finishedAt?: string;
  problem?: unknown;
}

async function finished(url: string, id: string): Promise<JobView> {
  for (let i = 0; i < 600; i++) {
    const j = (await (await fetch(`${url}/v1/conversions/${id}`)).json()) as JobView;
    if (j.status !== 'queued' && j.status !== 'running') return j;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`job ${id} did not finish`);
}

test('two replicas on one bucket, asked for one conversion at once: one download, one conversion, both serve it', async (t) => {
  const zoo = await startFakeZoo(t);
  const s3 = await startS3rver(t, ['acs-hub']);
  const dir = await tempDir(t);
  const env = (name: string) => ({
    ...s3.env,
    ACS_HUB_S3_URL: 's3://acs-hub/replicas',
    ACS_HUB_S3_ENDPOINT: s3.endpoint,
    ACS_HUB_DATA_DIR: join(dir, name),
    ACS_HUB_CATALOGUE: TEST_CATALOGUE,
    ACS_HUB_TORCHVISION_URL: `${zoo.origin}/models`,
    ACS_HUB_LOG_LEVEL: 'warn',
    ACS_HUB_CLAIM_SETTLE_MS: '50',
    ACS_HUB_CLAIM_POLL_MS: '50',
    ACS_HUB_THREADS: '1',
  });
  const [a, b] = (await Promise.all([startServer(t, env('a')), startServer(t, env('b'))])).map((s) => s.url) as [string, string];
  // A slow download keeps the first claim held while the other replica arrives.
  const file = '/models/resnet18-0da4b633.pth';
  zoo.fail(file, { kind: 'trickle', chunk: 32 * 1024, intervalMs: 60 });

  const body = JSON.stringify({ source: { zoo: 'torchvision/resnet18' }, mode: 'acs' });
  const post = async (url: string) => {
    const res = await fetch(`${url}/v1/conversions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
    assert.ok(res.status === 202 || res.status === 200, `POST answered ${res.status}`);
    return (await res.json()) as JobView;
  };
  const [ja, jb] = await Promise.all([post(a), post(b)]);
  const [fa, fb] = await Promise.all([finished(a, ja.id), finished(b, jb.id)]);
  assert.equal(fa.status, 'succeeded', JSON.stringify(fa.problem));
  assert.equal(fb.status, 'succeeded', JSON.stringify(fb.problem));
  assert.equal(fa.checkpointId, fb.checkpointId, 'one checkpoint');
  assert.deepEqual([fa.cached, fb.cached].sort(), [false, true], 'one replica converted, the other found it published');
  assert.equal(zoo.hits(file).length, 1, 'the zoo file was downloaded once');
  const [producer, waiter] = fa.cached ? [fb, fa] : [fa, fb];
  assert.ok(Date.parse(waiter.createdAt!) < Date.parse(producer.finishedAt!), 'the second request arrived while the first was still converting');

  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: s3.credentials });
  t.after(() => client.destroy());
  const listed = await client.send(new ListObjectsV2Command({ Bucket: 'acs-hub', Prefix: 'replicas/' }));
  const cards = (listed.Contents ?? []).map((o) => o.Key!).filter((k) => k.endsWith('/manifest.json'));
  assert.equal(cards.length, 1, `one published conversion: ${cards.join(', ')}`);

  const download = async (url: string) => {
    const res = await fetch(`${url}/v1/checkpoints/${fa.checkpointId!}/files/model.safetensors`);
    assert.equal(res.status, 200);
    return { etag: res.headers.get('etag'), bytes: Buffer.from(await res.arrayBuffer()) };
  };
  const [da, db] = await Promise.all([download(a), download(b)]);
  assert.ok(da.bytes.length > 1000);
  assert.equal(sha256(da.bytes), sha256(db.bytes), 'both replicas serve the same bytes');
  assert.equal(da.etag, `"${sha256(da.bytes)}"`);
  assert.equal(da.etag, db.etag);
});
