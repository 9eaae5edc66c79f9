/**
 * Every reported attack, one after the other, against one real `acs-hub serve` process with API
 * keys set: pickle, zip and nesting bombs, volumes whose resampling would explode, KServe bodies
 * and shapes past the cap, a conversion whose output would be huge, models naming the server's
 * files as external data, reads without a key, NaN voxels and broken geometry, an upstream that
 * closes its socket after the body. For each: the refusal (status and code); /healthz asked
 * every 20 ms meanwhile, answering within 250 ms each time; the server's peak memory (VmHWM)
 * less than 1 GB over its idle baseline; and a normal request served afterwards. At the end the
 * key is nowhere in what the process printed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { brokenGeometryNiftis, ctNifti, fixture, tempDir } from '../helpers.js';
import { oneConvExternal, oneConvOnnx } from '../converters/onnx-models.js';
import { deep, deflatedPth, legacyPth, memoFanOut, Program, OP, zipPth } from '../converters/formats/expensive.js';
import { assertNoneHolds, serveCloseDelimited, serveEverywhere, serverFileNeedles, storedFiles } from './origins.js';
import { healthBound, idleWorst, memory, post, probeHealth, problem, startServer, streamPost, type Answer, type ServerProcess } from './serve.js';

const MiB = 1024 * 1024;
const KEY = 'hostile-test-key-3e9d1a';
const WRONG = 'not-the-key-b7c204';
const AUTH = { Authorization: `Bearer ${KEY}` };
/** The server's element budget for KServe tensors, lowered so that its body cap (about 3 MiB) is quick to stream past. */
const KSERVE_ELEMENTS = 65_536;

const cleanups: (() => Promise<void> | void)[] = [];
const scope = { after: (fn: () => Promise<void> | void) => void cleanups.push(fn) };
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

let server: ServerProcess;
let base: string;
let dataDir: string;
/** The converted checkpoint the inference attacks aim at. */
let id: string;
/** Resident memory of the idle server, once warmed up. */
let idle: number;

/** A request of this file's client, with the key unless told otherwise; the answer read whole. */
async function call(path: string, init: RequestInit & { key?: boolean } = {}): Promise<Answer> {
  const { key = true, ...rest } = init;
  const r = await fetch(`${base}${path}`, { ...rest, headers: { ...(key ? AUTH : {}), ...(rest.headers as Record<string, string> | undefined) } });
  return { status: r.status, headers: Object.fromEntries(r.headers), body: Buffer.from(await r.arrayBuffer()).toString('latin1') };
}

const upload = (bytes: Uint8Array, name: string) => post(`${base}/v1/uploads?filename=${name}`, Buffer.from(bytes), AUTH).answer;

/** The query string of `params`, encoded as the API contract wants it. */
const query = (params: Record<string, string>) => `?${new URLSearchParams(params).toString()}`;

const infer = (body: Buffer, query = '', accept = 'application/json') =>
  call(`/v1/checkpoints/${id}/infer${query}`, { method: 'POST', body, headers: { 'Content-Type': 'application/octet-stream', Accept: accept } });

const kserveJson = (body: unknown) => call(`/v2/models/${id}/infer`, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });

/** Assert that `a` is an Open Inference Protocol error (`{ error, code }`) of `status` and `code`; its message. */
function kserveError(a: { status?: number; body: string }, status: number, code: string): string {
  assert.equal(a.status, status, a.body);
  const e = JSON.parse(a.body) as { error: string; code: string };
  assert.equal(e.code, code, a.body);
  return e.error;
}

/** Start a conversion and poll its job until it finishes; its last state. */
async function convert(source: unknown, mode: string, options?: unknown): Promise<{ status: string; checkpointId?: string; problem?: { status: number; code: string; detail: string } }> {
  const started = await call('/v1/conversions', { method: 'POST', body: JSON.stringify({ source, mode, options }), headers: { 'Content-Type': 'application/json' } });
  assert.equal(started.status, 202, started.body);
  const jobId = (JSON.parse(started.body) as { id: string }).id;
  for (let i = 0; i < 1_200; i++) {
    const job = JSON.parse((await call(`/v1/conversions/${jobId}`)).body) as { status: string; finishedAt?: string };
    if (job.finishedAt) return job;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`job ${jobId} did not finish`);
}

/** The lines the server logged with `msg`. */
const logged = (msg: string) => server.stdout().split('\n').filter((l) => l.includes(`"msg":"${msg}"`)).length;

/**
 * Run `attack` while /healthz is asked every 20 ms; then every answer came within 250 ms (more
 * on a host that is slow even when the server idles, see `healthBound`), the
 * peak memory stayed within 1 GB of the idle baseline, and the server still serves an inference.
 */
async function survives(t: TestContext, attack: () => Promise<void>): Promise<void> {
  const before = await idleWorst(base, 500);
  const probe = probeHealth(base);
  let latencies: number[];
  try {
    await attack();
  } finally {
    latencies = await probe.stop();
  }
  const worst = Math.max(...latencies);
  const bound = await healthBound(base, before);
  assert.ok(worst < bound, `/healthz took ${worst.toFixed(1)} ms at worst (${latencies.length} probes), more than ${bound.toFixed(0)} ms`);
  const growth = memory(server.proc.pid!).peak - idle;
  t.diagnostic(`/healthz worst ${worst.toFixed(1)} ms over ${latencies.length} probes; peak memory ${(growth / MiB).toFixed(0)} MiB over idle`);
  assert.ok(growth < 1024 * MiB, `peak memory grew by ${(growth / MiB).toFixed(0)} MiB over the idle baseline`);
  assert.equal(server.proc.exitCode, null, 'the server is alive');
  const ok = await infer(ctNifti(16));
  assert.equal(ok.status, 200, ok.body);
}

before(async () => {
  const dir = await tempDir(scope);
  dataDir = join(dir, 'data');
  server = await startServer(scope, {
    ACS_HUB_DATA_DIR: dataDir,
    ACS_HUB_API_KEYS: KEY,
    ACS_HUB_URL_ALLOW_LIST: '127.0.0.1',
    ACS_HUB_ALLOW_PRIVATE_URLS: 'true',
    ACS_HUB_LOG_LEVEL: 'info',
    ACS_HUB_DOWNLOAD_RETRIES: '0',
    ACS_HUB_THREADS: '1',
    ACS_HUB_BUDGET_KSERVE_ELEMENTS: String(KSERVE_ELEMENTS),
  });
  base = server.url;
  const up = await upload(readFileSync(fixture('goldens', 'resnet18', 'model.pth')), 'resnet18.pth');
  assert.equal(up.status, 201, up.body);
  const job = await convert({ upload: (JSON.parse(up.body) as { id: string }).id }, 'acs', { inChannels: 1 });
  assert.equal(job.status, 'succeeded', JSON.stringify(job));
  id = job.checkpointId!;
  // Warm-up of this process's HTTP client; the server's first worker started with the upload.
  assert.equal((await call('/healthz')).status, 200);
  // The request validator compiles a route's schemas on the route's first request, on the main
  // thread (about 60 ms of /healthz for the KServe route): once, and no part of an attack.
  kserveError(await kserveJson({ inputs: [] }), 400, 'VALIDATION_FAILED');
  idle = memory(server.proc.pid!).rss;
});

test('reads that name a model need the key: 401, and no model is loaded until the key comes', async (t) => {
  assert.equal(logged('model loaded'), 0, 'no model loaded yet');
  await survives(t, async () => {
    for (const path of [`/v2/models/${id}/ready`, `/v2/models/${id}`, `/v2/models/${id}/versions/1/ready`]) {
      problem(await call(path, { key: false }), 401, 'UNAUTHORIZED');
      problem(await call(path, { key: false, headers: { Authorization: `Bearer ${WRONG}` } }), 401, 'UNAUTHORIZED');
    }
    assert.equal(logged('model loaded'), 0, 'a request without the key loaded a model');
    assert.equal((await call(`/v2/models/${id}/ready`)).status, 200);
    for (let i = 0; i < 100 && logged('model loaded') === 0; i++) await new Promise((res) => setTimeout(res, 10));
    assert.equal(logged('model loaded'), 1, 'the request with the key loaded the model');
  });
});

test('a pickle memo bomb of under 1 KB: 422, decoded within the default budgets', async (t) => {
  const bomb = legacyPth(memoFanOut(30, 4).stop());
  assert.ok(bomb.length < 1024, `${bomb.length} bytes`);
  await survives(t, async () => {
    const p = problem(await upload(bomb, 'memo-bomb.pth'), 422, 'CHECKPOINT_FORMAT');
    assert.match(p.detail, /^memo-bomb\.pth: unsupported legacy torch protocol \[\[\[\[/);
    assert.ok(p.detail.length < 4_000, `${p.detail.length} characters of detail`);
  });
});

test('3 MB of EMPTY_DICT: 413 at budgets.pickleObjects', async (t) => {
  const dicts = new Program().repeat([OP.EMPTY_DICT], 3_000_000).stop();
  await survives(t, async () => {
    const p = problem(await upload(dicts, 'dicts.pth'), 413, 'LIMIT_EXCEEDED');
    assert.match(p.detail, /^dicts\.pth: .*budgets\.pickleObjects/);
  });
});

test('lists nested 5000 deep: 413 at budgets.nestingDepth, not a 500', async (t) => {
  await survives(t, async () => {
    for (const [name, bytes] of [['deep.pth', deep('list', 5_000).stop()], ['deep-zip.pth', zipPth(deep('list', 5_000).stop())]] as const) {
      const p = problem(await upload(bytes, name), 413, 'LIMIT_EXCEEDED');
      assert.match(p.detail, /budgets\.nestingDepth/);
    }
  });
});

test('a .pth zip bomb of 4 MB that inflates to 4000 MiB, declared or not', async (t) => {
  const honest = deflatedPth([4000]);
  const lying = deflatedPth([4000], () => MiB);
  assert.ok(honest.length < 8 * MiB, `${honest.length} bytes`);
  await survives(t, async () => {
    assert.match(problem(await upload(honest, 'zip-bomb.pth'), 413, 'LIMIT_EXCEEDED').detail, /budgets\.compressionRatio/);
    assert.match(problem(await upload(lying, 'zip-bomb-lying.pth'), 422, 'CHECKPOINT_FORMAT').detail, /inflates to more than its declared 1048576 bytes/);
  });
});

test('a small gzip NIfTI whose resampling would explode, and sizes of 800^3 and 9999^3: 413 at budgets.outputVoxels', async (t) => {
  const small = ctNifti(16);
  const huge = ctNifti(16, 60); // 60 mm voxels: at 0.25 mm, 3840^3
  assert.ok(huge.length < 32 * 1024, `${huge.length} bytes`);
  await survives(t, async () => {
    assert.match(problem(await infer(huge, query({ spacing: '0.25,0.25,0.25' })), 413, 'LIMIT_EXCEEDED').detail, /\[1, 3840, 3840, 3840\].*budgets\.outputVoxels/);
    for (const size of ['800,800,800', '9999,9999,9999']) {
      assert.match(problem(await infer(small, query({ size })), 413, 'LIMIT_EXCEEDED').detail, /budgets\.outputVoxels/);
    }
  });
});

test('KServe: a JSON body far past the cap, streamed, and a shape of 10^15 elements: 413', async (t) => {
  const chunk = Buffer.from('0,'.repeat(32 * 1024));
  await survives(t, async () => {
    for (const headers of [{ 'Content-Type': 'application/json' }, { 'Content-Type': 'application/json', 'Content-Length': String(300e6) }] as Record<string, string>[]) {
      const r = await streamPost(`${base}/v2/models/${id}/infer`, { ...AUTH, ...headers }, 300e6, chunk);
      assert.match(kserveError(r, 413, 'LIMIT_EXCEEDED'), /budgets\.kserveElements/, JSON.stringify(headers));
      assert.ok(r.sent < 64 * MiB, `the client sent ${(r.sent / MiB).toFixed(0)} MiB before the answer`);
    }
    const shape = await kserveJson({ inputs: [{ name: 'input', shape: [1, 1, 1e5, 1e5, 1e5], datatype: 'FP32', data: [1, 2, 3] }] });
    assert.match(kserveError(shape, 413, 'LIMIT_EXCEEDED'), /holds 1000000000000000 elements, over the budget of 65536 \(budgets\.kserveElements\)/);
  });
});

test('i3d of an ONNX model with one 1024x1024 kernel: the job fails with LIMIT_EXCEEDED', async (t) => {
  await survives(t, async () => {
    const up = await upload(oneConvOnnx(1024), 'big.onnx');
    assert.equal(up.status, 201, up.body);
    const job = await convert({ upload: (JSON.parse(up.body) as { id: string }).id }, 'i3d');
    assert.equal(job.status, 'failed', JSON.stringify(job));
    assert.equal(job.problem?.status, 413);
    assert.equal(job.problem?.code, 'LIMIT_EXCEEDED');
    assert.match(job.problem?.detail ?? '', /budgets\.conversionOutputBytes/);
  });
});

test("a URL source whose ONNX names 'passwd' or '/etc/hostname' as external data: refused, nothing of the server's files stored", async (t) => {
  await survives(t, async () => {
    for (const c of [
      { path: '/etc/model.onnx', location: 'passwd' },
      { path: '/models/model.onnx', location: '/etc/hostname' },
    ]) {
      const origin = await serveEverywhere(scope, oneConvExternal(3, c.location).model);
      const job = await convert({ url: `${origin}${c.path}` }, 'acs');
      assert.equal(job.status, 'failed', `${c.location}: ${JSON.stringify(job)}`);
      assert.equal(job.problem?.status, 422);
      assert.equal(job.problem?.code, 'UNSUPPORTED');
      assert.match(job.problem?.detail ?? '', /external data '.*' is not read for a model fetched from a URL/);
    }
  });
  const files = await storedFiles(dataDir);
  assert.ok([...files.keys()].some((k) => k.includes('blobs')), 'the downloaded models were stored');
  assertNoneHolds(files, serverFileNeedles());
});

test('NaN voxels are a 422; broken geometry with a PNG answer is a sane picture, never a 500', async (t) => {
  const values = new Float32Array(16 ** 3).fill(-500);
  values[100] = NaN;
  await survives(t, async () => {
    for (const accept of ['application/json', 'image/png']) {
      assert.match(problem(await infer(ctNifti(16, 1, values), '', accept), 422, 'VOLUME_FORMAT').detail, /not finite/);
    }
    for (const bytes of brokenGeometryNiftis()) {
      const png = await infer(bytes, '', 'image/png');
      assert.equal(png.status, 200, png.body);
      assert.equal(png.headers['content-type'], 'image/png');
      assert.equal(png.body.slice(1, 4), 'PNG');
    }
  });
});

test('an upstream that closes its socket after the body (HTTP/1.0, no length): the conversion ends cleanly', async (t) => {
  await survives(t, async () => {
    const origin = await serveCloseDelimited(scope, oneConvOnnx(3));
    const job = await convert({ url: `${origin}/models/close-delimited.onnx` }, 'acs');
    assert.equal(job.status, 'succeeded', JSON.stringify(job));
  });
});

test('the key never appears in what the server printed', () => {
  const printed = server.stdout() + server.stderr();
  assert.ok(logged('request completed') >= 10, 'the refused requests were logged');
  assert.ok(printed.includes('"authorization":"[REDACTED]"'), 'their Authorization header was logged, scrubbed');
  for (const secret of [KEY, WRONG]) assert.ok(!printed.includes(secret), `${secret} in the server's output`);
});
