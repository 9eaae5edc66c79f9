import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startFakeZoo, TEST_CATALOGUE } from './fake-zoo.js';
import { startS3rver } from './s3rver.js';
import { CLI, tempDir } from '../helpers.js';
import { runCli, spawnNode } from './child.js';

const cli = (args: string[]) => runCli(CLI, args);

test('cli zoo: list filters by family and licence; --json is machine-readable', async () => {
  let r = await cli(['zoo', 'list', '--family', 'densenet']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /torchvision\/densenet121\.imagenet1k_v1/);
  assert.doesNotMatch(r.stdout, /resnet/);
  r = await cli(['zoo', 'list', '--licence', 'apache-2.0', '--json']);
  const models = JSON.parse(r.stdout) as { id: string; licence: string }[];
  assert.ok(models.length >= 4);
  assert.ok(models.every((m) => m.licence === 'Apache-2.0'));
  assert.ok(models.some((m) => m.id === 'torchxrayvision/resnet50-res512-all'));
});

test('cli zoo: show resolves aliases and prints the labels with --json', async () => {
  let r = await cli(['zoo', 'show', 'torchvision/resnet50']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /resnet50-11ad3fa6\.pth/);
  r = await cli(['zoo', 'show', 'torchvision/efficientnet_b0', '--json']);
  const e = JSON.parse(r.stdout) as { url: string; labels: string[] };
  assert.equal(e.url, 'https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth');
  assert.equal(e.labels.length, 1000);
  r = await cli(['zoo', 'show', 'torchvision/deeplabv3_resnet50']);
  assert.match(r.stdout, /deeplabv3_resnet50_coco-cd0a2569\.pth/);
  assert.match(r.stdout, /mIoU 66\.4, pixel acc 92\.4/);
  assert.match(r.stdout, /task +segmentation/);
  r = await cli(['zoo', 'show', 'torchvision/resnet51']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unknown zoo model 'torchvision\/resnet51' \(did you mean/);
  r = await cli(['zoo', 'frob']);
  assert.equal(r.code, 2);
});

test('cli pull: --data and --s3 choose the store; --json prints progress lines then the record', async (t) => {
  const zoo = await startFakeZoo(t);
  const s3 = await startS3rver(t);
  const data = await tempDir(t);
  const env = { ACS_HUB_CATALOGUE: TEST_CATALOGUE, ACS_HUB_HF_ENDPOINT: zoo.origin, ACS_HUB_S3_ENDPOINT: s3.endpoint, ...s3.env };
  const local = spawnNode([CLI, 'pull', 'timm/resnet18.tiny_test', '--json', '--data', data], env);
  const done = await local.waitFor((l) => l['event'] === 'done');
  assert.equal(await local.exited, 0, local.stderr());
  assert.ok(local.lines.some((l) => l['event'] === 'progress' && l['bytes'] === l['total']));
  assert.equal(done['repoCommit'], '0123456789abcdef0123456789abcdef01234567');
  const remote = spawnNode([CLI, 'pull', 'timm/resnet18.tiny_test', '--s3', 's3://acs-hub/cli-test', '--data', data], env);
  assert.equal(await remote.exited, 2, 'one store at a time');
  const viaS3 = spawnNode([CLI, 'pull', 'timm/resnet18.tiny_test', '--s3', 's3://acs-hub/cli-test'], { ...env, ACS_HUB_DATA_DIR: data });
  assert.equal(await viaS3.exited, 0, viaS3.stderr());
  assert.match(String(viaS3.lines.at(-1)?.['text']), /^\s+s3:\/\/acs-hub\/cli-test\/blobs\/sha256\/c77aa61f/);
  const offline = spawnNode([CLI, 'pull', 'torchvision/resnet18', '--offline', '--data', data], env);
  assert.equal(await offline.exited, 1);
  assert.match(offline.stderr(), /not in the cache .* offline mode is on/);
});

test('cli: a bad setting stops start-up with a message naming it', async () => {
  const r = await cli(['zoo', 'list', '--config', TEST_CATALOGUE]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unknown setting 'version'/);
});
