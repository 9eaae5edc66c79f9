/** `acs-hub inspect <file> [--json]`: the tensors of a checkpoint and its parameter count. */
import { readCheckpointFile } from '../converters/formats/index.js';
import { countParameters } from '../converters/tensor.js';
import { onePositional, parse } from './args.js';
import { printOut, terminalSafe } from './output.js';

const USAGE = 'acs-hub inspect <file> [--json]';

/** Run the subcommand. */
export async function runInspect(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, USAGE);
  if (values.help) {
    process.stdout.write(`Usage: ${USAGE}\n\nOne line per tensor (name, dtype, shape), then the parameter count.\n`);
    return;
  }
  const file = onePositional(positionals, 'checkpoint file', USAGE);
  const ckpt = await readCheckpointFile(file);
  const parameters = countParameters(ckpt.tensors.values());
  if (values.json) {
    const tensors = [...ckpt.tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
    printOut(`${JSON.stringify({ file, format: ckpt.format, tensors, parameters, metadata: ckpt.metadata, origin: ckpt.origin }, null, 2)}\n`);
    return;
  }
  const rows = [...ckpt.tensors].map(([name, t]) => [terminalSafe(name), `${t.dtype.padEnd(4)}  [${t.shape.join(', ')}]`] as const);
  // A checkpoint may hold hundreds of thousands of tensors: no spread into Math.max.
  const width = rows.reduce((w, [name]) => Math.max(w, name.length), 0);
  const lines = rows.map(([name, rest]) => `${name.padEnd(width)}  ${rest}`);
  const where = ckpt.origin?.path.length ? ` (state dict under '${ckpt.origin.path.join('.')}')` : '';
  const stripped = ckpt.origin?.strippedPrefix ? ` (prefix '${ckpt.origin.strippedPrefix}' removed)` : '';
  lines.push(`${ckpt.tensors.size} tensors, ${parameters.toLocaleString('en-US')} parameters, ${ckpt.format}${where}${stripped}`);
  printOut(`${lines.join('\n')}\n`);
}
