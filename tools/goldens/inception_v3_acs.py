"""torchvision's Inception-v3 (random seeded weights) exported to ONNX, and its ACS output in 3D
computed by the plain-torch reading of converters/SPEC-acs.md (acs_reference.py, with the
non-square rule of section 15 for its 1x7, 7x1, 1x3 and 3x1 convolutions).

    /usr/bin/python3 tools/goldens/inception_v3_acs.py OUT_DIR D H W

writes OUT_DIR/model.onnx (opset 13, input 'input' with dynamic N, H, W), OUT_DIR/input.f32
(det_tensor([1, 3, D, H, W], 7)), OUT_DIR/expected.f32 (the ACS network's output on it) and
OUT_DIR/expected.json (its shape, the 2D and ACS parameter counts). The test
test/converters/inception-v3.test.ts runs it; nothing is stored.
"""
import io
import json
import os
import sys
import types
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import inception as tv_inception

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from acs_reference import ConvertedConvNS, convert_leaf, det_tensor  # noqa: E402


def _max_pool(x, kernel_size, stride=None, padding=0):
    return (F.max_pool2d if x.dim() == 4 else F.max_pool3d)(x, kernel_size, stride, padding)


def _avg_pool(x, kernel_size, stride=None, padding=0):
    if x.dim() == 4:
        return F.avg_pool2d(x, kernel_size, stride, padding)
    # count_include_pad (the default): the zero padding counts, so pad first; avg_pool3d
    # itself refuses a 1x1x1 map with a 3x3x3 kernel even when padded.
    return F.avg_pool3d(F.pad(x, [padding] * 6), kernel_size, stride)


# Inception's blocks call F.avg_pool2d and F.max_pool2d; in 3D the same calls pool over D as
# well, with H's setting (section 2).
_F3 = types.SimpleNamespace(**{name: getattr(F, name) for name in dir(F) if not name.startswith('__')})
_F3.avg_pool2d = _avg_pool
_F3.max_pool2d = _max_pool
tv_inception.F = _F3


def swap(module):
    for name, child in list(module.named_children()):
        new = ConvertedConvNS(child, 'acs') if isinstance(child, nn.Conv2d) else convert_leaf(child, 'acs', 'd', None)
        if new is None:
            swap(child)
        else:
            setattr(module, name, new)


def main():
    out, size = sys.argv[1], [int(v) for v in sys.argv[2:5]]
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = tv_inception.inception_v3(weights=None, aux_logits=False, init_weights=True).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, det_tensor([1, 3, 75, 75], 1), buf, opset_version=13, input_names=['input'],
                          output_names=['output'], dynamic_axes={'input': {0: 'N', 2: 'H', 3: 'W'}, 'output': {0: 'N'}})
    with open(os.path.join(out, 'model.onnx'), 'wb') as f:
        f.write(buf.getvalue())
    params2d = sum(p.numel() for p in model.parameters())
    swap(model)
    model.eval()
    x = det_tensor([1, 3, *size], 7)
    with torch.no_grad():
        y = model(x)
    x.numpy().tofile(os.path.join(out, 'input.f32'))
    y.contiguous().numpy().tofile(os.path.join(out, 'expected.f32'))
    with open(os.path.join(out, 'expected.json'), 'w') as f:
        json.dump({'shape': list(y.shape), 'param_count_2d': params2d, 'param_count_acs': sum(p.numel() for p in model.parameters())}, f)


if __name__ == '__main__':
    main()
