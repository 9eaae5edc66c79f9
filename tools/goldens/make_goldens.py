#!/usr/bin/env python3
"""Make the numerical goldens of ACS Hub: what PyTorch computes for converters/SPEC-acs.md,
independently of the TypeScript converter that is tested against them.

Run from the repository root with an interpreter that has Debian's PyTorch packages
(apt-get install -y python3-torch python3-torchvision python3-numpy python3-onnx):

    /usr/bin/python3 tools/goldens/make_goldens.py

It needs no network and no timm or acsconv: the 3D reference (tools/goldens/acs_reference.py)
is written here in plain torch, from converters/SPEC-acs.md. It rewrites test/fixtures/goldens/:

    <family>/model.pth            the tiny 2D model's state dict (torch.save)
    <family>/model.onnx           regnet, shufflenet_v2, functional_cnn: torch.onnx.export of the 2D model
                                  (opset 13, input 'input' with dynamic N, H, W; output 'output' with dynamic N)
    densenet121/model_legacy_keys.pth   the same weights under old torchvision key names (norm.1, conv.1, ...)
    convnext_tiny/model_timm.safetensors the same weights under timm's ConvNeXt key names
    <family>/golden.json          the cases (mode, options, input), output shapes, parameter counts and the
                                  state dict each 3D case must produce
    <family>/outputs.safetensors  each case's output (float32), keyed by case name
    layers/cases.json, layers/outputs.safetensors   ~300 single-conv cases

Inputs and per-layer weights are not stored: `det_tensor(shape, seed, scale)` (acs_reference.py)
regenerates them from an integer formula. State dicts are described per tensor (dtype, shape, sha256
of the little-endian bytes, float64 sum, first 4 values); each 3D case's is given as a delta from the
'2d' one (see goldens_io.state_dict_delta). Tensors whose bytes come from arithmetic (I3D weights, an
adapted stem) carry "exact": false. The script asserts its sanity checks (ACS equals a dense conv
with the kernel in the central planes for "same" convs; I3D on a volume constant along the repeat axis
equals 2D; parameter counts; the module-swapped 2D forward equals torchvision's) and prints a summary.
Output bytes are the same on a rerun on the same machine (one thread).
"""
import collections
import io
import math
import os
import random
import re
import shutil
import struct
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from acs_reference import (AXES, ConvertedConv, acs_parts, convert, det_tensor, first_rule_overruns,  # noqa: E402
                           out_size, split3, weight_for_mode)
from goldens_io import describe_state_dict, safetensors_bytes, state_dict_delta, write_bytes, write_json  # noqa: E402
from tiny_models import (FAMILIES, NUM_CLASSES, build_family, convnext_timm_key, convnext_timm_state_dict,  # noqa: E402
                         densenet_legacy_keys)

OUT = os.path.join('test', 'fixtures', 'goldens')
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

INPUT_2D = [2, 3, 40, 48]
INPUT_3D = [2, 3, 32, 40, 48]
DET_TENSOR = ('u = ((i + seed * 1000003) * 2654435761) mod 2**32 over the C-order flat index i; '
              'value = float32(u / 2**32 * 2 - 1) * float32(scale), the product rounded to float32; scale 1 if absent')
STATE_DICTS = ("state_dicts['2d'] describes the 2D source state dict (model.pth) key by key, in order: dtype, "
               "shape, sha256 of the little-endian contiguous bytes, float64 sum, first 4 values. Every other entry "
               "is the state dict of that case's converted model as a delta from it: 'drop' lists the keys it lacks, "
               "'set' maps a changed key to the fields that change and a new key to its full description plus "
               "'after' (the key it follows). Otherwise keys and order are those of '2d'. 'exact': false marks "
               "tensors whose bytes come from float arithmetic (I3D weights w/k, an adapted stem): compare those "
               "with a tolerance, the rest by sha256.")


def f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def check_formulas():
    """det_tensor against a plain-integer, plain-float reading of its formula; the split rule
    against the examples of converters/SPEC-acs.md section 1.2."""
    assert [split3(n) for n in (64, 10, 2)] == [(22, 21, 21), (4, 3, 3), (1, 1, 0)]
    for shape, seed, scale in (([3, 5], 7, 0.3), ([17], 0, 1.0), ([2, 2, 3], 987654321, 1 / 3)):
        got = det_tensor(shape, seed, scale).flatten().tolist()
        for i, v in enumerate(got):
            u = ((i + seed * 1000003) * 2654435761) % 2 ** 32
            assert v == f32(f32(u / 2 ** 32 * 2 - 1) * f32(scale)), (shape, seed, i)


def det_tensor_examples():
    return [{'shape': shape, 'seed': seed, 'scale': f32(scale), 'values': det_tensor(shape, seed, scale).tolist()}
            for shape, seed, scale in (([6], 0, 1.0), ([2, 3], 1, 1.0), ([5], 4242, 0.125), ([4], 10 ** 9, 1 / 3))]


# ------------------------------------------------------------------ numerical checks

def assert_close(got, want, what, rtol=2e-5):
    """|got - want| <= rtol * max|want| + 1e-6 everywhere (float32 sums in another order)."""
    assert got.shape == want.shape, f'{what}: shape {tuple(got.shape)} != {tuple(want.shape)}'
    err = float((got - want).abs().max()) if got.numel() else 0.0
    bound = rtol * float(want.abs().max()) + 1e-6 if want.numel() else 0.0
    assert err <= bound, f'{what}: max error {err:.3g} > {bound:.3g}'


def is_same_conv(k, s, p, d):
    return k % 2 == 1 and p == k // 2 and d == 1


def dense_embedded(w2, parts_axes):
    """A k x k x k kernel holding each output channel's 2D kernel in the central plane orthogonal
    to its view's axis; parts_axes lists (out_lo, out_hi, axis)."""
    o, i, k, _ = w2.shape
    w3 = torch.zeros(o, i, k, k, k, dtype=torch.float64)
    c = k // 2
    for lo, hi, axis in parts_axes:
        sl = [slice(lo, hi), slice(None), slice(None), slice(None), slice(None)]
        sl[2 + axis] = c
        w3[tuple(sl)] += w2[lo:hi].double()
    return w3


def check_dense(x, w2, b, s, p, g, mode, got, what, split=None):
    """(a) For a 'same' conv, ACS (and mean-/soft-ACS) equal a dense 3D conv with the kernel
    embedded in the central plane(s), computed in float64."""
    o = w2.shape[0]
    if mode == 'acs':
        w3 = dense_embedded(w2, [(lo, hi, a) for a, lo, hi, _, _, _ in acs_parts(o, x.shape[1], g, split)])
    else:
        w3 = dense_embedded(w2, [(0, o, a) for a in range(3)]) / 3
    want = F.conv3d(x.double(), w3, None if b is None else b.double(), s, p, 1, g)
    assert_close(got.double(), want, what)


def reference_style_view(x, w2, axis, s, p, d, g):
    """One view the way the reference package computes it: on the collapsed axis either the raw
    input (first rule) or the input padded by p and cut from k//2 (second rule), then a strided
    conv3d with unit extent there. None where its output size differs from the dense one
    (the reference cannot run that configuration)."""
    n, k = x.shape[2 + axis], w2.shape[-1]
    n_out = out_size(n, k, s, p, d)
    if n_out == n or 2 * n_out == n:
        xin = x
    else:
        pad = [0] * 6
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = p
        xin = F.pad(x, pad).narrow(2 + axis, k // 2, (n_out - 1) * s + 1)
    padding = [p] * 3
    padding[axis] = 0
    y = F.conv3d(xin, w2.unsqueeze(2 + axis), None, (s, s, s), padding, (d, d, d), g)
    return y if y.shape[2 + axis] == n_out else None


def reference_size_differs(n, k, s, p, d):
    """Where the first plane rule applies but the reference's strided read gives another output size."""
    n_out = out_size(n, k, s, p, d)
    return (n_out == n or 2 * n_out == n) and (n - 1) // s + 1 != n_out


def check_reference_style(x, w2, b, s, p, d, g, mode, got, what, split=None, core=None):
    """Cross-check against the pad-and-cut mechanics where the reference can run; returns whether it could."""
    if mode == 'acs':
        views = [reference_style_view(x[:, c0:c1], w2[lo:hi], a, s, p, d, gg)
                 for a, lo, hi, c0, c1, gg in acs_parts(w2.shape[0], x.shape[1], g, split)]
        if any(v is None for v in views):
            return False
        want = torch.cat(views, 1)
    else:
        views = [reference_style_view(x, w2, a, s, p, d, g) for a in range(3)]
        if any(v is None for v in views):
            return False
        w = torch.softmax(torch.zeros(w2.shape[0], 3) if core is None else core, 1)
        want = (views[0] + views[1] + views[2]) / 3 if mode == 'mean-acs' else sum(
            v * w[:, j].view(1, -1, 1, 1, 1) for j, v in enumerate(views))
    if b is not None:
        want = want + b.view(1, -1, 1, 1, 1)
    assert_close(got, want, what)
    return True


def check_2_5d(x, w2, b, axis, s, p, d, g, got, what):
    """2.5D reads the input slices i*s along its unit axis and runs the 2D conv on each."""
    n_out = (x.shape[2 + axis] - 1) // s + 1
    for i in range(n_out):
        want = F.conv2d(x.select(2 + axis, i * s), w2, b, s, p, d, g)
        assert_close(got.select(2 + axis, i), want, f'{what} slice {i}')


def check_i3d(w2, b, axis, s, p, d, g, what, seed):
    """(b) I3D on a volume constant along the repeat axis equals the 2D conv on one slice, away
    from the borders of that axis."""
    k = w2.shape[-1]
    m = d * (k - 1) + 1 + 2 * s
    x2 = det_tensor([1, w2.shape[1] * g, m + 3, m + 4], seed)
    n = 2 * p + d * (k - 1) + 1 + 2 * s
    x3 = x2.unsqueeze(2 + axis).expand(*x2.shape[:2 + axis], n, *x2.shape[2 + axis:]).contiguous()
    y3 = F.conv3d(x3, weight_for_mode(w2, 'i3d', axis), b, s, p, d, g)
    want = F.conv2d(x2, w2, b, s, p, d, g)
    inside = [j for j in range(y3.shape[2 + axis]) if j * s - p >= 0 and j * s - p + d * (k - 1) <= n - 1]
    assert inside, what
    for j in inside:
        assert_close(y3.select(2 + axis, j), want, f'{what} plane {j}')


# ------------------------------------------------------------------------- families

def family_cases(fam):
    feats = {'head': 'features'} if fam.features_head else {}
    x3 = {'shape': INPUT_3D, 'seed': 2}
    cases = [
        ('2d', '2d', {}, {'shape': INPUT_2D, 'seed': 1}),
        ('acs', 'acs', dict(feats), x3),
        ('2.5d-d', '2.5d', dict(axis='d', **feats), x3),
        ('2.5d-w', '2.5d', dict(axis='w', **feats), x3),
        ('i3d-d', 'i3d', dict(axis='d', **feats), x3),
        ('i3d-h', 'i3d', dict(axis='h', **feats), x3),
        ('mean-acs', 'mean-acs', dict(feats), x3),
        ('soft-acs', 'soft-acs', dict(feats), x3),
        ('acs-in1', 'acs', dict(inChannels=1, **feats), {'shape': [2, 1, 32, 40, 48], 'seed': 3}),
    ]
    if fam.in4:
        cases.append(('acs-in4', 'acs', dict(inChannels=4, **feats), {'shape': [2, 4, 32, 40, 48], 'seed': 4}))
    cases.append(('acs-features', 'acs', {'head': 'features'}, x3))
    if fam.acs64:
        cases.append(('acs-64', 'acs', dict(feats), {'shape': [1, 3, 64, 64, 64], 'seed': 5}))
    return [{'name': n, 'mode': m, 'options': o, 'input': i} for n, m, o, i in cases]


def convert_case(fam, model, mode, options):
    return convert(model, mode, stem=fam.stem, classifier=fam.classifier, axis=options.get('axis', 'd'),
                   in_channels=options.get('inChannels', 3), head=options.get('head', 'keep'),
                   features_head=fam.features_head, extra_forwards=fam.extra_forwards)


def param_count(m):
    return sum(p.numel() for p in m.parameters())


def expected_param_count(m2, mode):
    """(c) ACS, 2.5D and mean-ACS keep the 2D count; soft-ACS adds O*3 per conv; I3D multiplies
    each conv weight's count by k."""
    n = param_count(m2)
    for c in m2.modules():
        if isinstance(c, nn.Conv2d):
            if mode == 'soft-acs':
                n += 3 * c.out_channels
            elif mode == 'i3d':
                n += (c.kernel_size[0] - 1) * c.weight.numel()
    return n


def inexact_keys(model3d, mode, options, stem):
    keys = []
    if mode == 'i3d':
        keys += [f'{n}.weight' for n, m in model3d.named_modules() if isinstance(m, ConvertedConv) and m.k > 1]
    if options.get('inChannels', 3) != 3:
        keys.append(f'{stem}.weight')
    return sorted(set(keys))


def check_model_convs(model3d, x, mode, what):
    """Per layer of a converted model: (a) dense-embedded equality for 'same' convs and the
    reference-style mechanics wherever the reference could run (ACS modes); slice-wise 2D
    equality (2.5D). Returns the number of checks of each kind."""
    seen, counts = [], collections.Counter()
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: seen.append((n, m, i[0].clone(), o.clone())))
             for n, m in model3d.named_modules() if isinstance(m, ConvertedConv)]
    with torch.no_grad():
        model3d(x)
        for h in hooks:
            h.remove()
        for n, m, xin, y in seen:
            if mode == '2.5d':
                check_2_5d(xin, m.weight.squeeze(2 + m.axis), m.bias, m.axis, m.s, m.p, m.d, m.g, y, f'{what} {n}')
                counts['2.5d-slice'] += 1
                continue
            if is_same_conv(m.k, m.s, m.p, m.d):
                check_dense(xin, m.weight, m.bias, m.s, m.p, m.g, mode, y, f'{what} {n} dense')
                counts['dense-plane'] += 1
            counts['reference-style'] += check_reference_style(xin, m.weight, m.bias, m.s, m.p, m.d, m.g, mode, y,
                                                               f'{what} {n} ref', core=getattr(m, 'soft_w_core', None))
    return counts


def make_family(index, fam):
    seed = 1000 + index
    model = build_family(fam, seed)
    folder = os.path.join(OUT, fam.name)
    sd = model.state_dict()
    buf = io.BytesIO()
    torch.save(sd, buf)
    write_bytes(os.path.join(folder, 'model.pth'), buf.getvalue())
    files = {'pth': 'model.pth'}
    golden = collections.OrderedDict(family=fam.name, config=fam.config, init_seed=seed, source='model.pth')
    if fam.name == 'densenet121':
        buf = io.BytesIO()
        legacy = densenet_legacy_keys(sd)
        check_legacy_densenet(model, legacy)
        torch.save(legacy, buf)
        write_bytes(os.path.join(folder, 'model_legacy_keys.pth'), buf.getvalue())
        files['legacy_pth'] = 'model_legacy_keys.pth'
        golden['legacy_note'] = ('model_legacy_keys.pth: the same tensors under the key names of the original '
                                 'torchvision DenseNet files (denselayerN.norm.1, conv.1, norm.2, conv.2) and, '
                                 'like them, without num_batches_tracked (loading it gives num_batches_tracked 0)')
    if fam.name == 'convnext_tiny':
        write_bytes(os.path.join(folder, 'model_timm.safetensors'),
                    safetensors_bytes(convnext_timm_state_dict(sd), {'format': 'pt'}))
        files['timm_safetensors'] = 'model_timm.safetensors'
        golden['timm_key_map'] = {convnext_timm_key(k): k for k in sd}
        golden['timm_note'] = ('model_timm.safetensors holds the same tensors under timm ConvNeXt names '
                               '(timm_key_map: timm key -> torchvision key); gamma is layer_scale reshaped to (C,)')
    if fam.onnx:
        files['onnx'] = 'model.onnx'
        golden['source'] = 'model.onnx'
        export_onnx(model, os.path.join(folder, 'model.onnx'))
    golden['files'] = files
    if fam.onnx:
        golden['onnx_note'] = ('model.onnx is torch.onnx.export of the same 2D model (BatchNorm folded into the '
                               'convs), so converting it must give the same outputs up to float rounding; '
                               'state_dicts describe the conversion of model.pth')
    golden['num_classes'] = NUM_CLASSES
    golden['stem'], golden['classifier'] = fam.stem, fam.classifier
    if fam.features_head:
        golden['note'] = ("VGG's head (adaptive pool to 7x7, flatten, Linear) only fits 2D: every 3D case uses "
                          "head 'features' = global average pool of the last feature map, flattened to (N, C); "
                          "its state dicts have no classifier.* keys")

    cases = family_cases(fam)
    outputs = collections.OrderedDict()
    base = describe_state_dict(sd)
    state_dicts = collections.OrderedDict([('2d', base)])
    stats = collections.Counter()
    for case in cases:
        mode, options = case['mode'], case['options']
        x = det_tensor(case['input']['shape'], case['input']['seed'])
        m2 = convert_case(fam, model, '2d', options)
        if mode == '2d':
            with torch.no_grad():
                y = model(x)
                # (d) the module-swapped forward functions agree with torchvision's to the bit
                assert torch.equal(m2(x), y), f'{fam.name}: 2d forward differs from torchvision'
            case['output_shape'] = list(y.shape)
            case['param_count'] = param_count(model)
            outputs[case['name']] = y
            continue
        m3 = convert_case(fam, model, mode, options)
        with torch.no_grad():
            y = m3(x)
        assert torch.isfinite(y).all() and y.abs().max() > 1e-3, f'{fam.name} {case["name"]}: degenerate output'
        case['output_shape'] = list(y.shape)
        case['param_count'] = param_count(m3)
        assert case['param_count'] == expected_param_count(m2, mode), f'{fam.name} {case["name"]}: parameter count'
        if mode in ('acs', 'mean-acs') and options.get('head', 'keep') == 'keep' and 'inChannels' not in options:
            assert case['param_count'] == param_count(model)
            assert list(m3.state_dict()) == list(sd) and all(torch.equal(m3.state_dict()[k], sd[k]) for k in sd), \
                f'{fam.name} {case["name"]}: an ACS state dict must equal the 2D one'
        if mode != 'i3d' and case['name'] != 'acs-64':
            stats.update(check_model_convs(m3, x, mode, f'{fam.name} {case["name"]}'))
        if mode == 'i3d':
            for n, c in m2.named_modules():
                if isinstance(c, nn.Conv2d):
                    check_i3d(c.weight.detach(), None if c.bias is None else c.bias.detach(), AXES[options['axis']],
                              c.stride[0], c.padding[0], c.dilation[0], c.groups, f'{fam.name} {n} i3d', 7)
                    stats['i3d-invariant'] += 1
        desc = describe_state_dict(m3.state_dict(), inexact_keys(m3, mode, options, fam.stem))
        state_dicts[case['name']] = state_dict_delta(desc, base)
        outputs[case['name']] = y
    assert stats['dense-plane'] > 0 and stats['2.5d-slice'] > 0 and stats['i3d-invariant'] > 0
    golden['det_tensor'] = DET_TENSOR
    golden['cases'] = cases
    golden['state_dicts_format'] = STATE_DICTS
    golden['state_dicts'] = state_dicts
    write_json(os.path.join(folder, 'golden.json'), golden)
    write_bytes(os.path.join(folder, 'outputs.safetensors'), safetensors_bytes(outputs))
    return [c['name'] for c in cases], stats


def check_legacy_densenet(model, legacy):
    """The legacy file loads into torchvision's DenseNet (strict) once its keys are renamed back the
    way torchvision's loader does it, and gives the same outputs."""
    renamed = collections.OrderedDict()
    for k, v in legacy.items():
        m = re.fullmatch(r'(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.\w+)', k)
        renamed[m[1] + m[2] if m else k] = v
    fresh = type(model)(growth_rate=4, block_config=(2, 2, 2, 2), num_init_features=8, bn_size=2,
                        num_classes=NUM_CLASSES).eval()
    fresh.load_state_dict(renamed, strict=True)
    x = det_tensor(INPUT_2D, 1)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))


def export_onnx(model, path):
    import onnx
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # shape-inference notes about constants
        torch.onnx.export(model, det_tensor(INPUT_2D, 1), buf, opset_version=13, input_names=['input'],
                          output_names=['output'], dynamic_axes={'input': {0: 'N', 2: 'H', 3: 'W'}, 'output': {0: 'N'}})
    m = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(m, full_check=True)
    write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------------- single layers

def layer_configs():
    """Targeted configurations first, then seeded random ones, ~300 in all."""
    cfgs = []

    def add(mode, c, o, k, s, p, d, g, size, bias=True, n=1, **options):
        cfgs.append(dict(mode=mode, options=options, C=c, O=o, k=k, s=s, p=p, d=d, g=g, bias=bias, N=n,
                         size=list(size)))

    # ConvNeXt: 4x4/4 stem and 2x2/2 downsampling, even and odd sizes
    for size in [(16, 16, 16), (17, 19, 13), (16, 13, 18), (8, 9, 12)]:
        add('acs', 3, 8, 4, 4, 0, 1, 1, size)
        add('acs', 8, 16, 2, 2, 0, 1, 1, size)
    add('acs', 3, 10, 4, 4, 0, 1, 1, (12, 13, 14), n=2)
    add('acs', 16, 32, 2, 2, 0, 1, 1, (5, 6, 7))
    add('mean-acs', 8, 16, 2, 2, 0, 1, 1, (10, 9, 8))
    add('soft-acs', 3, 8, 4, 4, 0, 1, 1, (13, 16, 15))
    # depthwise k=3 s=2 p=1 on odd sizes (the reference crashes here; converters/SPEC-acs.md
    # section 1.7), and even
    for c in (6, 9, 12, 4, 2):
        add('acs', c, c, 3, 2, 1, 1, c, (9, 11, 7))
    add('acs', 6, 6, 3, 2, 1, 1, 6, (8, 10, 12))
    add('acs', 8, 8, 7, 1, 3, 1, 8, (8, 9, 10))  # ConvNeXt's depthwise 7x7
    add('acs', 8, 8, 5, 2, 2, 1, 8, (11, 12, 13), bias=False)  # EfficientNet-like
    add('mean-acs', 6, 6, 3, 2, 1, 1, 6, (9, 11, 7))
    add('soft-acs', 6, 6, 3, 2, 1, 1, 6, (9, 11, 7))
    add('acs', 4, 8, 3, 1, 1, 1, 4, (7, 8, 9))  # depthwise with channel multiplier 2
    # grouped (ResNeXt, RegNet)
    add('acs', 8, 8, 3, 1, 1, 1, 4, (7, 8, 9), bias=False)
    add('acs', 8, 8, 3, 2, 1, 1, 4, (9, 11, 7), bias=False)
    add('acs', 12, 12, 3, 1, 1, 1, 3, (6, 7, 8))
    add('acs', 12, 6, 1, 1, 0, 1, 3, (6, 7, 8))
    add('acs', 4, 4, 3, 1, 1, 1, 2, (7, 6, 5))  # groups split (1, 1, 0)
    add('acs', 8, 12, 3, 2, 1, 1, 4, (10, 9, 8))
    add('acs', 10, 10, 3, 1, 1, 2, 5, (9, 10, 11))
    add('mean-acs', 8, 8, 3, 2, 1, 1, 4, (9, 11, 7))
    add('soft-acs', 12, 12, 3, 1, 1, 1, 3, (6, 7, 8))
    # explicit splits
    for split in ([0, 4, 2], [6, 0, 0], [0, 0, 6], [1, 2, 3], [3, 3, 0]):
        add('acs', 5, 6, 3, 1, 1, 1, 1, (7, 8, 9), split=split)
    add('acs', 6, 6, 3, 1, 1, 1, 3, (7, 8, 9), split=[0, 4, 2])
    add('acs', 6, 6, 3, 2, 1, 1, 6, (9, 8, 7), split=[0, 6, 0])
    add('acs', 6, 6, 3, 1, 1, 1, 6, (9, 8, 7), split=[3, 0, 3])
    add('acs', 4, 8, 3, 1, 1, 1, 2, (6, 7, 8), split=[4, 0, 4])
    add('acs', 3, 8, 4, 4, 0, 1, 1, (16, 17, 18), split=[2, 3, 3])
    # few output channels: empty parts are skipped
    for o in (1, 2, 4):
        add('acs', 3, o, 3, 1, 1, 1, 1, (6, 7, 8))
        add('acs', 5, o, 4, 2, 1, 1, 1, (9, 8, 7))
    # the first plane rule where it is not the centre: 2*n_out == n with stride 1, and reads past the end
    add('acs', 3, 6, 5, 1, 0, 1, 1, (8, 9, 10))
    add('acs', 3, 6, 3, 1, 0, 2, 1, (8, 10, 12))
    add('acs', 3, 6, 1, 2, 2, 1, 1, (5, 6, 7))
    add('acs', 3, 6, 2, 3, 1, 1, 1, (6, 6, 6))
    # 2.5D and I3D on every axis
    for axis in 'dhw':
        for k, s, p, d in ((3, 1, 1, 1), (3, 2, 1, 1), (4, 2, 1, 1), (5, 1, 2, 2), (1, 2, 0, 1)):
            add('2.5d', 4, 5, k, s, p, d, 1, (7, 8, 9), axis=axis)
            add('i3d', 4, 5, k, s, p, d, 1, (7, 8, 9), axis=axis)
        add('2.5d', 6, 6, 3, 2, 1, 1, 6, (9, 10, 11), axis=axis)
        add('i3d', 6, 6, 3, 2, 1, 1, 3, (9, 10, 11), axis=axis)
    # random
    rng = random.Random(20210101)
    modes = ['acs'] * 55 + ['2.5d'] * 11 + ['i3d'] * 11 + ['mean-acs'] * 11 + ['soft-acs'] * 12
    while len(cfgs) < 300:
        mode = rng.choice(modes)
        k, s, p, d = rng.randint(1, 7), rng.randint(1, 3), rng.randint(0, 3), rng.randint(1, 2)
        r = rng.random()
        if r < 0.5:
            g, c, o = 1, rng.randint(1, 12), rng.choice([1, 2, 4] + list(range(1, 13)))
        elif r < 0.75:
            g = c = o = rng.randint(1, 12)
        else:
            g = rng.choice([2, 3, 4])
            c, o = g * rng.randint(1, 12 // g), g * rng.randint(1, 12 // g)
        size = [rng.randint(5, 11) for _ in range(3)]
        options = {}
        if mode in ('2.5d', 'i3d'):
            options['axis'] = rng.choice('dhw')
        elif mode == 'acs' and rng.random() < 0.1:
            units = g if g > 1 else o  # a split of whole groups, or of output channels
            a = rng.randint(0, units)
            b = rng.randint(0, units - a)
            options['split'] = [n * (o // units) for n in (a, b, units - a - b)]
        cfg = dict(mode=mode, options=options, C=c, O=o, k=k, s=s, p=p, d=d, g=g, bias=rng.random() < 0.5,
                   N=2 if rng.random() < 0.1 else 1, size=size)
        # skip empty outputs, and large ones to keep the file small
        if all(out_size(n, k, s, p, d) > 0 for n in size) and np.prod(layer_output_shape(cfg)) <= 2500:
            cfgs.append(cfg)
    return cfgs


def layer_output_shape(cfg):
    k, s, p, d = cfg['k'], cfg['s'], cfg['p'], cfg['d']
    shape = [out_size(n, k, s, p, d) for n in cfg['size']]
    if cfg['mode'] == '2.5d':
        a = AXES[cfg['options']['axis']]
        shape[a] = (cfg['size'][a] - 1) // s + 1
    return [cfg['N'], cfg['O']] + shape


def make_layers():
    cases, outputs = [], collections.OrderedDict()
    counts = collections.Counter()
    for i, cfg in enumerate(layer_configs()):
        mode, options = cfg['mode'], cfg['options']
        C, O, k, s, p, d, g = (cfg[x] for x in ('C', 'O', 'k', 's', 'p', 'd', 'g'))
        assert all(out_size(n, k, s, p, d) > 0 for n in cfg['size'])
        tag = ''.join(f'-{v}' for v in options.values() if isinstance(v, str))
        name = f'{i:03d}-{mode}{tag}-c{C}o{O}k{k}s{s}p{p}d{d}g{g}'
        seed = 100 + 3 * i
        wscale = float(np.float32(1 / math.sqrt(C // g * k * k)))
        x = det_tensor([cfg['N'], C] + cfg['size'], seed)
        w2 = det_tensor([O, C // g, k, k], seed + 1, wscale)
        b = det_tensor([O], seed + 2, wscale) if cfg['bias'] else None
        conv = nn.Conv2d(C, O, k, s, p, d, g, cfg['bias'])
        with torch.no_grad():
            conv.weight.copy_(w2)
            if b is not None:
                conv.bias.copy_(b)
        m = ConvertedConv(conv, mode, options.get('axis', 'd'), options.get('split'))
        with torch.no_grad():
            y = m(x)
            assert list(y.shape) == layer_output_shape(cfg), name
            note = None
            if mode in ('acs', 'mean-acs', 'soft-acs'):
                if is_same_conv(k, s, p, d):
                    check_dense(x, w2, b, s, p, g, mode, y, name, options.get('split'))
                    counts['dense'] += 1
                axes = [a for a, *_ in acs_parts(O, C, g, options.get('split'))] if mode == 'acs' else [0, 1, 2]
                bad = [a for a in axes if reference_size_differs(cfg['size'][a], k, s, p, d)]
                runs = check_reference_style(x, w2, b, s, p, d, g, mode, y, name, options.get('split'))
                assert runs == (not bad), name
                counts['reference-style' if runs else 'reference-cannot-run'] += 1
                if bad:
                    over = [a for a in bad if first_rule_overruns(cfg['size'][a], k, s, p, d)]
                    note = ('the first plane rule applies on ' + ', '.join('DHW'[a] for a in bad) + ' where the '
                            'reference would give another size; this follows converters/SPEC-acs.md section 1.4 '
                            '(output i reads input i*s' + (', zero past the end on ' + ', '.join('DHW'[a] for a in over)
                                                           if over else '') + ')')
            elif mode == '2.5d':
                check_2_5d(x, w2, b, AXES[options['axis']], s, p, d, g, y, name)
                counts['2.5d-slices'] += 1
            else:
                check_i3d(w2, b, AXES[options['axis']], s, p, d, g, name, seed + 7)
                counts['i3d-invariant'] += 1
        case = collections.OrderedDict(
            name=name, mode=mode, options=options, in_channels=C, out_channels=O, kernel=k, stride=s, padding=p,
            dilation=d, groups=g, bias=cfg['bias'],
            input={'shape': [cfg['N'], C] + cfg['size'], 'seed': seed},
            weight={'shape': [O, C // g, k, k], 'seed': seed + 1, 'scale': wscale},
            bias_init={'shape': [O], 'seed': seed + 2, 'scale': wscale} if cfg['bias'] else None,
            output_shape=list(y.shape))
        if mode == 'acs':
            case['split'] = _full_split(O, g, options.get('split'))
        if mode == 'soft-acs':
            case['soft_w_core'] = 'zeros'
        if mode in ('acs', 'mean-acs', 'soft-acs'):
            case['reference_runs'] = note is None
        if note:
            case['note'] = note
        cases.append(case)
        outputs[name] = y
        counts[mode] += 1
    doc = collections.OrderedDict(
        det_tensor=DET_TENSOR,
        det_tensor_examples=det_tensor_examples(),
        about=('One converted conv per case: weight and bias from det_tensor (scale 1/sqrt(fan_in) rounded to '
               'float32), input from det_tensor with scale 1; the output is stored under the case name. '
               'For acs, split is the (axial, coronal, sagittal) output-channel split used, zeros included.'),
        cases=cases)
    write_json(os.path.join(OUT, 'layers', 'cases.json'), doc)
    write_bytes(os.path.join(OUT, 'layers', 'outputs.safetensors'), safetensors_bytes(outputs))
    return counts


def _full_split(o, g, split):
    if split is not None:
        return list(split)
    return list(split3(o)) if g == 1 else [n * (o // g) for n in split3(g)]


def main():
    if not os.path.isdir(os.path.join('test', 'fixtures')):
        sys.exit('run from the repository root')
    check_formulas()
    shutil.rmtree(OUT, ignore_errors=True)  # no stale files
    for i, fam in enumerate(FAMILIES):
        names, stats = make_family(i, fam)
        print(f'{fam.name:20s} {len(names):2d} cases ({", ".join(names)}); layer checks: '
              + ', '.join(f'{k} {v}' for k, v in sorted(stats.items())), flush=True)
    counts = make_layers()
    print(f'layers               {sum(counts[m] for m in ("acs", "2.5d", "i3d", "mean-acs", "soft-acs"))} cases: '
          + ', '.join(f'{k} {v}' for k, v in sorted(counts.items())))
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print(f'total size of {OUT}: {total / 1e6:.2f} MB')


if __name__ == '__main__':
    main()
