#!/usr/bin/env python3
"""Segmentation architectures at full size (random seeded weights, nothing downloaded), for
test/converters/graph/torchvision-seg.test.ts and unet.test.ts: torchvision's FCN, DeepLabV3 and
LR-ASPP, and the public PyTorch U-Net (tools/goldens/pytorch_unet.py). Each network is exported by
torch.onnx.export with dynamic N, H, W, saved as a state dict, and run by its independent 3D
PyTorch reference (tools/goldens/seg_models.py, acs_reference.py) at the cases' sizes.

    /usr/bin/python3 tools/goldens/torchvision_seg.py JOB.json

JOB: {"dir": ..., "cases": [CASE, ...]}; CASE: {"name": "fcn_resnet50" | ... | "unet",
"size": [D, H, W], "mode": "acs", and optionally "id" (the files' prefix, default the name),
"classes" (default 21, the published COCO-VOC weights' count; the U-Net's 2), "in_channels" (the
U-Net's, default 3), "aux" (FCN's and DeepLabV3's aux head, default: FCN has one),
"onnx": false (no export: the state dict alone)}.
Writes <dir>/<id>.onnx, <id>.pth (the same weights as a state dict), and per case
<id>.<mode>.<DxHxW>.input.f32 (det_tensor seed 3), .expected.f32; <dir>/results.json holds per
case (key "<id>.<mode>.<DxHxW>") the output shape, the 2D parameter count (aux head excluded) and
the largest |output|.
"""
import json
import os
import sys
import warnings

import numpy as np
import torch
from torchvision.models import segmentation

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pytorch_unet  # noqa: E402
from acs_reference import convert, det_tensor  # noqa: E402
from seg_models import FORWARDS_3D, export, first_output, randomise_bn  # noqa: E402

warnings.filterwarnings('ignore')
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def build(case):
    name = case['name']
    if name == 'unet':
        return pytorch_unet.build(case.get('in_channels', 3), case.get('classes', 2))
    torch.manual_seed(0)
    kw = dict(weights=None, weights_backbone=None, num_classes=case.get('classes', 21))
    if name.startswith('fcn') or name.startswith('deeplab'):
        kw['aux_loss'] = case.get('aux', name.startswith('fcn'))
    m = getattr(segmentation, name)(**kw)
    randomise_bn(m, 1)
    return m.eval()


def to_3d(model, mode):
    return convert(model, mode, stem='', classifier='', extra_forwards=FORWARDS_3D + pytorch_unet.FORWARDS_3D)


def main():
    job = json.load(open(sys.argv[1]))
    out_dir, results = job['dir'], {}
    models, ref = {}, (None, None)
    for case in job['cases']:
        net, mode, size = case.get('id', case['name']), case['mode'], case['size']
        if net not in models:
            models[net] = m = build(case)
            if case.get('onnx', True):
                export(m, os.path.join(out_dir, f'{net}.onnx'), size=(64, 64), channels=case.get('in_channels', 3))
            torch.save(m.state_dict(), os.path.join(out_dir, f'{net}.pth'))
        m = models[net]
        if ref[0] != (net, mode):
            ref = ((net, mode), to_3d(m, mode))
        x = det_tensor((1, case.get('in_channels', 3), *size), 3)
        with torch.no_grad():
            y = first_output(ref[1](x))
        key = f'{net}.{mode}.{"x".join(map(str, size))}'
        x.numpy().astype('<f4').tofile(os.path.join(out_dir, f'{key}.input.f32'))
        y.numpy().astype('<f4').tofile(os.path.join(out_dir, f'{key}.expected.f32'))
        params = sum(p.numel() for n, p in m.named_parameters() if not n.startswith('aux_classifier.'))
        results[key] = {'shape': list(y.shape), 'params_2d': params, 'max_abs': float(np.abs(y.numpy()).max())}
        print(f'{key} {tuple(y.shape)}', file=sys.stderr)
    json.dump(results, open(os.path.join(out_dir, 'results.json'), 'w'))


if __name__ == '__main__':
    main()
