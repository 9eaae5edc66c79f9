#!/usr/bin/env python3
"""torchvision's own segmentation architectures (random seeded weights, nothing downloaded), for
test/converters/graph/torchvision-seg.test.ts: each is exported by torch.onnx.export with dynamic
N, H, W and run by its independent 3D PyTorch reference (tools/goldens/seg_models.py) at one size.

    /usr/bin/python3 tools/goldens/torchvision_seg.py JOB.json

JOB: {"dir": ..., "cases": [{"name": "fcn_resnet50", "size": [D, H, W], "mode": "acs"}, ...]}.
Writes <dir>/<name>.onnx, <name>.pth (the same weights as a state dict), <name>.<mode>.input.f32 (det_tensor seed 3), <name>.<mode>.expected.f32,
and <dir>/results.json: per case the output shape and the 2D parameter count (aux head excluded).
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

from acs_reference import det_tensor  # noqa: E402
from seg_models import export, first_output, randomise_bn, to_3d  # noqa: E402

warnings.filterwarnings('ignore')
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def build(name):
    torch.manual_seed(0)
    # 21 classes, as the published COCO-VOC weights have: their .pth is what the zoo serves.
    kw = dict(weights=None, weights_backbone=None, num_classes=21)
    if name.startswith('fcn') or name.startswith('deeplab'):
        kw['aux_loss'] = name.startswith('fcn')
    m = getattr(segmentation, name)(**kw)
    randomise_bn(m, 1)
    return m.eval()


def main():
    job = json.load(open(sys.argv[1]))
    out_dir, results = job['dir'], {}
    models = {}
    for case in job['cases']:
        name, mode, size = case['name'], case['mode'], case['size']
        if name not in models:
            models[name] = build(name)
            export(models[name], os.path.join(out_dir, f'{name}.onnx'), size=(64, 64))
            # The same weights as a state dict: converted through the architecture templates.
            torch.save(models[name].state_dict(), os.path.join(out_dir, f'{name}.pth'))
        m = models[name]
        shape = (1, 3, *size)
        x = det_tensor(shape, 3)
        with torch.no_grad():
            y = first_output(to_3d(m, mode)(x))
        x.numpy().astype('<f4').tofile(os.path.join(out_dir, f'{name}.{mode}.input.f32'))
        y.numpy().astype('<f4').tofile(os.path.join(out_dir, f'{name}.{mode}.expected.f32'))
        params = sum(p.numel() for n, p in m.named_parameters() if not n.startswith('aux_classifier.'))
        results[f'{name}.{mode}'] = {'shape': list(y.shape), 'params_2d': params, 'max_abs': float(np.abs(y.numpy()).max())}
        print(f'{name} {mode} {tuple(y.shape)}', file=sys.stderr)
    json.dump(results, open(os.path.join(out_dir, 'results.json'), 'w'))


if __name__ == '__main__':
    main()
