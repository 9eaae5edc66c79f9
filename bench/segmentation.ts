/**
 * bench/segmentation: segmentation networks converted to ACS, on onnxruntime-node.
 *
 *   1. FCN-ResNet50 (torchvision's architecture) and the public PyTorch U-Net (widths 64 to
 *      1024, ConvTranspose up-convolutions padded to their skip connections), each from its
 *      architecture template with seeded random weights, at 96^3 and 128^3: median ms, GFLOP/s
 *      from the card's multiply-adds (2 FLOPs each), and the peak RSS of the case's own process.
 *   2. A 256x256x160 CT (synthetic, int16 NIfTI) end to end: read, window, normalise, sliding
 *      windows of 96^3 with overlap 0.25 and Gaussian blending, labels and probabilities back
 *      on the input grid as NIfTI: wall time per stage and peak RSS. With the full-size U-Net
 *      (270 GMACs per 96^3 window) this takes minutes on two threads; BENCH_CT_MODEL=fcn is
 *      about four times faster.
 *
 *   npm run bench:segmentation   (BENCH_THREADS=2 BENCH_RUNS=3; BENCH_SIZES=96,128;
 *                                 BENCH_CT_MODEL=unet|fcn; BENCH_SKIP_FCN=1)
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { convert, type ConvertResult } from '../converters/convert.js';
import { specializeModel } from '../converters/graph/specialize.js';
import { concatChunks } from '../converters/io.js';
import { encodeOutput } from '../converters/outputs.js';
import { withMachineBlock } from '../inference/runtime/channel-block.js';
import { InferenceEngine } from '../inference/runtime/engine.js';
import { modelFromBytes } from '../inference/runtime/model-file.js';
import { infer } from '../inference/runtime/pipeline.js';
import { createSession } from '../inference/runtime/providers.js';
import { renderAnswer } from '../inference/runtime/render-answer.js';
import { decodeNifti } from '../inference/volumes/index.js';
import { syntheticCt, templateStateDict } from './synthetic.js';

const THREADS = Number(process.env['BENCH_THREADS'] ?? 2);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const SIZES = (process.env['BENCH_SIZES'] ?? '96,128').split(',').map(Number);
const CT_MODEL = process.env['BENCH_CT_MODEL'] ?? 'unet';

const peakMiB = (): number => Math.round(process.resourceUsage().maxRSS / 1024);

function network(name: string, size: number): ConvertResult {
  const options = { mode: 'acs' as const, inputSize: [size, size, size] as [number, number, number] };
  return convert({ kind: 'state-dict', tensors: name === 'fcn' ? templateStateDict('fcn_resnet50', 50) : templateStateDict('unet', 51) }, options);
}

function onnxBytes(result: ConvertResult): Uint8Array {
  return concatChunks(encodeOutput(result, 'onnx', 'm.onnx').get('m.onnx')!);
}

async function timeNetwork(name: string, label: string, size: number): Promise<void> {
  const result = network(name, size);
  const channels = result.card.input.channels;
  const shape = [1, channels, size, size, size];
  const bytes = specializeModel(onnxBytes(result), shape, await withMachineBlock({}, 'cpu')).bytes;
  const { session } = await createSession(bytes, { device: 'cpu', threads: THREADS });
  const n = shape.reduce((a, b) => a * b, 1);
  const input = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.001));
  const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', input, shape) };
  await session.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t0);
  }
  await session.release();
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)]!;
  const macs = result.card.multiplyAdds.converted;
  console.log(`| ${label} | ${size}^3 | ${ms.toFixed(0)} | ${(macs / 1e9).toFixed(1)} | ${((2 * macs) / (ms / 1000) / 1e9).toFixed(1)} | ${peakMiB()} |`);
}

async function endToEnd(name: string, label: string): Promise<void> {
  const patch = 96;
  const result = network(name, patch);
  const model = modelFromBytes(onnxBytes(result), result.card, label);
  const engine = new InferenceEngine({ threads: THREADS, specialize: true });
  try {
    const bytes = syntheticCt();
    const t0 = performance.now();
    const volume = await decodeNifti(bytes, { file: 'ct.nii.gz' });
    const t1 = performance.now();
    const answer = await infer(engine, model, volume, { patch: [patch, patch, patch], overlap: 0.25, window: 'abdomen', keep: 'probabilities' });
    const t2 = performance.now();
    const labels = await renderAnswer({ volume, as: 'nifti', labels: answer.labels });
    const t3 = performance.now();
    const probs = await renderAnswer({ volume, as: 'probabilities', probabilities: answer.probabilities });
    const t4 = performance.now();
    const windows = answer.steps.find((s) => s.startsWith('sliding windows')) ?? '';
    console.log(`\n256x256x160 CT (${(bytes.length / 1e6).toFixed(1)} MB .nii.gz) through ${label}, ${windows}:`);
    console.log(`  read ${(t1 - t0).toFixed(0)} ms, preprocess + windows ${(t2 - t1).toFixed(0)} ms (preprocess ${answer.ms.preprocess.toFixed(0)}, network and blending ${answer.ms.network.toFixed(0)}),`);
    console.log(`  labels NIfTI ${(t3 - t2).toFixed(0)} ms (${(labels.length / 1e3).toFixed(0)} kB), probabilities NIfTI ${(t4 - t3).toFixed(0)} ms (${(probs.length / 1e6).toFixed(1)} MB);`);
    console.log(`  end to end ${((t4 - t0) / 1000).toFixed(1)} s, peak RSS ${peakMiB()} MiB`);
  } finally {
    await engine.close();
  }
}

/** Run one case of this bench in a process of its own, so that its peak RSS is its own. */
async function inChild(...args: string[]): Promise<void> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--case', ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`bench case ${args.join(' ')} exited with ${code}`);
}

async function main(): Promise<void> {
  console.log(`segmentation bench: onnxruntime-node cpu, ${THREADS} threads, median of ${RUNS} runs, each case in a process of its own (figures from a shared, loaded machine unless said otherwise)\n`);
  console.log('| network | input | ms | GMACs | GFLOP/s | peak RSS MiB |');
  console.log('|---|---|---|---|---|---|');
  for (const size of SIZES) await inChild('unet', String(size));
  if (process.env['BENCH_SKIP_FCN'] !== '1') for (const size of SIZES) await inChild('fcn', String(size));
  await inChild('ct', CT_MODEL);
}

const at = process.argv.indexOf('--case');
if (at < 0) await main();
else {
  const [what, arg] = process.argv.slice(at + 1);
  if (what === 'ct') await endToEnd(arg!, arg === 'fcn' ? 'FCN-ResNet50' : 'U-Net');
  else await timeNetwork(what!, what === 'fcn' ? 'FCN-ResNet50 (seeded)' : 'U-Net (Pytorch-UNet, seeded)', Number(arg));
}
