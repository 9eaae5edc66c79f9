/**
 * bench/fence: what running the heavy work in the fence costs, and what it buys. Side by side
 * in one run, the same work in this thread (no fence) and through a warm WorkerFence:
 *
 * - inference as the infer route does it, NumPy volume bytes to answer: decode + preprocess
 *   (fenced or not) then the network on the engine (synthetic ACS ResNet-18, 64^3 and 128^3);
 * - conversion of a ResNet-50-sized synthetic .pth: decode, convert to ACS, encode
 *   .safetensors, .pth and .onnx (fenced or not).
 *
 * For each: the median latency, the ratio fenced / in-process (target at 64^3: under 1.05),
 * and the longest the event loop was held during one operation (what a /healthz waits).
 *
 *   npm run bench:fence            (BENCH_THREADS=2 BENCH_RUNS=15)
 */
import { setPriority } from 'node:os';
import { convert } from '../converters/convert.js';
import { CONVERT_TO_FILES, convertToFiles, type ConvertToFilesParams } from '../converters/convert-file.js';
import { IN_PROCESS, WorkerFence, type Fence } from '../converters/fence/fence.js';
import { encodePth } from '../converters/formats/pth.js';
import { concatChunks } from '../converters/io.js';
import { encodeOutput } from '../converters/outputs.js';
import { InferenceEngine } from '../inference/runtime/engine.js';
import { infer, type LoadedModel } from '../inference/runtime/pipeline.js';
import { PREPARE_VOLUME, type PrepareVolumeParams } from '../inference/runtime/prepare-volume.js';
import { encodeNpy } from '../inference/volumes/index.js';
import { resnetBasicStateDict, resnetStateDict } from './synthetic.js';

const THREADS = Number(process.env['BENCH_THREADS'] ?? 2);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 15);

interface Timed {
  ms: number;
  /** Time this thread's event loop spent working during the operation, in ms. */
  busyMs: number;
  /** Longest event-loop delay during the operation, in ms. */
  stallMs: number;
}

/** Time one operation and the longest the event loop was held meanwhile (gaps between 1 ms ticks). */
async function timed(fn: () => Promise<unknown>): Promise<Timed> {
  const elu = performance.eventLoopUtilization();
  const t0 = performance.now();
  let last = t0;
  let stall = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    stall = Math.max(stall, now - last);
    last = now;
  }, 1);
  await fn();
  const end = performance.now();
  clearInterval(tick);
  return { ms: end - t0, busyMs: performance.eventLoopUtilization(elu).active, stallMs: Math.max(stall, end - last) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Median time and worst stall of two ways of doing one thing on the same input (made afresh
 * for each run, outside the timing), run in turn so that drift in the machine's speed affects
 * both alike.
 */
async function sideBySide<P>(make: () => P, direct: (p: P) => Promise<unknown>, fenced: (p: P) => Promise<unknown>, runs = RUNS): Promise<[Timed, Timed]> {
  const a: Timed[] = [];
  const b: Timed[] = [];
  for (let i = 0; i < runs; i++) {
    for (const [fn, out] of [[direct, a], [fenced, b]] as const) {
      const p = make();
      out.push(await timed(() => fn(p)));
    }
  }
  const sum = (xs: Timed[]): Timed => ({ ms: median(xs.map((x) => x.ms)), busyMs: median(xs.map((x) => x.busyMs)), stallMs: Math.max(...xs.map((x) => x.stallMs)) });
  return [sum(a), sum(b)];
}

function table(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
}

function row(name: string, direct: Timed, fenced: Timed): string[] {
  return [name, direct.ms.toFixed(1), fenced.ms.toFixed(1), `${(fenced.ms / direct.ms).toFixed(3)}x`, direct.busyMs.toFixed(1), fenced.busyMs.toFixed(1), direct.stallMs.toFixed(1), fenced.stallMs.toFixed(1)];
}

/** A CT-like volume (HU values) of n^3 voxels as .npy bytes. */
function volumeBytes(n: number): Uint8Array {
  const data = new Float32Array(n ** 3);
  for (let i = 0; i < data.length; i++) data[i] = -1000 + 1400 * (0.5 + 0.5 * Math.sin(i * 0.001));
  return encodeNpy({ data, shape: [1, n, n, n] });
}

async function inference(fence: Fence, rows: string[][]): Promise<void> {
  const engine = new InferenceEngine({ threads: THREADS });
  for (const { channels, size } of [
    { channels: 1, size: 64 },
    { channels: 3, size: 64 },
    { channels: 1, size: 128 },
  ]) {
    const result = convert({ kind: 'state-dict', tensors: resnetBasicStateDict() }, { mode: 'acs', inChannels: channels === 3 ? undefined : channels });
    const onnx = concatChunks(encodeOutput(result, 'onnx', 'm.onnx').get('m.onnx')!);
    const model: LoadedModel = {
      source: { key: `resnet18-${channels}`, bytes: onnx.byteLength, load: async () => onnx, warmupShape: [1, channels, size, size, size] },
      card: result.card,
      channels,
    };
    await engine.prepare(model.source);
    const bytes = volumeBytes(size);
    const params = (): PrepareVolumeParams => ({ bytes: bytes.slice(), read: { file: 'volume.npy' }, model: { channels, card: result.card }, options: {} });
    const once = async (f: Fence, p: PrepareVolumeParams) => {
      const { volume, prepared } = await f.run(PREPARE_VOLUME, p);
      return infer(engine, model, volume, {}, undefined, prepared);
    };
    await once(IN_PROCESS, params());
    await once(fence, params());
    const [direct, fenced] = await sideBySide(params, (p) => once(IN_PROCESS, p), (p) => once(fence, p));
    rows.push(row(`infer ResNet-18 ACS 1x${channels}x${size}^3 (npy in, top-5 out)`, direct, fenced));
  }
  await engine.close();
}

async function conversion(fence: Fence, rows: string[][]): Promise<void> {
  const pth = concatChunks(encodePth(resnetStateDict()));
  const params = (): ConvertToFilesParams => ({
    name: 'resnet50.pth',
    origin: 'an upload',
    bytes: pth.slice(),
    options: { mode: 'acs' },
    outputs: (['safetensors', 'pth', 'onnx'] as const).map((format) => ({ format, name: `model.${format}` })),
  });
  const first = params();
  const cold = await timed(() => fence.run(CONVERT_TO_FILES, first));
  const [direct, fenced] = await sideBySide(params, (p) => convertToFiles(p), (p) => fence.run(CONVERT_TO_FILES, p), Math.max(3, Math.ceil(RUNS / 2)));
  rows.push(row(`convert ResNet-50 .pth (${(pth.byteLength / 1e6).toFixed(0)} MB) -> .safetensors + .pth + .onnx`, direct, fenced));
  rows.push(['  (the first fenced one, starting its worker)', '', cold.ms.toFixed(1), '', '', cold.busyMs.toFixed(1), '', cold.stallMs.toFixed(1)]);
}

async function main(): Promise<void> {
  // The fence's workers run at nice 10; so does every thread this one starts from now on, so
  // that on a busy machine both columns compete alike for the CPU.
  let niced = true;
  try {
    setPriority(10);
  } catch {
    niced = false;
  }
  console.log(`bench/fence: ${THREADS} onnxruntime threads, median of ${RUNS} runs, each way in turn${niced ? ', all at nice 10' : ''}`);
  const fence = new WorkerFence({ workers: 1 });
  const rows = [['operation', 'in this thread ms', 'fenced ms', 'ratio', 'loop busy ms', 'fenced', 'longest stall ms', 'fenced']];
  await inference(fence, rows);
  await conversion(fence, rows);
  await fence.close();
  table(rows);
  console.log('ratio: fenced / in this thread. Loop busy: time the event loop spent working during one operation (median; event-loop');
  console.log('utilisation). Longest stall: the longest gap between 1 ms timer ticks during one operation, the worst over the runs: what a');
  console.log('concurrent /healthz would have waited (on a busy machine it also holds waits for the CPU). The network runs in the engine\'s');
  console.log('worker thread in both columns.');
}

await main();
