/** `acs-hub inspect <file> [--json]`: the tensors of a checkpoint, its parameters and its buffers. */
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Card } from '../converters/convert.js';
import { readCheckpointFile } from '../converters/formats/index.js';
import { countParametersAndBuffers, type ParameterCount } from '../converters/tensor.js';
import { onePositional, parse } from './args.js';
import { printOut, terminalSafe } from './output.js';

const USAGE = 'acs-hub inspect <file> [--json]';

/** Where the counts come from. */
type CountedFrom = 'state dict' | 'onnx initializers' | 'card';

/**
 * The counts of a converted `.onnx` from the card written beside it: its graph has BatchNorm
 * folded into the convolutions, so its initializers are not the network's parameters.
 */
async function cardCounts(file: string): Promise<(ParameterCount & { card: string }) | undefined> {
  const card = join(dirname(file), `${basename(file).replace(/\.onnx$/i, '')}.card.json`);
  const parsed = await readFile(card, 'utf8').then((s) => JSON.parse(s) as Partial<Card>, () => undefined);
  const parameters = parsed?.parameters?.converted;
  const buffers = parsed?.buffers?.converted;
  return typeof parameters === 'number' && typeof buffers === 'number' ? { parameters, buffers, card } : undefined;
}

/** Run the subcommand. */
export async function runInspect(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, USAGE);
  if (values.help) {
    process.stdout.write(
      `Usage: ${USAGE}\n\nOne line per tensor (name, dtype, shape), then the counts: trainable parameters as PyTorch counts\nthem (sum of p.numel() over model.parameters()) and, apart, the buffers (BatchNorm statistics).\nA converted .onnx is counted from the <name>.card.json beside it, when there is one.\n`,
    );
    return;
  }
  const file = onePositional(positionals, 'checkpoint file', USAGE);
  const ckpt = await readCheckpointFile(file);
  const fromCard = ckpt.format === 'onnx' ? await cardCounts(file) : undefined;
  const { parameters, buffers } = fromCard ?? countParametersAndBuffers(ckpt.tensors);
  const countedFrom: CountedFrom = fromCard ? 'card' : ckpt.format === 'onnx' ? 'onnx initializers' : 'state dict';
  if (values.json) {
    const tensors = [...ckpt.tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
    printOut(`${JSON.stringify({ file, format: ckpt.format, tensors, parameters, buffers, countedFrom, card: fromCard?.card, metadata: ckpt.metadata, origin: ckpt.origin }, null, 2)}\n`);
    return;
  }
  const rows = [...ckpt.tensors].map(([name, t]) => [terminalSafe(name), `${t.dtype.padEnd(4)}  [${t.shape.join(', ')}]`] as const);
  // A checkpoint may hold hundreds of thousands of tensors: no spread into Math.max.
  const width = rows.reduce((w, [name]) => Math.max(w, name.length), 0);
  const lines = rows.map(([name, rest]) => `${name.padEnd(width)}  ${rest}`);
  const where = ckpt.origin?.path.length ? ` (state dict under '${ckpt.origin.path.join('.')}')` : '';
  const stripped = ckpt.origin?.strippedPrefix ? ` (prefix '${ckpt.origin.strippedPrefix}' removed)` : '';
  const source = fromCard ? ` (from ${terminalSafe(basename(fromCard.card))})` : countedFrom === 'onnx initializers' ? ' (ONNX initializers; BatchNorm may be folded into convolutions)' : '';
  lines.push(`${ckpt.tensors.size} tensors, ${ckpt.format}${where}${stripped}`);
  lines.push(`${parameters.toLocaleString('en-US')} parameters (trainable, as PyTorch counts them), ${buffers.toLocaleString('en-US')} in buffers (BatchNorm statistics)${source}`);
  printOut(`${lines.join('\n')}\n`);
}
