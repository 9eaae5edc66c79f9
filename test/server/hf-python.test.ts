/**
 * Python's `huggingface_hub` (the real client, from `.venv`) against a running hub:
 * tools/hf_client/check_hf_client.py downloads a zoo repository in two modes (converting on
 * first request), a snapshot, the model info with file metadata, the file list, paths-info (a
 * form body), `file_exists`, a converted upload as `checkpoints/<id>`, and a download of it
 * resumed with Range after its connection dropped; it loads model.safetensors with
 * `safetensors.torch.load_file` and reports the exceptions of unknown repositories, revisions
 * and files. Every sha256 it reports is compared with the bytes of
 * `/v1/checkpoints/{id}/files/{file}` fetched directly.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import request from 'supertest';
import { DTYPES } from '../../converters/dtypes.js';
import { readPth } from '../../converters/formats/pth.js';
import { commitOf } from '../../server/routes/hf.js';
import { ROOT, sha256, tempDir, widerResnet18 } from '../helpers.js';
import { PYTHON, PYTHON_SETUP_HINT } from '../python.js';
import { finishedJob, listeningHub } from './hub.js';

const exec = promisify(execFile);
const SCRIPT = join(ROOT, 'tools', 'hf_client', 'check_hf_client.py');

interface Downloaded {
  sha256: string;
  size: number;
  commit: string;
}

interface Entry {
  path: string;
  size: number;
  blob_id: string;
  lfs_sha256: string | null;
  last_commit: string | null;
}

interface Raised {
  class: string;
  classes: string[];
  message: string;
}

interface Report {
  downloads: Record<string, Downloaded>;
  tensors: Record<string, { shape: number[]; dtype: string }>;
  snapshot: { commit: string; files: Record<string, string> };
  model_info: { id: string; sha: string; siblings: { name: string; size: number; blob_id: string; lfs: [string, number, number] | null }[] };
  list_repo_files: string[];
  paths_info: Entry[];
  paths_info_one: Entry[];
  file_exists: Record<string, boolean>;
  resumed: Downloaded;
  checkpoint: { 'model.safetensors': Downloaded; sha: string; files: string[] };
  errors: Record<string, Raised | null>;
}

interface Seen {
  method: string;
  path: string;
  status: number;
  range?: string;
  contentType?: string;
}

/** A checkpoint's files, listed and fetched through the project's own API. */
async function checkpointFiles(url: string, id: string): Promise<Map<string, { sha256: string; size: number; bytes: Buffer }>> {
  const list = (await (await fetch(`${url}/v1/checkpoints/${id}/files`)).json()) as { files: { name: string; sha256: string; size: number }[] };
  const files = new Map<string, { sha256: string; size: number; bytes: Buffer }>();
  for (const f of list.files) {
    const res = await fetch(`${url}/v1/checkpoints/${id}/files/${f.name}`);
    assert.equal(res.status, 200, f.name);
    files.set(f.name, { sha256: f.sha256, size: f.size, bytes: Buffer.from(await res.arrayBuffer()) });
  }
  return files;
}

/** The LFS pointer of a file, as the Hub keeps it in git: its size and git's blob id of it. */
function lfsPointer(sha: string, size: number): { size: number; blobId: string } {
  const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha}\nsize ${size}\n`);
  return { size: pointer.length, blobId: createHash('sha1').update(Buffer.concat([Buffer.from(`blob ${pointer.length}\0`), pointer])).digest('hex') };
}

/** Bytes of a cut download that never arrive. */
const LOST = 64 * 1024;

/**
 * A proxy in front of the hub on another loopback port that passes everything through, except
 * the first whole download of `file`: it sends all of that body but the last LOST bytes, then
 * closes the connection.
 */
async function droppingProxy(t: { after(fn: () => Promise<void>): void }, target: string, file: string): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  let dropped = false;
  const server = createServer((req, res) => {
    const upstream = httpRequest(`${target}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
      seen.push({ method: req.method!, path: req.url!, status: answer.statusCode!, range: req.headers.range });
      res.writeHead(answer.statusCode!, answer.headers);
      const cut = !dropped && req.method === 'GET' && req.url!.endsWith(`/${file}`) && answer.statusCode === 200;
      if (!cut) {
        answer.pipe(res);
        return;
      }
      dropped = true;
      const cutAt = Number(answer.headers['content-length']) - LOST;
      let sent = 0;
      answer.on('data', (chunk: Buffer) => {
        if (sent >= cutAt) return;
        const part = chunk.subarray(0, cutAt - sent);
        sent += part.length;
        if (sent < cutAt) res.write(part);
        else {
          answer.destroy();
          res.write(part, () => res.socket?.destroy());
        }
      });
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

test('huggingface_hub downloads, lists and describes repositories of a running hub byte for byte; its errors are the Hub client exceptions', { timeout: 300_000 }, async (t) => {
  await exec(PYTHON, ['-c', 'import huggingface_hub, safetensors.torch']).catch((err: Error) => assert.fail(`${PYTHON} cannot import huggingface_hub and safetensors: ${err.message}\n${PYTHON_SETUP_HINT}`));
  const { url, server, hub } = await listeningHub(t);
  const seen: Seen[] = [];
  server.on('request', (req, res) => res.on('finish', () => seen.push({ method: req.method!, path: req.url!, status: res.statusCode, range: req.headers.range, contentType: req.headers['content-type'] })));
  const dir = await tempDir(t);

  // A converted upload, to be read as the repository checkpoints/<id>: larger than the client's
  // download chunk (10 MiB), which it must have received whole before it resumes with Range.
  const up = await request(hub.app).post('/v1/uploads?filename=resnet18_wide.safetensors').set('Content-Type', 'application/octet-stream').send(widerResnet18(8)).expect(201);
  const job = (await request(hub.app).post('/v1/conversions').send({ source: { upload: up.body.id }, mode: 'acs' }).expect(202)).body as { id: string };
  const uploaded = (await finishedJob(hub.app, job.id))['checkpointId'] as string;
  assert.match(uploaded, /^[0-9a-f]{32}$/);

  const proxy = await droppingProxy(t, url, 'model.safetensors');
  const jobFile = join(dir, 'job.json');
  await writeFile(jobFile, JSON.stringify({ endpoint: url, repo: 'torchvision/resnet18', modes: ['acs', 'i3d'], checkpoint: uploaded, resume: { endpoint: proxy.url, file: 'model.safetensors', cache: join(dir, 'resume-cache') } }));
  const env: Record<string, string | undefined> = { ...process.env, HF_HOME: join(dir, 'hf-home'), HF_HUB_DISABLE_TELEMETRY: '1', HF_HUB_DISABLE_PROGRESS_BARS: '1' };
  for (const name of ['HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_TOKEN', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE']) delete env[name];
  const run = await exec(PYTHON, [SCRIPT, jobFile], { env, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 }).catch((err: Error & { stderr?: string; stdout?: string }) => {
    assert.fail(`${SCRIPT} failed: ${err.message}\n${err.stderr ?? ''}\n${err.stdout ?? ''}`);
  });
  const report = JSON.parse(run.stdout) as Report;

  // Two modes, two conversions made by the first request of each, two commits.
  const { checkpoints } = (await (await fetch(`${url}/v1/checkpoints`)).json()) as { checkpoints: { id: string; mode: string; source: { id?: string } }[] };
  const zoo = (mode: string) => checkpoints.find((c) => c.source.id === 'torchvision/resnet18.imagenet1k_v1' && c.mode === mode)!.id;
  const [acs, i3d] = [zoo('acs'), zoo('i3d')];
  assert.equal(checkpoints.length, 3, JSON.stringify(checkpoints));
  assert.equal(report.downloads['acs']!.commit, commitOf(acs));
  assert.equal(report.downloads['i3d']!.commit, commitOf(i3d));
  const acsFiles = await checkpointFiles(url, acs);
  const i3dFiles = await checkpointFiles(url, i3d);
  for (const [mode, files] of [['acs', acsFiles], ['i3d', i3dFiles]] as const) {
    const own = files.get('model.safetensors')!;
    assert.equal(report.downloads[mode]!.sha256, sha256(own.bytes), `model.safetensors at ${mode}: the bytes of /v1/checkpoints/{id}/files`);
    assert.equal(report.downloads[mode]!.sha256, own.sha256);
    assert.equal(report.downloads[mode]!.size, own.bytes.length);
  }
  assert.notEqual(report.downloads['acs']!.sha256, report.downloads['i3d']!.sha256);
  // The client followed the alias's relative redirect: HEAD alias 307, HEAD the catalogue id, GET.
  const first = seen.filter((s) => s.path.endsWith('/resolve/acs/model.safetensors'));
  assert.deepEqual(first.map((s) => [s.method, s.path, s.status]), [
    ['HEAD', '/torchvision/resnet18/resolve/acs/model.safetensors', 307],
    ['HEAD', '/torchvision/resnet18.imagenet1k_v1/resolve/acs/model.safetensors', 200],
    ['GET', '/torchvision/resnet18.imagenet1k_v1/resolve/acs/model.safetensors', 200],
  ]);

  // safetensors.torch.load_file reads the state dict that model.pth of the same checkpoint holds.
  const pth = readPth(acsFiles.get('model.pth')!.bytes, { file: 'model.pth' }).tensors;
  assert.deepEqual(Object.keys(report.tensors).sort(), [...pth.keys()].sort());
  for (const [name, tensor] of pth) assert.deepEqual(report.tensors[name], { shape: [...tensor.shape], dtype: DTYPES[tensor.dtype].torchDtype }, name);

  // snapshot_download: every file of the revision, at its commit.
  assert.equal(report.snapshot.commit, commitOf(acs));
  assert.deepEqual(Object.keys(report.snapshot.files).sort(), [...acsFiles.keys()].sort());
  for (const [name, f] of acsFiles) assert.equal(report.snapshot.files[name], sha256(f.bytes), `snapshot ${name}`);

  // model_info(files_metadata=True): sizes, LFS sha256 and pointer sizes, git blob ids of the pointers.
  assert.equal(report.model_info.id, 'torchvision/resnet18.imagenet1k_v1');
  assert.equal(report.model_info.sha, commitOf(acs));
  assert.deepEqual(
    report.model_info.siblings.map((s) => [s.name, s.size, s.lfs, s.blob_id]).sort(),
    [...acsFiles].map(([name, f]) => {
      const pointer = lfsPointer(f.sha256, f.size);
      return [name, f.bytes.length, [sha256(f.bytes), f.bytes.length, pointer.size], pointer.blobId];
    }).sort(),
  );
  assert.deepEqual([...report.list_repo_files].sort(), [...acsFiles.keys()].sort());

  // get_paths_info posts a form; unknown paths are left out; expand adds the last commit.
  assert.deepEqual(
    report.paths_info.map((e) => [e.path, e.size, e.lfs_sha256, e.last_commit]),
    ['model.onnx', 'card.json'].map((name) => [name, acsFiles.get(name)!.size, acsFiles.get(name)!.sha256, commitOf(acs)]),
  );
  assert.deepEqual(report.paths_info_one.map((e) => [e.path, e.lfs_sha256, e.last_commit]), [['model.pth', i3dFiles.get('model.pth')!.sha256, null]]);
  const forms = seen.filter((s) => s.method === 'POST' && s.path.includes('/paths-info/'));
  assert.equal(forms.length, 2);
  for (const f of forms) {
    assert.match(f.contentType ?? '', /^application\/x-www-form-urlencoded/);
    assert.equal(f.status, 200);
  }
  assert.deepEqual(report.file_exists, { 'model.onnx': true, 'weights.bin': false });

  // A converted upload is the repository checkpoints/<id> at main.
  const own = await checkpointFiles(url, uploaded);
  const weights = own.get('model.safetensors')!;
  assert.ok(weights.size > 10 * 1024 * 1024 + LOST, `${weights.size} bytes: more than a download chunk`);

  // The dropped download was resumed where the client's whole chunks ended, with Range, and is whole.
  assert.equal(report.resumed.sha256, sha256(weights.bytes));
  const gets = proxy.seen.filter((s) => s.method === 'GET');
  assert.equal(gets.length, 2, JSON.stringify(proxy.seen));
  assert.deepEqual([gets[0]!.status, gets[0]!.range], [200, undefined]);
  assert.equal(gets[1]!.status, 206, JSON.stringify(proxy.seen));
  const from = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
  assert.ok(from > 0 && from <= weights.size - LOST, `resumed with ${gets[1]!.range} of ${weights.size} bytes`);
  assert.equal(report.checkpoint['model.safetensors'].sha256, sha256(weights.bytes));
  assert.equal(report.checkpoint['model.safetensors'].commit, commitOf(uploaded));
  assert.equal(report.checkpoint.sha, commitOf(uploaded));
  assert.deepEqual([...report.checkpoint.files].sort(), [...own.keys()].sort());

  // Errors, as the client raises them.
  const errors = report.errors;
  for (const [call, cls] of [
    ['repository', 'RepositoryNotFoundError'],
    ['info_repository', 'RepositoryNotFoundError'],
    ['revision', 'RevisionNotFoundError'],
    ['info_revision', 'RevisionNotFoundError'],
    ['checkpoint_revision', 'RevisionNotFoundError'],
    ['file', 'EntryNotFoundError'],
  ] as const) {
    assert.ok(errors[call], `${call}: no exception`);
    assert.ok(errors[call]!.classes.includes(cls), `${call}: ${errors[call]!.class} (${errors[call]!.classes.join(', ')}) is not a ${cls}: ${errors[call]!.message}`);
  }
  assert.match(errors['file']!.message, /has no file 'weights\.bin'/);
  assert.deepEqual(seen.filter((s) => s.status >= 500), [], 'no server error');
});
