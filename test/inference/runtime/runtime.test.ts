import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { convert } from '../../../converters/convert.js';
import { readCheckpointFile } from '../../../converters/formats/index.js';
import { concatChunks } from '../../../converters/io.js';
import { encodeOutput } from '../../../converters/outputs.js';
import { InferenceEngine, type ModelSource } from '../../../inference/runtime/engine.js';
import { EngineBusyError, InvalidInputError } from '../../../inference/runtime/errors.js';
import { bundledDevices, createSession } from '../../../inference/runtime/providers.js';
import { RunQueue } from '../../../converters/fence/queue.js';
import { SessionCache } from '../../../inference/runtime/session-cache.js';
import { SessionHost } from '../../../inference/runtime/worker-host.js';
import { assertClose, detTensor, fixture, tempDir } from '../../helpers.js';

async function tinyModel(head = 5): Promise<Uint8Array> {
  const sd = (await readCheckpointFile(fixture('goldens', 'resnet18', 'model.pth'))).tensors;
  const r = convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', head });
  return concatChunks(encodeOutput(r, 'onnx', 'm.onnx').get('m.onnx')!);
}

function source(bytes: Uint8Array, key = 'tiny'): ModelSource {
  return { key, bytes: bytes.byteLength, load: async () => bytes, warmupShape: [1, 3, 16, 16, 16] };
}

test('providers: cpu and webgpu ship in the package; a device that cannot start falls back to cpu with a reason', async () => {
  const bundled = bundledDevices();
  assert.ok(bundled.includes('cpu') && bundled.includes('webgpu'), `bundled: ${bundled.join(', ')}`);
  const bytes = await tinyModel();
  const cpu = await createSession(bytes, { device: 'cpu', threads: 1 });
  assert.equal(cpu.device, 'cpu');
  assert.equal(cpu.fallback, undefined);
  await cpu.session.release();
  for (const device of ['webgpu', 'cuda'] as const) {
    const s = await createSession(bytes, { device, threads: 1 });
    if (s.device === device) assert.equal(s.fallback, undefined);
    else {
      assert.equal(s.device, 'cpu');
      assert.match(s.fallback ?? '', new RegExp(`^${device}: `), `fallback reason for ${device}: ${s.fallback}`);
    }
    await s.session.release();
  }
  await assert.rejects(createSession(bytes, { device: 'tpu' as 'cpu' }), /unknown device 'tpu'/);
});

test('session cache: bounded by bytes, least recently used idle session released first, leased ones kept', async () => {
  const bytes = await tinyModel();
  const cache = new SessionCache({ maxBytes: 250 });
  let created = 0;
  const make = async () => {
    created++;
    return createSession(bytes, { threads: 1 });
  };
  const a = await cache.acquire('a', 100, make);
  const b = await cache.acquire('b', 100, make);
  b.release();
  const again = await cache.acquire('a', 100, make);
  assert.equal(created, 2, 'a reused');
  again.release();
  const c = await cache.acquire('c', 100, make);
  assert.deepEqual(cache.keys().sort(), ['a', 'c'], 'b (idle, least recent) was released; a is still leased');
  assert.ok(cache.usedBytes <= 250);
  a.release();
  c.release();
  const [x, y] = await Promise.all([cache.acquire('d', 100, make), cache.acquire('d', 100, make)]);
  assert.equal(x.created, y.created, 'concurrent acquires share one creation');
  assert.equal(created, 4);
  x.release();
  y.release();
  await cache.close();
});

test('run queue: limits concurrency and refuses when too many wait or too much input is held', async () => {
  const q = new RunQueue({ concurrency: 1, maxPending: 2, maxPendingBytes: 1000, refuse: (message) => new EngineBusyError(message) });
  let active = 0;
  let peak = 0;
  const job = () =>
    q.run(10, async () => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 5));
      active--;
      return 1;
    });
  const runs = [job(), job(), job()];
  await assert.rejects(job(), EngineBusyError);
  assert.deepEqual(await Promise.all(runs), [1, 1, 1]);
  assert.equal(peak, 1);
  const blocker = q.run(0, () => new Promise((r) => setTimeout(r, 5)));
  await assert.rejects(q.run(5000, async () => 1), /already hold|bytes/);
  await blocker;
});

test('engine: same-shape requests arriving together run as one batch and get their own outputs', async () => {
  const bytes = await tinyModel();
  const loads: string[] = [];
  const engine = new InferenceEngine({ threads: 1, maxBatch: 4, onLoad: (i) => loads.push(`${i.key}:${i.device}`) });
  const model = source(bytes);
  await engine.prepare(model);
  assert.deepEqual(loads, ['tiny:cpu'], 'loaded once, warmed up');
  const shape = [1, 3, 16, 20, 24];
  const inputs = [1, 2, 3].map((s) => detTensor(shape, s));
  const singles: Record<string, { data: Float32Array; shape: number[] }>[] = [];
  for (const data of inputs) singles.push(await engine.run(model, { data, shape }));
  const runsBefore = engine.stats.runs;
  const together = await Promise.all(inputs.map((data) => engine.run(model, { data, shape })));
  assert.equal(engine.stats.runs - runsBefore, 1, 'three volumes, one run');
  together.forEach((out, i) => {
    assert.deepEqual(out['output']!.shape, [1, 5]);
    assertClose(out['output']!.data, singles[i]!['output']!.data, { rtol: 1e-5, atol: 1e-6, what: `volume ${i}` });
  });
  await assert.rejects(engine.run(model, { data: new Float32Array(10), shape: [1, 3, 2, 2, 2] }), InvalidInputError);
  await assert.rejects(engine.run(model, { data: new Float32Array(4 * 8 ** 3), shape: [1, 4, 8, 8, 8] }), (e: unknown) => e instanceof InvalidInputError && /cannot take an input of shape \[1, 4, 8, 8, 8\]/.test((e as Error).message));
  await engine.close();
});

test('engine: sessions run in a worker thread, so the event loop keeps turning during a run', async () => {
  const engine = new InferenceEngine({ threads: 1 });
  const model = source(await tinyModel());
  await engine.prepare(model);
  const shape = [1, 3, 96, 96, 96];
  const data = detTensor(shape, 7);
  let ticks = 0;
  let running = true;
  const spin = () => {
    ticks++;
    if (running) setImmediate(spin);
  };
  const t0 = performance.now();
  const run = engine.run(model, { data, shape });
  setImmediate(spin);
  const out = await run;
  running = false;
  const ms = performance.now() - t0;
  assert.deepEqual(out['output']!.shape, [1, 5]);
  assert.equal(data[0], detTensor(shape, 7)[0], 'the caller keeps its input');
  // A run on the main thread would hold the loop for its whole length: a handful of turns at most.
  assert.ok(ticks > 20, `${ticks} turns of the event loop during a ${ms.toFixed(0)} ms run`);
  await engine.close();
});

test('session host: inputs and the model reach the worker as copies of their own, or given away without a copy', async () => {
  const host = new SessionHost();
  const bytes = await tinyModel();
  const length = bytes.byteLength;
  const { session } = await host.create(bytes, { threads: 1 });
  assert.equal(bytes.byteLength, length, 'the caller keeps its model bytes');
  // A Node Buffer (what readFile gives), whose slice() is a view of its memory, not a copy.
  const buffer = Buffer.from(bytes);
  await (await host.create(buffer, { threads: 1 })).session.release();
  assert.equal(buffer.byteLength, length, 'the caller keeps its Buffer');
  assert.equal(buffer[length - 1], bytes[length - 1]);
  const shape = [1, 3, 16, 16, 16];
  const name = session.inputNames[0]!;
  const data = detTensor(shape, 5);
  const kept = await session.run({ [name]: { data, dims: shape } });
  assert.equal(data.length, 3 * 16 ** 3, 'copied: the caller keeps its array');
  assert.deepEqual(data, detTensor(shape, 5));
  const given = detTensor(shape, 5);
  const out = await session.run({ [name]: { data: given, dims: shape } }, { give: true });
  assert.equal(given.length, 0, 'given away: the array is moved, not copied');
  assert.deepEqual(out['output']!.data, kept['output']!.data, 'the same input either way');
  // A view into a larger buffer is never moved: that would take the rest of the buffer with it.
  const big = new Float32Array(3 * 16 ** 3 + 4);
  big.set(detTensor(shape, 5), 4);
  const view = big.subarray(4);
  const fromView = await session.run({ [name]: { data: view, dims: shape } }, { give: true });
  assert.equal(big.length, 3 * 16 ** 3 + 4, 'the shared buffer stays');
  assert.deepEqual(fromView['output']!.data, kept['output']!.data);
  await session.release();
  await host.terminate();
});

test('engine: a worker that stops fails the runs in flight; the next run loads the model again', async () => {
  const loads: string[] = [];
  const engine = new InferenceEngine({ threads: 1, onLoad: (i) => loads.push(i.key) });
  const model = source(await tinyModel());
  const shape = [1, 3, 96, 96, 96];
  const data = detTensor(shape, 3);
  const before = await engine.run(model, { data, shape });
  const inFlight = engine.run(model, { data, shape });
  const failed = assert.rejects(inFlight, (e: unknown) => (e as { code?: string }).code === 'INFERENCE_FAILED' && /worker/.test((e as Error).message));
  await new Promise((r) => setTimeout(r, 2));
  await engine.stopWorker();
  await failed;
  const after = await engine.run(model, { data, shape });
  assertClose(after['output']!.data, before['output']!.data, { rtol: 1e-6, atol: 0, what: 'after the restart' });
  assert.deepEqual(loads, ['tiny', 'tiny'], 'loaded again in the new worker');
  await engine.close();
});

test('engine: stopping the worker during a native run fails the run and leaves the process standing', async (t) => {
  // Its own process: a worker thread ended inside onnxruntime's run aborts the whole process
  // ("terminate called after throwing an instance of 'Napi::Error'"), which would take this
  // test file down with it rather than fail one assertion.
  const at = (path: string) => JSON.stringify(new URL(path, import.meta.url).href);
  const script = `
    const { InferenceEngine } = await import(${at('../../../inference/runtime/engine.js')});
    const { readCheckpointFile } = await import(${at('../../../converters/formats/index.js')});
    const { convert } = await import(${at('../../../converters/convert.js')});
    const { encodeOutput } = await import(${at('../../../converters/outputs.js')});
    const { concatChunks } = await import(${at('../../../converters/io.js')});
    const sd = (await readCheckpointFile(${JSON.stringify(fixture('goldens', 'resnet18', 'model.pth'))})).tensors;
    const bytes = concatChunks(encodeOutput(convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', head: 5 }), 'onnx', 'm.onnx').get('m.onnx'));
    const engine = new InferenceEngine({ threads: 1, autotune: false });
    const model = { key: 'tiny', bytes: bytes.byteLength, load: async () => bytes };
    const shape = [1, 3, 96, 96, 96];
    const data = new Float32Array(3 * 96 ** 3).fill(0.5);
    await engine.run(model, { data, shape });
    const t0 = performance.now();
    await engine.run(model, { data, shape });
    const ms = performance.now() - t0;
    const inFlight = engine.run(model, { data, shape }).then(() => 'finished', (e) => e.code);
    await new Promise((r) => setTimeout(r, ms / 3));
    await engine.stopWorker();
    const after = await engine.run(model, { data, shape });
    console.log(JSON.stringify({ ms, inFlight: await inFlight, after: after.output.shape }));
    await engine.close();
  `;
  const file = join(await tempDir(t), 'stop-mid-run.mjs');
  await writeFile(file, script);
  const { stdout } = await promisify(execFile)(process.execPath, [file]).catch((e: { code: number | null; signal: string | null; stderr: string }) => {
    assert.fail(`the process died (code ${e.code}, signal ${e.signal}): ${e.stderr.trim().split('\n').filter((l) => /error|abort|terminate/i.test(l)).slice(0, 3).join(' | ')}`);
  });
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { ms: number; inFlight: string; after: number[] };
  assert.ok(result.ms > 30, `a run long enough to be stopped inside: ${result.ms.toFixed(0)} ms`);
  assert.equal(result.inFlight, 'INFERENCE_FAILED', 'the run in flight fails');
  assert.deepEqual(result.after, [1, 5], 'the next run loads the model again');
});

test('engine: sessions are specialised for their spatial size (same outputs), up to maxShapes sizes per model', async () => {
  const bytes = await tinyModel();
  const notes: (string | undefined)[] = [];
  const special = new InferenceEngine({ threads: 1, maxShapes: 2, onLoad: (i) => notes.push(i.specialized) });
  const general = new InferenceEngine({ threads: 1, specialize: false });
  const model = source(bytes);
  for (const shape of [[1, 3, 16, 20, 24], [2, 3, 16, 20, 24], [1, 3, 24, 16, 20], [1, 3, 20, 20, 20]]) {
    const data = detTensor(shape, shape[2]!);
    const [a, b] = await Promise.all([special.run(model, { data, shape }), general.run(model, { data, shape })]);
    assertClose(a['output']!.data, b['output']!.data, { rtol: 1e-5, atol: 1e-6, what: `shape [${shape.join(', ')}]` });
  }
  assert.equal(notes.length, 3, 'two specialised sessions (the batch of 2 shares the first), then the general one');
  assert.match(notes[0] ?? '', /^specialised for 16x20x24: \d+ convolutions as 2D ones, 3 pooled while folded \(output channels in blocks of \d+\)$/);
  assert.match(notes[1] ?? '', /^specialised for 24x16x20: /);
  assert.equal(notes[2], undefined, 'past maxShapes: the general session');
  await special.close();
  await general.close();
});
