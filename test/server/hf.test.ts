/**
 * The Hugging Face Hub's read protocol, tested with the real `@huggingface/hub` client against
 * the real app listening on a loopback port, with hostile requests, and with the requests of
 * Python's `hf_hub_download` replayed where a key or a redirecting store is needed (the Python
 * client itself runs in hf-python.test.ts).
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { downloadFile, fileDownloadInfo, fileExists, listFiles, modelInfo, snapshotDownload } from '@huggingface/hub';
import { sha256, tempDir } from '../helpers.js';
import { listeningHub, testHub } from './hub.js';

// @huggingface/hub sends only tokens that start with hf_.
const KEY = 'hf_acs_hub_test_key';

/** The bytes and listing of a checkpoint through the project's own API. */
async function checkpointFile(url: string, id: string, name: string): Promise<{ bytes: Buffer; sha256: string; size: number }> {
  const list = (await (await fetch(`${url}/v1/checkpoints/${id}/files`)).json()) as { files: { name: string; sha256: string; size: number }[] };
  const f = list.files.find((x) => x.name === name);
  assert.ok(f, `${name} is listed`);
  const bytes = Buffer.from(await (await fetch(`${url}/v1/checkpoints/${id}/files/${name}`)).arrayBuffer());
  return { bytes, sha256: f.sha256, size: f.size };
}

/** `get_hf_file_metadata` then `http_get`, request for request, as `hf_hub_download` makes them. */
async function pythonStyleDownload(endpoint: string, repo: string, revision: string, filename: string, headers: Record<string, string> = {}) {
  const first = `${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${encodeURIComponent(filename)}`;
  let url = first;
  let head: Response;
  const hops: number[] = [];
  // HEAD with Accept-Encoding: identity, following relative redirects only.
  for (;;) {
    head = await fetch(url, { method: 'HEAD', redirect: 'manual', headers: { ...headers, 'Accept-Encoding': 'identity', 'User-Agent': 'huggingface_hub/1.0; python/3.11' } });
    hops.push(head.status);
    if (head.status >= 400) return { head, hops };
    const location = head.headers.get('Location');
    if (head.status >= 300 && head.status < 400 && location && !/^[a-z]+:\/\//i.test(location)) {
      const next = new URL(url);
      next.pathname = new URL(location, url).pathname;
      url = next.href;
      continue;
    }
    break;
  }
  const commit = head.headers.get('X-Repo-Commit');
  const etag = (head.headers.get('X-Linked-Etag') ?? head.headers.get('ETag'))?.replace(/^W\//, '').replace(/"/g, '');
  const isRedirect = head.status >= 300 && head.status < 400;
  const size = Number(head.headers.get('X-Linked-Size') ?? (isRedirect ? undefined : head.headers.get('Content-Length')));
  const location = head.headers.get('Location') ?? url;
  assert.match(commit ?? '', /^[0-9a-f]{40}$/, 'X-Repo-Commit: a commit hash');
  assert.ok(etag, 'an ETag');
  assert.ok(Number.isSafeInteger(size), 'a size');
  const get = await fetch(location, { headers: new URL(location).host === new URL(first).host ? headers : {} });
  assert.equal(get.status, 200);
  const bytes = Buffer.from(await get.arrayBuffer());
  assert.equal(bytes.length, size, 'consistency check of http_get: the size announced');
  return { head, hops, commit: commit!, etag, size, bytes, location };
}

test('@huggingface/hub downloads, lists and describes a zoo repository (revision = mode) and a checkpoint repository, byte for byte', async (t) => {
  const { url } = await listeningHub(t);
  const cacheDir = await tempDir(t);

  // downloadFile on the alias converts on first request and follows the redirect to the catalogue id.
  const blob = await downloadFile({ repo: 'torchvision/resnet18', path: 'model.safetensors', revision: 'acs', hubUrl: url });
  assert.ok(blob);
  const got = Buffer.from(await blob.arrayBuffer());
  const checkpoints = (await (await fetch(`${url}/v1/checkpoints`)).json()) as { checkpoints: { id: string; mode: string }[] };
  assert.equal(checkpoints.checkpoints.length, 1);
  const id = checkpoints.checkpoints[0]!.id;
  const own = await checkpointFile(url, id, 'model.safetensors');
  assert.ok(got.equals(own.bytes), 'the same bytes as /v1/checkpoints/{id}/files/model.safetensors');
  assert.equal(sha256(got), own.sha256);

  const info = await fileDownloadInfo({ repo: 'torchvision/resnet18.imagenet1k_v1', path: 'model.onnx', revision: 'acs', hubUrl: url });
  const onnx = await checkpointFile(url, id, 'model.onnx');
  assert.deepEqual({ etag: info?.etag, size: info?.size }, { etag: `"${onnx.sha256}"`, size: onnx.size });
  assert.equal(await fileDownloadInfo({ repo: 'torchvision/resnet18.imagenet1k_v1', path: 'nope.bin', revision: 'acs', hubUrl: url }), null, 'EntryNotFound is null');
  assert.equal(await fileExists({ repo: 'torchvision/resnet18.imagenet1k_v1', path: 'model.pth', revision: 'acs', hubUrl: url }), true);
  assert.equal(await fileExists({ repo: 'torchvision/resnet18.imagenet1k_v1', path: 'weights.bin', revision: 'acs', hubUrl: url }), false);

  const files = [];
  for await (const f of listFiles({ repo: 'torchvision/resnet18.imagenet1k_v1', revision: 'acs', hubUrl: url })) files.push(f);
  const listed = (await (await fetch(`${url}/v1/checkpoints/${id}/files`)).json()) as { files: { name: string; sha256: string; size: number }[] };
  assert.deepEqual(
    files.map((f) => ({ path: f.path, size: f.size, sha256: f.lfs?.oid })).sort((a, b) => a.path.localeCompare(b.path)),
    listed.files.map((f) => ({ path: f.name, size: f.size, sha256: f.sha256 })).sort((a, b) => a.path.localeCompare(b.path)),
  );

  const m = await modelInfo({ name: 'torchvision/resnet18', revision: 'acs', hubUrl: url, additionalFields: ['sha', 'filePaths'] });
  assert.equal(m.name, 'torchvision/resnet18.imagenet1k_v1');
  assert.match(m.sha, /^[0-9a-f]{40}$/);
  assert.ok(m.sha.startsWith(id), 'the commit names the checkpoint');
  assert.deepEqual([...m.filePaths].sort(), listed.files.map((f) => f.name).sort());
  const main = await modelInfo({ name: 'torchvision/resnet18.imagenet1k_v1', hubUrl: url, additionalFields: ['sha'] });
  assert.equal(main.sha, m.sha, 'HEAD (the default) is main, which is acs');

  // A snapshot: model info, the tree at the commit, then every file into the Hub's cache layout.
  const folder = await snapshotDownload({ repo: 'torchvision/resnet18.imagenet1k_v1', revision: 'acs', hubUrl: url, cacheDir });
  assert.ok(folder.endsWith(join('snapshots', m.sha)));
  assert.equal(await readFile(join(cacheDir, 'models--torchvision--resnet18.imagenet1k_v1', 'refs', 'acs'), 'utf8'), m.sha);
  for (const f of listed.files) {
    const bytes = await readFile(join(folder, f.name));
    assert.equal(sha256(bytes), f.sha256, f.name);
    assert.ok((await readlink(join(folder, f.name))).endsWith(f.sha256), 'the blob is named by its sha256');
  }

  // Any converted checkpoint is a repository at main.
  const cp = await downloadFile({ repo: `checkpoints/${id}`, path: 'model.onnx', hubUrl: url });
  assert.ok(cp && Buffer.from(await cp.arrayBuffer()).equals(onnx.bytes));
  const cpInfo = await modelInfo({ name: `checkpoints/${id}`, hubUrl: url, additionalFields: ['sha'] });
  assert.equal(cpInfo.sha, m.sha);
  await assert.rejects(modelInfo({ name: `checkpoints/${id}`, revision: 'i3d', hubUrl: url }), (e: Error & { statusCode?: number }) => e.statusCode === 404 && /one revision, main/.test(e.message));
  await assert.rejects(modelInfo({ name: 'torchvision/nonexistent', hubUrl: url }), (e: Error & { statusCode?: number }) => e.statusCode === 404 && /unknown zoo model/.test(e.message));
});

/** A raw request (no URL normalisation: `..` and encodings are sent as written). */
function raw(url: string, path: string, method = 'GET', headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = httpRequest({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('hostile repository ids, revisions, file names and paths-info bodies: 4xx with the Hub error headers, nothing read outside the store', async (t) => {
  const { url, dir, hub } = await listeningHub(t);
  const secret = 'SECRET-OUTSIDE-THE-STORE';
  await writeFile(join(dir, 'secret.txt'), secret);
  await writeFile(join(dir, 'model.onnx'), secret);
  const ok = await raw(url, '/torchvision/resnet18.imagenet1k_v1/resolve/acs/model.onnx', 'HEAD');
  assert.equal(ok.status, 200);
  const commit = String(ok.headers['x-repo-commit']);
  const long = 'a'.repeat(5000);
  const cases: [string, string, number?][] = [
    ['/torchvision/../resolve/acs/model.onnx', 'RepoNotFound'],
    ['/torchvision/%2e%2e/resolve/acs/model.onnx', 'RepoNotFound'],
    ['/../../resolve/acs/secret.txt', 'RepoNotFound'],
    ['/torchvision%2Fresnet18.imagenet1k_v1/resolve/acs/model.onnx', 'RepoNotFound'],
    ['/torchvision/resnet18.imagenet1k_v1%2F..%2F..%2F/resolve/acs/model.onnx', 'RepoNotFound'],
    [`/torchvision/${long}/resolve/acs/model.onnx`, 'RepoNotFound'],
    [`/${long}/x/resolve/acs/model.onnx`, 'RepoNotFound'],
    ['/torchvision/unknown-net/resolve/acs/model.onnx', 'RepoNotFound', 404],
    ['/checkpoints/0123456789abcdef0123456789abcdef/resolve/main/model.onnx', 'RepoNotFound', 404],
    ['/checkpoints/..%2F..%2Fsecret/resolve/main/model.onnx', 'RepoNotFound'],
    ['/torchvision/resnet18.imagenet1k_v1/resolve/v2.0/model.onnx', 'RevisionNotFound', 404],
    ['/torchvision/resnet18.imagenet1k_v1/resolve/refs%2Fpr%2F1/model.onnx', 'RevisionNotFound'],
    [`/torchvision/resnet18.imagenet1k_v1/resolve/${'f'.repeat(40)}/model.onnx`, 'RevisionNotFound', 404],
    [`/torchvision/resnet18.imagenet1k_v1/resolve/${long}/model.onnx`, 'RevisionNotFound'],
    ['/torchvision/resnet18.imagenet1k_v1/resolve/acs/manifest.json', 'EntryNotFound', 404],
    ['/torchvision/resnet18.imagenet1k_v1/resolve/acs/secret.txt', 'EntryNotFound', 404],
    ['/torchvision/resnet18.imagenet1k_v1/resolve/acs/..%2F..%2F..%2Fsecret.txt', 'EntryNotFound'],
    ['/torchvision/resnet18.imagenet1k_v1/resolve/acs/%2e%2e', 'EntryNotFound'],
    ['/torchvision/resnet18.imagenet1k_v1/resolve/acs/sub/model.onnx', 'EntryNotFound', 404],
    [`/torchvision/resnet18.imagenet1k_v1/resolve/acs/${long}`, 'EntryNotFound'],
    ['/api/models/torchvision/resnet18.imagenet1k_v1/revision/nope', 'RevisionNotFound', 404],
    ['/api/models/torchvision/resnet18.imagenet1k_v1/tree/nope', 'RevisionNotFound', 404],
    ['/api/models/torchvision%2F..%2F..', 'RepoNotFound'],
    ['/api/models/only-one-part', 'RepoNotFound', 404],
    [`/api/models/${long}/x`, 'RepoNotFound'],
  ];
  for (const [path, hubCode, status] of cases) {
    for (const method of path.startsWith('/api/') ? ['GET'] : ['GET', 'HEAD']) {
      const r = await raw(url, path, method);
      assert.ok(r.status >= 400 && r.status < 500, `${method} ${path.slice(0, 120)}: ${r.status} ${r.body.slice(0, 200)}`);
      if (status) assert.equal(r.status, status, `${method} ${path.slice(0, 120)}`);
      assert.equal(r.headers['x-error-code'], hubCode, `${method} ${path.slice(0, 120)}: ${r.body.slice(0, 300)}`);
      assert.ok(String(r.headers['x-error-message'] ?? '').length > 0);
      assert.ok(!r.body.includes(secret));
      if (method === 'GET') {
        assert.match(String(r.headers['content-type']), /^application\/json/);
        const body = JSON.parse(r.body) as { error: string; code: string };
        assert.ok(body.error.length > 0 && body.code.length > 0, r.body);
      }
    }
  }
  // An unknown file of a known revision names the commit, so that clients remember it is absent.
  const absent = await raw(url, '/torchvision/resnet18.imagenet1k_v1/resolve/acs/weights.bin', 'HEAD');
  assert.equal(absent.headers['x-repo-commit'], commit);
  // paths-info: at most 100 paths, each a short string; unknown paths are left out.
  const many = await fetch(`${url}/api/models/torchvision/resnet18.imagenet1k_v1/paths-info/acs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ paths: Array.from({ length: 101 }, (_, i) => `f${i}`) }) });
  assert.equal(many.status, 400);
  assert.ok(many.headers.get('X-Error-Message'));
  const some = await fetch(`${url}/api/models/torchvision/resnet18.imagenet1k_v1/paths-info/acs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ paths: ['../secret.txt', 'model.onnx', 'model.onnx/..'], expand: true }) });
  const entries = (await some.json()) as { path: string; lastCommit: { id: string } }[];
  assert.deepEqual(entries.map((e) => [e.path, e.lastCommit.id]), [['model.onnx', commit]]);

  // The form body huggingface_hub posts: the same bounds as the JSON one, and no more.
  const form = (body: string) => fetch(`${url}/api/models/torchvision/resnet18.imagenet1k_v1/paths-info/acs`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body });
  const listed = async (body: string) => {
    const r = await form(body);
    assert.equal(r.status, 200, body.slice(0, 100));
    return ((await r.json()) as { path: string; lastCommit?: { id: string } }[]).map((e) => [e.path, e.lastCommit?.id]);
  };
  assert.deepEqual(await listed('paths=model.onnx&paths=..%2Fsecret.txt&paths=model.onnx%2F..&expand=True'), [['model.onnx', commit]]);
  assert.deepEqual(await listed('paths=card.json&expand=false'), [['card.json', undefined]]);
  assert.deepEqual(await listed('__proto__=x&constructor=y&paths=model.py'), [['model.py', undefined]]);
  const maxJson = hub.services.cfg.server.maxJsonBytes;
  for (const [body, status, pattern] of [
    [Array.from({ length: 101 }, (_, i) => `paths=f${i}`).join('&'), 400, /paths must NOT have more than 100 items/],
    ['&'.repeat(200_000), 400, /more than 128 fields/],
    [`paths=${'a'.repeat(300)}`, 400, /paths\/0 must NOT have more than 256 characters/],
    ['paths=model.onnx&expand=maybe', 400, /expand must be boolean/],
    ['expand=true', 400, /must have required property 'paths'/],
    [`paths=${'b'.repeat(maxJson)}`, 413, /over the limit of \d+ bytes \(server\.maxJsonBytes\)/],
  ] as const) {
    const r = await form(body);
    const text = await r.text();
    assert.equal(r.status, status, `${body.slice(0, 60)}: ${text.slice(0, 300)}`);
    assert.match(String(r.headers.get('X-Error-Message')), pattern);
    assert.ok(!text.includes(secret));
  }

  // A commit of another repository is not a revision of this one, and converts nothing.
  const produced = async () => (await hub.services.metrics.conversions.get()).values.find((v) => v.labels['result'] === 'produced')?.value ?? 0;
  const count = await produced();
  const other = await raw(url, `/api/models/torchvision/densenet121.imagenet1k_v1/revision/${commit}`);
  assert.equal(other.status, 404);
  assert.equal(other.headers['x-error-code'], 'RevisionNotFound');
  assert.equal(await produced(), count, 'nothing converted for a commit of another repository');
});

test('with keys set: converting through the Hub routes needs a key (401 in the Hub shape); a cached conversion is read without one', async (t) => {
  const { url, hub } = await listeningHub(t, { server: { apiKeys: KEY } });
  const before = await raw(url, '/torchvision/resnet18.imagenet1k_v1/resolve/2.5d/model.onnx', 'GET');
  assert.equal(before.status, 401);
  assert.match(String(before.headers['content-type']), /^application\/json/);
  assert.match((JSON.parse(before.body) as { error: string }).error, /not converted in mode 2\.5d yet; converting it needs an API key/);
  assert.equal((await raw(url, '/api/models/torchvision/resnet18.imagenet1k_v1/revision/2.5d')).status, 401);
  assert.equal((await hub.services.metrics.conversions.get()).values.reduce((a, v) => a + v.value, 0), 0, 'nothing converted');
  await assert.rejects(downloadFile({ repo: 'torchvision/resnet18.imagenet1k_v1', path: 'model.onnx', revision: '2.5d', hubUrl: url }), (e: Error & { statusCode?: number }) => e.statusCode === 401);

  const keyed = await downloadFile({ repo: 'torchvision/resnet18.imagenet1k_v1', path: 'model.onnx', revision: '2.5d', hubUrl: url, accessToken: KEY });
  assert.ok(keyed);
  const converted = await fetch(`${url}/torchvision/resnet18.imagenet1k_v1/resolve/2.5d/model.onnx`);
  assert.equal(converted.status, 200, 'cached now: read without a key');
  const bytes = Buffer.from(await converted.arrayBuffer());
  assert.ok(Buffer.from(await keyed.arrayBuffer()).equals(bytes));
  const d = await pythonStyleDownload(url, 'torchvision/resnet18', '2.5d', 'model.onnx');
  assert.ok(d.bytes!.equals(bytes), 'read without a key once converted');
  const cached = await downloadFile({ repo: 'torchvision/resnet18.imagenet1k_v1', path: 'model.onnx', revision: '2.5d', hubUrl: url });
  assert.ok(cached && Buffer.from(await cached.arrayBuffer()).equals(bytes));
});

test('a store that redirects downloads: HEAD resolve is a 307 to the presigned URL carrying the Hub headers; both clients fetch the bytes from there', async (t) => {
  const { startS3rver } = await import('../zoo/s3rver.js');
  const { openStorage } = await import('../../zoo/storage/open-storage.js');
  const { createApp } = await import('../../server/app.js');
  const s3 = await startS3rver(t, ['hf-redirect']);
  const { hub, cfg } = await testHub(t, { s3: { url: 's3://hf-redirect/hub', endpoint: s3.endpoint, conditionalWrites: 'settle' }, server: { redirectDownloads: true, presignSeconds: 60 } });
  await hub.close();
  const storage = await openStorage(cfg, { credentials: s3.credentials });
  const app = await createApp(cfg, { storage });
  const server = createServer(app.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await app.close();
    await storage.close();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const d = await pythonStyleDownload(url, 'torchvision/resnet18', 'acs', 'model.onnx', { Authorization: 'Bearer anything' });
  assert.deepEqual(d.hops, [307, 307], 'the alias, then the presigned URL (absolute: not followed by the HEAD)');
  assert.ok(d.location!.startsWith(`${s3.endpoint}/hf-redirect/hub/conversions/`), d.location);
  assert.equal(d.head.headers.get('X-Linked-Size'), String(d.bytes!.length));
  assert.equal(d.etag, sha256(d.bytes!));
  const blob = await downloadFile({ repo: 'torchvision/resnet18.imagenet1k_v1', path: 'model.onnx', revision: 'acs', hubUrl: url });
  assert.ok(blob && Buffer.from(await blob.arrayBuffer()).equals(d.bytes!));
});
