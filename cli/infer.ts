/**
 * `acs-hub infer <model> <volume> [--out ...] [--probabilities ...] [--preview ...]`: run a 3D
 * network on a CT or MR volume (NIfTI, DICOM folder or zip, NumPy, TIFF, PNG slices) and write
 * the answer: JSON (top-k classes, features), the raw output as .npy, a label volume as NIfTI,
 * or a preview; for a segmentation, also the per-class probabilities and an overlay preview.
 */
import { writeFile } from 'node:fs/promises';
import type { ConvertOptions, Mode } from '../converters/convert.js';
import { MODES } from '../converters/convert.js';
import { writeChunksAtomic } from '../converters/io.js';
import { renderPreview } from '../inference/predictions/index.js';
import { InferenceEngine } from '../inference/runtime/engine.js';
import { loadModelFile, modelFromBytes } from '../inference/runtime/model-file.js';
import { infer, type InferOptions, type InferResult } from '../inference/runtime/pipeline.js';
import { activationMap } from '../inference/runtime/cam.js';
import { DEVICES, type Device } from '../inference/runtime/providers.js';
import { readRawArray } from '../inference/runtime/raw-input.js';
import { encodeNpy, geometryOf, isSpooled, openVolume, readVolume, wholeVolume, type SpooledVolume, type Vec3 } from '../inference/volumes/index.js';
import { renderAnswer } from '../inference/runtime/render-answer.js';
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
  'acs-hub infer <model.onnx | checkpoint | zoo-id> <volume> [--out out.json|out.npy|out.nii.gz|out.png] [--probabilities probs.nii.gz] [--preview overlay.png] [--raw] [--top-k N] ' +
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
  --input, -i FILE      the volume (or give it as the second argument)
  --out, --output, -o FILE  .json (answer), .npy (first output, float32), .nii/.nii.gz (label
                        volume on the input's grid, in its own voxel order and affine), .png
                        (three-view preview); default: the JSON answer on stdout
  --probabilities FILE  (segmentation) per-class softmax probabilities, .nii/.nii.gz, float32,
                        one 3D volume per class along the 4th dimension, on the input's grid
                        (held whole: classes x voxels, within budgets.outputVoxels)
  --preview FILE        (segmentation) a .png overlay: three orthogonal slices through the
                        largest structure, label colours, a legend naming the classes
  --raw                 feed the array as stored (.npy of shape D,H,W / C,D,H,W / N,C,D,H,W),
                        no preprocessing; writes the first output as float32 .npy
  --top-k N             classes reported (default 5)
  --window=L,H | NAME  intensity window (HU for CT; default lung for CT, percentiles for
                        other images); 'none' keeps the values
  --size D,H,W          resample to this size first
  --spacing D,H,W       resample to this voxel spacing (mm) first
  --patch D,H,W         sliding windows of this size with overlap blending, in bounded memory:
                        the volume (NIfTI, a folder or zip of DICOM or PNG slices, .npy, raw,
                        TIFF) is kept on disk and read a plane at a time, each window is
                        preprocessed as it is cut, and a segmentation is finished plane by
                        plane into its labels
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
      out: { type: 'string' },
      probabilities: { type: 'string' },
      preview: { type: 'string' },
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
  if (positionals.length === 2 && values.input !== undefined) throw new UsageError(`give the volume once: as the second argument or as --input (usage: ${USAGE})`);
  const modelPath = onePositional(positionals.slice(0, 1), 'model', USAGE);
  const input = positionals.length === 2 ? positionals[1]! : values.input;
  if (positionals.length > 2) throw new UsageError(`expected a model and a volume, got ${positionals.length} arguments (usage: ${USAGE})`);
  if (typeof input !== 'string') throw new UsageError(`the volume is required (usage: ${USAGE})`);
  if (values.out !== undefined && values.output !== undefined) throw new UsageError('give --out or --output, not both');
  const out = values.out ?? values.output;
  const probsOut = values.probabilities;
  const previewOut = values.preview;
  if (probsOut !== undefined && !/\.nii(\.gz)?$/i.test(probsOut)) throw new UsageError(`--probabilities must end in .nii or .nii.gz, got '${probsOut}'`);
  if (previewOut !== undefined && !/\.png$/i.test(previewOut)) throw new UsageError(`--preview must end in .png, got '${previewOut}'`);
  if (values.raw && (probsOut !== undefined || previewOut !== undefined)) throw new UsageError('--raw writes only the first output; --probabilities and --preview need the volume pipeline');
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
    // what a segmentation keeps beside its labels: the scores for .npy, else the probabilities when asked
    keep: out !== undefined && /\.npy$/i.test(out) ? 'scores' : probsOut !== undefined ? 'probabilities' : 'labels',
  };

  const cfg = cliConfig(values);
  const model = await loadModel(modelPath, { mode: mode as Mode }, cfg);
  // The lowering decisions live in the store, so that the next run does not measure again.
  const decisionStore = cfg.inference.autotune ? await cliStorage(cfg) : undefined;
  const engine = new InferenceEngine({
    device,
    threads,
    spinning: cfg.inference.spinning,
    autotune: cfg.inference.autotune && { maxMs: cfg.inference.autotuneMaxMs },
    decisions: decisionStore && loweringDecisions(decisionStore),
    onLoad: (i) => {
      if (i.fallback) printErr(`acs-hub: ${i.fallback}; running on cpu\n`);
    },
  });
  let spooled: SpooledVolume | undefined;
  try {
    if (values.raw) {
      const raw = await readRawArray(input);
      const outputs = await engine.run(model.source, raw);
      const first = Object.values(outputs)[0]!;
      const bytes = encodeNpy({ data: first.data, shape: first.shape });
      if (out) await writeChunksAtomic(out, [bytes]);
      else process.stdout.write(`${JSON.stringify({ output: { shape: first.shape }, input: { shape: raw.shape } })}\n`);
      return;
    }
    // Sliding windows read the volume a plane at a time from a copy on disk (openVolume): never whole.
    const read = { seriesInstanceUid: values.series, budgets: cfg.budgets };
    const volume = options.patch ? await openVolume(input, read) : await readVolume(input, read);
    spooled = isSpooled(volume) ? volume : undefined;
    const result = await infer(engine, model, volume, options, cfg.budgets);
    const whole = wholeVolume(volume);
    if ((probsOut !== undefined || previewOut !== undefined) && !result.labels) throw new UsageError('--probabilities and --preview are for segmentation networks; this one is a classifier');
    const device = engine.loaded.get(model.source.key)?.device ?? 'cpu';
    const json = answer(result, { model: model.card?.architecture.arch ?? modelPath, device, volume: { file: input, shape: volume.shape, spacing: volume.spacing } });
    const segmentation = async (as: 'nifti' | 'probabilities' | 'png', path: string) =>
      renderAnswer({ volume: as === 'png' ? await whole() : { ...geometryOf(volume), shape: volume.shape }, as, labels: result.labels, probabilities: result.probabilities, scores: result.output, names: result.classNames, gzip: /\.gz$/i.test(path), budgets: cfg.budgets });
    if (!out) {
      printOut(`${JSON.stringify(json, null, 2)}\n`);
    } else if (/\.json$/i.test(out)) {
      await writeFile(out, `${JSON.stringify(json, null, 2)}\n`);
    } else if (/\.npy$/i.test(out)) {
      if (!result.output.data) throw new Error('the network output was not kept');
      await writeChunksAtomic(out, [encodeNpy({ data: result.output.data, shape: result.output.shape })]);
    } else if (/\.nii(\.gz)?$/i.test(out)) {
      if (!result.labels) throw new UsageError('this network gives no volume (it is a classifier); write .json or .npy instead');
      await writeChunksAtomic(out, [await segmentation('nifti', out)]);
    } else if (result.labels) {
      await writeChunksAtomic(out, [await segmentation('png', out)]);
    } else {
      const shown = await whole();
      const heat = await activationMap(engine, model, result, shown, options, { budgets: cfg.budgets });
      const overlay = heat ? { kind: 'heatmap' as const, data: heat, range: [0, 1] as const } : undefined;
      await writeChunksAtomic(out, [await renderPreview({ volume: shown, overlay })]);
    }
    if (probsOut !== undefined) {
      await writeChunksAtomic(probsOut, [await segmentation('probabilities', probsOut)]);
      printErr(`wrote ${probsOut} (probabilities of ${result.output.shape[1]} classes)\n`);
    }
    if (previewOut !== undefined) {
      await writeChunksAtomic(previewOut, [await segmentation('png', previewOut)]);
      printErr(`wrote ${previewOut} (overlay preview)\n`);
    }
    if (out) printErr(`wrote ${out} (${result.kind}${result.topK ? `: ${result.topK[0]?.label ?? `class ${result.topK[0]?.index}`} ${(100 * (result.topK[0]?.probability ?? 0)).toFixed(1)}%` : ''})\n`);
  } finally {
    await spooled?.close();
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
