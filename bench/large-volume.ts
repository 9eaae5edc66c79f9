/**
 * bench/large-volume: a 512x512x300 CT through sliding windows, in memory that does not grow with
 * the volume beyond the output itself: the CT is kept on disk and read a plane at a time.
 *
 * Synthesises int16 CT NIfTIs (.nii.gz, 0.7 x 0.7 x 1 mm) of 512x512x300, of half its depth, and
 * of one window, the full CT again in sagittal slices, as a folder of 300 DICOM files, as a zip
 * of them and as an int16 `.npy`, in a
 * temporary folder (removed afterwards), converts two networks with seeded
 * weights (no download): ACS ResNet-50 ending at its pooled features (the stem adapted to one
 * channel) and ACS DeepLabV3-MobileNetV3-Large (torchvision's architecture from its template,
 * 21 classes, three input channels), and runs `acs-hub infer` on each in a child process under
 * `/usr/bin/time -v`: windows of 96^3, overlap 0.25, Gaussian blending; the features as JSON, the
 * labels as .nii.gz on the input's grid. For each it prints the wall time, the peak RSS, and the
 * bound the code states beside it: the session (the peak RSS of the same command on the
 * one-window volume: Node, the model, the onnxruntime session running one window), plus the most
 * of the three phases (`windowedInferenceBytes` of a spooled volume for the inference: no input
 * but its ring of planes; reading: one file slice of int16 samples, one float32 plane and the
 * stream's chunks, `spoolNiftiFile`, and for the same CT stored in sagittal slices one more
 * float32 slice and a block of 64 MiB of planes gathered from them; for it as a folder of DICOM
 * files, `spoolSliceFolder`, or a zip of them, `spoolSliceZip`, two files' bytes, a slice and a
 * plane; writing: the labels, their NIfTI and its gzip), plus what V8
 * may leave uncollected: buffers nothing refers to any more are freed when
 * the external memory of a thread grows 64 MiB past its level at the last collection, so up to
 * 64 MiB in each of the two threads (the main one, the engine's worker).
 *
 *   npm run bench:large-volume   (BENCH_THREADS=2; BENCH_SIZE=512,512,300; BENCH_WINDOW=96;
 *                                 BENCH_OVERLAP=0.25; BENCH_CASES=features,segmentation;
 *                                 BENCH_FORMS=axial,sagittal,DICOM,DICOM zip,npy,TIFF,PNG;
 *                                 BENCH_KEEP=1 keeps the folder)
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_BUDGETS } from '../converters/budgets.js';
import { convert, type ConvertOptions } from '../converters/convert.js';
import { encodeZip } from '../converters/formats/zip.js';
import { concatChunks } from '../converters/io.js';
import { encodeOutput } from '../converters/outputs.js';
import type { StateDict } from '../converters/tensor.js';
import { slidingWindowBytes, windowStarts } from '../inference/preprocess/index.js';
import { windowedInferenceBytes } from '../inference/runtime/pipeline.js';
import { SPOOL_BLOCK_BYTES } from '../inference/volumes/index.js';
import { resnetStateDict, syntheticCt, syntheticCtDicom, syntheticCtImages, syntheticCtNpy, templateStateDict } from './synthetic.js';

const THREADS = Number(process.env['BENCH_THREADS'] ?? 2);
const SIZE = (process.env['BENCH_SIZE'] ?? '512,512,300').split(',').map(Number) as [number, number, number];
const WINDOW = Number(process.env['BENCH_WINDOW'] ?? 96);
const OVERLAP = Number(process.env['BENCH_OVERLAP'] ?? 0.25);
const CASES = (process.env['BENCH_CASES'] ?? 'features,segmentation').split(',');
const FORMS = process.env['BENCH_FORMS']?.split(',');
const CLI = new URL('../cli/main.js', import.meta.url).pathname;
const TIME = '/usr/bin/time';
const MiB = 1024 * 1024;
/** Unreferenced buffers V8 may hold before it collects: 64 MiB in each of two threads (see the module comment). */
const GC_SLACK = 2 * 64 * MiB;
/**
 * What libvips (sharp) holds once it has decoded TIFF pages or PNG slices, through the rest of
 * the run (its threads' allocator keeps it): its operation cache (sharp.cache: up to 50 MiB) and
 * the decoders' buffers. Measured: a 300-page 512x512 TIFF spooled in one process grows its RSS
 * by 47-83 MiB.
 */
const LIBVIPS_BYTES = 96 * MiB;

interface Network {
  name: string;
  label: string;
  kind: 'vector' | 'dense';
  /** The file `acs-hub infer` writes. */
  out: string;
  state: () => StateDict;
  options: ConvertOptions;
}

const NETWORKS: Network[] = [
  { name: 'features', label: 'ACS ResNet-50, pooled features (1 channel in)', kind: 'vector', out: 'features.json', state: () => resnetStateDict(), options: { mode: 'acs', inChannels: 1, head: 'features' } },
  { name: 'segmentation', label: 'ACS DeepLabV3-MobileNetV3-Large, 21 classes (3 channels in)', kind: 'dense', out: 'labels.nii.gz', state: () => templateStateDict('deeplabv3_mobilenet_v3_large'), options: { mode: 'acs' } },
];

/** What one run of the CLI measured. */
interface Run {
  wallS: number;
  peakRss: number;
  json?: { ms?: { preprocess: number; network: number } };
  outBytes: number;
}

/** Run `acs-hub infer` under `/usr/bin/time -v` and read its peak RSS. */
async function runCli(model: string, volume: string, out: string, env: Record<string, string>): Promise<Run> {
  const args = ['-v', process.execPath, CLI, 'infer', model, volume, '--patch', `${WINDOW},${WINDOW},${WINDOW}`, '--overlap', String(OVERLAP), '--window', 'abdomen', '--threads', String(THREADS), '--out', out];
  const t0 = performance.now();
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(TIME, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (c) => resolve({ code: c, stderr: err }));
  });
  const wallS = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`acs-hub infer ${volume} failed (${code}):\n${stderr.slice(-2000)}`);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
  if (!rss) throw new Error(`no peak RSS in the output of ${TIME} -v`);
  const json = out.endsWith('.json') ? (JSON.parse(await readFile(out, 'utf8')) as Run['json']) : undefined;
  return { wallS, peakRss: Number(rss[1]) * 1024, json, outBytes: (await stat(out)).size };
}

const mib = (n: number): string => (n / MiB).toFixed(0);

async function main(): Promise<void> {
  if (!existsSync(TIME)) throw new Error(`${TIME} (GNU time) is needed to measure the peak RSS of a child process`);
  const dir = await mkdtemp(join(tmpdir(), 'acs-hub-large-volume-'));
  try {
    const [ni, nj, nk] = SIZE;
    const half = Math.max(WINDOW, Math.round(nk / 2));
    console.log(`large-volume bench: acs-hub infer in a child process, onnxruntime-node cpu, ${THREADS} threads, windows ${WINDOW}^3, overlap ${OVERLAP}, Gaussian blending`);
    console.log('(figures from a shared machine, loaded by other work while they were taken: times are indicative, peak RSS is not affected)\n');
    const volumes: { name: string; dims: [number, number, number]; stored: 'axial' | 'sagittal' | 'DICOM' | 'DICOM zip' | 'npy' | 'TIFF' | 'PNG'; path: string; bytes: number }[] = [];
    const forms = [
      ['one window', [WINDOW, WINDOW, WINDOW], 'axial'],
      ['half', [ni, nj, half], 'axial'],
      ['full', [ni, nj, nk], 'axial'],
      ['full, sagittal slices', [ni, nj, nk], 'sagittal'],
      ['full, DICOM series', [ni, nj, nk], 'DICOM'],
      ['full, DICOM zip', [ni, nj, nk], 'DICOM zip'],
      ['full, NumPy', [ni, nj, nk], 'npy'],
      ['full, TIFF', [ni, nj, nk], 'TIFF'],
      ['full, PNG slices', [ni, nj, nk], 'PNG'],
    ] as const;
    for (const [name, dims, stored] of forms.filter(([n, , st]) => n === 'one window' || FORMS === undefined || FORMS.includes(st))) {
      const t0 = performance.now();
      const path = join(dir, `ct-${dims.join('x')}-${stored.replace(' ', '-')}${{ DICOM: '', 'DICOM zip': '.zip', npy: '.npy', TIFF: '.tif', PNG: '', axial: '.nii.gz', sagittal: '.nii.gz' }[stored]}`);
      let bytes = 0;
      if (stored === 'DICOM' || stored === 'DICOM zip') {
        const files = syntheticCtDicom(dims, [0.7, 0.7, 1]).map((data, k) => ({ name: `IM${String(k).padStart(4, '0')}.dcm`, data }));
        if (stored === 'DICOM') {
          await mkdir(path);
          for (const f of files) await writeFile(join(path, f.name), f.data);
        } else {
          const out = await open(path, 'w');
          for (const chunk of encodeZip(files.map((f) => ({ name: `ct/${f.name}`, data: [f.data] })))) await out.write(chunk);
          await out.close();
        }
        bytes = (await stat(path)).isDirectory() ? files.reduce((a, f) => a + f.data.byteLength, 0) : (await stat(path)).size;
      } else if (stored === 'TIFF' || stored === 'PNG') {
        const files = await syntheticCtImages(dims, stored === 'TIFF' ? 'tiff' : 'png');
        if (stored === 'TIFF') await writeFile(path, files[0]!);
        else {
          await mkdir(path);
          for (const [k, f] of files.entries()) await writeFile(join(path, `slice${k}.png`), f);
        }
        bytes = files.reduce((a, f) => a + f.byteLength, 0);
      } else if (stored === 'npy') {
        const file = syntheticCtNpy(dims);
        await writeFile(path, file);
        bytes = file.byteLength;
      } else {
        const file = syntheticCt(dims, [0.7, 0.7, 1], stored);
        await writeFile(path, file);
        bytes = file.byteLength;
      }
      volumes.push({ name, dims: [...dims], stored, path, bytes });
      const what = { DICOM: `a folder of ${dims[2]} DICOM files`, 'DICOM zip': `a zip of ${dims[2]} DICOM files`, npy: '.npy', TIFF: `a ${dims[2]}-page TIFF (uint16)`, PNG: `a folder of ${dims[2]} PNG files (uint16)`, axial: '.nii.gz in axial slices', sagittal: '.nii.gz in sagittal slices' }[stored];
      console.log(`synthesised ${dims.join('x')} int16 CT: ${mib(bytes)} MiB, ${what}, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    console.log('\n| network | volume | windows | wall s | network s | peak RSS MiB | bound MiB | session | input | output | ring | batch | read | peak - input - output |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const net of NETWORKS.filter((n) => CASES.includes(n.name))) {
      const converted = await convert({ kind: 'state-dict', tensors: net.state() }, { ...net.options, inputSize: [WINDOW, WINDOW, WINDOW] });
      const model = join(dir, `${net.name}.onnx`);
      await writeFile(model, concatChunks(encodeOutput(converted, 'onnx', 'model.onnx').get('model.onnx')!));
      await writeFile(join(dir, `${net.name}.card.json`), JSON.stringify(converted.card));
      const channels = converted.card.input.channels;
      const classes = converted.card.output.size ?? 0;
      let session = 0;
      for (const v of volumes) {
        const [vi, vj, vk] = v.dims;
        const grid = [vk, vj, vi];
        const windows = [0, 1, 2].map((a) => windowStarts(Math.max(grid[a]!, WINDOW), WINDOW, OVERLAP).length).reduce((a, b) => a * b, 1);
        const ring = net.kind === 'dense' ? classes * WINDOW * Math.max(vj, WINDOW) * Math.max(vi, WINDOW) : 0;
        // the windows' voxels (all channels) and the ring are held against budgets.outputVoxels: raise it where they need more
        const needed = Math.max(windows * channels * WINDOW ** 3, ring);
        const env: Record<string, string> = { ACS_HUB_INFERENCE_AUTOTUNE: 'false', ACS_HUB_DATA_DIR: join(dir, 'data') };
        if (needed > DEFAULT_BUDGETS.outputVoxels) env['ACS_HUB_BUDGET_OUTPUT_VOXELS'] = String(2 ** Math.ceil(Math.log2(needed)));
        const run = await runCli(model, v.path, join(dir, `${net.name}-${v.name.replace(' ', '-')}-${net.out}`), env);
        if (v.name === 'one window') {
          session = run.peakRss;
          console.log(`| ${net.label} | ${v.dims.join('x')} (session) | ${windows} | ${run.wallS.toFixed(1)} | | ${mib(run.peakRss)} | | | | | | | | |`);
          continue;
        }
        const n = vi * vj * vk;
        const held = windowedInferenceBytes({ volume: [1, ...grid], window: [WINDOW, WINDOW, WINDOW], channels, classes, kind: net.kind, overlap: OVERLAP, spooled: true });
        // axial slices: one slice of samples and one float32 plane; sagittal: a slice (samples and float32) and a block of
        // planes; DICOM: one file twice (the first one, kept for its header, and the one decoded), a float32 slice and a plane
        const read = v.stored === 'TIFF' ? 2 * 16 * MiB + 4 * vi * vj : v.stored === 'PNG' ? (2 + 2 + 4) * vi * vj : v.stored === 'axial' || v.stored === 'npy' ? (2 + 4) * vi * vj + 2 * MiB : v.stored === 'sagittal' ? (2 + 4 + 4) * vj * vk + SPOOL_BLOCK_BYTES + 2 * MiB : (2 + 2 + 4 + 4) * vi * vj + 2 * MiB;
        const write = net.kind === 'dense' ? held.input + held.output + 2 * (n + 352) : 0;
        // what libvips keeps stays through the inference
        const bound = session + Math.max(held.total, read, write) + GC_SLACK + (v.stored === 'TIFF' || v.stored === 'PNG' ? LIBVIPS_BYTES : 0);
        const { slab, batch } = slidingWindowBytes({ grid, window: [WINDOW, WINDOW, WINDOW], channels, classes, kind: net.kind, overlap: OVERLAP, streamedChannels: 1 });
        const networkS = run.json?.ms ? (run.json.ms.network / 1000).toFixed(1) : '';
        const budget = env['ACS_HUB_BUDGET_OUTPUT_VOXELS'] ? ` (outputVoxels ${env['ACS_HUB_BUDGET_OUTPUT_VOXELS']})` : '';
        console.log(
          `| ${net.label}${budget} | ${v.dims.join('x')}${v.stored === 'axial' ? '' : ` (${v.stored})`} | ${windows} | ${run.wallS.toFixed(1)} | ${networkS} | ${mib(run.peakRss)} | ${mib(bound)} | ${mib(session)} | ${mib(held.input)} | ${mib(held.output)} | ${mib(slab)} | ${mib(batch)} | ${mib(read)} | ${mib(run.peakRss - held.input - held.output)} |`,
        );
        if (run.peakRss > bound) console.log(`  ! the peak RSS of ${v.dims.join('x')} is over the stated bound by ${mib(run.peakRss - bound)} MiB`);
      }
    }
    console.log('\nbound = session + the most of: inference (input: none, the volume is read a plane at a time; output; ring: the input planes a window spans and, for a segmentation, the blend accumulator; batch; windowedInferenceBytes), reading (one slice of samples, one float32 plane and 2 MiB of stream; for sagittal slices a float32 slice and a block of 64 MiB of planes as well; for DICOM, a folder or a zip, two files, a slice and a plane; for a TIFF a run of pages, twice 16 MiB, and a plane; for PNG slices a file, its samples and a plane), writing (labels, their NIfTI and its gzip) + for TIFF and PNG 96 MiB that libvips keeps + 128 MiB that V8 may leave uncollected (64 MiB in each of two threads)');
  } finally {
    if (process.env['BENCH_KEEP'] === '1') console.log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

await main();
