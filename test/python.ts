/** The Python interpreter the tests run: PyTorch, torchvision, huggingface_hub and safetensors. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

/**
 * `ACS_HUB_PYTHON` when set; else the repository's `.venv` (made by
 * `tools/python/setup-venv.sh`, which `.ci/run` runs); else Debian's `/usr/bin/python3`.
 */
export const PYTHON: string =
  process.env['ACS_HUB_PYTHON'] ??
  (existsSync(join(ROOT, '.venv', 'bin', 'python')) ? join(ROOT, '.venv', 'bin', 'python') : '/usr/bin/python3');

/** The line a test failure shows when a Python package is missing. */
export const PYTHON_SETUP_HINT =
  'the Python test environment is set up by `bash tools/python/setup-venv.sh` (Debian python3-torch, python3-torchvision, python3-venv, then huggingface_hub and safetensors from pip)';
