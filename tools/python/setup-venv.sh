#!/usr/bin/env bash
# The Python environment of the tests and benchmarks: a virtual environment in `.venv` on top
# of Debian's python3-torch (seen through --system-site-packages, so PyTorch is not installed
# twice), with the Python clients users run against the hub: huggingface_hub and safetensors.
# Idempotent; run from anywhere. Needs python3-venv and a reachable package index for pip.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! [ -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c 'import huggingface_hub, safetensors' >/dev/null 2>&1; then
  .venv/bin/python -m pip install -qq --disable-pip-version-check --retries 0 --timeout 20 'huggingface_hub>=0.20' 'safetensors>=0.4'
fi
.venv/bin/python -c 'import torch, huggingface_hub, safetensors; print("python env: torch", torch.__version__, "huggingface_hub", huggingface_hub.__version__, "safetensors", safetensors.__version__)'
