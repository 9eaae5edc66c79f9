"""Reference numbers for sliding-window inference, written from the definition of MONAI's
`sliding_window_inference` (monai/inferers/utils.py, 1.x) in numpy, independently of the
TypeScript code:

- the volume is padded to the window where smaller (constant 0; floor(diff / 2) before);
- scan interval per axis: the window when it equals the (padded) size, else
  max(1, int(window * (1 - overlap))); window count ceil((size - window) / interval) + 1; each
  start clamped so the last window is flush with the far edge;
- importance map (`compute_importance_map`): constant ones, or the product over axes of
  exp(-x^2 / (2 sigma^2)), x = -(n - 1) / 2 .. (n - 1) / 2, sigma = sigma_scale * n, in float32,
  clamped below at max(min, 1e-3);
- output = sum(importance * window output) / sum(importance), cropped back.

The "network" is fixed and depends on where a voxel sits in its window, so the blending
weights change the answer: out[k] = in[0] * (k + 1) + (z + 2 y + 3 x) / 10 (z, y, x inside the
window). The input is in[0, z, y, x] = sin(0.37 * i) * 5, i the flat index.

Run: /usr/bin/python3 tools/sliding_window/reference.py > test/fixtures/sliding-window/monai-reference.json
"""
import json
import math

import numpy as np


def importance(window, mode, sigma_scale):
    if mode == "constant":
        m = np.ones(window, dtype=np.float32)
    else:
        m = None
        for n in window:
            x = np.arange(-(n - 1) / 2.0, (n - 1) / 2.0 + 1, dtype=np.float32)
            g = np.exp(x ** 2 / np.float32(-2 * (sigma_scale * n) ** 2)).astype(np.float32)
            m = g if m is None else m[..., None] * g
    return np.clip(m, max(float(m.min()), 1e-3), None).astype(np.float32)


def network(batch, classes):
    _, _, d, h, w = batch.shape
    z, y, x = np.meshgrid(np.arange(d), np.arange(h), np.arange(w), indexing="ij")
    ramp = ((z + 2 * y + 3 * x) / 10).astype(np.float32)
    return np.stack([batch[:, 0] * (k + 1) + ramp for k in range(classes)], axis=1)


def sliding_window(vol, window, overlap, mode, sigma_scale, classes):
    c, *size = vol.shape
    pads = [(0, 0)]
    for s, r in zip(size, window):
        diff = max(r - s, 0)
        pads.append((diff // 2, diff - diff // 2))
    v = np.pad(vol, pads)
    padded = v.shape[1:]
    starts = []
    for s, r, o in zip(padded, window, overlap):
        step = r if r == s else max(1, int(r * (1 - o)))
        n = math.ceil((s - r) / step) + 1 if s > r else 1
        starts.append([min(i * step, s - r) for i in range(n)])
    imp = importance(window, mode, sigma_scale)
    out = np.zeros((classes, *padded), dtype=np.float64)
    count = np.zeros(padded, dtype=np.float64)
    for z0 in starts[0]:
        for y0 in starts[1]:
            for x0 in starts[2]:
                sl = (slice(z0, z0 + window[0]), slice(y0, y0 + window[1]), slice(x0, x0 + window[2]))
                o = network(v[(slice(None), *sl)][None], classes)[0]
                out[(slice(None), *sl)] += o * imp
                count[sl] += imp
    out /= count
    crop = tuple(slice(p[0], p[0] + s) for p, s in zip(pads[1:], size))
    windows = len(starts[0]) * len(starts[1]) * len(starts[2])
    return out[(slice(None), *crop)].astype(np.float32), windows


def main():
    cases = []
    for size, window, overlap, mode in [
        ([9, 13, 11], [4, 6, 5], [0.5, 0.5, 0.5], "gaussian"),
        ([9, 13, 11], [4, 6, 5], [0.25, 0.25, 0.25], "gaussian"),
        ([10, 7, 12], [5, 5, 5], [0.6, 0.3, 0.0], "gaussian"),
        ([3, 13, 8], [4, 6, 5], [0.25, 0.5, 0.25], "gaussian"),
        ([9, 13, 11], [4, 6, 5], [0.5, 0.5, 0.5], "constant"),
    ]:
        n = int(np.prod(size))
        vol = (np.sin(0.37 * np.arange(n, dtype=np.float64)) * 5).astype(np.float32).reshape(1, *size)
        out, windows = sliding_window(vol, window, overlap, mode, 0.125, 2)
        cases.append({
            "size": size, "window": window, "overlap": overlap, "mode": mode, "sigmaScale": 0.125,
            "windows": windows,
            "importance": [float("%.8g" % x) for x in importance(window, mode, 0.125).ravel()],
            "output": [float("%.8g" % x) for x in out.ravel()],
        })
    print(json.dumps({"generator": "tools/sliding_window/reference.py", "cases": cases}))


if __name__ == "__main__":
    main()
