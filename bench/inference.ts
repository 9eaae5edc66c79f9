/**
 * bench/inference: ACS networks through the inference engine (autotuned) against the MatMul
 * practical peak, against the files users download (specialised for the size and as is) in
 * plain onnxruntime, against the same networks with dense 3x3x3 kernels (i3d) in the same
 * engine, and against the same ACS networks in PyTorch (this repository's own plain-torch
 * reference, Debian's python3-torch), all on this machine with the same thread count, side by
 * side in one run. Then the same rates counting the work onnxruntime's blocked convolutions do
 * (each ACS view's output channels padded to whole blocks), onnxruntime's profile of where the time goes (by operator, and
 * for ResNet-18 by stage, with the rate at which each stage reads its weights), with the bound each
 * network's convolutions set (their FLOPs over their kernels' time alone), the table of ACS
 * lowerings tried, the gain of batching, and the cost of running sessions in the engine's
 * worker thread.
 *
 * Then what the engine's autotuning measured and chose (`inference/runtime/autotune.ts`).
 *
 *   npm run bench:inference            (BENCH_THREADS=2 BENCH_RUNS=7)
 *   npm run bench:gpu                  (= --device webgpu: the same networks on the GPU beside this
 *                                       machine's CPU, one table; exits 1 with one line when no
 *                                       GPU or provider is there; BENCH_CASES=regex picks rows;
 *                                       with VK_ICD_FILENAMES=.lavapipe/lvp_icd.json it runs on
 *                                       lavapipe, Vulkan on the CPU: a check of the path, not a GPU)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { convert, type ConvertOptions } from '../converters/convert.js';
import { decodeOnnx, encodeOnnx } from '../converters/formats/onnx.js';
import { A, graphFromModel, graphToModel, type Graph, type Node } from '../converters/graph/ir.js';
import { inferShapes } from '../converters/graph/shapes.js';
import { specializeModel, type SpecializeOptions } from '../converters/graph/specialize.js';
import { concatChunks } from '../converters/io.js';
import { encodeOutput } from '../converters/outputs.js';
import { specializeOnnxFile } from '../converters/specialize-file.js';
import { InferenceEngine } from '../inference/runtime/engine.js';
import { CANDIDATES, cpuFeatures, median } from '../inference/runtime/autotune.js';
import { cpuChannelBlock, withMachineBlock } from '../inference/runtime/channel-block.js';
import { bundledDevices, createSession, DEVICES, type Device } from '../inference/runtime/providers.js';
import type { StateDict, Tensor } from '../converters/tensor.js';
import { densenetStateDict, resnetBasicStateDict, resnetStateDict } from './synthetic.js';

const THREADS = Number(process.env['BENCH_THREADS'] ?? 2);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 7);
const deviceFlag = process.argv.indexOf('--device');
const DEVICE = (deviceFlag > 0 ? process.argv[deviceFlag + 1] : process.env['BENCH_DEVICE'] ?? 'cpu') as Device;
const PYTHON = process.env['BENCH_PYTHON'] ?? '/usr/bin/python3';

interface Case {
  name: string;
  arch: 'resnet18' | 'resnet50' | 'densenet121';
  channels: number;
  size: number;
}

const CASES: Case[] = [
  { name: 'ResNet-18 1x3x64^3', arch: 'resnet18', channels: 3, size: 64 },
  { name: 'ResNet-18 1x3x128^3', arch: 'resnet18', channels: 3, size: 128 },
  { name: 'ResNet-18 1x1x128^3', arch: 'resnet18', channels: 1, size: 128 },
  { name: 'ResNet-50 1x3x64^3', arch: 'resnet50', channels: 3, size: 64 },
  { name: 'ResNet-50 1x3x128^3', arch: 'resnet50', channels: 3, size: 128 },
  { name: 'DenseNet-121 1x3x64^3', arch: 'densenet121', channels: 3, size: 64 },
];

/**
 * The graph the engine makes of a model for `shape` with options `o`: specialised, and on the
 * CPU padded to the channel block of onnxruntime's blocked kernels here, as its worker does.
 */
async function engineGraph(bytes: Uint8Array, shape: number[], o: SpecializeOptions = {}, device: Device = DEVICE): Promise<Uint8Array> {
  return specializeModel(bytes, shape, await withMachineBlock(o, device)).bytes;
}

const weights = new Map<string, StateDict>();
function stateDict(arch: Case['arch']): StateDict {
  let sd = weights.get(arch);
  if (!sd) {
    sd = arch === 'resnet18' ? resnetBasicStateDict() : arch === 'resnet50' ? resnetStateDict() : densenetStateDict();
    weights.set(arch, sd);
  }
  return sd;
}

/**
 * Median latency (ms) of one network on onnxruntime, and its multiply-adds. `specialize` is
 * what the engine does to a model before it runs it (the default), `false` runs the
 * downloadable model.onnx as it is.
 */
async function measure(c: Case, options: ConvertOptions, specialize: SpecializeOptions | false = {}, device: Device = DEVICE): Promise<{ ms: number; macs: number; device: string }> {
  const result = convert({ kind: 'state-dict', tensors: stateDict(c.arch) }, { ...options, inChannels: c.channels === 3 ? undefined : c.channels, inputSize: [c.size, c.size, c.size] });
  const shape = [1, c.channels, c.size, c.size, c.size];
  let bytes = concatChunks(encodeOutput(result, 'onnx', 'm.onnx').get('m.onnx')!);
  if (specialize) bytes = await engineGraph(bytes, shape, specialize, device);
  // On a GPU the answer is checked against the CPU's first: a device that answers wrongly is not timed.
  const created = await createSession(bytes, { device, threads: THREADS, verifyShape: shape });
  if (created.fallback) console.error(`bench:inference: ${c.name} runs on ${created.device}: ${created.fallback}`);
  const session = created.session;
  const n = c.channels * c.size ** 3;
  const input = new Float32Array(n);
  for (let i = 0; i < n; i++) input[i] = Math.sin(i * 0.001);
  const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', input, shape) };
  await session.run(feeds);
  await session.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t0);
  }
  await session.release();
  times.sort((a, b) => a - b);
  return { ms: middle(times), macs: result.card.multiplyAdds.converted, device: created.device };
}

/** The cases to run: all, or those whose name matches BENCH_CASES (a regular expression). */
function cases(): Case[] {
  const only = process.env['BENCH_CASES'];
  return only ? CASES.filter((c) => new RegExp(only).test(c.name)) : CASES;
}

/** One row's figures: the engine, the two downloadable files and the MatMul, run in turn. */
interface Trio {
  engine: number;
  sized: number;
  plain: number;
  matmul: number;
  /**
   * The same comparisons round by round: the median over the rounds of the `?size=` file's
   * time over the engine's, of the general file's, and of the engine's rate over the MatMul's.
   * A median of each side's times can land on the machine's fast speed for one and its slow one
   * for the other; one round meets one speed.
   */
  paired: { sized: number; plain: number; ofMatmul: number };
  engineBest: number;
  matmulBest: number;
  macs: number;
  chosen: string;
  /** The default graph's convolution work, and as the blocked kernels do it (where there are any). */
  blocked?: { macs: number; blocked: number };
}

/**
 * The engine (autotuned, through its worker thread) and the two files users download
 * (specialised with `?size=`, and as is) in plain onnxruntime sessions: all three loaded, then
 * run in turn, so that drift in the machine's speed (a shared machine's neighbours) slows all
 * three alike and their ratios hold. Median latencies (ms) and the graph the engine chose.
 */
async function measureTrio(c: Case, block: number | undefined): Promise<Trio> {
  const result = convert({ kind: 'state-dict', tensors: stateDict(c.arch) }, { mode: 'acs', inChannels: c.channels === 3 ? undefined : c.channels, inputSize: [c.size, c.size, c.size] });
  const bytes = concatChunks(encodeOutput(result, 'onnx', 'm.onnx').get('m.onnx')!);
  let chosen = 'n/a';
  const engine = new InferenceEngine({ device: DEVICE, threads: THREADS, autotune: { runs: 3, maxMs: 60_000 }, onLoad: (i) => (chosen = i.choice?.candidate ?? 'n/a') });
  const shape = [1, c.channels, c.size, c.size, c.size];
  const data = new Float32Array(c.channels * c.size ** 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.001);
  const model = { key: c.name, bytes: bytes.byteLength, load: async () => bytes };
  const sizedBytes = specializeOnnxFile({ bytes, size: [c.size, c.size, c.size], channels: c.channels }).bytes;
  const sized = (await createSession(sizedBytes, { device: DEVICE, threads: THREADS })).session;
  const plain = (await createSession(bytes, { device: DEVICE, threads: THREADS })).session;
  const direct = (s: ort.InferenceSession) => () => s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', data, shape) });
  const gemm = await gemmRunner();
  const runs = [() => engine.run(model, { data, shape }), direct(sized), direct(plain), gemm.run];
  for (const run of runs) {
    await run();
    await run();
  }
  const rounds = await inTurn(...runs);
  const [e, z, p, g] = rounds as [number[], number[], number[], number[]];
  const paired = {
    sized: median(z.map((t, i) => t / e[i]!)),
    plain: median(p.map((t, i) => t / e[i]!)),
    ofMatmul: median(e.map((t, i) => rateOf(2 * result.card.multiplyAdds.converted, t) / rateOf(gemm.flops, g[i]!))),
  };
  const [engineMs, sizedMs, plainMs, gemmMs] = rounds.map(median) as [number, number, number, number];
  const [engineBest, , , gemmBest] = rounds.map((ts) => Math.min(...ts)) as [number, number, number, number];
  await engine.close();
  await sized.release();
  await plain.release();
  await gemm.release();
  // The engine's default graph is the file ?size= gives, but for the stem's padding (to blocks of
  // 8 in the file, to this machine's block in the engine), which the count below pads to the block anyway.
  const blocked = block === undefined ? undefined : blockedMacs(sizedBytes, shape, block);
  return { engine: engineMs, sized: sizedMs, plain: plainMs, matmul: rateOf(gemm.flops, gemmMs), paired, engineBest, matmulBest: rateOf(gemm.flops, gemmBest), macs: result.card.multiplyAdds.converted, chosen, blocked };
}

/**
 * The multiply-adds of a graph's convolutions, and as onnxruntime's blocked kernels compute
 * them: by its rule, a 2D convolution (group 1) whose input channels are a whole number of
 * blocks, or fewer than one block, runs blocked, its output channels padded to whole blocks
 * with zero filters. An ACS view has a third of a layer's output channels (21 or 22 of 64),
 * so with blocks of 16 each view computes 32.
 */
function blockedMacs(bytes: Uint8Array, shape: number[], block: number): { macs: number; blocked: number } {
  let macs = 0;
  let blocked = 0;
  for (const { node, outputShape, outputs, inputs, taps } of convolutions(bytes, shape)) {
    const work = outputShape[0]! * outputShape.slice(2).reduce((a, b) => a * b, 1) * inputs * taps;
    const group = node.attrs['group']?.type === 'int' ? node.attrs['group'].value : 1;
    const isBlocked = outputShape.length === 4 && group === 1 && (inputs < block || inputs % block === 0);
    macs += work * outputs;
    blocked += work * (isBlocked ? Math.ceil(outputs / block) * block : outputs);
  }
  return { macs, blocked };
}

/** The convolutions of an ONNX graph at input `shape`: each node, its output's shape, its weight's output and input channels and kernel taps. */
function* convolutions(bytes: Uint8Array, shape: number[]): Generator<{ node: Node; outputShape: number[]; weightBytes: number; outputs: number; inputs: number; taps: number }> {
  const graph = graphFromModel(decodeOnnx(bytes));
  const facts = inferShapes(graph, { [graph.inputs[0]!.name]: shape });
  for (const node of graph.nodes) {
    if (node.op !== 'Conv') continue;
    const weight = graph.initializers.get(node.inputs[1]!);
    const outputShape = facts.get(node.outputs[0]!)?.shape;
    if (!weight || !outputShape) continue;
    const [outputs, inputs, ...kernel] = weight.shape as [number, number, ...number[]];
    yield { node, outputShape, weightBytes: (weight.data as Float32Array).byteLength, outputs, inputs, taps: kernel.reduce((a, b) => a * b, 1) };
  }
}

/** The main table's engine rates again, counting the multiply-adds the blocked kernels do (zero filters included). */
function blockedWorkTable(trios: Map<string, Trio>, peak: number, block: number | undefined): void {
  if (block === undefined) {
    console.log('(onnxruntime has no blocked convolutions on this machine: no padding to count)\n');
    return;
  }
  const rows = [['network', 'multiply-adds G', 'as the blocked kernels do them G', 'ratio', 'engine GFLOP/s, counting them', '% of peak', 'best: % of MatMul best']];
  for (const c of CASES) {
    const trio = trios.get(c.name);
    if (!trio?.blocked) continue;
    const { macs, blocked } = trio.blocked;
    const scale = blocked / macs;
    const rate = rateOf(2 * trio.macs * scale, trio.engine);
    rows.push([c.name, (macs / 1e9).toFixed(2), (blocked / 1e9).toFixed(2), `${scale.toFixed(3)}x`, rate.toFixed(1), `${((100 * rate) / peak).toFixed(0)}%`, `${((100 * rateOf(2 * trio.macs * scale, trio.engineBest)) / trio.matmulBest).toFixed(0)}%`]);
  }
  console.log(`the work the blocked kernels do (onnxruntime's blocked convolutions here take channels in blocks of ${block}, read from its optimized graph;`);
  console.log('the engine\'s default graph, the same runs as above):');
  table(rows);
  console.log('An ACS view has a third of a layer\'s output channels, and each view is its own convolution, so each is padded to whole');
  console.log('blocks with zero filters: with blocks of 16, the 21 or 22 of 64 become 32, 1.5x the work of those layers.\n');
}

/** What onnxruntime's blocked 2D convolution reaches by itself: two chained 3x3 convolutions, 64 channels, 32 planes of 32x32. */
async function convRate(): Promise<number> {
  const [b, ch, hw] = [32, 64, 32];
  const weight = (seed: number) => ({ dtype: 'F32' as const, shape: [ch, ch, 3, 3], data: new Float32Array(ch * ch * 9).map((_, i) => Math.sin(i + seed) * 0.01) });
  const conv = (x: string, w: string, y: string) => ({ name: y, op: 'Conv', domain: '', inputs: [x, w], outputs: [y], attrs: { kernel_shape: A.ints([3, 3]), pads: A.ints([1, 1, 1, 1]) } });
  const graph = {
    name: 'conv',
    opset: 17,
    metadata: {},
    inputs: [{ name: 'x', dtype: 'F32' as const, shape: [b, ch, hw, hw] }],
    outputs: [{ name: 'z', dtype: 'F32' as const, shape: [b, ch, hw, hw] }],
    initializers: new Map([['w1', weight(1)], ['w2', weight(2)]]),
    nodes: [conv('x', 'w1', 'y'), conv('y', 'w2', 'z')],
  };
  return bestRate(graph, new ort.Tensor('float32', new Float32Array(b * ch * hw * hw).fill(0.5), [b, ch, hw, hw]), 2 * 2 * b * ch * ch * 9 * hw * hw);
}

/** onnxruntime's profile of one network's specialised graph: kernel time per run by operator. */
interface Profile {
  /** Milliseconds per run by operator (Conv and FusedConv together as Conv). */
  byOp: Map<string, number>;
  /** All kernels, milliseconds per run. */
  total: number;
  runs: number;
  macs: number;
  /** GFLOP/s of the MatMul run in turn with the profiled runs (median). */
  matmul: number;
  /** The convolutions' time in the run where it was least (ms), and the MatMul's fastest run (GFLOP/s). */
  best: { conv: number; matmul: number };
  /**
   * Milliseconds by stage of the network (`stageOf`) in the run whose kernels took least (a
   * machine whose speed jumps can slow one part of a run and not another).
   */
  byStage: Map<string, number>;
  /** The network's general graph (model.onnx as is). */
  general: Uint8Array;
}

/** The layout changes onnxruntime inserts itself (named by their operator, and a token): no stage of the network's. */
const INSERTED = 'layout changes inserted by onnxruntime';

/**
 * The stage of a ResNet a node belongs to, by its name: the stem (conv1, bn1, its ReLU and max
 * pool), layer1 to layer4, the head (pooling and fc); onnxruntime's own nodes apart.
 */
function stageOf(node: string): string {
  const head = node.split('/')[0]!.split('.')[0]!;
  if (/^(ReorderInput|ReorderOutput|Transpose|Reshape|Concat|Slice)(_token_\d+)?$/.test(head)) return INSERTED;
  if (/^(conv1|bn1|relu|maxpool)(_\d+)?$/.test(head)) return 'stem';
  if (/^layer\d+$/.test(head)) return head;
  return 'head';
}

/** A network's convolution multiply-adds and weight bytes by stage (`stageOf`), counted on its general graph at `shape`. */
function stageWork(bytes: Uint8Array, shape: number[]): Map<string, { macs: number; weightBytes: number }> {
  const work = new Map<string, { macs: number; weightBytes: number }>();
  for (const { node, outputShape, weightBytes, outputs, inputs, taps } of convolutions(bytes, shape)) {
    const stage = work.get(stageOf(node.name)) ?? { macs: 0, weightBytes: 0 };
    stage.macs += outputShape[0]! * outputShape.slice(2).reduce((a, b) => a * b, 1) * outputs * inputs * taps;
    stage.weightBytes += weightBytes;
    work.set(stageOf(node.name), stage);
  }
  return work;
}

/**
 * Profile the graph the engine runs for `c` (specialised with `specialize`): a warm-up run,
 * then `runs` runs whose kernel times are summed by operator, each followed by a run of the
 * MatMul (`gemm`), timed. The warm-up's events are left out (each node's first event): its
 * first-touch allocations would otherwise be spread over the runs.
 */
async function profile(c: Case, specialize: SpecializeOptions, gemm: Awaited<ReturnType<typeof gemmRunner>>, runs = 5): Promise<Profile | undefined> {
  const result = convert({ kind: 'state-dict', tensors: stateDict(c.arch) }, { mode: 'acs', inChannels: c.channels === 3 ? undefined : c.channels, inputSize: [c.size, c.size, c.size] });
  const general = concatChunks(encodeOutput(result, 'onnx', 'm.onnx').get('m.onnx')!);
  const bytes = await engineGraph(general, [1, c.channels, c.size, c.size, c.size], specialize);
  const dir = mkdtempSync(join(os.tmpdir(), 'acs-hub-profile-'));
  try {
    const { session } = await createSession(bytes, { device: DEVICE, threads: THREADS, profilePrefix: join(dir, 'run') });
    const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', new Float32Array(c.channels * c.size ** 3).fill(0.5), [1, c.channels, c.size, c.size, c.size]) };
    const gemmMs: number[] = [];
    await session.run(feeds);
    for (let i = 0; i < runs; i++) {
      await session.run(feeds);
      const t0 = performance.now();
      await gemm.run();
      gemmMs.push(performance.now() - t0);
    }
    session.endProfiling();
    await session.release();
    const file = readdirSync(dir).find((f) => f.endsWith('.json'));
    if (!file) return undefined;
    const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { cat?: string; name: string; dur: number; args?: { op_name?: string } }[];
    const byOp = new Map<string, number>();
    const stagesByRun = Array.from({ length: runs + 1 }, () => new Map<string, number>());
    // a node's k-th event is in run k (0: the warm-up)
    const seen = new Map<string, number>();
    const convByRun = new Array<number>(runs + 1).fill(0);
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
      const run = seen.get(e.name) ?? 0;
      seen.set(e.name, run + 1);
      if (run === 0) continue;
      const op = e.args?.op_name ?? '?';
      const group = op === 'Conv' || op === 'FusedConv' ? 'Conv' : op;
      byOp.set(group, (byOp.get(group) ?? 0) + e.dur / runs / 1000);
      const stage = stageOf(e.name.replace(/_kernel_time$/, ''));
      const stages = stagesByRun[run]!;
      stages.set(stage, (stages.get(stage) ?? 0) + e.dur / 1000);
      if (group === 'Conv') convByRun[run] = convByRun[run]! + e.dur / 1000;
    }
    const total = [...byOp.values()].reduce((a, b) => a + b, 0);
    gemmMs.sort((a, b) => a - b);
    const best = { conv: Math.min(...convByRun.slice(1)), matmul: rateOf(gemm.flops, gemmMs[0]!) };
    const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    const byStage = stagesByRun.slice(1).reduce((a, b) => (sum(b) < sum(a) ? b : a));
    return { byOp, total, runs, macs: result.card.multiplyAdds.converted, matmul: rateOf(gemm.flops, middle(gemmMs)), best, byStage, general };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Where the engine's time goes: onnxruntime's profile of the graph the engine runs by default,
 * by operator for one network (convolutions against the layout changes around them:
 * blocked-layout reorders, folds, plane slices, Concats), then for each ResNet the bound its
 * convolutions set: the network's FLOPs over the convolutions' time alone, which no change
 * to the operators around them can beat.
 */
async function whereTheTimeGoes(peak: number): Promise<void> {
  const detail = CASES[1]!;
  const rows = [['network', 'all kernels ms', 'Conv ms', 'other ms', 'Conv share', 'convolutions alone GFLOP/s', 'their % of peak', 'MatMul in turn GFLOP/s', 'their % of it', 'best: their % of MatMul best']];
  const gemm = await gemmRunner();
  await gemm.run();
  const graphs: { c: Case; name: string; specialize: SpecializeOptions }[] = [];
  for (const c of CASES.filter((x) => x.arch !== 'densenet121')) {
    graphs.push({ c, name: c.name, specialize: {} });
    // ResNet-50's 1x1x1 convolutions as 2D ones too: the candidate the engine keeps for it here
    if (c.arch === 'resnet50') graphs.push({ c, name: `${c.name}, pointwise`, specialize: { pointwise: true } });
  }
  for (const { c, name, specialize } of graphs) {
    const p = await profile(c, specialize, gemm);
    if (!p) return console.log('(no profile written)');
    if (c === detail && name === c.name) {
      const ops = [['operator', 'ms per run', 'share']];
      for (const [op, ms] of [...p.byOp].sort((a, b) => b[1] - a[1]).filter(([, ms]) => ms / p.total >= 0.005)) ops.push([op, ms.toFixed(1), `${((100 * ms) / p.total).toFixed(1)}%`]);
      console.log(`where the time goes (${c.name}, the engine's default graph, onnxruntime's profile of ${p.runs} runs after a warm-up):`);
      table(ops);
      console.log('ReorderInput/ReorderOutput: onnxruntime converting to and from its blocked layout around each 2D convolution.\n');
    }
    if (c.arch === 'resnet18' && c.channels === 3 && name === c.name) stageTable(c, p);
    const conv = p.byOp.get('Conv') ?? 0;
    const alone = rateOf(2 * p.macs, conv);
    rows.push([name, p.total.toFixed(1), conv.toFixed(1), (p.total - conv).toFixed(1), `${((100 * conv) / p.total).toFixed(0)}%`, alone.toFixed(0), `${((100 * alone) / peak).toFixed(0)}%`, p.matmul.toFixed(0), `${((100 * alone) / p.matmul).toFixed(0)}%`, `${((100 * rateOf(2 * p.macs, p.best.conv)) / p.best.matmul).toFixed(0)}%`]);
  }
  await gemm.release();
  console.log(`the bound the convolutions set (the same profiles; peak ${peak.toFixed(0)} GFLOP/s):`);
  table(rows);
  console.log('"convolutions alone": the network\'s FLOPs over its convolution kernels\' time only, as if every other operator took');
  console.log('no time: no rewrite of the layout changes around the convolutions can take the network past it. "in turn": the');
  console.log('MatMul timed after each profiled run (median), the peak under the conditions the profile met; "best": the');
  console.log('convolutions of the run where they took least against the MatMul\'s fastest run.\n');
}

/**
 * One profile by stage of the network: each stage's kernel time, its own convolution work
 * (multiply-adds of the general graph, no padding) at what rate, and its weights at what rate
 * they are read. A stage on small volumes (ResNet-18's layer4 at 64^3 works on 2x2x2) reads
 * each weight for a few multiply-adds only, so that its time is set by the memory, not the
 * arithmetic: no lowering changes that; batches of volumes do.
 */
function stageTable(c: Case, p: Profile): void {
  const work = stageWork(p.general, [1, c.channels, c.size, c.size, c.size]);
  const total = [...p.byStage.values()].reduce((a, b) => a + b, 0);
  const rows = [['stage', 'kernels ms', 'share', 'multiply-adds G', 'GFLOP/s', 'weights MB', 'weights read GB/s', 'multiply-adds per weight']];
  const order = ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'head', INSERTED];
  for (const stage of [...p.byStage.keys()].sort((a, b) => order.indexOf(a) - order.indexOf(b))) {
    const ms = p.byStage.get(stage)!;
    const w = work.get(stage);
    const perWeight = w && w.weightBytes ? (4 * w.macs) / w.weightBytes : undefined;
    rows.push([
      stage,
      ms.toFixed(2),
      `${((100 * ms) / total).toFixed(1)}%`,
      w ? (w.macs / 1e9).toFixed(3) : '',
      w ? rateOf(2 * w.macs, ms).toFixed(0) : '',
      w ? (w.weightBytes / 1e6).toFixed(2) : '',
      w ? (w.weightBytes / 1e6 / ms).toFixed(1) : '',
      perWeight === undefined ? '' : perWeight.toFixed(0),
    ]);
  }
  console.log(`by stage (${c.name}, the run of the same profile whose kernels took least, ${total.toFixed(1)} ms; the reorders are onnxruntime's own, in the last row):`);
  table(rows);
  console.log('');
}

function pytorch(cases: Case[]): Map<string, number> {
  const out = new Map<string, number>();
  try {
    const specs = cases.map((c, i) => `${i}:${c.arch}:${c.channels}:${c.size}`);
    const text = execFileSync(PYTHON, ['bench/pytorch_acs.py', String(THREADS), String(Math.max(3, Math.ceil(RUNS / 2))), ...specs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const line of text.trim().split('\n')) {
      const r = JSON.parse(line) as { name: string; median_ms: number };
      out.set(cases[Number(r.name)]!.name, r.median_ms);
    }
  } catch (err) {
    console.log(`(PyTorch peer not run: ${(err as Error).message.split('\n')[0]}; it needs ${PYTHON} with python3-torch and python3-torchvision)`);
  }
  return out;
}

function table(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
}

/** The middle of sorted times: their median. */
const middle = (sorted: readonly number[]) => sorted[Math.floor(sorted.length / 2)]!;

/** GFLOP/s of `flops` done in `ms`. */
const rateOf = (flops: number, ms: number) => flops / (ms / 1000) / 1e9;

const gflops = (macs: number, ms: number) => rateOf(2 * macs, ms).toFixed(1);

/**
 * The practical peak's measure: a 2048^3 MatMul, its input and its FLOPs. The product stays in
 * onnxruntime's arena and one value of it is returned: a 16 MiB output handed to JavaScript
 * each run made V8 collect garbage on the main thread every round, while the next row's run
 * (the engine's, in its worker) was going, which cost that run 10-13 ms at 1x3x64^3.
 */
function gemmCase(): { graph: Graph; input: ort.Tensor; flops: number } {
  const n = 2048;
  const corner = (v: bigint) => ({ dtype: 'I64' as const, shape: [2], data: BigInt64Array.from([v, v]) });
  const graph = {
    name: 'gemm',
    opset: 17,
    metadata: {},
    inputs: [{ name: 'a', dtype: 'F32' as const, shape: [n, n] }],
    outputs: [{ name: 'c', dtype: 'F32' as const, shape: [1, 1] }],
    initializers: new Map<string, Tensor>([
      ['b', { dtype: 'F32' as const, shape: [n, n], data: new Float32Array(n * n).fill(1e-3) }],
      ['start', corner(0n)],
      ['end', corner(1n)],
    ]),
    nodes: [
      { name: 'mm', op: 'MatMul', domain: '', inputs: ['a', 'b'], outputs: ['p'], attrs: {} },
      { name: 'one', op: 'Slice', domain: '', inputs: ['p', 'start', 'end'], outputs: ['c'], attrs: {} },
    ],
  };
  return { graph, input: new ort.Tensor('float32', new Float32Array(n * n).fill(1), [n, n]), flops: 2 * n ** 3 };
}

/** What onnxruntime's GEMM reaches on this machine (a 2048^3 MatMul, best of 7): the practical peak. */
async function gemmPeak(device: Device = DEVICE): Promise<number> {
  const { graph, input, flops } = gemmCase();
  return bestRate(graph, input, flops, device);
}

/**
 * The same MatMul as a runner, to be timed in turn with a network's runs: the peak under the
 * conditions the network met (a shared machine's speed drifts by a fifth within one run).
 */
async function gemmRunner(): Promise<{ run: () => Promise<unknown>; flops: number; release: () => Promise<void> }> {
  const { graph, input, flops } = gemmCase();
  const { session } = await createSession(encodeOnnx(graphToModel(graph)), { device: DEVICE, threads: THREADS });
  return { run: () => session.run({ [graph.inputs[0]!.name]: input }), flops, release: () => session.release() };
}

/** GFLOP/s of a one-input graph doing `flops`: the best of 7 runs after a warm-up. */
async function bestRate(graph: Graph, input: ort.Tensor, flops: number, device: Device = DEVICE): Promise<number> {
  const { session } = await createSession(encodeOnnx(graphToModel(graph)), { device, threads: THREADS });
  const feeds = { [graph.inputs[0]!.name]: input };
  await session.run(feeds);
  const ts: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    await session.run(feeds);
    ts.push(performance.now() - t0);
  }
  await session.release();
  return rateOf(flops, Math.min(...ts));
}

/** The CPU, as the decisions key it: model name and instruction-set features of interest. */
function cpuLine(): string {
  const wanted = ['avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'amx_tile', 'asimd', 'sve', 'neon'];
  const have = new Set(cpuFeatures().split(' '));
  return `${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} logical CPUs; ${wanted.filter((f) => have.has(f)).join(' ') || 'no AVX'})`;
}

/**
 * The same networks on a GPU provider beside this machine's CPU, in one table; one line and
 * exit code 1 when the provider is not in this onnxruntime-node or cannot start here.
 */
async function gpuTable(device: Device): Promise<void> {
  if (!(DEVICES as readonly string[]).includes(device) || device === 'cpu') {
    console.error(`bench:inference: --device must be one of ${DEVICES.filter((d) => d !== 'cpu').join(', ')}, got '${device}'`);
    process.exit(2);
  }
  if (!bundledDevices().includes(device)) {
    console.error(`bench:inference: the ${device} provider is not in onnxruntime-node ${ort.env.versions.common} here (it has ${bundledDevices().join(', ')})`);
    process.exit(1);
  }
  const probe = await createSession(concatChunks(encodeOutput(convert({ kind: 'state-dict', tensors: stateDict('resnet18') }, { mode: 'acs' }), 'onnx', 'm.onnx').get('m.onnx')!), { device, threads: THREADS });
  await probe.session.release();
  if (probe.device !== device) {
    console.error(`bench:inference: no ${device} device on this machine: ${probe.fallback ?? 'the provider did not start'}`);
    process.exit(1);
  }
  console.log(`bench:inference on ${device}: onnxruntime-node ${ort.env.versions.common}; CPU ${cpuLine()}, ${THREADS} threads; median of ${RUNS} runs`);
  console.log(`MatMul 2048^3: ${(await gemmPeak('cpu')).toFixed(0)} GFLOP/s on the CPU, ${(await gemmPeak(device)).toFixed(0)} GFLOP/s on ${device}\n`);
  const rows = [['network', 'CPU ms', 'CPU GFLOP/s', `${device} ms`, `${device} GFLOP/s`, `CPU / ${device}`, `${device} model.onnx as is ms`, 'ran on']];
  for (const c of cases()) {
    const cpu = await measure(c, { mode: 'acs' }, {}, 'cpu');
    const gpu = await measure(c, { mode: 'acs' }, {}, device);
    const plain = await measure(c, { mode: 'acs' }, false, device);
    rows.push([c.name, cpu.ms.toFixed(1), gflops(cpu.macs, cpu.ms), gpu.ms.toFixed(1), gflops(gpu.macs, gpu.ms), `${(cpu.ms / gpu.ms).toFixed(2)}x`, plain.ms.toFixed(1), `${gpu.device} / ${plain.device}`]);
  }
  table(rows);
  console.log('Both columns run the graph the engine runs (specialised for the input size); the last is the downloadable file as is.');
}

/** What the engine's autotuning measures and keeps, for ResNet-18 at 64^3 and 128^3. */
async function autotuneTable(): Promise<void> {
  const rows = [['network', ...CANDIDATES.map((c) => `${c.name} ms`), 'run-off ms', 'chosen']];
  for (const c of [CASES[0]!, CASES[1]!]) {
    const result = convert({ kind: 'state-dict', tensors: stateDict(c.arch) }, { mode: 'acs' });
    const bytes = concatChunks(encodeOutput(result, 'onnx', 'm.onnx').get('m.onnx')!);
    let chosen = '';
    let timings: Record<string, number> = {};
    let ratios: Record<string, number> = {};
    let runOff = 'none';
    const engine = new InferenceEngine({ device: DEVICE, threads: THREADS, autotune: { runs: Math.max(3, Math.ceil(RUNS / 2)), maxMs: 600_000 }, onLoad: (i) => {
      chosen = i.choice?.candidate ?? '';
      timings = i.choice?.timings ?? {};
      ratios = i.choice?.ratios ?? {};
      if (i.choice?.runOff) runOff = `${Object.entries(i.choice.runOff).map(([k, ms]) => `${k} ${ms.toFixed(1)}`).join(' / ')}, rounds ${i.choice.runOffRatio?.toFixed(3)}`;
    } });
    const shape = [1, c.channels, c.size, c.size, c.size];
    await engine.run({ key: c.name, bytes: bytes.byteLength, load: async () => bytes }, { data: new Float32Array(c.channels * c.size ** 3), shape });
    await engine.close();
    const cell = (k: string) => (timings[k] === undefined ? 'n/a' : `${timings[k]!.toFixed(1)}${ratios[k] === undefined ? '' : ` (${ratios[k]!.toFixed(2)})`}`);
    rows.push([c.name, ...CANDIDATES.map((k) => cell(k.name)), runOff, chosen]);
  }
  console.log('autotune (the engine measures its candidate graphs once per machine, model and size, each in turn with the default;');
  console.log("in brackets: the median of its time over the default's in the same round. The one lowest there is kept if it beats the");
  console.log('default again, by 2%, in a run-off of twice the runs; "rounds": the same median in the run-off, which decides):');
  table(rows);
  console.log('');
}

async function main(): Promise<void> {
  if (DEVICE !== 'cpu') return gpuTable(DEVICE);
  console.log(`bench/inference: onnxruntime-node ${ort.env.versions.common}, device ${DEVICE}, ${THREADS} threads, median of ${RUNS} runs`);
  console.log(`CPU: ${cpuLine()}`);
  const peak = await gemmPeak();
  console.log(`practical peak: onnxruntime MatMul 2048^3 reaches ${peak.toFixed(0)} GFLOP/s here`);
  console.log(`onnxruntime's own blocked 2D convolution (two chained 3x3, 64 channels, 32x32x32): ${(await convRate()).toFixed(0)} GFLOP/s\n`);
  const rows = [['network', 'engine ms', 'GFLOP/s', '% of peak', 'MatMul in turn GFLOP/s', '% of it', 'rounds: % of it', 'best: engine ms', 'best: % of MatMul best', 'chosen', 'model.onnx ?size= ms', '?size= / engine', 'rounds: ?size= / engine', 'model.onnx as is ms', 'as is / engine', 'rounds: as is / engine', 'i3d ms', 'i3d / ACS', 'PyTorch ACS ms', 'PyTorch / engine']];
  const block = await cpuChannelBlock();
  const trios = new Map<string, Trio>();
  const i3ds = new Map<string, number>();
  for (const c of CASES) {
    trios.set(c.name, await measureTrio(c, block));
    i3ds.set(c.name, (await measure(c, { mode: 'i3d' })).ms);
  }
  // PyTorch runs after onnxruntime, not before: after its minutes of full load, two runs read
  // the first row's engine at 1.5x the same graph in a plain session (0.94x in a run without it).
  const torch = pytorch(CASES);
  for (const c of CASES) {
    const trio = trios.get(c.name)!;
    const i3d = i3ds.get(c.name)!;
    const pt = torch.get(c.name);
    const rate = rateOf(2 * trio.macs, trio.engine);
    rows.push([
      c.name,
      trio.engine.toFixed(1),
      rate.toFixed(1),
      `${((100 * rate) / peak).toFixed(0)}%`,
      trio.matmul.toFixed(0),
      `${((100 * rate) / trio.matmul).toFixed(0)}%`,
      `${(100 * trio.paired.ofMatmul).toFixed(0)}%`,
      trio.engineBest.toFixed(1),
      `${((100 * rateOf(2 * trio.macs, trio.engineBest)) / trio.matmulBest).toFixed(0)}%`,
      trio.chosen,
      trio.sized.toFixed(1),
      `${(trio.sized / trio.engine).toFixed(2)}x`,
      `${trio.paired.sized.toFixed(2)}x`,
      trio.plain.toFixed(1),
      `${(trio.plain / trio.engine).toFixed(2)}x`,
      `${trio.paired.plain.toFixed(2)}x`,
      i3d.toFixed(1),
      `${(i3d / trio.engine).toFixed(2)}x`,
      pt === undefined ? 'n/a' : pt.toFixed(0),
      pt === undefined ? 'n/a' : `${(pt / trio.engine).toFixed(1)}x`,
    ]);
  }
  table(rows);
  console.log('GFLOP/s = 2 x multiply-adds counted from the graph / latency; % of the MatMul peak above (its best of 7, taken');
  console.log('first), and of the same MatMul\'s median when it runs in turn with this row\'s runs ("in turn"). "best": the fastest of');
  console.log('the engine\'s runs against the fastest of the MatMul\'s in the same turns (the machine at its quietest for both). "rounds": the');
  console.log('median over the turns of the same ratio within one turn (a machine whose speed jumps meets one speed in a turn, while');
  console.log('two medians can each land on a different one). "engine": the inference');
  console.log('engine as the server and the CLI run it (autotuned: "chosen" is the graph it kept; through its worker thread).');
  console.log('"model.onnx ?size=": the file `GET .../model.onnx?size=D,H,W` and `convert --specialize` give, in a plain');
  console.log('onnxruntime session; "as is": the general file; these three and the MatMul run in turn. i3d: dense 3x3x3 kernels in the');
  console.log('same engine, measured after them.\n');
  blockedWorkTable(trios, peak, block);
  await whereTheTimeGoes(peak);
  console.log('ACS lowerings (ResNet-18):');
  const lowerings: [string, ConvertOptions['fuse'], ConvertOptions['lowering'], SpecializeOptions | false][] = [
    ['three Conv3D + Concat per layer, BatchNorm and ReLU after the Concat', false, 'conv3d', false],
    ['+ BatchNorm folded into each view\'s Conv3D', { batchNorm: true, activation: false }, 'conv3d', false],
    ['+ ReLU applied to each view before the Concat (fused by onnxruntime)  = model.onnx', true, 'conv3d', false],
    ['  (instead: every view transposed into the batch, 2D Conv (NCHWc) per view)', true, 'fold2d', false],
    ['+ specialised for the input size: stride-1 views as 2D Convs', true, 'conv3d', { strided: false, pools: false }],
    ['+ the stem\'s MaxPool applied to each view before the Concat', true, 'conv3d', { strided: false }],
    ['+ strided views sliced and folded into the batch: 2D Convs', true, 'conv3d', { foldedPools: false, planes: 'before-fold' }],
    ['+ their planes kept after the fold (a contiguous slice)', true, 'conv3d', { foldedPools: false, planes: 'after-fold' }],
    ['+ the stem pooled while folded (blocked channels, 2D pooling)', true, 'conv3d', { planes: 'after-fold' }],
    ['+ D and H folds gathering the kept planes (one copy)  = engine default', true, 'conv3d', {}],
    ['  (+ 1x1x1 convolutions as 2D 1x1 ones too)', true, 'conv3d', { pointwise: true }],
    ['  (instead: the stem over the space-to-depth of its planes, 12 channels, 4x4 kernel)', true, 'conv3d', { stem: 'space-to-depth' }],
  ];
  const lrows = [['lowering', '1x3x64^3 ms', 'GFLOP/s', '1x3x128^3 ms', 'GFLOP/s']];
  for (const [name, fuse, lowering, specialize] of lowerings) {
    const a = await measure(CASES[0]!, { mode: 'acs', fuse, lowering }, specialize);
    const b = await measure(CASES[1]!, { mode: 'acs', fuse, lowering }, specialize);
    lrows.push([name, a.ms.toFixed(1), gflops(a.macs, a.ms), b.ms.toFixed(1), gflops(b.macs, b.ms)]);
  }
  table(lrows);
  console.log('');
  await autotuneTable();
  await trunkTable();
  await spinningTable();
  await batching();
  await workerHop();
}

/**
 * ResNet-50's residual trunk: the engine's default graph against the autotune's pointwise
 * candidate (1x1x1 convolutions as 2D ones, the Adds and ReLUs between them in 4D, fused by
 * onnxruntime into the convolutions), the two sessions run in turn.
 */
async function trunkTable(): Promise<void> {
  const rows = [['network', 'default ms', 'pointwise, 4D trunk ms', 'default / pointwise']];
  for (const c of [CASES[3]!, CASES[4]!]) {
    const result = convert({ kind: 'state-dict', tensors: stateDict(c.arch) }, { mode: 'acs', inputSize: [c.size, c.size, c.size] });
    const shape = [1, c.channels, c.size, c.size, c.size];
    const bytes = concatChunks(encodeOutput(result, 'onnx', 'm.onnx').get('m.onnx')!);
    const sessions = [(await createSession(await engineGraph(bytes, shape), { device: DEVICE, threads: THREADS })).session, (await createSession(await engineGraph(bytes, shape, { pointwise: true }), { device: DEVICE, threads: THREADS })).session];
    const input = new ort.Tensor('float32', new Float32Array(c.channels * c.size ** 3).map((_, i) => Math.sin(i * 0.001)), shape);
    const runs = sessions.map((s) => () => s.run({ [s.inputNames[0]!]: input }));
    for (const run of runs) await run();
    const [plain, pointwise] = (await alternate(...runs)) as [number, number];
    for (const s of sessions) await s.release();
    rows.push([c.name, plain.toFixed(1), pointwise.toFixed(1), `${(plain / pointwise).toFixed(2)}x`]);
  }
  console.log('ResNet-50\'s residual trunk in 4D (the specialized-pointwise candidate) against the default graph:');
  table(rows);
  console.log('');
}

/**
 * onnxruntime's intra-op threads spinning between operators during a run (the engine's
 * default; they stop when it returns) against sleeping until woken: the same graph in two
 * sessions, in turn, three runs a turn.
 */
async function spinningTable(): Promise<void> {
  const rows = [['network', 'spinning ms', 'sleeping ms', 'sleeping / spinning']];
  for (const c of [CASES[0]!, CASES[1]!, CASES[3]!]) {
    const result = convert({ kind: 'state-dict', tensors: stateDict(c.arch) }, { mode: 'acs', inputSize: [c.size, c.size, c.size] });
    const shape = [1, c.channels, c.size, c.size, c.size];
    const bytes = await engineGraph(concatChunks(encodeOutput(result, 'onnx', 'm.onnx').get('m.onnx')!), shape);
    const sessions = [(await createSession(bytes, { device: DEVICE, threads: THREADS, spinning: true })).session, (await createSession(bytes, { device: DEVICE, threads: THREADS, spinning: false })).session];
    const input = new ort.Tensor('float32', new Float32Array(c.channels * c.size ** 3).map((_, i) => Math.sin(i * 0.001)), shape);
    const times: number[][] = [[], []];
    for (const s of sessions) await s.run({ [s.inputNames[0]!]: input });
    for (let round = 0; round < RUNS; round++) {
      for (const [k, s] of sessions.entries()) {
        for (let i = 0; i < 3; i++) {
          const t0 = performance.now();
          await s.run({ [s.inputNames[0]!]: input });
          times[k]!.push(performance.now() - t0);
        }
      }
    }
    for (const s of sessions) await s.release();
    const [spin, sleep] = times.map((ts) => middle(ts.sort((x, y) => x - y))) as [number, number];
    rows.push([c.name, spin.toFixed(1), sleep.toFixed(1), `${(sleep / spin).toFixed(2)}x`]);
  }
  console.log('intra-op threads spinning between operators (the default; ACS_HUB_INFERENCE_SPINNING=false turns it off) or sleeping:');
  table(rows);
  console.log('');
}

/**
 * The engine runs sessions in a worker thread (so the server's event loop is free during a
 * run): the cost of that hop, a run on this thread against the same run through the engine.
 */
async function workerHop(): Promise<void> {
  const rows = [['network', 'session on this thread ms', 'through the engine\'s worker ms', 'ratio', 'event-loop turns during one engine run']];
  for (const c of [CASES[0]!, CASES[1]!]) {
    const result = convert({ kind: 'state-dict', tensors: stateDict(c.arch) }, { mode: 'acs' });
    const bytes = concatChunks(encodeOutput(result, 'onnx', 'm.onnx').get('m.onnx')!);
    const shape = [1, c.channels, c.size, c.size, c.size];
    const data = new Float32Array(c.channels * c.size ** 3).fill(0.5);
    // The same specialised graph the engine makes, run here on this thread; the two runs
    // alternate so that drift in the machine's speed affects both alike.
    const { session } = await createSession(await engineGraph(bytes, shape), { device: DEVICE, threads: THREADS });
    const engine = new InferenceEngine({ device: DEVICE, threads: THREADS });
    const model = { key: c.name, bytes: bytes.byteLength, load: async () => bytes, warmupShape: shape };
    await engine.prepare(model);
    const runDirect = () => session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', data, shape) });
    await runDirect();
    const [direct, viaWorker] = (await alternate(runDirect, () => engine.run(model, { data, shape }))) as [number, number];
    await session.release();
    let turns = 0;
    let spinning = true;
    const spin = () => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    await engine.run(model, { data, shape });
    spinning = false;
    await engine.close();
    rows.push([c.name, direct.toFixed(1), viaWorker.toFixed(1), `${(viaWorker / direct).toFixed(3)}x`, String(turns)]);
  }
  console.log('');
  table(rows);
}

/** Median times of functions run in turn, `RUNS` rounds. */
async function alternate(...fns: (() => Promise<unknown>)[]): Promise<number[]> {
  return (await inTurn(...fns)).map(median);
}

/** The times of functions run in turn, `RUNS` rounds: each function's, round by round. */
async function inTurn(...fns: (() => Promise<unknown>)[]): Promise<number[][]> {
  const times: number[][] = fns.map(() => []);
  for (let i = 0; i < RUNS; i++) {
    for (const [k, fn] of fns.entries()) {
      const t0 = performance.now();
      await fn();
      times[k]!.push(performance.now() - t0);
    }
  }
  return times;
}

/** Four volumes of one shape: one batched run against four runs. */
async function batching(): Promise<void> {
  const c = CASES[0]!;
  const result = convert({ kind: 'state-dict', tensors: stateDict(c.arch) }, { mode: 'acs' });
  const bytes = concatChunks(encodeOutput(result, 'onnx', 'm.onnx').get('m.onnx')!);
  const { session } = await createSession(bytes, { device: DEVICE, threads: THREADS });
  const n = c.channels * c.size ** 3;
  const one = new ort.Tensor('float32', new Float32Array(n).fill(0.5), [1, c.channels, c.size, c.size, c.size]);
  const four = new ort.Tensor('float32', new Float32Array(4 * n).fill(0.5), [4, c.channels, c.size, c.size, c.size]);
  const name = session.inputNames[0]!;
  await session.run({ [name]: four });
  const time = async (fn: () => Promise<unknown>) => {
    const ts: number[] = [];
    for (let i = 0; i < Math.max(3, Math.ceil(RUNS / 2)); i++) {
      const t0 = performance.now();
      await fn();
      ts.push(performance.now() - t0);
    }
    return middle(ts.sort((a, b) => a - b));
  };
  const separate = await time(async () => {
    for (let i = 0; i < 4; i++) await session.run({ [name]: one });
  });
  const batched = await time(() => session.run({ [name]: four }));
  await session.release();
  console.log(`batching (${c.name} x 4): four runs ${separate.toFixed(1)} ms, one batch of 4 ${batched.toFixed(1)} ms (${(separate / batched).toFixed(2)}x)`);
}

await main();
