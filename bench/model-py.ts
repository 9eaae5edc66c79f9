/**
 * bench/model-py: the generated model.py of ResNet-18 and DenseNet-121 (mode acs) in PyTorch,
 * forward and forward + backward at 2x3x64^3, beside this repository's plain-torch ACS
 * reference (tools/goldens/acs_reference.py) built from torchvision's model with the same
 * weights, on the same input and threads, in one run (bench/model_py.py; Debian's
 * python3-torch and python3-torchvision).
 *
 *   npm run bench:model-py            (BENCH_THREADS=2 BENCH_RUNS=7 BENCH_SIZE=64)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert } from '../converters/convert.js';
import { encodePth } from '../converters/formats/pth.js';
import { concatChunks } from '../converters/io.js';
import { encodeOutput } from '../converters/outputs.js';
import type { StateDict } from '../converters/tensor.js';
import { densenetStateDict, resnetBasicStateDict } from './synthetic.js';

const THREADS = Number(process.env['BENCH_THREADS'] ?? 2);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 7);
const SIZE = Number(process.env['BENCH_SIZE'] ?? 64);
const PYTHON = process.env['BENCH_PYTHON'] ?? '/usr/bin/python3';

const NETWORKS: { name: string; arch: string; sd: () => StateDict }[] = [
  { name: 'ResNet-18', arch: 'resnet18', sd: () => resnetBasicStateDict() },
  { name: 'DenseNet-121', arch: 'densenet121', sd: () => densenetStateDict() },
];

interface Timing {
  median: number;
  min: number;
}

interface Row {
  name: string;
  max_abs_diff: number;
  max_abs_output: number;
  generated_forward: Timing;
  reference_forward: Timing;
  generated_backward: Timing;
  reference_backward: Timing;
  ratio_forward: number;
  ratio_backward: number;
}

const dir = mkdtempSync(join(tmpdir(), 'acs-hub-bench-model-py-'));
try {
  const specs: string[] = [];
  for (const n of NETWORKS) {
    const folder = join(dir, n.arch);
    const sd = n.sd();
    const result = convert({ kind: 'state-dict', tensors: sd }, { mode: 'acs' });
    mkdirSync(folder);
    writeFileSync(join(folder, '2d.pth'), concatChunks(encodePth(sd)));
    for (const format of ['py', 'pth'] as const) writeFileSync(join(folder, `model.${format}`), concatChunks(encodeOutput(result, format, 'm').get('m')!));
    specs.push(`${n.name}:${n.arch}:${folder}`);
  }
  console.log(`PyTorch (${PYTHON}), ${THREADS} threads, input 2x3x${SIZE}^3, ${RUNS} runs in turn (median / min, ratio: median of the run-by-run ratios); forward in eval(), forward + backward in train()`);
  const text = execFileSync(PYTHON, ['bench/model_py.py', String(THREADS), String(RUNS), String(SIZE), ...specs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const rows = text.trim().split('\n').map((l) => JSON.parse(l) as Row);
  const ms = (t: Timing) => `${t.median.toFixed(0)} / ${t.min.toFixed(0)} ms`;
  const table = [
    ['network', 'model.py fwd', 'reference fwd', 'ratio', 'model.py fwd+bwd', 'reference fwd+bwd', 'ratio', 'max |diff| / max |out|'],
    ...rows.map((r) => [
      r.name,
      ms(r.generated_forward),
      ms(r.reference_forward),
      r.ratio_forward.toFixed(2),
      ms(r.generated_backward),
      ms(r.reference_backward),
      r.ratio_backward.toFixed(2),
      (r.max_abs_diff / r.max_abs_output).toExponential(1),
    ]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
