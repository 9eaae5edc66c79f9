"""Goldens for transposed and non-square convolutions (converters/SPEC-acs.md sections 14, 15).

Run from the repository root with Debian's PyTorch (python3-torch, python3-onnx):

    /usr/bin/python3 tools/goldens/make_transpose_goldens.py

Three tiny 2D networks, exported with torch.onnx.export (opset 13, dynamic N, H, W), converted
in every mode by the plain-torch reading of sections 14 and 15 in acs_reference.py, and run
at a volume whose sides share no factor (the U-Net: twice such sides, its skip connection
needs even sizes). It writes test/fixtures/goldens/transposed/:

    <net>.onnx            the 2D export
    golden.json           per net and case: mode, axis, input (shape, det_tensor seed), output
                          shape, parameter count, and the converted state dict (dtype, shape,
                          sha256 ...) that each mode must produce
    outputs.safetensors   each case's output, keyed '<net>/<case>'

Its own checks, asserted every run: with
unit stride an ACS transposed conv equals the ACS conv of the flipped, transposed kernel with
padding d(k-1) - p (where section 14 says it does); every axis of every transposed view has
the size (n-1)s - 2p + d(k-1) + 1 + output_padding.
"""
import collections
import copy
import io
import os
import sys
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from acs_reference import (ConvertedConvNS, ConvertedConvTranspose, acs_conv, det_tensor,  # noqa: E402
                           transposed_out_size)
from goldens_io import describe_state_dict, safetensors_bytes, write_bytes, write_json  # noqa: E402

OUT = os.path.join('test', 'fixtures', 'goldens', 'transposed')
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


class TinyUNet(nn.Module):
    """Encoder, strided and dilated convs, a k=2 s=2 up-convolution into a skip connection, a
    grouped k=3 s=2 p=1 output_padding=1 one, a unit-stride one, a 1x1 classifier."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(3, 6, 3, padding=1)
        self.down = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.mid = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
        self.up = nn.ConvTranspose2d(8, 6, 2, stride=2)
        self.up2 = nn.ConvTranspose2d(12, 8, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.down2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.same = nn.ConvTranspose2d(8, 6, 3, padding=1, bias=False)
        self.head = nn.Conv2d(6, 3, 1)

    def forward(self, x):
        e = F.relu(self.enc(x))
        m = F.relu(self.mid(F.relu(self.down(e))))
        u = torch.cat([self.up(m), e], 1)
        u = F.relu(self.down2(F.relu(self.up2(u))))
        return self.head(F.relu(self.same(u)))


class Deconvs(nn.Module):
    """Transposed convs whose collapsed axis is shifted, cropped, dilated and grouped."""

    def __init__(self):
        super().__init__()
        self.a = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)
        self.b = nn.ConvTranspose2d(6, 6, 5, padding=1)
        self.c = nn.ConvTranspose2d(6, 6, 3, padding=2, groups=3)
        self.d = nn.ConvTranspose2d(6, 4, 3, stride=2, dilation=2, output_padding=1)
        self.e = nn.ConvTranspose2d(4, 5, (3, 5), padding=(1, 2))
        self.f = nn.Conv2d(5, 3, 3, stride=2, padding=1)

    def forward(self, x):
        x = F.relu(self.b(self.a(x)))
        return self.f(self.e(F.relu(self.d(self.c(x)))))


class InceptionBlock(nn.Module):
    """Inception-v3's factorised 1x7 / 7x1 and 1x3 / 3x1 branches, a strided 3x5 conv and a
    2x4 stride-2 conv whose collapsed axis reads size-dependent planes."""

    def __init__(self):
        super().__init__()
        self.b1 = nn.Conv2d(3, 4, 1)
        self.b7a = nn.Conv2d(3, 4, 1)
        self.b7b = nn.Conv2d(4, 5, (1, 7), padding=(0, 3))
        self.b7c = nn.Conv2d(5, 5, (7, 1), padding=(3, 0))
        self.b3a = nn.Conv2d(3, 4, (1, 3), padding=(0, 1))
        self.b3b = nn.Conv2d(3, 4, (3, 1), padding=(1, 0))
        self.t = nn.ConvTranspose2d(3, 4, (3, 5), padding=(1, 2))
        self.s = nn.Conv2d(21, 6, (3, 5), stride=2, padding=(1, 2))
        self.s2 = nn.Conv2d(21, 6, (2, 4), stride=2, padding=(1, 2))

    def forward(self, x):
        y = torch.cat([self.b1(x), self.b7c(F.relu(self.b7b(self.b7a(x)))), self.b3a(x), self.b3b(x), self.t(x)], 1)
        y = F.relu(y)
        return torch.cat([self.s(y), self.s2(y)], 1)


NETS = collections.OrderedDict([
    # name: (module class, channels, 2D export size, 3D size)
    ('unet', (TinyUNet, 3, (16, 20), (6, 10, 14))),
    ('deconvs', (Deconvs, 4, (9, 11), (5, 7, 3))),
    ('inception', (InceptionBlock, 3, (15, 19), (13, 17, 11))),
])

CASES = [('acs', 'acs', 'd'), ('2.5d-d', '2.5d', 'd'), ('2.5d-w', '2.5d', 'w'), ('i3d-d', 'i3d', 'd'),
         ('i3d-w', 'i3d', 'w'), ('mean-acs', 'mean-acs', 'd'), ('soft-acs', 'soft-acs', 'd')]


def make_net(cls, seed):
    torch.manual_seed(seed)
    m = cls().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(2.0)  # away from the default init's small values
    return m


def convert(model, mode, axis):
    m = copy.deepcopy(model)
    for name, child in list(m.named_children()):
        if isinstance(child, nn.ConvTranspose2d):
            setattr(m, name, ConvertedConvTranspose(child, mode, axis))
        elif isinstance(child, nn.Conv2d):
            setattr(m, name, ConvertedConvNS(child, mode, axis))
    return m.eval()


def export(model, channels, size, path):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        torch.onnx.export(model, det_tensor([1, channels, *size], 1), buf, opset_version=13, input_names=['input'],
                          output_names=['output'], dynamic_axes={'input': {0: 'N', 2: 'H', 3: 'W'}, 'output': {0: 'N'}})
    missing = [k for k in model.state_dict() if k.encode() not in buf.getvalue()]
    assert not missing, f'{path}: the export renamed {missing}'
    write_bytes(path, buf.getvalue())


def check_unit_stride_equivalence():
    """Section 14: with unit stride, ACS ConvTranspose == ACS Conv of the flipped, transposed
    kernel with padding d(k-1) - p, for d = 1 and for "same" kernels (k odd, 2p = d(k-1))."""
    n = 0
    for k, p, d, g in [(3, 1, 1, 1), (2, 0, 1, 1), (4, 1, 1, 1), (5, 0, 1, 1), (3, 0, 1, 2), (4, 3, 1, 1), (3, 2, 2, 1), (5, 4, 2, 2)]:
        torch.manual_seed(k * 100 + p * 10 + d)
        t = nn.ConvTranspose2d(4, 6, k, padding=p, dilation=d, groups=g)
        x = det_tensor([1, 4, 7, 9, 5], 5)  # no side n = 2(2p - d(k-1)): there the conv reads by its first rule
        got = ConvertedConvTranspose(t, 'acs')(x)
        # the flipped, transposed kernel of each group: (Cout, Cin/g, k, k)
        w = t.weight.detach().view(g, 4 // g, 6 // g, k, k).transpose(1, 2).reshape(6, 4 // g, k, k).flip(2, 3)
        want = acs_conv(x, w, t.bias.detach(), 1, d * (k - 1) - p, d, g)
        assert got.shape == want.shape, (k, p, d, got.shape, want.shape)
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (k, p, d, (got - want).abs().max())
        n += 1
    return n


def check_sizes(model, x3):
    """Every transposed view's output has the formula's size on every axis."""
    seen = []

    def hook(mod, inp, out):
        n = inp[0].shape[2:]
        want = [transposed_out_size(n[i], mod.k[0 if i < 2 else 1], mod.s[0], mod.p[0 if i < 2 else 1], mod.d[0 if i < 2 else 1], mod.op[0 if i < 2 else 1]) for i in range(3)]
        assert list(out.shape[2:]) == want, (list(out.shape), want)
        seen.append(1)

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, ConvertedConvTranspose)]
    model(x3)
    for h in hs:
        h.remove()
    return len(seen)


def param_count(m):
    return sum(p.numel() for p in m.parameters())


def main():
    os.makedirs(OUT, exist_ok=True)
    eq = check_unit_stride_equivalence()
    golden, outputs = collections.OrderedDict(), collections.OrderedDict()
    sized = 0
    for i, (name, (cls, ch, size2d, size3d)) in enumerate(NETS.items()):
        model = make_net(cls, 10 + i)
        export(model, ch, size2d, os.path.join(OUT, f'{name}.onnx'))
        swapped = convert(model, 'acs', 'd')
        # the 2D forward of the swapped modules' 2D counterparts is the network itself
        x2 = det_tensor([2, ch, *size2d], 3)
        y2 = model(x2)
        entry = {'source': f'{name}.onnx', 'param_count_2d': param_count(model), 'cases': []}
        outputs[f'{name}/2d'] = y2.detach().contiguous()
        entry['cases'].append({'name': '2d', 'input': {'shape': list(x2.shape), 'seed': 3}, 'output_shape': list(y2.shape)})
        x3 = det_tensor([1, ch, *size3d], 4)
        sized += check_sizes(swapped, x3)
        for case, mode, axis in CASES:
            m3 = convert(model, mode, axis)
            with torch.no_grad():
                y3 = m3(x3)
            outputs[f'{name}/{case}'] = y3.contiguous()
            sd = collections.OrderedDict((k, v.detach().contiguous()) for k, v in m3.state_dict().items())
            inexact = [k for k in sd if mode == 'i3d' and k.endswith('.weight')]
            entry['cases'].append({'name': case, 'mode': mode, 'axis': axis, 'input': {'shape': list(x3.shape), 'seed': 4},
                                   'output_shape': list(y3.shape), 'param_count': param_count(m3),
                                   'state_dict': describe_state_dict(sd, inexact)})
            if mode in ('acs', '2.5d', 'mean-acs'):
                assert param_count(m3) == param_count(model), (name, case)
        golden[name] = entry
    write_json(os.path.join(OUT, 'golden.json'), golden)
    write_bytes(os.path.join(OUT, 'outputs.safetensors'), safetensors_bytes(outputs))
    print(f'unit-stride equivalences: {eq}; transposed views sized: {sized}; nets: {", ".join(NETS)}')


if __name__ == '__main__':
    main()
