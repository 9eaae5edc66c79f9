/**
 * Measure, then choose: the engine times the candidate graphs once per machine, model and size,
 * keeps the decision in the store, reuses it after a restart, and measures nothing when the
 * setting is off. Also the batching window.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { convert } from '../../../converters/convert.js';
import { readCheckpointFile } from '../../../converters/formats/index.js';
import { concatChunks } from '../../../converters/io.js';
import { encodeOutput } from '../../../converters/outputs.js';
import { CANDIDATES, chooseFastest, cpuFeatures, decisionKey, machineKey, type Beside, type Candidate, type Choice } from '../../../inference/runtime/autotune.js';
import { InferenceEngine, type EngineParams, type ModelSource } from '../../../inference/runtime/engine.js';
import { sessionOptions } from '../../../inference/runtime/providers.js';
import { openLocalStorage } from '../../../zoo/storage/local.js';
import { loweringDecisions, readLoweringDecision, writeLoweringDecision } from '../../../zoo/store.js';
import { assertClose, detTensor, fixture } from '../../helpers.js';

async function tinyModel(): Promise<Uint8Array> {
  const sd = (await readCheckpointFile(fixture('goldens', 'resnet18', 'model.pth'))).tensors;
  const r = convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs', head: 5 });
  return concatChunks(encodeOutput(r, 'onnx', 'm.onnx').get('m.onnx')!);
}

function source(bytes: Uint8Array, key = 'tiny'): ModelSource {
  return { key, bytes: bytes.byteLength, load: async () => bytes };
}

async function withStore<T>(fn: (storage: Awaited<ReturnType<typeof openLocalStorage>>) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'acs-autotune-'));
  const storage = await openLocalStorage({ root: join(dir, 'objects') });
  try {
    return await fn(storage);
  } finally {
    await storage.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** An engine that counts its trial runs and records what it loaded. */
function engineWith(params: EngineParams) {
  const trials: string[] = [];
  const loads: { specialized?: string; choice?: Choice }[] = [];
  const engine = new InferenceEngine({
    threads: 1,
    ...params,
    onTrial: (t) => trials.push(`${t.key}:${t.candidate}`),
    onLoad: (i) => loads.push({ specialized: i.specialized, choice: i.choice }),
  });
  return { engine, trials, loads };
}

test('autotune: measured once per model and size, kept in the store, reused after a restart', async () => {
  const bytes = await tinyModel();
  const model = source(bytes);
  const shape = [1, 3, 16, 16, 16];
  const data = detTensor(shape, 1);
  await withStore(async (storage) => {
    const plain = new InferenceEngine({ threads: 1 });
    const expected = (await plain.run(model, { data, shape }))['output']!.data;
    await plain.close();

    const a = engineWith({ autotune: { runs: 1, maxMs: 60_000 }, decisions: loweringDecisions(storage) });
    const out = (await a.engine.run(model, { data, shape }))['output']!.data;
    assertClose(out, expected, { rtol: 1e-4, atol: 1e-5, what: 'the chosen graph computes the same outputs' });
    assert.deepEqual(a.trials, CANDIDATES.map((c) => `tiny:${c.name}`), 'every candidate timed once');
    await a.engine.run(model, { data, shape });
    await Promise.all([1, 2, 3].map(() => a.engine.run(model, { data, shape })));
    assert.equal(a.trials.length, CANDIDATES.length, 'no measuring on later runs');
    const key = decisionKey(machineKey('cpu', 1), 'tiny', shape);
    const kept = await readLoweringDecision(storage, key);
    assert.ok(kept, 'the decision is in the store');
    assert.equal(kept.candidate, a.loads[0]!.choice!.candidate);
    assert.deepEqual(Object.keys(kept.timings).sort(), CANDIDATES.map((c) => c.name).sort());
    const byDefault = CANDIDATES[0]!.name;
    const ratios = kept.ratios!;
    assert.deepEqual(Object.keys(ratios).sort(), CANDIDATES.slice(1).map((c) => c.name).sort(), 'every other candidate ran beside the default');
    const lowest = Math.min(...Object.values(ratios));
    if (kept.runOff === undefined) {
      assert.equal(kept.candidate, byDefault, 'no run-off: no candidate beat the default');
      assert.ok(lowest >= 1, `no ratio below 1 (${lowest})`);
    } else {
      const challenger = Object.keys(kept.runOff).find((k) => k !== byDefault)!;
      assert.deepEqual(Object.keys(kept.runOff).sort(), [challenger, byDefault].sort());
      assert.equal(ratios[challenger], lowest, 'the candidate that beat the default by most met it in a run-off');
      assert.equal(typeof kept.runOffRatio, 'number', 'the run-off keeps its verdict');
      assert.equal(kept.candidate, kept.runOffRatio! < 0.98 ? challenger : byDefault, 'the run-off decides');
    }
    await a.engine.close();

    const b = engineWith({ autotune: { runs: 1 }, decisions: loweringDecisions(storage) });
    const again = (await b.engine.run(model, { data, shape }))['output']!.data;
    assert.deepEqual(b.trials, [], 'a new engine with the same store does not measure');
    assert.equal(b.loads[0]!.choice!.candidate, kept.candidate);
    assertClose(again, expected, { rtol: 1e-4, atol: 1e-5, what: 'after the restart' });

    const other = [1, 3, 16, 16, 24];
    await b.engine.run(model, { data: detTensor(other, 2), shape: other });
    assert.equal(b.trials.length, CANDIDATES.length, 'another size is measured on its own');
    await b.engine.run(source(bytes, 'tiny-2'), { data, shape });
    assert.equal(b.trials.length, 2 * CANDIDATES.length, 'another model is measured on its own');
    const keys = [decisionKey(machineKey('cpu', 1), 'tiny', other), decisionKey(machineKey('cpu', 1), 'tiny-2', shape)];
    assert.equal(new Set([key, ...keys]).size, 3, 'three keys');
    for (const k of keys) assert.ok(await readLoweringDecision(storage, k), `decision ${k} kept`);
    await b.engine.close();
  });
});

test('autotune: the kept decision is the graph that runs; a decision this version cannot make is measured again', async () => {
  const bytes = await tinyModel();
  const model = source(bytes);
  const shape = [1, 3, 16, 16, 16];
  const data = detTensor(shape, 3);
  await withStore(async (storage) => {
    const key = decisionKey(machineKey('cpu', 1), 'tiny', shape);
    await writeLoweringDecision(storage, key, { candidate: 'general', timings: { general: 1 }, decidedAt: new Date().toISOString() });
    const g = engineWith({ autotune: true, decisions: loweringDecisions(storage) });
    await g.engine.run(model, { data, shape });
    assert.deepEqual(g.trials, []);
    assert.equal(g.loads[0]!.specialized, undefined, "'general' runs the model as it is");
    await g.engine.close();

    await writeLoweringDecision(storage, key, { candidate: 'specialized', timings: { specialized: 1 }, decidedAt: new Date().toISOString() });
    const s = engineWith({ autotune: true, decisions: loweringDecisions(storage) });
    await s.engine.run(model, { data, shape });
    assert.match(s.loads[0]!.specialized ?? '', /specialised for 16x16x16/);
    await s.engine.close();

    await writeLoweringDecision(storage, key, { candidate: 'a-graph-from-elsewhere', timings: {}, decidedAt: new Date().toISOString() });
    const u = engineWith({ autotune: { runs: 1, maxMs: 0 }, decisions: loweringDecisions(storage) });
    await u.engine.run(model, { data, shape });
    assert.deepEqual(u.trials, [`tiny:${CANDIDATES[0]!.name}`], 'measured again; a budget of 0 ms tries only the default');
    assert.equal((await readLoweringDecision(storage, key))!.candidate, CANDIDATES[0]!.name);
    await u.engine.close();
  });
});

test('autotune: off, nothing is measured or stored; the default specialised graph runs', async () => {
  const bytes = await tinyModel();
  const shape = [1, 3, 16, 16, 16];
  await withStore(async (storage) => {
    const e = engineWith({ autotune: false, decisions: loweringDecisions(storage) });
    await e.engine.run(source(bytes), { data: detTensor(shape, 4), shape });
    assert.deepEqual(e.trials, []);
    assert.equal(e.loads[0]!.choice, undefined);
    assert.match(e.loads[0]!.specialized ?? '', /specialised/);
    assert.equal(await readLoweringDecision(storage, decisionKey(machineKey('cpu', 1), 'tiny', shape)), undefined);
    await e.engine.close();
  });
});

/**
 * A `beside` for chooseFastest: each candidate's first-pass rounds at `ratio(c)` times the
 * default's 10 ms (at a steady speed), and the run-off's rounds from `runOff`; what was asked of
 * it in `met`.
 */
function pairs(ratio: (c: Candidate) => number, runOff: (runs: number) => [number[], number[]] | Promise<[number[], number[]]>) {
  const met: string[] = [];
  const beside: Beside = async (c, runs, stage) => {
    met.push(`${c.name} ${stage} x${runs}`);
    if (stage === 'run-off') return runOff(runs);
    return [Array(runs).fill(10 * ratio(c)), Array(runs).fill(10)];
  };
  return { met, beside };
}

test('autotune: each candidate runs in turn with the default; the one that beats it by most is kept only if it beats it again in the run-off', async () => {
  const [byDefault, other] = [CANDIDATES[0]!, CANDIDATES[2]!];
  const alone: string[] = [];
  const time = async (c: Candidate) => {
    alone.push(c.name);
    return 10;
  };
  const steady = (a: number, b: number) => (runs: number): [number[], number[]] => [Array(runs).fill(a), Array(runs).fill(b)];
  const firstPass = (c: Candidate) => (c.name === other.name ? 0.8 : 1.1);
  const fluke = pairs(firstPass, steady(9.9, 10));
  const kept = await chooseFastest(time, { runs: 3 }, fluke.beside);
  assert.deepEqual(alone, [byDefault.name], 'only the default is timed on its own');
  assert.deepEqual(fluke.met, [...CANDIDATES.slice(1).map((c) => `${c.name} first-pass x3`), `${other.name} run-off x6`], 'every other candidate beside the default, then the best of them in a run-off of twice the runs');
  assert.equal(kept.candidate, byDefault.name, 'within the 2% margin the default stays');
  assert.equal(kept.ratios![other.name], 0.8);
  assert.equal(kept.timings[other.name], 8);
  assert.equal(kept.timings[byDefault.name], 10);
  assert.deepEqual(kept.runOff, { [other.name]: 9.9, [byDefault.name]: 10 });
  assert.equal(kept.runOffRatio, 0.99);
  assert.equal((await chooseFastest(time, { runs: 3 }, pairs(firstPass, steady(9, 10)).beside)).candidate, other.name, 'a clear win in the run-off is kept');
  assert.equal((await chooseFastest(time, { runs: 3, margin: 0.2 }, pairs(firstPass, steady(9, 10)).beside)).candidate, byDefault.name, 'the margin is a setting');
  const failing = await chooseFastest(time, {}, pairs(firstPass, () => Promise.reject(new Error('out of memory'))).beside);
  assert.equal(failing.candidate, byDefault.name, 'a run-off that fails keeps the default');
  const empty = await chooseFastest(time, {}, pairs(firstPass, () => [[], []]).beside);
  assert.equal(empty.candidate, byDefault.name, 'a run-off without rounds keeps the default');
  const none = pairs(() => 1.05, steady(1, 1));
  const plain = await chooseFastest(time, {}, none.beside);
  assert.equal(plain.candidate, byDefault.name);
  assert.ok(!none.met.some((m) => m.includes('run-off')), 'no run-off when no candidate beat the default');
  assert.equal(plain.runOff, undefined);
});

test('autotune: the first pass and the run-off are judged round by round, so a machine whose speed jumps cannot decide them', async () => {
  const [byDefault, other] = [CANDIDATES[0]!, CANDIDATES[2]!];
  // A throttled machine: runs at full speed (x1) or four times slower (x4), a few rounds at a
  // time. The default, timed alone, met full speed (10 ms). The other candidate, 10% faster,
  // met only slow rounds in the first pass, and so did the default's runs beside it.
  const beside: Beside = async (c, runs, stage) => {
    if (stage === 'first-pass') return c.name === other.name ? [Array(runs).fill(36), Array(runs).fill(40)] : [Array(runs).fill(44), Array(runs).fill(40)];
    // In the run-off the speed changes between the two runs of one round. The challenger is 5%
    // slower than the default at every speed; its runs happen to meet full speed four times out
    // of seven, the default's three, so the medians alone would call it 4x faster.
    return [[1, 1, 1, 1, 4, 4, 4].map((s) => 10.5 * s), [1, 1, 1, 4, 4, 4, 4].map((s) => 10 * s)];
  };
  const choice = await chooseFastest(async () => 10, { runs: 3 }, beside);
  assert.ok(choice.timings[other.name]! > choice.timings[byDefault.name]!, 'timed alone, the faster graph looks 3.6x slower');
  assert.equal(choice.ratios![other.name], 0.9, 'beside the default it is 10% faster');
  assert.ok(choice.runOff, 'so it meets the default in the run-off');
  assert.ok(choice.runOff[other.name]! < choice.runOff[byDefault.name]! * 0.98, 'where the two medians point the wrong way');
  assert.equal(choice.runOffRatio, 1.05, 'but the median round sees the challenger 5% slower');
  assert.equal(choice.candidate, byDefault.name, 'the default stays');
  // The same jumps with a challenger 10% faster: kept, though the medians call it slower.
  const faster: Beside = async (c, runs, stage) => {
    if (stage === 'first-pass') return c.name === other.name ? [Array(runs).fill(9), Array(runs).fill(10)] : [Array(runs).fill(11), Array(runs).fill(10)];
    return [[1, 1, 1, 4, 4, 4, 4].map((s) => 9 * s), [1, 1, 1, 1, 4, 4, 4].map((s) => 10 * s)];
  };
  const won = await chooseFastest(async () => 10, { runs: 3 }, faster);
  assert.ok(won.runOff![other.name]! > won.runOff![byDefault.name]!, 'here the medians call the challenger slower');
  assert.equal(won.runOffRatio, 0.9);
  assert.equal(won.candidate, other.name);
});

test('autotune: without a default to run beside, every candidate is timed on its own', async () => {
  let besides = 0;
  const beside: Beside = async () => {
    besides++;
    return [[1], [1]];
  };
  const choice = await chooseFastest(async (c) => {
    if (c.name === CANDIDATES[0]!.name) throw new Error('cannot build');
    return c.name === 'general' ? 3 : 5;
  }, {}, beside);
  assert.equal(besides, 0, 'nothing is paired with a default that failed');
  assert.equal(choice.candidate, 'general', 'the fastest median is kept');
  assert.equal(choice.ratios, undefined);
});

test('autotune: the measuring budget, failing candidates, keys and hostile store records', async () => {
  let calls = 0;
  const slow = await chooseFastest(async (c) => {
    calls++;
    await new Promise((r) => setTimeout(r, 30));
    if (c.name === CANDIDATES[0]!.name) return 5;
    return 1;
  }, { maxMs: 10 });
  assert.equal(calls, 1, 'past maxMs no further candidate is tried');
  assert.equal(slow.candidate, CANDIDATES[0]!.name);
  const broken = await chooseFastest(async (c) => {
    if (c.name !== 'general') throw new Error('cannot build');
    return 7;
  });
  assert.equal(broken.candidate, 'general', 'a candidate that fails is skipped');
  assert.deepEqual(Object.keys(broken.timings), ['general']);

  assert.ok(cpuFeatures().length > 3);
  const m = machineKey('cpu', 2);
  assert.match(decisionKey(m, 'x', [1, 3, 8, 8, 8]), /^[0-9a-f]{32}$/);
  assert.notEqual(decisionKey(m, 'x', [1, 3, 8, 8, 8]), decisionKey({ ...m, cpu: `${m.cpu} avx512f` }, 'x', [1, 3, 8, 8, 8]), 'other CPU features, other key');
  assert.notEqual(decisionKey(m, 'x', [1, 3, 8, 8, 8]), decisionKey({ ...m, onnxruntime: '0.0.0' }, 'x', [1, 3, 8, 8, 8]), 'other onnxruntime, other key');
  assert.notEqual(decisionKey(m, 'x', [1, 3, 8, 8, 8]), decisionKey({ ...m, threads: 4 }, 'x', [1, 3, 8, 8, 8]));
  assert.equal(m.spinning, true, 'spinning threads unless told otherwise');
  assert.notEqual(decisionKey(m, 'x', [1, 3, 8, 8, 8]), decisionKey(machineKey('cpu', 2, false), 'x', [1, 3, 8, 8, 8]), 'threads that sleep between operators, other key');

  await withStore(async (storage) => {
    for (const bad of ['../../etc/passwd', 'ABC', `${'0'.repeat(31)}/`, '0'.repeat(64)]) {
      await assert.rejects(readLoweringDecision(storage, bad), (e: unknown) => (e as { code?: string }).code === 'INVALID_ARGUMENT', bad);
    }
    const key = '0'.repeat(32);
    await storage.write(`index/lowerings/${key}.json`, '{"candidate": 5}');
    assert.equal(await readLoweringDecision(storage, key), undefined, 'a malformed record counts as none');
    await storage.write(`index/lowerings/${key}.json`, 'not json');
    assert.equal(await readLoweringDecision(storage, key), undefined);
  });
});

test('batching window: requests a little apart share one run; a full batch does not wait for the window', async () => {
  const bytes = await tinyModel();
  const model = source(bytes);
  const shape = [1, 3, 16, 16, 16];
  const inputs = [1, 2, 3].map((s) => detTensor(shape, s));
  const spaced = async (engine: InferenceEngine) => {
    const runs = engine.stats.runs;
    const pending: Promise<unknown>[] = [];
    for (const data of inputs) {
      pending.push(engine.run(model, { data, shape }));
      await new Promise((r) => setTimeout(r, 15));
    }
    await Promise.all(pending);
    return engine.stats.runs - runs;
  };
  const windowed = new InferenceEngine({ threads: 1, maxBatch: 4, batchWindowMs: 400 });
  await windowed.run(model, { data: inputs[0]!, shape });
  assert.equal(await spaced(windowed), 1, 'three requests 15 ms apart, one run');
  const full = new InferenceEngine({ threads: 1, maxBatch: 2, batchWindowMs: 60_000 });
  await Promise.all([full.run(model, { data: inputs[0]!, shape }), full.run(model, { data: inputs[1]!, shape })]);
  assert.equal(full.stats.runs, 1, 'a full batch starts at once (otherwise this waits a minute)');
  const none = new InferenceEngine({ threads: 1, maxBatch: 4 });
  await none.run(model, { data: inputs[0]!, shape });
  assert.ok((await spaced(none)) >= 2, 'without a window an idle engine starts at once');
  await Promise.all([windowed.close(), full.close(), none.close()]);
});

test('spinning: the engine\'s intra-op threads spin during runs unless told not to, and no session keeps a core after its run', async () => {
  assert.deepEqual(sessionOptions('cpu', {}).extra, { session: { intra_op: { allow_spinning: '1' }, force_spinning_stop: '1' } });
  assert.deepEqual(sessionOptions('cpu', { spinning: false }).extra, { session: { intra_op: { allow_spinning: '0' }, force_spinning_stop: '1' } });

  const bytes = await tinyModel();
  const model = source(bytes);
  const shape = [1, 3, 32, 32, 32];
  const data = detTensor(shape, 1);
  // CPU time of this process (the engine's worker and onnxruntime's threads included) while
  // the caller waits 150 ms after a run; threads left spinning would take about 40 ms of it.
  const idleAfter = async (params: EngineParams) => {
    const engine = new InferenceEngine({ threads: 2, ...params });
    await engine.run(model, { data, shape });
    await engine.run(model, { data, shape });
    const c0 = process.cpuUsage();
    await new Promise((r) => setTimeout(r, 150));
    const c = process.cpuUsage(c0);
    await engine.close();
    return (c.user + c.system) / 1000;
  };
  for (const params of [{}, { spinning: false }]) {
    const ms = await idleAfter(params);
    assert.ok(ms < 8, `${JSON.stringify(params)}: no thread spins once the run has returned (${ms.toFixed(1)} ms of CPU in 150 ms idle)`);
  }

  // The engine's setting reaches what it measures and keeps: spinning changes every timing,
  // so a decision is kept under the setting it was measured with.
  await withStore(async (storage) => {
    const { engine } = engineWith({ threads: 2, spinning: false, autotune: { runs: 1, maxMs: 1 }, decisions: loweringDecisions(storage) });
    const small = [1, 3, 16, 16, 16];
    await engine.run(model, { data: detTensor(small, 2), shape: small });
    await engine.close();
    assert.ok(await readLoweringDecision(storage, decisionKey(machineKey('cpu', 2, false), 'tiny', small)), 'kept under threads that sleep');
    assert.equal(await readLoweringDecision(storage, decisionKey(machineKey('cpu', 2, true), 'tiny', small)), undefined);
  });
});
