#!/usr/bin/env python3
"""Golden of one whole inference, volume to logits, computed by PyTorch and nibabel.

A CT-like phantom (int16 HU with scl_slope/scl_inter, stored in LAS orientation so that
reading it needs a flip) is written as NIfTI with nibabel; it is read back the way the
project documents (nibabel.as_closest_canonical, then array[d, h, w] = canonical[w, h, d]),
preprocessed as the project documents for CT (lung window [-1000, 400] -> [0, 1], the card's
1-channel mean/std 0.449/0.226), and run through this repository's own PyTorch ACS reference
of the resnet18 golden family with its stem adapted to one channel.

Run from the repository root:  /usr/bin/python3 tools/goldens/make_inference_golden.py
Writes test/fixtures/inference/ct_phantom.nii.gz and test/fixtures/inference/expected.json.
"""
import json
import os
import sys

import nibabel as nib
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from acs_reference import convert  # noqa: E402
from tiny_models import FAMILIES, build_family  # noqa: E402

OUT = os.path.join('test', 'fixtures', 'inference')
os.makedirs(OUT, exist_ok=True)
torch.set_num_threads(1)

# 1. the phantom: a body of soft tissue with lungs (air) and a nodule, in HU, stored as int16
rng = np.random.default_rng(7)
W, H, D = 44, 40, 36  # file axes i, j, k
i, j, k = np.meshgrid(np.arange(W), np.arange(H), np.arange(D), indexing='ij')
hu = np.full((W, H, D), -1000.0)
body = ((i - W / 2) / 20) ** 2 + ((j - H / 2) / 17) ** 2 < 1
hu[body] = 40
for cx in (W / 2 - 9, W / 2 + 9):
    lung = ((i - cx) / 7) ** 2 + ((j - H / 2) / 10) ** 2 + ((k - D / 2) / 14) ** 2 < 1
    hu[lung] = -850
nodule = ((i - (W / 2 + 8)) ** 2 + (j - H / 2 + 2) ** 2 + (k - D / 2 - 3) ** 2) < 9
hu[nodule] = 60
hu += rng.normal(0, 15, hu.shape)
slope, inter = 2.0, -1024.0
stored = np.round((hu - inter) / slope).astype(np.int16)
# LAS: i runs towards the patient's Left, so reading it to RAS+ flips i
affine = np.array([[-0.8, 0, 0, 20.0], [0, 0.75, 0, -12.0], [0, 0, 2.5, -40.0], [0, 0, 0, 1]])
img = nib.Nifti1Image(stored, affine)
img.header.set_slope_inter(slope, inter)
img.set_qform(affine, code=1)
img.set_sform(affine, code=1)
path = os.path.join(OUT, 'ct_phantom.nii.gz')
nib.save(img, path)

# 2. read as documented: closest canonical, then [d, h, w]
canon = nib.as_closest_canonical(nib.load(path))
vol = np.asarray(canon.get_fdata(dtype=np.float64), dtype=np.float32).transpose(2, 1, 0)

# 3. CT preprocessing as documented
lo, hi = -1000.0, 400.0
x = (np.clip(vol, lo, hi) - lo) * np.float32(1.0 / (hi - lo))
x = (x - np.float32(0.449)) / np.float32(0.226)
x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]

# 4. the resnet18 golden family, ACS, stem adapted to one channel
fam = FAMILIES[0]
assert fam.name == 'resnet18'
model = build_family(fam, 1000)
model.load_state_dict(torch.load(os.path.join('test', 'fixtures', 'goldens', 'resnet18', 'model.pth')))
model3d = convert(model, 'acs', stem=fam.stem, classifier=fam.classifier, in_channels=1)
with torch.no_grad():
    logits = model3d(x)[0]
expected = {
    'volume': 'ct_phantom.nii.gz',
    'model': '../goldens/resnet18/model.pth',
    'conversion': {'mode': 'acs', 'inChannels': 1},
    'canonical_shape': list(vol.shape),
    'canonical_affine': canon.affine.tolist(),
    'preprocessing': ['window lung [-1000, 400] -> [0, 1]', 'normalise mean [0.449] std [0.226]'],
    'input_sum': float(x.double().sum()),
    'logits': [float(v) for v in logits],
}
with open(os.path.join(OUT, 'expected.json'), 'w') as f:
    json.dump(expected, f, indent=1)
print(f'logits {expected["logits"]}', file=sys.stderr)
