#!/usr/bin/env node
/**
 * The `acs-hub` command line: one subcommand per module, a one-line reason and a non-zero
 * exit code on any failure.
 */
import { UsageError } from './args.js';
import { loadConfig } from '../server/config.js';
import { printErr } from './output.js';
import { own } from '../converters/own.js';

const HELP = `acs-hub: pretrained 2D CNNs into ACS 3D networks

Usage:
  acs-hub inspect <file> [--json]
      List the tensors of a checkpoint (.safetensors, .pth/.pt/.bin, .onnx) and count
      its parameters.
  acs-hub convert <file> --out <file.safetensors|file.pth|file.onnx> [--mode acs|2.5d|i3d|mean-acs|soft-acs]
      Convert a 2D checkpoint (or a 2D ONNX export) into a 3D network and its card;
      --mode none re-saves a checkpoint in another format (e.g. a pickle as safetensors).
  acs-hub infer <model.onnx | checkpoint> --input <volume> [--output out.json|out.npy|out.nii.gz|out.png]
      Run a 3D network on a CT or MR volume (NIfTI, DICOM, NumPy, TIFF, PNG slices).
  acs-hub zoo [list | show <id>] [--family F] [--licence L] [--json]
      The catalogue of public pretrained models (torchvision, timm on the Hugging Face
      Hub, radiology weights).
  acs-hub pull <zoo-id> [--from-file FILE] [--json] [--data DIR | --s3 s3://bucket/prefix]
      Download a zoo model (resumable, hash-verified) into the cache, or import a copy
      obtained elsewhere (--from-file, same hash checks).
  acs-hub serve [--port 8080] [--host 127.0.0.1] [--data DIR | --s3 s3://bucket/prefix] [--offline]
      Serve the HTTP API (openapi.yaml): zoo, conversions, downloads, inference, KServe v2;
      --offline serves the cache and uploads only, never a network source.

Configuration: --config FILE (or ACS_HUB_CONFIG), then ACS_HUB_* variables (ACS_HUB_DATA_DIR,
ACS_HUB_S3_URL, ACS_HUB_HF_TOKEN or HF_TOKEN, ACS_HUB_HF_ENDPOINT or HF_ENDPOINT,
ACS_HUB_TORCHVISION_URL, ACS_HUB_OFFLINE, ...).

Options:
  -h, --help       Show this help.
  -v, --version    Show the version.

Run 'acs-hub <command> --help' for the options of a command.
`;

type Command = (argv: string[]) => Promise<void>;

/**
 * Each subcommand's module is loaded when it runs: `inspect` and `--help` need neither
 * onnxruntime, the S3 client nor the HTTP server (with its bundled API page), which together
 * take most of a second to load.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  inspect: async () => (await import('./inspect.js')).runInspect,
  convert: async () => (await import('./convert.js')).runConvert,
  infer: async () => (await import('./infer.js')).runInfer,
  zoo: async () => (await import('./zoo.js')).runZoo,
  pull: async () => (await import('./pull.js')).runPull,
  serve: async () => (await import('./serve.js')).runServe,
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  if (command === '-v' || command === '--version') {
    const { createRequire } = await import('node:module');
    const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const load = own(COMMANDS, command);
  if (load === undefined) throw new UsageError(`unknown command '${command}' (try 'acs-hub --help')`);
  await (await load())(rest);
  return 0;
}

/** Whether the configuration asks for stack traces (false when the configuration itself is bad). */
function debugEnabled(): boolean {
  try {
    return loadConfig().debug;
  } catch {
    return false;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    printErr(`acs-hub: ${message.split('\n')[0]}\n`);
    if (debugEnabled() && err instanceof Error) printErr(`${err.stack ?? ''}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
