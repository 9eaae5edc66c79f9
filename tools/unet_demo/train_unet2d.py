#!/usr/bin/python3
"""Train the proof-of-concept 2D U-Net of zoo/demo on synthetic shapes and export it to ONNX.

The task: segment discs and squares of random size, position and intensity lying on a noisy
background into three classes (0 background, 1 disc, 2 square). The network is a 3-level
U-Net (Conv-BN-ReLU blocks, MaxPool down, ConvTranspose 2x2 stride 2 up, skip connections by
concatenation), narrow enough to ship in the repository. Everything is seeded and runs on
one CPU thread, so a rerun writes the same bytes; it takes 1.5 to 4 minutes on two busy cores.
The exported graph has each BatchNorm folded into its convolution (torch.onnx.export in eval
mode), so it counts one parameter fewer per normalised channel than the module.

Writes:
    zoo/demo/unet2d-shapes.onnx    the 2D network, opset 13, dynamic N, H, W
    zoo/demo/unet2d-shapes.json    labels, input layout and preprocessing, training figures

The 3D counterpart of the image generator (spheres and cubes) is test/demo/shapes.ts;
both draw the same classes with the same intensity and noise ranges, so a network trained on
the 2D images meets the same statistics in every slice of the 3D volumes.

Run from the repository root:  /usr/bin/python3 tools/unet_demo/train_unet2d.py
"""
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join('zoo', 'demo')
NAME = 'unet2d-shapes'
SEED = 20260
SIZE = 48
STEPS = 450
BATCH = 16
WIDTHS = (8, 16, 32)
LABELS = ['background', 'disc', 'square']

# Shared with inference/demo/shapes.ts: keep the two in step.
NOISE_SD = 0.25
BACKGROUND = (-0.3, 0.3)
INTENSITY = (0.6, 1.6)
RADIUS_FRACTION = (0.08, 0.22)


def block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet2d(nn.Module):
    """Encoder widths WIDTHS; each decoder level doubles the size with a ConvTranspose and
    concatenates the encoder map of the same level."""

    def __init__(self, widths=WIDTHS, classes=len(LABELS)):
        super().__init__()
        w0, w1, w2 = widths
        self.enc0 = block(1, w0)
        self.enc1 = block(w0, w1)
        self.bottom = block(w1, w2)
        self.up1 = nn.ConvTranspose2d(w2, w1, 2, stride=2)
        self.dec1 = block(2 * w1, w1)
        self.up0 = nn.ConvTranspose2d(w1, w0, 2, stride=2)
        self.dec0 = block(2 * w0, w0)
        self.head = nn.Conv2d(w0, classes, 1)

    def forward(self, x):
        e0 = self.enc0(x)
        e1 = self.enc1(F.max_pool2d(e0, 2))
        b = self.bottom(F.max_pool2d(e1, 2))
        d1 = self.dec1(torch.cat([self.up1(b), e1], 1))
        d0 = self.dec0(torch.cat([self.up0(d1), e0], 1))
        return self.head(d0)


def shapes_batch(rng, n, size):
    """n images (n, 1, size, size) float32 and their label maps (n, size, size) int64: 1 to 3
    shapes each, disc or square, later shapes drawn over earlier ones."""
    images = np.empty((n, 1, size, size), np.float32)
    labels = np.zeros((n, size, size), np.int64)
    yy, xx = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing='ij')
    for i in range(n):
        image = np.full((size, size), rng.uniform(*BACKGROUND), np.float32)
        for _ in range(rng.integers(1, 4)):
            kind = rng.integers(1, 3)
            r = rng.uniform(*RADIUS_FRACTION) * size
            cy, cx = rng.uniform(r, size - r, 2)
            if kind == 1:
                inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            else:
                inside = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
            image[inside] = rng.uniform(*INTENSITY)
            labels[i][inside] = kind
        images[i, 0] = image + rng.normal(0, NOISE_SD, (size, size)).astype(np.float32)
    return images, labels


def dice(pred, truth, k):
    p, t = pred == k, truth == k
    denom = p.sum() + t.sum()
    return float(2 * (p & t).sum() / denom) if denom else 1.0


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # two threads on two busy cores run ten times slower
    rng = np.random.default_rng(SEED)
    model = UNet2d()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=STEPS)
    start = time.time()
    model.train()
    for step in range(STEPS):
        x, y = shapes_batch(rng, BATCH, SIZE)
        loss = F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == STEPS - 1:
            print(f'step {step:4d} loss {loss.item():.4f} {time.time() - start:.0f}s', flush=True)
    model.eval()
    x, y = shapes_batch(np.random.default_rng(SEED + 1), 64, 96)
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    val = {LABELS[k]: round(dice(pred, y, k), 4) for k in range(len(LABELS))}
    print('validation dice (64 images 96x96):', val)

    os.makedirs(OUT, exist_ok=True)
    onnx_path = os.path.join(OUT, NAME + '.onnx')
    torch.onnx.export(model, torch.zeros(1, 1, SIZE, SIZE), onnx_path, opset_version=13,
                      input_names=['image'], output_names=['logits'],
                      dynamic_axes={'image': {0: 'N', 2: 'H', 3: 'W'}, 'logits': {0: 'N', 2: 'H', 3: 'W'}})
    card = {
        'name': NAME,
        'task': 'segmentation',
        'labels': LABELS,
        'input': {'name': 'image', 'layout': 'NCHW', 'channels': 1,
                  'sizeMultiple': 4,
                  'note': 'any H, W divisible by 4 keep every skip connection aligned'},
        'preprocessing': {'kind': 'none', 'note': 'raw intensities: background in [-0.3, 0.3], shapes in [0.6, 1.6], '
                          'Gaussian noise sd 0.25'},
        'architecture': {'levels': len(WIDTHS), 'widths': list(WIDTHS), 'upsampling': 'ConvTranspose2d(2, stride 2)',
                         'normalization': 'BatchNorm2d', 'parameters': params},
        'training': {'script': 'tools/unet_demo/train_unet2d.py', 'seed': SEED, 'steps': STEPS, 'batch': BATCH,
                     'size': SIZE, 'torch': torch.__version__, 'validationDice': val},
    }
    with open(os.path.join(OUT, NAME + '.json'), 'w') as f:
        json.dump(card, f, indent=2)
        f.write('\n')
    print(f'parameters {params}; wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes) in {time.time() - start:.0f}s')


if __name__ == '__main__':
    main()
