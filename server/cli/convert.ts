/** `acs-hub convert <file> --out <file> --mode none`: re-save a checkpoint in another format. */
import { readCheckpointFile, writeCheckpointFile } from '../../converters/formats/index.js';
import { onePositional, parse, UsageError } from './args.js';

const USAGE = 'acs-hub convert <file> --out <file.safetensors|file.pth> --mode none';

/** Run the subcommand. */
export async function runConvert(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { out: { type: 'string', short: 'o' }, mode: { type: 'string', default: 'none' } }, USAGE);
  if (values.help) {
    process.stdout.write(`Usage: ${USAGE}\n\nThe output format follows the extension of --out.\n`);
    return;
  }
  const input = onePositional(positionals, 'input checkpoint', USAGE);
  if (typeof values.out !== 'string') throw new UsageError(`--out is required (usage: ${USAGE})`);
  if (values.mode !== 'none') throw new UsageError(`unknown --mode '${String(values.mode)}'`);
  const ckpt = await readCheckpointFile(input);
  const bytes = await writeCheckpointFile(values.out, ckpt.tensors, ckpt.metadata);
  process.stderr.write(`wrote ${values.out} (${ckpt.tensors.size} tensors, ${bytes} bytes)\n`);
}
