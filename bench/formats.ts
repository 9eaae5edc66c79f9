/**
 * bench/formats: read and write throughput (MB/s) and peak memory of a ~100 MB checkpoint
 * in each format. Every measurement runs in a fresh child process, so its peak resident
 * memory (maxRSS) belongs to that one operation; the baseline RSS of an idle child is
 * subtracted and the result compared with the file size.
 *
 *   npm run bench -- formats            (or: node dist/bench/formats.js)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeOnnx, encodeOnnxChunks, onnxToCheckpoint, tensorToProto } from '../converters/formats/onnx.js';
import { encodeCheckpoint, readCheckpointFile } from '../converters/formats/index.js';
import { readFileBytes, writeChunksAtomic } from '../converters/io.js';
import { countParameters, type StateDict } from '../converters/tensor.js';
import { peakRssBytes } from './memory.js';

const FORMATS = ['safetensors', 'pth', 'onnx'] as const;
type Format = (typeof FORMATS)[number];

/** A ResNet-50-shaped state dict of about `mb` megabytes of float32 weights. */
function syntheticStateDict(mb: number): StateDict {
  const sd: StateDict = new Map();
  let bytes = 0;
  let i = 0;
  let seed = 1;
  while (bytes < mb * 1e6) {
    const shape = i % 3 === 0 ? [512, 256, 3, 3] : i % 3 === 1 ? [1024, 512, 1, 1] : [1024];
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      data[j] = seed / 2 ** 32 - 0.5;
    }
    sd.set(`layer${i}.weight`, { dtype: 'F32', shape, data });
    bytes += data.byteLength;
    i++;
  }
  return sd;
}

function encode(format: Format, sd: StateDict): Uint8Array[] {
  if (format !== 'onnx') return encodeCheckpoint(format, sd);
  const initializer = [...sd].map(([name, t]) => tensorToProto(name, t));
  return encodeOnnxChunks({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph: { name: 'weights', initializer } });
}

/** Child: do one operation, print JSON with its time and peak memory. */
async function child(op: 'read' | 'write' | 'idle', format: Format, path: string): Promise<void> {
  if (op === 'idle') {
    process.stdout.write(JSON.stringify({ maxRss: peakRssBytes() }));
    return;
  }
  let seconds: number;
  if (op === 'read') {
    const t0 = process.hrtime.bigint();
    const ckpt = format === 'onnx' ? onnxToCheckpoint(decodeOnnx(await readFileBytes(path))) : await readCheckpointFile(path);
    seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (countParameters(ckpt.tensors.values()) === 0) throw new Error('empty read');
  } else {
    const sd = syntheticStateDict(100);
    const before = peakRssBytes();
    const t0 = process.hrtime.bigint();
    await writeChunksAtomic(path, encode(format, sd));
    seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write(JSON.stringify({ seconds, maxRss: peakRssBytes(), base: before }));
    return;
  }
  process.stdout.write(JSON.stringify({ seconds, maxRss: peakRssBytes() }));
}

function spawnChild(op: string, format: string, path: string): { seconds: number; maxRss: number; base?: number } {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', op, format, path], { encoding: 'utf8' });
  return JSON.parse(out) as { seconds: number; maxRss: number; base?: number };
}

async function main(): Promise<void> {
  const [flag, op, format, path] = process.argv.slice(2);
  if (flag === '--child') return child(op as 'read', format as Format, path!);
  const dir = mkdtempSync(join(tmpdir(), 'acs-bench-'));
  const runs = Number(process.env['BENCH_RUNS'] ?? 3);
  try {
    const idle = spawnChild('idle', 'pth', '').maxRss;
    const rows: string[][] = [['format', 'size MB', 'write MB/s', 'write peak / size', 'read MB/s', 'read peak MB', 'read peak / size']];
    for (const format of FORMATS) {
      const path = join(dir, `model.${format}`);
      const writes = Array.from({ length: runs }, () => spawnChild('write', format, path));
      const size = statSync(path).size;
      const reads = Array.from({ length: runs }, () => spawnChild('read', format, path));
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const writeS = median(writes.map((w) => w.seconds));
      const writeExtra = median(writes.map((w) => w.maxRss - (w.base ?? idle)));
      const readS = median(reads.map((r) => r.seconds));
      const readPeak = median(reads.map((r) => r.maxRss - idle));
      rows.push([
        format,
        (size / 1e6).toFixed(1),
        (size / 1e6 / writeS).toFixed(0),
        (writeExtra / size).toFixed(2),
        (size / 1e6 / readS).toFixed(0),
        (readPeak / 1e6).toFixed(0),
        (readPeak / size).toFixed(2),
      ]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) console.log(r.map((c, i) => c.padStart(widths[i]!)).join('  '));
    console.log(`(median of ${runs} runs, each in a fresh process; peak = maxRSS above an idle process; write peak excludes the tensors already in memory)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
