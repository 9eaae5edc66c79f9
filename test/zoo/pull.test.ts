import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { findModel, loadCatalogue } from '../../zoo/catalogue.js';
import { IntegrityError, OfflineError, UpstreamError, UpstreamRefusedError, DownloadTooLargeError } from '../../zoo/errors.js';
import type { DownloadProgress } from '../../zoo/fetch/download-file.js';
import { downloadFile } from '../../zoo/fetch/download-file.js';
import { listCached } from '../../zoo/list-cached.js';
import { pullModel, type PullModelParams } from '../../zoo/pull-model.js';
import { blobKey } from '../../zoo/store.js';
import { openLocalStorage } from '../../zoo/storage/local.js';
import { readAll } from '../../zoo/storage/storage.js';
import { sha256, tempDir } from '../helpers.js';
import { fixtureBytes, GATED_TOKEN, startFakeZoo, TEST_CATALOGUE, type FakeZoo } from './fake-zoo.js';

const catalogue = await loadCatalogue({ path: TEST_CATALOGUE });
const FAST = { retries: 3, backoffMs: 20, maxBackoffMs: 100 };

type T = { after(fn: () => Promise<void>): void };

async function setup(t: T) {
  const zoo = await startFakeZoo(t);
  const dir = await tempDir(t);
  const storage = await openLocalStorage({ root: join(dir, 'objects') });
  const base = (id: string, extra: Partial<PullModelParams> = {}): PullModelParams => ({
    entry: findModel(catalogue, id),
    storage,
    sources: zoo.sources,
    stagingDir: join(dir, 'staging'),
    download: FAST,
    claims: { pollMs: 10, settleMs: 10 },
    ...extra,
  });
  return { zoo, dir, storage, base };
}

async function visibleKeys(storage: { list(p?: string): AsyncIterable<{ key: string }> }): Promise<string[]> {
  const out = [];
  for await (const o of storage.list()) out.push(o.key);
  return out.sort();
}

test('pull: a torchvision file is fetched, checked against the hash prefix in its name, stored by sha256 and indexed', async (t) => {
  const { zoo, storage, base } = await setup(t);
  const events: DownloadProgress[] = [];
  const r = await pullModel(base('torchvision/resnet18', { onProgress: (e) => events.push(e) }));
  const bytes = fixtureBytes('resnet18_tiny.pth');
  assert.equal(r.sha256, sha256(bytes));
  assert.ok(r.sha256.startsWith('0da4b633'));
  assert.equal(r.cached, false);
  assert.equal(r.id, 'torchvision/resnet18.imagenet1k_v1');
  assert.equal(r.url, `${zoo.origin}/models/resnet18-0da4b633.pth`);
  assert.deepEqual(await readAll(storage, blobKey(r.sha256)), bytes);
  assert.equal(events.at(-1)?.bytes, bytes.length);
  assert.equal(events.at(-1)?.total, bytes.length);
  const index = await listCached(storage);
  assert.deepEqual(index.sources.map((s) => s.id), ['torchvision/resnet18.imagenet1k_v1']);
  const again = await pullModel(base('torchvision/resnet18.imagenet1k_v1'));
  assert.equal(again.cached, true);
  assert.equal(zoo.hits('/models/resnet18-0da4b633.pth').length, 1);
});

test('pull: a file whose bytes do not match the hash prefix in its name is refused, nothing kept', async (t) => {
  const { zoo, storage, base, dir } = await setup(t);
  await assert.rejects(pullModel(base('torchvision/resnet34.imagenet1k_v1')), (e: unknown) => e instanceof IntegrityError && /deadbeef/.test(e.message));
  assert.equal(zoo.hits('/models/resnet34-deadbeef.pth').length, 1, 'a wrong hash is permanent: no retry');
  assert.deepEqual(await visibleKeys(storage), []);
  assert.deepEqual(await readdir(join(dir, 'staging')).catch(() => []), []);
});

test('pull: corrupted bytes fail the full sha256 from the catalogue', async (t) => {
  const { zoo, storage, base } = await setup(t);
  zoo.fail('/models/densenet121-9c97425b.pth', { kind: 'corrupt' });
  await assert.rejects(pullModel(base('torchvision/densenet121.imagenet1k_v1')), IntegrityError);
  assert.deepEqual(await visibleKeys(storage), []);
  const r = await pullModel(base('torchvision/densenet121.imagenet1k_v1'));
  assert.equal(r.sha256, '9c97425bcb005f03e6425b0068759e28fc34f74070df16b1d46383bfb61154f9', 'a failure does not poison the next pull');
});

test('pull: the Hub resolve URL redirects to the CDN; the commit is recorded and X-Linked-Etag verifies the file', async (t) => {
  const { zoo, base } = await setup(t);
  const r = await pullModel(base('timm/convnext_tiny.fb_in22k_ft_in1k'));
  assert.equal(r.repoCommit, '9652db768d961382dea070578e6e38d85e44ff7b');
  assert.equal(r.sha256, sha256(fixtureBytes('dtypes.safetensors')));
  const cdn = zoo.requests.filter((q) => q.server === 'cdn');
  assert.equal(cdn.length, 1);
  assert.match(cdn[0]!.path, /^\/repos\/[0-9a-f]{64}\?X-Amz-Signature=loopback$/);
});

test('pull: a gated repository needs the token, which never reaches the CDN host', async (t) => {
  const { zoo, base } = await setup(t);
  await assert.rejects(pullModel(base('acme/resnet18.gated')), (e: unknown) => e instanceof UpstreamRefusedError && e.upstreamStatus === 401 && /token/.test(e.message));
  const sources = { ...zoo.sources, huggingface: { ...zoo.sources.huggingface, token: GATED_TOKEN } };
  const r = await pullModel(base('acme/resnet18.gated', { sources }));
  assert.equal(r.sha256, sha256(fixtureBytes('resnet18_tiny.safetensors')));
  const hub = zoo.requests.filter((q) => q.server === 'zoo' && q.path.includes('gated'));
  assert.equal(hub.at(-1)!.headers.authorization, `Bearer ${GATED_TOKEN}`);
  const cdn = zoo.requests.filter((q) => q.server === 'cdn');
  assert.equal(cdn.length, 1);
  assert.equal(cdn[0]!.headers.authorization, undefined, 'credentials dropped on the cross-host redirect');
});

test('pull: a GitHub release asset (TorchXRayVision) follows its redirect', async (t) => {
  const { base } = await setup(t);
  const r = await pullModel(base('torchxrayvision/resnet50-res512-all'));
  assert.equal(r.sha256, sha256(fixtureBytes('wrapped_state_dict.pth')));
});

test('pull: a connection dropped half-way is resumed with Range from where it stopped', async (t) => {
  const { zoo, base } = await setup(t);
  const path = '/models/resnet152-73fdccd0.pth';
  zoo.fail(path, { kind: 'drop', after: 50_000 });
  const r = await pullModel(base('torchvision/resnet152.imagenet1k_v1'));
  assert.equal(r.sha256, sha256(fixtureBytes('resnet18_tiny.legacy.pth')));
  const hits = zoo.hits(path);
  assert.equal(hits.length, 2);
  assert.equal(hits[0]!.headers.range, undefined);
  assert.match(hits[1]!.headers.range ?? '', /^bytes=\d+-$/);
  assert.ok(Number(/\d+/.exec(hits[1]!.headers.range!)![0]) > 0);
  assert.equal(hits[1]!.headers['if-range'], `"${r.sha256}"`);
  assert.equal(hits[1]!.status, 206);
});

test('pull: a server that answers 200 to a range request is restarted from zero cleanly', async (t) => {
  const { zoo, base } = await setup(t);
  const path = '/models/resnet152-73fdccd0.pth';
  zoo.fail(path, { kind: 'drop', after: 60_000 }, { kind: 'ignore-range' });
  const r = await pullModel(base('torchvision/resnet152.imagenet1k_v1'));
  assert.equal(r.sha256, sha256(fixtureBytes('resnet18_tiny.legacy.pth')));
  const hits = zoo.hits(path);
  assert.equal(hits.length, 2);
  assert.ok(hits[1]!.headers.range);
  assert.equal(hits[1]!.status, 200);
});

test('pull: a 503 is retried with backoff, then succeeds', async (t) => {
  const { zoo, base } = await setup(t);
  zoo.fail('/models/resnet18-0da4b633.pth', { kind: 'status', status: 503 });
  const r = await pullModel(base('torchvision/resnet18'));
  assert.equal(r.cached, false);
  assert.deepEqual(zoo.hits('/models/resnet18-0da4b633.pth').map((h) => h.status), [503, 200]);
});

test('pull: 5xx beyond the retry budget is an UpstreamError (retryable), and nothing is visible', async (t) => {
  const { zoo, storage, base } = await setup(t);
  zoo.fail('/models/resnet18-0da4b633.pth', ...Array.from({ length: 4 }, () => ({ kind: 'status' as const, status: 502 })));
  await assert.rejects(pullModel(base('torchvision/resnet18')), (e: unknown) => e instanceof UpstreamError && e.retryable && e.upstreamStatus === 502);
  assert.equal(zoo.hits('/models/resnet18-0da4b633.pth').length, 4);
  assert.deepEqual(await visibleKeys(storage), []);
});

test('pull: a stalled transfer times out and resumes; a slow trickle reports progress as it goes', async (t) => {
  const { zoo, base } = await setup(t);
  const path = '/models/resnet152-73fdccd0.pth';
  zoo.fail(path, { kind: 'stall', after: 30_000 }, { kind: 'trickle', chunk: 40_000, intervalMs: 20 });
  const sources = { ...zoo.sources, torchvision: { ...zoo.sources.torchvision, timeoutMs: 200 } };
  const events: DownloadProgress[] = [];
  const r = await pullModel(base('torchvision/resnet152.imagenet1k_v1', { sources, onProgress: (e) => events.push(e) }));
  assert.equal(r.sha256, sha256(fixtureBytes('resnet18_tiny.legacy.pth')));
  const second = events.filter((e) => e.attempt === 2);
  assert.ok(second.length >= 4, `progress on the trickle: ${second.length} events`);
  assert.ok(second[0]!.resumedFrom >= 30_000);
  assert.match(zoo.hits(path)[1]!.headers.range ?? '', /^bytes=30000-$/);
});

test('pull: the size bound refuses a file before downloading it', async (t) => {
  const { zoo, storage, base } = await setup(t);
  await assert.rejects(pullModel(base('torchvision/resnet18', { download: { ...FAST, maxBytes: 1000 } })), DownloadTooLargeError);
  assert.equal(zoo.hits('/models/resnet18-0da4b633.pth').length, 1);
  assert.deepEqual(await visibleKeys(storage), []);
});

test('pull: revalidation sends If-None-Match; a 304 keeps the cached file', async (t) => {
  const { zoo, base } = await setup(t);
  const first = await pullModel(base('torchvision/resnet18'));
  assert.ok(first.etag);
  const again = await pullModel(base('torchvision/resnet18', { revalidate: true }));
  assert.equal(again.sha256, first.sha256);
  const hits = zoo.hits('/models/resnet18-0da4b633.pth');
  assert.equal(hits.length, 2);
  assert.equal(hits[1]!.headers['if-none-match'], first.etag);
  assert.equal(hits[1]!.status, 304);
});

test('pull: offline mode serves the cache and refuses to fetch', async (t) => {
  const { zoo, base } = await setup(t);
  await assert.rejects(pullModel(base('torchvision/resnet18', { offline: true })), (e: unknown) => e instanceof OfflineError && e.code === 'OFFLINE');
  assert.equal(zoo.requests.length, 0);
  await pullModel(base('torchvision/resnet18'));
  const r = await pullModel(base('torchvision/resnet18', { offline: true }));
  assert.equal(r.cached, true);
  assert.equal(zoo.requests.length, 1);
});

test('pull: ten simultaneous pulls of one model cost one download', async (t) => {
  const { zoo, base } = await setup(t);
  const path = '/models/resnet152-73fdccd0.pth';
  zoo.fail(path, { kind: 'trickle', chunk: 50_000, intervalMs: 10 });
  const results = await Promise.all(Array.from({ length: 10 }, () => pullModel(base('torchvision/resnet152.imagenet1k_v1'))));
  assert.equal(new Set(results.map((r) => r.sha256)).size, 1);
  assert.equal(zoo.hits(path).length, 1);
});

test('pull: simultaneous pulls through two stores on one data directory (two workers) cost one download', async (t) => {
  const { zoo, base, dir } = await setup(t);
  const other = await openLocalStorage({ root: join(dir, 'objects') });
  const path = '/models/resnet152-73fdccd0.pth';
  zoo.fail(path, { kind: 'trickle', chunk: 50_000, intervalMs: 20 });
  const [a, b] = await Promise.all([pullModel(base('torchvision/resnet152.imagenet1k_v1')), pullModel(base('torchvision/resnet152.imagenet1k_v1', { storage: other }))]);
  assert.equal(a.sha256, b.sha256);
  assert.equal(zoo.hits(path).length, 1);
});

test('downloadFile: credentials survive a same-host redirect, and too many redirects are refused', async (t) => {
  const zoo: FakeZoo = await startFakeZoo(t);
  const dir = await tempDir(t);
  const loop = new URL('/loop', zoo.origin).toString();
  const fetchLoop: typeof fetch = async (input) => new Response(null, { status: 302, headers: { location: String(input) } });
  await assert.rejects(downloadFile({ url: loop, dest: join(dir, 'x'), fetch: fetchLoop, maxRedirects: 3 }), (e: unknown) => e instanceof UpstreamRefusedError && /redirects/.test(e.message));
  const seen: (string | null)[] = [];
  const sameHost: typeof fetch = async (input, init) => {
    seen.push(new Headers(init?.headers).get('authorization'));
    return seen.length === 1 ? new Response(null, { status: 307, headers: { location: '/models/resnet18-0da4b633.pth' } }) : fetch(input, init);
  };
  const r = await downloadFile({ url: `${zoo.origin}/start`, dest: join(dir, 'y'), headers: { authorization: 'Bearer t' }, fetch: sameHost });
  assert.equal(r.sha256, sha256(fixtureBytes('resnet18_tiny.pth')));
  assert.deepEqual(seen, ['Bearer t', 'Bearer t']);
});

test('pull: a blob already stored under the pinned sha256 is indexed without a download', async (t) => {
  const { zoo, storage, base } = await setup(t);
  const bytes = fixtureBytes('densenet121_tiny.pth');
  await storage.write(blobKey(sha256(bytes)), bytes);
  const r = await pullModel(base('torchvision/densenet121.imagenet1k_v1'));
  assert.equal(r.sha256, sha256(bytes));
  assert.equal(zoo.requests.length, 0);
});

test('pull: a Hub answer whose X-Linked-Etag contradicts the pinned sha256 is refused before the download', async (t) => {
  const { zoo, base } = await setup(t);
  const entry = findModel(catalogue, 'timm/resnet18.tiny_test');
  await assert.rejects(pullModel(base(entry.id, { entry: { ...entry, sha256: 'f'.repeat(64) } })), (e: unknown) => e instanceof IntegrityError && /announces sha256/.test(e.message));
  assert.equal(zoo.requests.filter((q) => q.server === 'cdn').length, 0);
});
