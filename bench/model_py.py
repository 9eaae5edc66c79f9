#!/usr/bin/env python3
"""The PyTorch side of bench/model-py: a generated model.py against this repository's plain-torch
ACS reference (tools/goldens/acs_reference.py, built from torchvision's model with the same 2D
weights), on the same input, with the same threads. Prints one JSON line per network.

Usage (from the repository root):
    /usr/bin/python3 bench/model_py.py THREADS RUNS SIZE NAME:ARCH:DIR ...
DIR holds 2d.pth (the torchvision state dict), model.py and model.pth (its conversion, mode acs).
Forward: eval(), no_grad. Forward + backward: train(), the sum of the outputs as the loss.
Each time is reported as the median and the minimum of RUNS runs, and the ratio as the median
of the run-by-run ratios (the two models run in turn).
"""
import importlib.util
import json
import os
import statistics
import sys
import time

# oneDNN compiles a kernel per convolution shape and PyTorch keeps 1024 of them: fewer than
# the two networks' forward and backward passes need, which would then be compiled again and again.
os.environ.setdefault('LRU_CACHE_CAPACITY', '16384')
os.environ.setdefault('ONEDNN_PRIMITIVE_CACHE_CAPACITY', '16384')
import torch  # noqa: E402
import torchvision  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tools', 'goldens'))
from acs_reference import convert  # noqa: E402

STEM = {'resnet18': 'conv1', 'resnet50': 'conv1', 'densenet121': 'features.conv0'}
HEAD = {'resnet18': 'fc', 'resnet50': 'fc', 'densenet121': 'classifier'}


def generated(folder):
    spec = importlib.util.spec_from_file_location(f'model_{os.path.basename(folder)}', os.path.join(folder, 'model.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Model()
    model.load_state_dict(torch.load(os.path.join(folder, 'model.pth'), weights_only=True))
    return model


def reference(arch, folder):
    model2d = getattr(torchvision.models, arch)()
    model2d.load_state_dict(torch.load(os.path.join(folder, '2d.pth'), weights_only=True))
    return convert(model2d.eval(), 'acs', stem=STEM[arch], classifier=HEAD[arch])


def forward(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


def forward_backward(model, x):
    model.train()
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()


def timed(fn, model, x):
    t0 = time.perf_counter()
    fn(model, x)
    return (time.perf_counter() - t0) * 1000


def main():
    threads, runs, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    for spec in sys.argv[4:]:
        name, arch, folder = spec.split(':', 2)
        models = {'generated': generated(folder), 'reference': reference(arch, folder)}
        torch.manual_seed(0)
        x = torch.randn(2, 3, size, size, size)
        outputs = {k: forward(m, x) for k, m in models.items()}
        diff = (outputs['generated'] - outputs['reference']).abs().max().item()
        scale = outputs['reference'].abs().max().item()
        result = {'name': name, 'max_abs_diff': diff, 'max_abs_output': scale}
        phases = (('forward', forward), ('backward', forward_backward))
        for m in models.values():
            for _, fn in phases:
                fn(m, x)  # compiles the kernels
        times = {f'{k}_{phase}': [] for k in models for phase, _ in phases}
        # Run by run, the two models in turn, so that both meet the same load on a shared machine.
        for _ in range(runs):
            for k, m in models.items():
                for phase, fn in phases:
                    times[f'{k}_{phase}'].append(timed(fn, m, x))
        for key, values in times.items():
            result[key] = {'median': statistics.median(values), 'min': min(values)}
        for phase, _ in phases:
            ratios = [g / r for g, r in zip(times[f'generated_{phase}'], times[f'reference_{phase}'])]
            result[f'ratio_{phase}'] = statistics.median(ratios)
        print(json.dumps(result), flush=True)


if __name__ == '__main__':
    main()
