/**
 * `acs-hub infer <model> --input <volume> [--output ...]`: run a 3D network on a CT or MR
 * volume (NIfTI, DICOM folder or zip, NumPy, TIFF, PNG slices) and write the answer: JSON
 * (top-k classes, features), the raw output as .npy, a label volume as NIfTI, or a preview.
 */
import { writeFile } from 'node:fs/promises';
import type { ConvertOptions, Mode } from '../converters/convert.js';
import { MODES } from '../converters/convert.js';
import { writeChunksAtomic } from '../converters/io.js';
import { resample } from '../inference/preprocess/index.js';
import { renderPreview } from '../inference/predictions/index.js';
import { InferenceEngine } from '../inference/runtime/engine.js';
import { loadModelFile, modelFromBytes } from '../inference/runtime/model-file.js';
import { infer, type InferOptions, type InferResult } from '../inference/runtime/pipeline.js';
import { activationMap } from '../inference/runtime/cam.js';
import { DEVICES, type Device } from '../inference/runtime/providers.js';
import { readRawArray } from '../inference/runtime/raw-input.js';
import { encodeNpy, readVolume, writeNifti, type Vec3, type Volume } from '../inference/volumes/index.js';
import { stat } from 'node:fs/promises';
import type { LoadedModel } from '../inference/runtime/pipeline.js';
import { OUTPUT_FILES } from '../zoo/convert-model.js';
import { readAll } from '../zoo/storage/storage.js';
import { loweringDecisions } from '../zoo/store.js';
import { onePositional, parse, UsageError } from './args.js';
import type { HubConfig } from '../server/config.js';
import { cliConfig, cliConvertModel, cliStorage, STORE_OPTIONS } from './context.js';
import { defaultLabels } from './convert.js';
import { printErr, printOut } from './output.js';

const USAGE =
  'acs-hub infer <model.onnx | checkpoint | zoo-id> --input <volume> [--output out.json|out.npy|out.nii.gz|out.png] [--raw] [--top-k N] ' +
  '[--window L,H|lung|mediastinum|abdomen|bone|brain|none] [--size D,H,W] [--spacing D,H,W] [--patch D,H,W] [--overlap F] [--device cpu|webgpu|cuda|tensorrt]';

const HELP = `Usage: ${USAGE}

Runs a 3D network on a volume. <model> is a 3D .onnx written by 'acs-hub convert' (its
<name>.card.json, if present beside it, supplies the preprocessing and labels), a 2D
checkpoint / 2D ONNX export converted on the fly (--mode, default acs), or a catalogue id
or URL, converted through the cache (--data DIR | --s3 URL, --offline).

Volumes: NIfTI (.nii, .nii.gz), a DICOM folder or .zip, NumPy .npy, multi-page TIFF, a
folder or .zip of PNG slices. They are read in RAS+ orientation as (C, D, H, W) with D
running inferior to superior, so an axial slice is [c, d].

Options:
  --input, -i FILE      the volume (required)
  --output, -o FILE     .json (answer), .npy (first output, float32), .nii/.nii.gz (label
                        volume on the input's grid), .png (three-view preview); default:
                        the JSON answer on stdout
  --raw                 feed the array as stored (.npy of shape D,H,W / C,D,H,W / N,C,D,H,W),
                        no preprocessing; writes the first output as float32 .npy
  --top-k N             classes reported (default 5)
  --window=L,H | NAME  intensity window (HU for CT; default lung for CT, percentiles for
                        other images); 'none' keeps the values
  --size D,H,W          resample to this size first
  --spacing D,H,W       resample to this voxel spacing (mm) first
  --patch D,H,W         sliding windows of this size with overlap blending
  --overlap F           sliding window overlap (default 0.25)
  --mean A,B,C --std A,B,C  normalisation (default: the card's, else ImageNet's)
  --device NAME         cpu (default), webgpu, cuda or tensorrt; falls back to cpu with a note
  --threads N           intra-op threads (default: onnxruntime's choice)
  --mode MODE           conversion mode when <model> is a 2D checkpoint (default acs)
  --series UID          DICOM SeriesInstanceUID when the folder holds several series
`;

function triple(v: string | undefined, what: string): Vec3 | undefined {
  if (v === undefined) return undefined;
  const xs = v.split(',').map((s) => Number(s.trim()));
  if (xs.length !== 3 || xs.some((x) => !Number.isFinite(x) || x <= 0)) throw new UsageError(`${what} must be three positive numbers D,H,W, got '${v}'`);
  return xs as Vec3;
}

function numbers(v: string | undefined, what: string): number[] | undefined {
  if (v === undefined) return undefined;
  const xs = v.split(',').map((s) => Number(s.trim()));
  if (xs.some((x) => !Number.isFinite(x))) throw new UsageError(`${what} must be comma-separated numbers, got '${v}'`);
  return xs;
}

function parseWindow(v: string | undefined): InferOptions['window'] {
  if (v === undefined) return undefined;
  if (['lung', 'mediastinum', 'abdomen', 'bone', 'brain', 'none'].includes(v)) return v as InferOptions['window'];
  const xs = numbers(v, '--window');
  if (!xs || xs.length !== 2 || xs[0]! >= xs[1]!) throw new UsageError(`--window must be L,H with L < H, or a preset name, got '${v}'`);
  return [xs[0]!, xs[1]!];
}

/** The JSON answer of an inference. */
export function answer(result: InferResult, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    ...extra,
    kind: result.kind,
    ...(result.topK ? { topK: result.topK } : {}),
    ...(result.features ? { features: result.features } : {}),
    ...(result.labels ? { labels: { shape: result.labels.shape, classes: [...new Set(result.labels.data)].sort((a, b) => a - b) } } : {}),
    output: { shape: result.output.shape },
    input: result.input,
    preprocessing: result.steps,
    ms: { preprocess: Math.round(result.ms.preprocess), network: Math.round(result.ms.network) },
  };
}

/** Run the subcommand. */
export async function runInfer(argv: string[]): Promise<void> {
  const { values, positionals } = parse(
    argv,
    {
      input: { type: 'string', short: 'i' },
      output: { type: 'string', short: 'o' },
      raw: { type: 'boolean' },
      'top-k': { type: 'string' },
      window: { type: 'string' },
      size: { type: 'string' },
      spacing: { type: 'string' },
      patch: { type: 'string' },
      overlap: { type: 'string' },
      mean: { type: 'string' },
      std: { type: 'string' },
      device: { type: 'string' },
      threads: { type: 'string' },
      mode: { type: 'string' },
      series: { type: 'string' },
      ...STORE_OPTIONS,
    },
    USAGE,
  );
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const modelPath = onePositional(positionals, 'model', USAGE);
  if (typeof values.input !== 'string') throw new UsageError(`--input is required (usage: ${USAGE})`);
  const out = values.output;
  if (out !== undefined && !/\.(json|npy|nii|nii\.gz|png)$/i.test(out)) throw new UsageError(`--output must end in .json, .npy, .nii, .nii.gz or .png, got '${out}'`);
  if (values.raw && out !== undefined && !/\.npy$/i.test(out)) throw new UsageError('--raw writes the first output as .npy');
  const device = (values.device ?? 'cpu') as Device;
  if (!(DEVICES as readonly string[]).includes(device)) throw new UsageError(`--device must be one of ${DEVICES.join(', ')}, got '${device}'`);
  const mode = values.mode ?? 'acs';
  if (!(MODES as readonly string[]).includes(mode)) throw new UsageError(`--mode must be one of ${MODES.join(', ')}`);
  const topK = values['top-k'] === undefined ? undefined : Number(values['top-k']);
  if (topK !== undefined && (!Number.isInteger(topK) || topK < 1)) throw new UsageError(`--top-k must be a positive integer`);
  const threads = values.threads === undefined ? undefined : Number(values.threads);
  const options: InferOptions = {
    raw: values.raw,
    window: parseWindow(values.window),
    size: triple(values.size, '--size'),
    spacing: triple(values.spacing, '--spacing'),
    patch: triple(values.patch, '--patch'),
    overlap: values.overlap === undefined ? undefined : Number(values.overlap),
    topK,
    mean: numbers(values.mean, '--mean'),
    std: numbers(values.std, '--std'),
  };

  const cfg = cliConfig(values);
  const model = await loadModel(modelPath, { mode: mode as Mode }, cfg);
  // The lowering decisions live in the store, so that the next run does not measure again.
  const decisionStore = cfg.inference.autotune ? await cliStorage(cfg) : undefined;
  const engine = new InferenceEngine({
    device,
    threads,
    autotune: cfg.inference.autotune && { maxMs: cfg.inference.autotuneMaxMs },
    decisions: decisionStore && loweringDecisions(decisionStore),
    onLoad: (i) => {
      if (i.fallback) printErr(`acs-hub: ${i.fallback}; running on cpu\n`);
    },
  });
  try {
    if (values.raw) {
      const input = await readRawArray(values.input);
      const outputs = await engine.run(model.source, input);
      const first = Object.values(outputs)[0]!;
      const bytes = encodeNpy({ data: first.data, shape: first.shape });
      if (out) await writeChunksAtomic(out, [bytes]);
      else process.stdout.write(`${JSON.stringify({ output: { shape: first.shape }, input: { shape: input.shape } })}\n`);
      return;
    }
    const volume = await readVolume(values.input, { seriesInstanceUid: values.series, budgets: cfg.budgets });
    const result = await infer(engine, model, volume, options, cfg.budgets);
    const device = engine.loaded.get(model.source.key)?.device ?? 'cpu';
    const json = answer(result, { model: model.card?.architecture.arch ?? modelPath, device, volume: { file: values.input, shape: volume.shape, spacing: volume.spacing } });
    if (!out) {
      printOut(`${JSON.stringify(json, null, 2)}\n`);
    } else if (/\.json$/i.test(out)) {
      await writeFile(out, `${JSON.stringify(json, null, 2)}\n`);
    } else if (/\.npy$/i.test(out)) {
      await writeChunksAtomic(out, [encodeNpy({ data: result.output.data, shape: result.output.shape })]);
    } else if (/\.nii(\.gz)?$/i.test(out)) {
      await writeNifti({ path: out, ...labelVolume(result, volume), like: volume, labels: true, description: 'acs-hub segmentation' });
    } else {
      const labels = result.labels ? labelVolume(result, volume) : undefined;
      const heat = labels ? undefined : await activationMap(engine, model, result, volume, options, { budgets: cfg.budgets });
      const overlay = labels ? { kind: 'labels' as const, data: labels.data } : heat ? { kind: 'heatmap' as const, data: heat, range: [0, 1] as const } : undefined;
      await writeChunksAtomic(out, [await renderPreview({ volume, overlay })]);
    }
    if (out) printErr(`wrote ${out} (${result.kind}${result.topK ? `: ${result.topK[0]?.label ?? `class ${result.topK[0]?.index}`} ${(100 * (result.topK[0]?.probability ?? 0)).toFixed(1)}%` : ''})\n`);
  } finally {
    await engine.close();
    await decisionStore?.close();
  }
}

/** A model file, or a catalogue id / URL converted through the cache. */
async function loadModel(spec: string, options: ConvertOptions, cfg: Readonly<HubConfig>): Promise<LoadedModel> {
  if (await stat(spec).then(() => true, () => false)) return loadModelFile(spec, options, await defaultLabels(), cfg.budgets);
  const storage = await cliStorage(cfg);
  try {
    const converted = await cliConvertModel(cfg, storage, spec, options);
    const file = converted.manifest.files.find((f) => f.name === OUTPUT_FILES.onnx);
    if (!file) throw new UsageError(`the conversion of '${spec}' has no ONNX file`);
    return modelFromBytes(await readAll(storage, file.key), converted.modelCard, spec);
  } finally {
    await storage.close();
  }
}

/** The label volume on the input's grid (resampled back, nearest, if preprocessing resized it). */
function labelVolume(result: InferResult, volume: Volume): { data: Float32Array; shape: [number, number, number, number]; affine: number[] } {
  if (!result.labels) throw new UsageError('this network gives no volume (it is a classifier); write .json or .npy instead');
  const [, d, h, w] = volume.shape;
  const ls = [...result.labels.shape];
  let data = Float32Array.from(result.labels.data);
  if (ls[0] !== d || ls[1] !== h || ls[2] !== w) {
    // back onto the input's own grid, which its reader bounded: no budget beyond that
    data = resample({ volume: { data, shape: [1, ls[0]!, ls[1]!, ls[2]!] as const }, size: [d, h, w], mode: 'nearest', budgets: { outputVoxels: d * h * w } }).data;
  }
  return { data, shape: [1, d, h, w], affine: volume.affine };
}
