/**
 * bench/convert: end-to-end conversion of full-size checkpoints, `.pth -> .safetensors + .onnx`
 * (read, recognise, build, convert to ACS, write both files and the card), for ResNet-50 and
 * ConvNeXt-Base. Each run is a fresh process, so its peak resident memory belongs to it.
 *
 *   npm run bench:convert
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertFile } from '../converters/convert-file.js';
import { encodePth } from '../converters/formats/pth.js';
import { writeChunksAtomic } from '../converters/io.js';
import { encodeCard, encodeOutput } from '../converters/outputs.js';
import { peakRssBytes } from './memory.js';
import { convnextStateDict, resnetStateDict } from './synthetic.js';

async function child(input: string, dir: string): Promise<void> {
  const base = peakRssBytes();
  const t0 = performance.now();
  const result = await convertFile(input, { mode: 'acs' });
  const t1 = performance.now();
  for (const format of ['safetensors', 'onnx'] as const) {
    for (const [name, chunks] of encodeOutput(result, format, join(dir, `model.${format}`))) await writeChunksAtomic(name, chunks);
  }
  await writeChunksAtomic(join(dir, 'card.json'), [encodeCard(result)]);
  const t2 = performance.now();
  process.stdout.write(JSON.stringify({ convertMs: t1 - t0, totalMs: t2 - t0, maxRss: peakRssBytes(), base }));
}

async function main(): Promise<void> {
  const [flag, input, out] = process.argv.slice(2);
  if (flag === '--child') return child(input!, out!);
  const runs = Number(process.env['BENCH_RUNS'] ?? 3);
  const dir = mkdtempSync(join(tmpdir(), 'acs-bench-convert-'));
  try {
    const rows = [['network', 'checkpoint MB', 'convert ms', 'end-to-end ms', 'MB/s', 'peak MB', 'peak / checkpoint']];
    for (const [name, sd] of [['ResNet-50', resnetStateDict()], ['ConvNeXt-Base', convnextStateDict()]] as const) {
      const pth = join(dir, `${name}.pth`);
      await writeChunksAtomic(pth, encodePth(sd));
      const size = statSync(pth).size;
      const results = Array.from({ length: runs }, () =>
        JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', pth, dir], { encoding: 'utf8' })) as { convertMs: number; totalMs: number; maxRss: number; base: number },
      );
      const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const total = med(results.map((r) => r.totalMs));
      const peak = med(results.map((r) => r.maxRss - r.base));
      rows.push([name, (size / 1e6).toFixed(1), med(results.map((r) => r.convertMs)).toFixed(0), total.toFixed(0), (size / 1e6 / (total / 1000)).toFixed(0), (peak / 1e6).toFixed(0), (peak / size).toFixed(2)]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) console.log(r.map((c, i) => c.padStart(widths[i]!)).join('  '));
    console.log(`(median of ${runs} fresh processes; end-to-end = read + convert + write .safetensors, .onnx and card.json with fsync; peak = maxRSS above the process at start)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
