import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig, parseS3Url } from '../../server/config.js';
import { tempDir } from '../helpers.js';

test('config: defaults, then the file, then ACS_HUB_* variables, then overrides; frozen', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'hub.json');
  await writeFile(file, JSON.stringify({ dataDir: '/srv/from-file', offline: true, sources: { torchvision: { timeoutMs: 1234 } } }));
  const d = loadConfig({ env: {} });
  assert.equal(d.sources.torchvision.baseUrl, 'https://download.pytorch.org/models');
  assert.equal(d.sources.huggingface.baseUrl, 'https://huggingface.co');
  assert.equal(d.s3.url, '');
  const c = loadConfig({ env: { ACS_HUB_CONFIG: file, ACS_HUB_DATA_DIR: '/srv/from-env', ACS_HUB_TIMEOUT_MS: '999' } });
  assert.equal(c.dataDir, '/srv/from-env');
  assert.equal(c.offline, true);
  assert.equal(c.sources.torchvision.timeoutMs, 999);
  const o = loadConfig({ env: { ACS_HUB_DATA_DIR: '/srv/from-env' }, overrides: { dataDir: '/srv/flag', s3: { url: 's3://bucket/p' } } });
  assert.equal(o.dataDir, '/srv/flag');
  assert.equal(o.s3.url, 's3://bucket/p');
  assert.ok(Object.isFrozen(o) && Object.isFrozen(o.sources.huggingface));
  assert.throws(() => ((o as { dataDir: string }).dataDir = 'x'), TypeError);
});

test('config: HF_ENDPOINT and HF_TOKEN are honoured, the ACS_HUB_ names win', () => {
  let c = loadConfig({ env: { HF_ENDPOINT: 'http://127.0.0.1:9/hf', HF_TOKEN: 'hf_a' } });
  assert.equal(c.sources.huggingface.baseUrl, 'http://127.0.0.1:9/hf');
  assert.equal(c.sources.huggingface.token, 'hf_a');
  c = loadConfig({ env: { HF_ENDPOINT: 'http://a.test', ACS_HUB_HF_ENDPOINT: 'http://b.test', HF_TOKEN: 'x', ACS_HUB_HF_TOKEN: 'y', ACS_HUB_TORCHVISION_URL: 'http://c.test/models' } });
  assert.equal(c.sources.huggingface.baseUrl, 'http://b.test');
  assert.equal(c.sources.huggingface.token, 'y');
  assert.equal(c.sources.torchvision.baseUrl, 'http://c.test/models');
});

test('config: a bad setting is refused with its name', async (t) => {
  const dir = await tempDir(t);
  const bad = (env: Record<string, string>, pattern: RegExp): void => assert.throws(() => loadConfig({ env }), (e: unknown) => e instanceof ConfigError && pattern.test(e.message), String(pattern));
  bad({ ACS_HUB_OFFLINE: 'maybe' }, /ACS_HUB_OFFLINE='maybe' must be a boolean/);
  bad({ ACS_HUB_MAX_DOWNLOAD_BYTES: 'lots' }, /ACS_HUB_MAX_DOWNLOAD_BYTES='lots' must be a number/);
  bad({ ACS_HUB_MAX_DOWNLOAD_BYTES: '0' }, /'download.maxBytes' must be an integer > 0/);
  bad({ ACS_HUB_S3_URL: 'http://bucket' }, /must look like s3:\/\/bucket\/prefix/);
  bad({ ACS_HUB_HF_ENDPOINT: 'ftp://x' }, /'sources.huggingface.baseUrl' must be an http\(s\) URL/);
  bad({ ACS_HUB_S3_CONDITIONAL_WRITES: 'sometimes' }, /'s3.conditionalWrites' must be one of auto, native, settle/);
  bad({ ACS_HUB_SWEEP_AFTER_MS: '60000', ACS_HUB_CLAIM_LEASE_MS: '60000' }, /'sweepAfterMs' must be at least twice 'claims.leaseMs' \(120000\), got 60000/);
  assert.equal(loadConfig({ env: { ACS_HUB_SWEEP_AFTER_MS: '120000' } }).sweepAfterMs, 120_000);
  assert.equal(loadConfig({ env: {} }).sweepAfterMs, 86_400_000, 'a day by default');
  const file = join(dir, 'bad.json');
  await writeFile(file, JSON.stringify({ sources: { torchvison: {} } }));
  bad({ ACS_HUB_CONFIG: file }, /unknown setting 'sources.torchvison'/);
  await writeFile(file, JSON.stringify({ download: { retries: 'three' } }));
  bad({ ACS_HUB_CONFIG: file }, /'download.retries' must be a number/);
  await writeFile(file, '{');
  bad({ ACS_HUB_CONFIG: file }, /config file .*bad\.json/);
  // Names every object inherits are not settings: each is unknown, and nothing reaches Object.prototype.
  for (const [text, name] of [
    ['{"__proto__":{"polluted":1}}', '__proto__'],
    ['{"__proto__":{"__proto__":{"polluted":1}}}', '__proto__'],
    ['{"toString":"x"}', 'toString'],
    ['{"constructor":{"prototype":{"polluted":1}}}', 'constructor'],
    ['{"server":{"__proto__":{"polluted":true}}}', 'server.__proto__'],
    ['{"server":{"hasOwnProperty":1}}', 'server.hasOwnProperty'],
  ] as const) {
    await writeFile(file, text);
    bad({ ACS_HUB_CONFIG: file }, new RegExp(`unknown setting '${name.replace(/[.$]/g, '\\$&')}'$`));
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined, text);
  }
});

test('config: S3 locations split into bucket and prefix', () => {
  assert.deepEqual(parseS3Url('s3://my-bucket/models/v1/'), { bucket: 'my-bucket', prefix: 'models/v1' });
  assert.deepEqual(parseS3Url('s3://my-bucket'), { bucket: 'my-bucket', prefix: '' });
  assert.throws(() => parseS3Url('s3://B/x'), ConfigError);
});

test('config: inference autotune and batching window, on by default, off by ACS_HUB_INFERENCE_AUTOTUNE', () => {
  const d = loadConfig({ env: {} }).inference;
  assert.equal(d.autotune, true);
  assert.equal(d.batchWindowMs, 2);
  assert.equal(d.autotuneMaxMs, 20_000);
  const off = loadConfig({ env: { ACS_HUB_INFERENCE_AUTOTUNE: 'false', ACS_HUB_INFERENCE_BATCH_WINDOW_MS: '0', ACS_HUB_INFERENCE_AUTOTUNE_MAX_MS: '500' } }).inference;
  assert.deepEqual([off.autotune, off.batchWindowMs, off.autotuneMaxMs], [false, 0, 500]);
  assert.throws(() => loadConfig({ env: { ACS_HUB_INFERENCE_BATCH_WINDOW_MS: '-1' } }), /'inference.batchWindowMs' must be an integer >= 0/);
  assert.throws(() => loadConfig({ env: { ACS_HUB_INFERENCE_AUTOTUNE_MAX_MS: '0' } }), /'inference.autotuneMaxMs' must be an integer > 0/);
  assert.throws(() => loadConfig({ env: { ACS_HUB_INFERENCE_AUTOTUNE: 'sometimes' } }), /ACS_HUB_INFERENCE_AUTOTUNE='sometimes' must be a boolean/);
});

test('config: intra-op threads spin between operators by default, not with ACS_HUB_INFERENCE_SPINNING=false', () => {
  assert.equal(loadConfig({ env: {} }).inference.spinning, true);
  assert.equal(loadConfig({ env: { ACS_HUB_INFERENCE_SPINNING: 'false' } }).inference.spinning, false);
  assert.throws(() => loadConfig({ env: { ACS_HUB_INFERENCE_SPINNING: 'a little' } }), /ACS_HUB_INFERENCE_SPINNING='a little' must be a boolean/);
});
