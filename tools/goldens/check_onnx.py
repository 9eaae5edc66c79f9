#!/usr/bin/env python3
"""Check every ONNX file that ACS Hub writes for the goldens with onnx.checker (full_check=True).

For each family and 3D case of test/fixtures/goldens, run `acs-hub convert` to ONNX, check the
model with onnx.checker.check_model(full_check=True) (which includes ONNX shape inference), and
record the file's sha256. The test suite rebuilds the same files and checks the hashes, so an
ONNX file that was never checked cannot pass.

Run from the repository root after `npm run build`:  /usr/bin/python3 tools/goldens/check_onnx.py
Writes test/fixtures/goldens/onnx-checked.json.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import onnx

ROOT = os.path.join('test', 'fixtures', 'goldens')
# Families with one source checkpoint and its cases (the transposed goldens keep their own layout and checks).
FAMILIES = sorted(d for d in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, d, 'golden.json')) and 'source' in json.load(open(os.path.join(ROOT, d, 'golden.json'))))
checked = {}
with tempfile.TemporaryDirectory() as tmp:
    for fam in FAMILIES:
        golden = json.load(open(os.path.join(ROOT, fam, 'golden.json')))
        src = os.path.join(ROOT, fam, golden['source'])
        for case in golden['cases']:
            if case['mode'] == '2d':
                continue
            out = os.path.join(tmp, f"{fam}-{case['name']}.onnx")
            args = ['node', 'dist/cli/main.js', 'convert', src, '--out', out, '--mode', case['mode']]
            opts = case.get('options', {})
            if 'axis' in opts:
                args += ['--axis', opts['axis']]
            if 'inChannels' in opts:
                args += ['--in-channels', str(opts['inChannels'])]
            if 'head' in opts:
                args += ['--head', str(opts['head'])]
            subprocess.run(args, check=True, capture_output=True)
            model = onnx.load(out)
            onnx.checker.check_model(model, full_check=True)
            checked[f"{fam}/{case['name']}"] = hashlib.sha256(open(out, 'rb').read()).hexdigest()
        print(f'ok {fam}', file=sys.stderr)
with open(os.path.join(ROOT, 'onnx-checked.json'), 'w') as f:
    json.dump(checked, f, indent=1, sort_keys=True)
print(f'{len(checked)} ONNX files pass onnx.checker (full_check=True)', file=sys.stderr)
