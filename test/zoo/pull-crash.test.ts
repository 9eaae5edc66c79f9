import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { openLocalStorage } from '../../zoo/storage/local.js';
import { CLI, sha256, tempDir } from '../helpers.js';
import { spawnNode } from './child.js';
import { fixtureBytes, startFakeZoo, TEST_CATALOGUE } from './fake-zoo.js';

const ID = 'torchvision/resnet152.imagenet1k_v1';
const PATH = '/models/resnet152-73fdccd0.pth';

test('pull: SIGKILL half-way through a slow download leaves nothing visible; the next start resumes and finishes', async (t) => {
  const zoo = await startFakeZoo(t);
  const data = await tempDir(t);
  const env = {
    ACS_HUB_CATALOGUE: TEST_CATALOGUE,
    ACS_HUB_TORCHVISION_URL: `${zoo.origin}/models`,
    ACS_HUB_DATA_DIR: data,
    ACS_HUB_DOWNLOAD_BACKOFF_MS: '20',
  };
  zoo.fail(PATH, { kind: 'trickle', chunk: 8192, intervalMs: 30 });
  const first = spawnNode([CLI, 'pull', ID, '--json'], env);
  await first.waitFor((l) => l['event'] === 'progress' && (l['bytes'] as number) >= 40_000);
  first.proc.kill('SIGKILL');
  assert.equal(await first.exited, 'SIGKILL');

  const storage = await openLocalStorage({ root: join(data, 'objects') });
  const visible = [];
  for await (const o of storage.list()) if (!o.key.startsWith('claims/')) visible.push(o.key);
  assert.deepEqual(visible, [], 'no blob and no index record after the kill');
  const staged = await readdir(join(data, 'staging'));
  assert.ok(staged.includes('torchvision--resnet152.imagenet1k_v1.partial'), staged.join(','));
  const partial = (await stat(join(data, 'staging', 'torchvision--resnet152.imagenet1k_v1.partial'))).size;
  assert.ok(partial >= 40_000);

  const second = spawnNode([CLI, 'pull', ID, '--json'], env);
  const done = await second.waitFor((l) => l['event'] === 'done');
  assert.equal(await second.exited, 0, second.stderr());
  const bytes = fixtureBytes('resnet18_tiny.legacy.pth');
  assert.equal(done['sha256'], sha256(bytes));
  const hits = zoo.hits(PATH);
  assert.equal(hits.length, 2);
  const from = Number(/^bytes=(\d+)-$/.exec(hits[1]!.headers.range ?? '')?.[1]);
  assert.ok(from >= 40_000 && from <= partial, `resumed from ${from}`);
  assert.equal(hits[1]!.status, 206);
  assert.deepEqual(await readdir(join(data, 'staging')), []);
  const objects = [];
  for await (const o of storage.list()) objects.push(o.key);
  assert.deepEqual(objects.sort(), [`blobs/sha256/${sha256(bytes)}`, `index/sources/${ID}.json`]);
});
