#!/usr/bin/env python3
"""Goldens of the segmentation networks (converters/SPEC-acs.md section 18): small FCN, DeepLabV3,
LR-ASPP (torchvision's classes on a narrow backbone) and U-Nets, exported by torch.onnx.export,
and what their independent 3D PyTorch reference computes at volume sizes with no common factor.

Run from the repository root:  /usr/bin/python3 tools/goldens/make_seg_goldens.py
Writes test/fixtures/goldens/segmentation/:

    <net>.onnx             the 2D export (opset 13; dynamic N, H, W), fcn_static.onnx at a fixed 40x56
    cases.json             the cases: network, mode, input shape and seed, output shape, sum, abs sum,
                           parameter count of the 2D network without its aux head
    outputs.safetensors    per case, SAMPLES output elements at flat indices (j * STRIDE) mod numel

Full outputs would be megabytes; the sampled elements plus the sums catch a wrong size, a wrong
interpolation or a wrong convolution anywhere in the volume. Inputs are det_tensor(shape, seed).
"""
import os
import sys
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from acs_reference import det_tensor  # noqa: E402
from goldens_io import safetensors_bytes, write_json  # noqa: E402
from seg_models import build, check_forwards_2d, export, first_output, to_3d  # noqa: E402

OUT = os.path.join('test', 'fixtures', 'goldens', 'segmentation')
SAMPLES = 2048
STRIDE = 1000003
SIZES = [(33, 47, 61), (35, 29, 53), (17, 64, 40)]
NETS = ['fcn', 'deeplabv3', 'lraspp', 'unet', 'unet_ac', 'unet_pad']
OTHER_MODES = ['2.5d', 'i3d', 'mean-acs', 'soft-acs']
torch.set_num_threads(1)
warnings.filterwarnings('ignore')


def sample(y):
    flat = y.reshape(-1)
    idx = (torch.arange(SAMPLES, dtype=torch.int64) * STRIDE) % flat.numel()
    return flat[idx].contiguous()


def params_without_aux(model):
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith('aux_classifier.'))


def main():
    os.makedirs(OUT, exist_ok=True)
    cases, outputs = [], {}
    for net in NETS + ['fcn_static']:
        model = build(net.replace('_static', ''))
        check_forwards_2d(model, det_tensor((1, 3, 37, 43), 5))
        static = net.endswith('_static')
        export(model, os.path.join(OUT, f'{net}.onnx'), dynamic=not static)
        runs = [('acs', s) for s in SIZES] + ([] if static else [(m, SIZES[1]) for m in OTHER_MODES])
        refs = {}
        for mode, size in runs:
            ref = refs.setdefault(mode, to_3d(model, mode))
            shape = (1, 3, *size)
            seed = 7
            with torch.no_grad():
                y = first_output(ref(det_tensor(shape, seed)))
            name = f'{net}/{mode}/{"x".join(map(str, size))}'
            outputs[name] = sample(y)
            cases.append({'name': name, 'network': net, 'mode': mode, 'input': {'shape': list(shape), 'seed': seed},
                          'output_shape': list(y.shape), 'sum': float(y.double().sum()), 'abs_sum': float(y.double().abs().sum()),
                          'params_2d': params_without_aux(model)})
            print(f'{name}: {tuple(y.shape)}', file=sys.stderr)
    write_json(os.path.join(OUT, 'cases.json'), {'samples': SAMPLES, 'stride': STRIDE, 'cases': cases})
    with open(os.path.join(OUT, 'outputs.safetensors'), 'wb') as f:
        f.write(safetensors_bytes(outputs))


if __name__ == '__main__':
    main()
