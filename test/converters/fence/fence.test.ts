import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CheckpointFormatError, LimitExceededError, UnsupportedError } from '../../../converters/errors.js';
import { WorkerUnavailableError } from '../../../converters/fence/errors.js';
import { IN_PROCESS, WorkerFence } from '../../../converters/fence/fence.js';
import { MixedSeriesError } from '../../../inference/volumes/errors.js';
import { DOUBLE, EXIT, HOARD, SPIN, THROW } from './tasks.js';

function fence(t: { after(fn: () => Promise<void>): void }, params: ConstructorParameters<typeof WorkerFence>[0] = {}): WorkerFence {
  const f = new WorkerFence(params);
  t.after(() => f.close());
  return f;
}

test('a task runs in a worker, its large input moved there and its output moved back; in-process it is the same task', async (t) => {
  const f = fence(t, { workers: 1 });
  const data = Float32Array.from({ length: 1 << 16 }, (_, i) => i);
  const out = await f.run(DOUBLE, { data });
  assert.equal(out.worker, true);
  assert.equal(out.data[12345], 24690);
  assert.equal(data.byteLength, 0, 'the input buffer moved to the worker');
  const local = await IN_PROCESS.run(DOUBLE, async () => ({ data: Float32Array.of(1, 2) }));
  assert.deepEqual([...local.data], [2, 4]);
  assert.equal(local.worker, false);
});

test('errors keep their class, code, status, message and fields across the fence', async (t) => {
  const f = fence(t, { workers: 1 });
  await assert.rejects(f.run(THROW, 'format'), (e: unknown) => {
    assert.ok(e instanceof CheckpointFormatError);
    assert.equal(e.name, 'CheckpointFormatError');
    assert.deepEqual([e.code, e.retryable, e.message, e.file], ['CHECKPOINT_FORMAT', false, 'model.pth: truncated', 'model.pth']);
    assert.match(e.stack ?? '', /tasks\.js/, "the worker's stack");
    return true;
  });
  await assert.rejects(f.run(THROW, 'series'), (e: unknown) => e instanceof MixedSeriesError && e.series[0]?.uid === '1.2.3' && e.code === 'VOLUME_MIXED_SERIES');
  // A subclass the caller does not know: made again from its code, with its fields and `retryable`.
  await assert.rejects(f.run(THROW, 'other'), (e: unknown) => e instanceof UnsupportedError && e.retryable && (e as unknown as { spout: string }).spout === 'short' && e.title === 'Unsupported model or layer');
  await assert.rejects(f.run(THROW, 'type'), (e: unknown) => e instanceof TypeError && e.message === 'x is not a function');
  await assert.rejects(f.run(THROW, 'string'), (e: unknown) => e instanceof Error && e.message === 'a string');
  assert.equal((await f.run(DOUBLE, { data: Float32Array.of(1) })).data[0], 2, 'a task that threw leaves its worker usable');
});

test('a task past the heap budget fails with LIMIT_EXCEEDED naming it; a dying worker with WORKER_UNAVAILABLE; the next task gets a new worker', async (t) => {
  const f = fence(t, { workers: 1, heapBytes: 32 * 1024 * 1024 });
  await assert.rejects(f.run(HOARD, undefined, { what: 'hoard.pth' }), (e: unknown) => {
    assert.ok(e instanceof LimitExceededError, String(e));
    assert.equal(e.code, 'LIMIT_EXCEEDED');
    assert.equal(e.message, `hoard.pth: needs more than ${32 * 1024 * 1024} bytes of worker heap (budgets.workerHeapBytes)`);
    return true;
  });
  await assert.rejects(f.run(EXIT, undefined), (e: unknown) => e instanceof WorkerUnavailableError && e.retryable && (e.retryAfterSeconds ?? 0) > 0 && /exit code 3/.test(e.message));
  assert.equal((await f.run(DOUBLE, { data: Float32Array.of(3) })).data[0], 6);
});

test('a full queue refuses at once; an aborted task ends its worker', async (t) => {
  const f = fence(t, { workers: 1, maxPending: 1 });
  const running = f.run(SPIN, 300);
  const waiting = f.run(SPIN, 1);
  await assert.rejects(f.run(SPIN, 1), (e: unknown) => e instanceof WorkerUnavailableError && e.code === 'WORKER_UNAVAILABLE' && /1 tasks are already waiting/.test(e.message));
  assert.deepEqual(await Promise.all([running, waiting]), [300, 1]);
  const abort = new AbortController();
  const spinning = f.run(SPIN, 60_000, { signal: abort.signal });
  setTimeout(() => abort.abort(new Error('cancelled')), 50);
  await assert.rejects(spinning, /cancelled/);
  assert.equal(await f.run(SPIN, 1), 1);
});
