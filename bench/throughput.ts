/**
 * bench/throughput: requests per second and latency (p50, p95) of the inference engine under
 * 1, 4 and 16 concurrent clients, each sending its next request as soon as the last one is
 * answered, with and without the batching window (`inference.batchWindowMs`), in one run.
 * The network is ACS ResNet-18 at 1x3x32^3 (small, so that the queue and the batching, not
 * one long run, decide the figures).
 *
 *   npm run bench:throughput          (BENCH_THREADS=2 BENCH_SECONDS=3 BENCH_WINDOW_MS=2 BENCH_SIZE=32)
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { convert } from '../converters/convert.js';
import { concatChunks } from '../converters/io.js';
import { encodeOutput } from '../converters/outputs.js';
import { InferenceEngine, type ModelSource } from '../inference/runtime/engine.js';
import { resnetBasicStateDict } from './synthetic.js';

const THREADS = Number(process.env['BENCH_THREADS'] ?? 2);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 3);
const WINDOW_MS = Number(process.env['BENCH_WINDOW_MS'] ?? 2);
const SIZE = Number(process.env['BENCH_SIZE'] ?? 32);
const CLIENTS = [1, 4, 16];

interface Figures {
  perSecond: number;
  p50: number;
  p95: number;
  volumesPerRun: number;
}

async function load(engine: InferenceEngine, model: ModelSource, clients: number, seconds: number): Promise<Figures> {
  const shape = [1, 3, SIZE, SIZE, SIZE];
  const data = new Float32Array(3 * SIZE ** 3).fill(0.5);
  const latencies: number[] = [];
  const runs0 = engine.stats.runs;
  const volumes0 = engine.stats.volumes;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await engine.run(model, { data, shape });
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  const runs = engine.stats.runs - runs0;
  return { perSecond: latencies.length / elapsed, p50: at(0.5), p95: at(0.95), volumesPerRun: (engine.stats.volumes - volumes0) / Math.max(1, runs) };
}

async function main(): Promise<void> {
  const result = convert({ kind: 'state-dict', tensors: resnetBasicStateDict() }, { mode: 'acs' });
  const bytes = concatChunks(encodeOutput(result, 'onnx', 'm.onnx').get('m.onnx')!);
  const model: ModelSource = { key: 'resnet18-acs', bytes: bytes.byteLength, load: async () => bytes, warmupShape: [1, 3, SIZE, SIZE, SIZE] };
  console.log(`bench/throughput: ACS ResNet-18 1x3x${SIZE}^3, onnxruntime-node ${ort.env.versions.common}, ${THREADS} threads, maxBatch 4, ${SECONDS} s per row`);
  console.log(`CPU: ${os.cpus()[0]?.model ?? 'unknown'} (${os.cpus().length} logical CPUs, load average ${os.loadavg()[0]!.toFixed(1)})\n`);
  const rows = [['clients', 'window ms', 'requests/s', 'p50 ms', 'p95 ms', 'volumes per run']];
  for (const clients of CLIENTS) {
    for (const window of [0, WINDOW_MS]) {
      const engine = new InferenceEngine({ threads: THREADS, maxBatch: 4, maxPending: 64, batchWindowMs: window });
      await engine.prepare(model);
      await load(engine, model, clients, 0.5); // onnxruntime's first runs of a new batch size are slower
      const f = await load(engine, model, clients, SECONDS);
      await engine.close();
      rows.push([String(clients), String(window), f.perSecond.toFixed(1), f.p50.toFixed(1), f.p95.toFixed(1), f.volumesPerRun.toFixed(2)]);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padStart(widths[i]!)).join('  '));
  console.log('\nEach client sends its next request when the last is answered; a batch is up to 4 volumes of one shape.');
}

await main();
