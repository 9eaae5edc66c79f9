/**
 * Air-gapped and offline: `acs-hub pull <id> --from-file` imports a copy obtained elsewhere
 * after the checks a download makes, and a `serve --offline` with no reachable zoo converts
 * it; an upstream's failure is remembered for `download.failureMemoryMs` and answered at once
 * with `Retry-After`, without asking the upstream again.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import request from 'supertest';
import { AcsHubError, makeError } from '../../converters/errors.js';
import { FailureMemory } from '../../zoo/fetch/failure-memory.js';
import { testHub } from '../server/hub.js';
import { cli, fixture, sha256, tempDir } from '../helpers.js';
import { TEST_CATALOGUE } from './fake-zoo.js';

const TINY_PTH = fixture('formats', 'resnet18_tiny.pth');
const TINY_SAFETENSORS = fixture('formats', 'resnet18_tiny.safetensors');

/** `acs-hub pull` on a store in `dir`, with the test catalogue and sources nobody listens on. */
function pull(dir: string, ...args: string[]) {
  return cli(['pull', ...args, '--data', join(dir, 'data')], { env: { ACS_HUB_CATALOGUE: TEST_CATALOGUE, ACS_HUB_TORCHVISION_URL: 'http://127.0.0.1:9/models', ACS_HUB_HF_ENDPOINT: 'http://127.0.0.1:9' } });
}

test('pull --from-file: imported after the hash checks of a download, refused when they fail', async (t) => {
  const dir = await tempDir(t);
  // torch.hub's hash prefix in the name (resnet18-0da4b633.pth): a file that does not match is refused.
  const tampered = Buffer.from(readFileSync(TINY_PTH));
  tampered[tampered.length - 1]! ^= 0xff;
  await writeFile(join(dir, 'tampered.pth'), tampered);
  const bad = await pull(dir, 'torchvision/resnet18', '--from-file', join(dir, 'tampered.pth'));
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /hash prefix/);
  // The Hub entry pins a sha256: another file is refused, the right one imported.
  const wrong = await pull(dir, 'timm/resnet18.tiny_test', '--from-file', TINY_PTH);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /sha256 is [0-9a-f]{64}, but 'timm\/resnet18\.tiny_test' has sha256/);
  // Nothing to check against: refused, rather than taken on trust.
  const unpinned = await pull(dir, 'acme/resnet18.gated', '--from-file', TINY_SAFETENSORS);
  assert.equal(unpinned.code, 1);
  assert.match(unpinned.stderr, /gives no sha256/);

  const ok = await pull(dir, 'torchvision/resnet18', '--from-file', TINY_PTH, '--json');
  assert.equal(ok.code, 0, ok.stderr);
  const done = JSON.parse(ok.stdout.trim().split('\n').pop()!) as { event: string; id: string; sha256: string; cached: boolean };
  assert.deepEqual([done.event, done.id, done.sha256, done.cached], ['done', 'torchvision/resnet18.imagenet1k_v1', sha256(readFileSync(TINY_PTH)), false]);
  const hub = await pull(dir, 'timm/resnet18.tiny_test', '--from-file', TINY_SAFETENSORS);
  assert.equal(hub.code, 0, hub.stderr);
  assert.match(hub.stdout, /^timm\/resnet18\.tiny_test: imported /);

  // serve --offline, with no zoo reachable, converts the imported file.
  const offline = await startOffline(t, dir);
  const res = await fetch(`${offline}/v1/zoo/torchvision/resnet18/acs/model.safetensors`);
  assert.equal(res.status, 200, await res.clone().text());
  assert.ok((await res.arrayBuffer()).byteLength > 1000);
  const notThere = await fetch(`${offline}/v1/zoo/torchvision/densenet121.imagenet1k_v1/acs/model.safetensors`);
  assert.equal(notThere.status, 503);
  assert.equal(((await notThere.json()) as { code: string }).code, 'OFFLINE');
});

/** `acs-hub serve --offline` on the store in `dir`; its URL. */
async function startOffline(t: { after(fn: () => void): void }, dir: string): Promise<string> {
  const { spawn } = await import('node:child_process');
  const { CLI } = await import('../helpers.js');
  const proc = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--offline', '--data', join(dir, 'data')], {
    env: { ...process.env, ACS_HUB_CATALOGUE: TEST_CATALOGUE, ACS_HUB_LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.after(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  let err = '';
  return new Promise<string>((resolve, reject) => {
    proc.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    proc.once('exit', (code) => reject(new Error(`serve --offline exited (${code}): ${err}`)));
  });
}

test('FailureMemory: an upstream failure is answered again, retryable, with the seconds left, until it expires', () => {
  let now = 1_000_000;
  const memory = new FailureMemory({ ttlMs: 30_000, maxEntries: 2, now: () => now });
  const refused = makeError('UPSTREAM_REFUSED', 'http://zoo/a.pth answered 404', { url: 'http://zoo/a.pth', upstreamStatus: 404 });
  memory.remember('http://zoo/a.pth', refused);
  memory.remember('http://zoo/b.pth', new Error('not an upstream failure'));
  memory.remember('http://zoo/c.pth', makeError('STORAGE_FAILED', 'disk full'));
  memory.check('http://zoo/b.pth');
  memory.check('http://zoo/c.pth');
  now += 12_400;
  assert.throws(
    () => memory.check('http://zoo/a.pth'),
    (e: unknown) => {
      assert.ok(e instanceof AcsHubError);
      assert.equal(e.code, 'UPSTREAM_REFUSED');
      assert.equal(e.retryable, true);
      assert.equal((e as unknown as { retryAfterSeconds: number }).retryAfterSeconds, 18);
      assert.equal((e as unknown as { upstreamStatus: number }).upstreamStatus, 404);
      assert.match(e.message, /answered 404 \(failed 12 s ago; not asked again for 18 s\)/);
      return true;
    },
  );
  now += 17_600;
  memory.check('http://zoo/a.pth');
  // Bounded: the oldest URL is forgotten first.
  for (const u of ['u1', 'u2', 'u3']) memory.remember(u, refused);
  memory.check('u1');
  assert.throws(() => memory.check('u3'));
  const off = new FailureMemory({ ttlMs: 0 });
  off.remember('u', refused);
  off.check('u');
});

test('the server remembers a zoo that failed: the next request is answered at once with Retry-After, the zoo not asked', async (t) => {
  const { hub, zoo } = await testHub(t);
  const path = '/models/resnet18-0da4b633.pth';
  zoo.fail(path, { kind: 'status', status: 503 }, { kind: 'status', status: 503 });
  const first = await request(hub.app).get('/v1/zoo/torchvision/resnet18/acs/model.safetensors').expect(502);
  assert.equal(first.body.code, 'UPSTREAM_UNAVAILABLE');
  const asked = zoo.hits(path).length;
  assert.equal(asked, 2);
  const second = await request(hub.app).get('/v1/zoo/torchvision/resnet18/acs/model.safetensors').expect(502);
  assert.equal(second.body.code, 'UPSTREAM_UNAVAILABLE');
  assert.equal(second.body.retryable, true);
  assert.match(second.headers['content-type'] ?? '', /application\/problem\+json/);
  const retryAfter = Number(second.headers['retry-after']);
  assert.ok(retryAfter >= 1 && retryAfter <= 30, `Retry-After: ${second.headers['retry-after']}`);
  assert.equal(zoo.hits(path).length, asked, 'the zoo was asked again');
  // A conversion job of the same entry fails the same way, at once.
  const job = await request(hub.app).post('/v1/conversions').send({ source: { zoo: 'torchvision/resnet18' }, mode: 'acs' }).expect(202);
  for (let i = 0; i < 200; i++) {
    const r = await request(hub.app).get(`/v1/conversions/${job.body.id}`).expect(200);
    if (r.body.finishedAt) {
      assert.equal(r.body.problem?.code, 'UPSTREAM_UNAVAILABLE', JSON.stringify(r.body));
      break;
    }
    await new Promise((res) => setTimeout(res, 25));
  }
  assert.equal(zoo.hits(path).length, asked);
});

test('download.failureMemoryMs: once it has passed, the upstream is asked again', async (t) => {
  const { hub, zoo } = await testHub(t, { download: { failureMemoryMs: 200 } });
  const path = '/models/resnet18-0da4b633.pth';
  zoo.fail(path, { kind: 'status', status: 404 });
  const first = await request(hub.app).get('/v1/zoo/torchvision/resnet18/acs/card.json').expect(502);
  assert.equal(first.body.code, 'UPSTREAM_REFUSED');
  const remembered = await request(hub.app).get('/v1/zoo/torchvision/resnet18/acs/card.json').expect(502);
  assert.equal(remembered.headers['retry-after'], '1');
  await new Promise((res) => setTimeout(res, 250));
  await request(hub.app).get('/v1/zoo/torchvision/resnet18/acs/card.json').expect(200);
  assert.equal(zoo.hits(path).filter((h) => h.status === 200).length, 1);
});
