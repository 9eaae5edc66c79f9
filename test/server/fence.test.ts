/**
 * The fence under attack, on the real server process: an upload that is heavy but within the
 * parse budgets, a burst that overloads the workers, and an upload whose decoding needs more
 * heap than a worker may have. Meanwhile /healthz is asked every 20 ms and must answer within
 * 250 ms each time; afterwards the server still answers, and its memory grew by less than 1 GB.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture, tempDir } from '../helpers.js';
import { cpuPickle, heapPickle } from './hostile-pickles.js';
import { healthBound, idleWorst, memory, post, probeHealth, problem, startServer, type Answer } from './serve.js';

const MiB = 1024 * 1024;

function upload(base: string, body: Buffer, name: string): { sent: Promise<void>; answer: Promise<Answer> } {
  return post(`${base}/v1/uploads?filename=${name}`, body);
}

test('fence: heavy, overloading and over-budget uploads neither stall /healthz nor end the server', async (t) => {
  const dir = await tempDir(t);
  const server = await startServer(t, {
    ACS_HUB_DATA_DIR: join(dir, 'data'),
    ACS_HUB_LOG_LEVEL: 'warn',
    ACS_HUB_FENCE_WORKERS: '1',
    ACS_HUB_FENCE_MAX_PENDING: '1',
    ACS_HUB_BUDGET_WORKER_HEAP_BYTES: String(64 * MiB),
    // The heap budget, not these, is what the second attack must meet.
    ACS_HUB_BUDGET_PICKLE_OPCODES: String(1e9),
    ACS_HUB_BUDGET_PICKLE_OBJECTS: String(1e9),
  });
  const base = server.url;
  const pid = server.proc.pid!;
  const normal = readFileSync(fixture('formats', 'resnet18_tiny.pth'));
  const heavy = cpuPickle(10_000_000); // 20 MB, twenty million opcodes: seconds of decoding
  const hungry = heapPickle(3_000, 1_000); // 3 MB, three million lists: over 100 MB of heap
  // Warm-up: the first upload starts the worker (and the API validator), the first fetch loads
  // this process's HTTP client; neither belongs to what is measured.
  assert.equal((await upload(base, normal, 'resnet18.pth').answer).status, 201);
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  const before = memory(pid);
  const idle = await idleWorst(base, 500);
  const probe = probeHealth(base);

  // Heavy but within the budgets: refused once decoded (it is no checkpoint), after a while.
  const slow = upload(base, heavy, 'heavy.pth');
  await slow.sent;
  // Time for the server to store the body and hand it to the worker, far less than the decoding.
  await new Promise((res) => setTimeout(res, 150));
  // While it holds the one worker: one upload waits for it, the next is refused.
  const waiting = upload(base, normal, 'again.pth').answer;
  await new Promise((res) => setTimeout(res, 50));
  const refused = await upload(base, normal, 'more.pth').answer;
  problem(refused, 503, 'WORKER_UNAVAILABLE');
  assert.match(String(refused.headers['retry-after']), /^[1-9][0-9]*$/);
  problem(await slow.answer, 422, 'CHECKPOINT_FORMAT');
  assert.equal((await waiting).status, 201);

  // Past the worker's heap: the worker is ended, the request answered 413.
  const over = problem(await upload(base, hungry, 'hungry.pth').answer, 413, 'LIMIT_EXCEEDED');
  assert.match(over.detail, /^hungry\.pth: .*budgets\.workerHeapBytes/);

  const latencies = await probe.stop();
  const after = memory(pid);
  assert.ok(latencies.length >= 20, `only ${latencies.length} health probes`);
  const worst = Math.max(...latencies);
  t.diagnostic(`/healthz: ${latencies.length} probes, the slowest ${worst.toFixed(1)} ms; peak resident memory ${((after.peak - before.rss) / MiB).toFixed(0)} MiB above the start`);
  const bound = await healthBound(base, idle);
  assert.ok(worst < bound, `/healthz took ${worst.toFixed(1)} ms at worst (${latencies.length} probes), more than ${bound.toFixed(0)} ms`);
  assert.ok(after.peak - before.rss < 1024 * MiB, `resident memory grew by ${((after.peak - before.rss) / MiB).toFixed(0)} MiB`);

  // Still alive, and serving: a normal upload goes through a fresh worker.
  assert.equal(server.proc.exitCode, null);
  const ok = await upload(base, normal, 'after.pth').answer;
  assert.equal(ok.status, 201, ok.body);
  assert.equal((JSON.parse(ok.body) as { format: string }).format, 'pth');
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
});
