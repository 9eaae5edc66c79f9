#!/usr/bin/env python3
"""The PyTorch peer of bench/inference: the same ACS networks, built by this repository's own
plain-torch ACS reference (tools/goldens/acs_reference.py) from torchvision models, timed on
CPU with a fixed number of threads. Prints one JSON line per network.

Usage (from the repository root):  /usr/bin/python3 bench/pytorch_acs.py THREADS RUNS NAME:ARCH:CHANNELS:SIZE ...
"""
import json
import os
import statistics
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tools', 'goldens'))
from acs_reference import convert  # noqa: E402

threads, runs = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
STEM = {'resnet18': 'conv1', 'resnet50': 'conv1', 'densenet121': 'features.conv0'}
HEAD = {'resnet18': 'fc', 'resnet50': 'fc', 'densenet121': 'classifier'}
for spec in sys.argv[3:]:
    name, arch, channels, size = spec.split(':')
    channels, size = int(channels), int(size)
    torch.manual_seed(0)
    model2d = getattr(torchvision.models, arch)().eval()
    model = convert(model2d, 'acs', stem=STEM[arch], classifier=HEAD[arch], in_channels=channels)
    x = torch.randn(1, channels, size, size, size)
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({'name': name, 'median_ms': statistics.median(times), 'min_ms': min(times)}), flush=True)
