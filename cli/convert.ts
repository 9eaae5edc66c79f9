/**
 * `acs-hub convert <file> --out <file> [--mode ...]`: convert a 2D checkpoint (or a 2D ONNX
 * export) into a 3D network, writing the requested file and its card beside it; with
 * `--mode none`, re-save a checkpoint in another format.
 */
import { createHash } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { MODES, type ConvertOptions, type Head, type Mode } from '../converters/convert.js';
import { convertFile } from '../converters/convert-file.js';
import { readCheckpointFile, writeCheckpointFile } from '../converters/formats/index.js';
import { IN_PROCESS } from '../converters/fence/fence.js';
import { concatChunks, writeChunksAtomic } from '../converters/io.js';
import type { Split3 } from '../converters/modes/split.js';
import { encodeCard, encodeOutput, outputFormat } from '../converters/outputs.js';
import { parseSpecializeSize, specializeOnnxFile } from '../converters/specialize-file.js';
import { stat } from 'node:fs/promises';
import type { Card } from '../converters/convert.js';
import { loadCatalogue, loadLabels } from '../zoo/catalogue.js';
import { OUTPUT_FILES } from '../zoo/convert-model.js';
import { getSpecializedOnnx } from '../zoo/specialized-onnx.js';
import { readAll } from '../zoo/storage/storage.js';
import { onePositional, parse, UsageError } from './args.js';
import { cliConfig, cliConvertModel, cliStorage, STORE_OPTIONS } from './context.js';
import { printErr } from './output.js';

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** ImageNet-1k class names, for local checkpoints that keep a 1000-class head. */
export async function defaultLabels(): Promise<string[]> {
  const catalogue = await loadCatalogue();
  const entry = catalogue.models.find((m) => m.labels === 'imagenet-1k');
  return entry ? loadLabels(entry) : [];
}

const USAGE =
  'acs-hub convert <file | zoo-id | url> --out <file.safetensors|file.pth|file.onnx|file.py> [--mode acs|2.5d|i3d|mean-acs|soft-acs|none] ' +
  '[--axis d|h|w] [--arch NAME] [--in-channels N] [--head keep|features|N] [--seed N] [--input-size D,H,W] [--split KEY=A,C,S] [--specialize D,H,W]';

const HELP = `Usage: ${USAGE}

Converts a 2D checkpoint (.pth/.pt/.bin, .safetensors), a 2D ONNX export, a catalogue model
(see 'acs-hub zoo list') or a URL into a 3D network. Catalogue models and URLs go through the
cache (--data DIR or --s3 s3://bucket/prefix): fetched and verified once, converted once. The output format follows the extension of --out: .safetensors and .pth hold the
state dict that the PyTorch reference model of the mode loads with strict=True, .onnx the
whole 3D network, .py the same network as PyTorch source for fine-tuning. A card (<out>.card.json) is written beside it.

Options:
  --out, -o FILE        output file (required)
  --mode MODE           acs (default), 2.5d, i3d, mean-acs, soft-acs; none re-saves as is
  --axis d|h|w          2.5D unit axis / i3d repeat axis (default d)
  --arch NAME           architecture, when the keys do not identify it (e.g. resnet50)
  --in-channels N       adapt the RGB stem to N input channels (1 for CT/MR)
  --head keep|features|N  keep the classifier, end at pooled features, or a new N-class head
  --seed N              seed of a new head (default 0)
  --input-size D,H,W    input size the card counts multiply-adds for (default 64,64,64)
  --split KEY=A,C,S     explicit ACS split of one convolution (repeatable)
  --specialize D,H,W    .onnx only: the graph specialised for that input size (the engine's; valid
                        for that size only, any batch); the card names it in onnx.specializedFor
  --data DIR | --s3 s3://bucket/prefix   the cache (default ./data), for zoo ids and URLs
  --offline             use the cache only
  --config FILE         configuration file
`;

function parseHead(v: string | undefined): Head {
  if (v === undefined || v === 'keep' || v === 'features') return v ?? 'keep';
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--head must be keep, features or a number of classes, got '${v}'`);
  return n;
}

function parseInts(v: string, count: number, what: string): number[] {
  const xs = v.split(',').map((s) => Number(s.trim()));
  if (xs.length !== count || xs.some((x) => !Number.isInteger(x) || x < 0)) throw new UsageError(`${what} must be ${count} comma-separated integers, got '${v}'`);
  return xs;
}

/** Run the subcommand. */
export async function runConvert(argv: string[]): Promise<void> {
  const { values, positionals } = parse(
    argv,
    {
      out: { type: 'string', short: 'o' },
      mode: { type: 'string', default: 'acs' },
      axis: { type: 'string' },
      arch: { type: 'string' },
      'in-channels': { type: 'string' },
      head: { type: 'string' },
      seed: { type: 'string' },
      'input-size': { type: 'string' },
      split: { type: 'string', multiple: true },
      specialize: { type: 'string' },
      ...STORE_OPTIONS,
    },
    USAGE,
  );
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const input = onePositional(positionals, 'input checkpoint', USAGE);
  const out = values.out;
  if (typeof out !== 'string') throw new UsageError(`--out is required (usage: ${USAGE})`);
  const mode = String(values.mode);
  if (mode === 'none') {
    const ckpt = await readCheckpointFile(input);
    const bytes = await writeCheckpointFile(out, ckpt.tensors, ckpt.metadata);
    printErr(`wrote ${out} (${ckpt.tensors.size} tensors, ${bytes} bytes)\n`);
    return;
  }
  if (!(MODES as readonly string[]).includes(mode)) throw new UsageError(`unknown --mode '${mode}'; use one of ${MODES.join(', ')} or none`);
  const format = outputFormat(out);
  const options: ConvertOptions = {
    mode: mode as Mode,
    axis: values.axis as ConvertOptions['axis'],
    arch: values.arch,
    head: parseHead(values.head),
    seed: values.seed === undefined ? undefined : parseInts(values.seed, 1, '--seed')[0],
    inChannels: values['in-channels'] === undefined ? undefined : parseInts(values['in-channels'], 1, '--in-channels')[0],
    inputSize: values['input-size'] === undefined ? undefined : (parseInts(values['input-size'], 3, '--input-size') as [number, number, number]),
    splits: Object.fromEntries(
      (values.split ?? []).map((s) => {
        const eq = s.lastIndexOf('=');
        if (eq < 1) throw new UsageError(`--split must look like KEY=A,C,S, got '${s}'`);
        return [s.slice(0, eq), parseInts(s.slice(eq + 1), 3, '--split') as unknown as Split3];
      }),
    ),
  };
  const specialize = values.specialize;
  if (specialize !== undefined && format !== 'onnx') throw new UsageError('--specialize applies to an .onnx output');
  const cardPath = join(dirname(out), `${basename(out).replace(/\.(safetensors|pth|onnx|py)$/i, '')}.card.json`);
  const cfg = cliConfig(values);
  let c: Card;
  let written: string[];
  if (await isFile(input)) {
    const result = await convertFile(input, options, { labels: await defaultLabels(), budgets: cfg.budgets });
    const files = encodeOutput(result, format, out);
    let card = encodeCard(result);
    if (specialize !== undefined) {
      if (files.size !== 1) throw new UsageError('--specialize: this model keeps its weights in external data (over 1.8 GiB) and cannot be specialised');
      const size = parseSpecializeSize(specialize, result.card.input.channels, cfg.budgets, '--specialize');
      const made = specializeOnnxFile({ bytes: concatChunks(files.get(out)!), size, channels: result.card.input.channels });
      files.set(out, [made.bytes]);
      const sha256 = createHash('sha256').update(made.bytes).digest('hex');
      card = Buffer.from(`${JSON.stringify({ ...result.card, onnx: { specializedFor: size, sha256, size: made.bytes.byteLength, note: made.note } }, null, 2)}\n`);
    }
    for (const [path, chunks] of files) await writeChunksAtomic(path, chunks);
    await writeChunksAtomic(cardPath, [card]);
    c = result.card;
    written = [...files.keys()];
  } else {
    const storage = await cliStorage(cfg);
    try {
      const converted = await cliConvertModel(cfg, storage, input, options);
      written = [];
      c = converted.modelCard;
      let card: Record<string, unknown> = { ...c };
      if (specialize !== undefined) {
        const size = parseSpecializeSize(specialize, c.input.channels, cfg.budgets, '--specialize');
        const made = await getSpecializedOnnx({ storage, fence: IN_PROCESS, manifest: converted.manifest, size });
        await writeChunksAtomic(out, [await readAll(storage, made.key)]);
        written.push(out);
        card = { ...card, onnx: { specializedFor: made.specializedFor, sha256: made.sha256, size: made.size, note: made.note } };
      }
      for (const f of converted.manifest.files.filter((f) => specialize === undefined && (f.name === OUTPUT_FILES[format] || f.name === `${OUTPUT_FILES[format]}.data`))) {
        // External ONNX data keeps the name the model refers to, beside it.
        const path = f.name.endsWith('.data') ? join(dirname(out), f.name) : out;
        await writeChunksAtomic(path, [await readAll(storage, f.key)]);
        written.push(path);
      }
      await writeChunksAtomic(cardPath, [Buffer.from(`${JSON.stringify(card, null, 2)}\n`)]);
      printErr(`${converted.produced ? 'converted' : 'from the cache'}: ${storage.location}/${converted.prefix}\n`);
    } finally {
      await storage.close();
    }
  }
  printErr(
    `${c.architecture.arch} -> ${c.mode}: wrote ${written.join(', ')} and ${cardPath} ` +
      `(${c.parameters.converted.toLocaleString('en-US')} parameters, ${(c.multiplyAdds.converted / 1e9).toFixed(2)} G multiply-adds at ${c.inputSize.join('x')}, ` +
      `${(c.multiplyAdds.dense3d / 1e9).toFixed(2)} G with dense 3D kernels)\n`,
  );
}
