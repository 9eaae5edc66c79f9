"""An independent PyTorch reading of converters/SPEC-acs.md, used to compute the goldens.

Everything here is plain torch: one F.conv3d per view, written from converters/SPEC-acs.md
rather than from the reference `acsconv` package.

- `det_tensor`: the integer formula that makes every input and per-layer weight, so that the
  TypeScript tests regenerate them instead of reading stored tensors.
- `acs_conv`, `mean_acs_conv`, `soft_acs_conv`, `conv2_5d`, `conv_i3d`: the conv modes.
- `ConvertedConv`: a Conv2d turned into one of those modes (the module a converted model holds).
- `ConvertedConvNS`, `ConvertedConvTranspose`: the same for (kh, kw) kernels and for
  ConvTranspose2d (converters/SPEC-acs.md sections 15 and 14; `view_conv_ns`,
  `view_conv_transpose`).
- `convert`: deep-copies a 2D model, swaps its layers (ConvTranspose2d included) for 3D ones and replaces the forward
  functions that compute with 2D-only functional calls (DenseNet, MobileNetV2, ShuffleNetV2,
  ConvNeXt) by versions that work for 2 or 3 spatial dimensions.
"""
import copy
import math
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import convnext, densenet, mobilenetv2, shufflenetv2
from torchvision.ops.misc import Permute

AXES = {'d': 0, 'h': 1, 'w': 2}
MODES = ('2d', 'acs', '2.5d', 'i3d', 'mean-acs', 'soft-acs')


def det_tensor(shape, seed, scale=1.0):
    """Deterministic float32 tensor: for flat index i (C order) and integer seed s,
    u = ((i + s * 1000003) * 2654435761) mod 2**32, value = float32(u / 2**32 * 2 - 1) * float32(scale),
    the last product rounded to float32."""
    n = int(np.prod(shape, dtype=np.int64))
    i = np.arange(n, dtype=np.uint64)
    # uint64 products wrap modulo 2**64, a multiple of 2**32, so the low 32 bits are exact
    u = ((i + np.uint64(seed * 1000003)) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    v = (u.astype(np.float64) / 2.0 ** 32 * 2.0 - 1.0).astype(np.float32)
    v = v * np.float32(scale)
    return torch.from_numpy(v.reshape(tuple(shape)).copy())


def split3(n):
    """The 3-way split of converters/SPEC-acs.md section 1.2: 64 -> (22, 21, 21), 10 -> (4, 3, 3), 2 -> (1, 1, 0)."""
    q, r = divmod(n, 3)
    return (q + (r >= 1), q + (r >= 2), q)


def out_size(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def collapsed_planes(n, k, s, p, d):
    """Input index read by each output index along a view's collapsed axis; None reads zero."""
    n_out = out_size(n, k, s, p, d)
    if n_out == n or 2 * n_out == n:
        idx = [i * s for i in range(n_out)]
    else:
        idx = [i * s + k // 2 - p for i in range(n_out)]
    # the first rule can point past the end (s > 1 with heavy padding): read zero there too
    return [j if 0 <= j < n else None for j in idx]


def first_rule_overruns(n, k, s, p, d):
    """True where the first plane rule reads outside the input (the reference cannot run it)."""
    n_out = out_size(n, k, s, p, d)
    return (n_out == n or 2 * n_out == n) and (n_out - 1) * s >= n


def take_planes(x, dim, planes):
    if planes == list(range(x.shape[dim])):
        return x
    y = x.index_select(dim, torch.tensor([0 if j is None else j for j in planes]))
    missing = [i for i, j in enumerate(planes) if j is None]
    if missing:
        y = y.index_fill(dim, torch.tensor(missing), 0.0)
    return y


def view_conv(x, w2, axis, s, p, d, g):
    """One view: the 2D kernel with unit extent on `axis` (0 = D, 1 = H, 2 = W), stride, padding and
    dilation on the two other axes, and the plane rule on the collapsed one."""
    k = w2.shape[-1]
    xv = take_planes(x, 2 + axis, collapsed_planes(x.shape[2 + axis], k, s, p, d))
    stride, padding, dilation = [s] * 3, [p] * 3, [d] * 3
    stride[axis], padding[axis], dilation[axis] = 1, 0, 1
    return F.conv3d(xv, w2.unsqueeze(2 + axis), None, stride, padding, dilation, g)


def acs_parts(out_channels, in_channels, groups, split=None):
    """(axis, out_lo, out_hi, in_lo, in_hi, groups) of each non-empty view.

    groups == 1: the output channels are split 3 ways. groups > 1 (depthwise, ResNeXt, RegNet):
    the groups are split 3 ways, each block of groups keeping its own input and output channels
    (our extension of the reference, which only handles depthwise). An explicit split is in
    output channels and, for groups > 1, must consist of whole groups."""
    opg, ipg = out_channels // groups, in_channels // groups
    if split is None:
        split = split3(out_channels) if groups == 1 else tuple(n * opg for n in split3(groups))
    split = tuple(int(n) for n in split)
    if len(split) != 3 or min(split) < 0 or sum(split) != out_channels:
        raise ValueError(f'split {split} must be 3 non-negative counts summing to {out_channels}')
    if groups > 1 and any(n % opg for n in split):
        raise ValueError(f'split {split} must be whole groups of {opg} output channels')
    parts, o, c = [], 0, 0
    for axis, n in enumerate(split):
        if groups == 1:
            c_lo, c_hi, gg = 0, in_channels, 1
        else:
            gg = n // opg
            c_lo, c_hi = c, c + gg * ipg
            c = c_hi
        if n:
            parts.append((axis, o, o + n, c_lo, c_hi, gg))
        o += n
    return parts


def _add_bias(y, b):
    return y if b is None else y + b.view(1, -1, *([1] * (y.dim() - 2)))


def acs_conv(x, w2, b, s, p, d, g, split=None):
    """converters/SPEC-acs.md section 1; `w2` is the unchanged 4D weight."""
    outs = [view_conv(x[:, c0:c1], w2[o0:o1], axis, s, p, d, gg)
            for axis, o0, o1, c0, c1, gg in acs_parts(w2.shape[0], x.shape[1], g, split)]
    return _add_bias(torch.cat(outs, 1) if len(outs) > 1 else outs[0], b)


def mean_acs_conv(x, w2, b, s, p, d, g):
    fa, fc, fs = (view_conv(x, w2, axis, s, p, d, g) for axis in range(3))
    return _add_bias((fa + fc + fs) / 3, b)


def soft_acs_conv(x, w2, b, core, s, p, d, g):
    fa, fc, fs = (view_conv(x, w2, axis, s, p, d, g) for axis in range(3))
    w = torch.softmax(core, dim=1)
    col = lambda j: w[:, j].view(1, -1, 1, 1, 1)  # noqa: E731
    return _add_bias(fa * col(0) + fc * col(1) + fs * col(2), b)


def conv2_5d(x, w3, b, axis, s, p, d, g):
    padding = [p] * 3
    padding[axis] = 0
    return F.conv3d(x, w3, b, (s, s, s), padding, (d, d, d), g)


def conv_i3d(x, w3, b, s, p, d, g):
    return F.conv3d(x, w3, b, (s, s, s), (p, p, p), (d, d, d), g)


def weight_for_mode(w2, mode, axis=0):
    """The stored weight of a converted conv: 4D unchanged (ACS modes), a unit axis (2.5D), or
    k copies stacked along the repeat axis and divided by k in float32 (I3D)."""
    if mode in ('acs', 'mean-acs', 'soft-acs'):
        return w2.clone()
    if mode == '2.5d':
        return w2.unsqueeze(2 + axis).clone()
    if mode == 'i3d':
        k = w2.shape[-1]
        return torch.cat([w2.unsqueeze(2 + axis)] * k, 2 + axis) / k
    raise ValueError(f'unknown mode {mode!r}')


def square(value, what):
    """The single value of a square 2D setting (int or pair)."""
    if isinstance(value, str):
        raise ValueError(f'{what}={value!r}: string paddings are not supported')
    if isinstance(value, int):
        return value
    if len(value) != 2 or value[0] != value[1]:
        raise ValueError(f'non-square conv or pool: {what}={tuple(value)}')
    return int(value[0])


class ConvertedConv(nn.Module):
    """A Conv2d in one of the 3D modes. Parameters registered in the order weight, bias,
    soft_w_core, so a state dict lists them as the reference's modules do."""

    def __init__(self, conv, mode, axis='d', split=None):
        super().__init__()
        if conv.padding_mode != 'zeros':
            raise ValueError(f'padding_mode={conv.padding_mode!r} is not supported')
        self.k = square(conv.kernel_size, 'kernel_size')
        self.s = square(conv.stride, 'stride')
        self.p = square(conv.padding, 'padding')
        self.d = square(conv.dilation, 'dilation')
        self.g = conv.groups
        self.mode, self.axis, self.split = mode, AXES[axis], split
        self.weight = nn.Parameter(weight_for_mode(conv.weight.detach(), mode, self.axis))
        if conv.bias is None:
            self.register_parameter('bias', None)
        else:
            self.bias = nn.Parameter(conv.bias.detach().clone())
        if mode == 'soft-acs':
            self.soft_w_core = nn.Parameter(torch.zeros(conv.out_channels, 3))

    def forward(self, x):
        a = (self.s, self.p, self.d, self.g)
        if self.mode == 'acs':
            return acs_conv(x, self.weight, self.bias, *a, split=self.split)
        if self.mode == 'mean-acs':
            return mean_acs_conv(x, self.weight, self.bias, *a)
        if self.mode == 'soft-acs':
            return soft_acs_conv(x, self.weight, self.bias, self.soft_w_core, *a)
        if self.mode == '2.5d':
            return conv2_5d(x, self.weight, self.bias, self.axis, *a)
        return conv_i3d(x, self.weight, self.bias, *a)

    def extra_repr(self):
        return f'{self.mode}, weight={tuple(self.weight.shape)}, s={self.s}, p={self.p}, d={self.d}, g={self.g}'


# ------------------------------- transposed and non-square convolutions (sections 14, 15)

def pair(v):
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def axis_settings(kernel, stride, padding, dilation, axis):
    """(k, s, p, d) of the 3D axes D, H, W for the view whose collapsed axis is `axis`: D takes
    H's setting; the sagittal view lays the kernel's W extent along H, with W's setting."""
    h = (kernel[0], stride[0], padding[0], dilation[0])
    w = (kernel[1], stride[1], padding[1], dilation[1])
    return [h, w, w] if axis == 2 else [h, h, w]


def check_sizes_agree(kernel, stride, padding, dilation, output_padding=None):
    """Section 15: the H and W settings must give the same output size at every input size."""
    if output_padding is None:
        grow = [2 * padding[i] - dilation[i] * (kernel[i] - 1) for i in range(2)]
    else:
        grow = [dilation[i] * (kernel[i] - 1) - 2 * padding[i] + output_padding[i] for i in range(2)]
    if stride[0] != stride[1] or grow[0] != grow[1]:
        raise ValueError(f'H and W outputs differ: kernel {kernel} stride {stride} padding {padding}')


def view_conv_ns(x, w2, axis, stride, padding, dilation, g):
    """A view of a (possibly non-square) Conv2d: the plane rule of section 1.4 on the collapsed
    axis with that axis's setting, the kernel's two extents on the other two."""
    st = axis_settings(tuple(w2.shape[2:]), stride, padding, dilation, axis)
    k, s, p, d = st[axis]
    xv = take_planes(x, 2 + axis, collapsed_planes(x.shape[2 + axis], k, s, p, d))
    strides, pads, dils = [a[1] for a in st], [a[2] for a in st], [a[3] for a in st]
    strides[axis], pads[axis], dils[axis] = 1, 0, 1
    return F.conv3d(xv, w2.unsqueeze(2 + axis), None, strides, pads, dils, g)


def transposed_out_size(n, k, s, p, d, op):
    return (n - 1) * s - 2 * p + d * (k - 1) + 1 + op


def transposed_shift(k, p, d):
    """Section 14: input plane i of a collapsed axis lands on output plane i*s + shift."""
    return d * ((k - 1) // 2) - p


def view_conv_transpose(x, w2, axis, stride, padding, dilation, output_padding, g):
    """One view of a ConvTranspose2d, `w2` of shape (Cin, Cout/g, kh, kw): unit kernel extent on
    `axis`; the other axes as in 2D; along `axis` a stride-s scatter of each input plane to
    plane i*s + shift, zero elsewhere, so that every axis has the transposed output size."""
    st = axis_settings(tuple(w2.shape[2:]), stride, padding, dilation, axis)
    ops = [output_padding[0], output_padding[0], output_padding[1]] if axis != 2 else [output_padding[0], output_padding[1], output_padding[1]]
    k, s, p, d = st[axis]
    strides, pads, dils, outp = [a[1] for a in st], [a[2] for a in st], [a[3] for a in st], list(ops)
    pads[axis], dils[axis], outp[axis] = 0, 1, 0
    y = F.conv_transpose3d(x, w2.unsqueeze(2 + axis), None, strides, pads, outp, g, dils)
    n = x.shape[2 + axis]
    size = transposed_out_size(n, k, s, p, d, ops[axis])
    shape = list(y.shape)
    shape[2 + axis] = size
    out = y.new_zeros(shape)
    shift = transposed_shift(k, p, d)
    src = [j for j in range(y.shape[2 + axis]) if 0 <= j + shift < size]
    if src:
        out.index_copy_(2 + axis, torch.tensor([j + shift for j in src]), y.index_select(2 + axis, torch.tensor(src)))
    return out


def transposed_parts(w2, in_channels, groups, split=None):
    """(axis, out_lo, out_hi, in_lo, in_hi, groups, kernel) per part: the split of acs_parts
    over the OUTPUT channels; the kernel columns (g = 1) or rows (g > 1) of each part."""
    opg = w2.shape[1]
    out = []
    for axis, o0, o1, c0, c1, gg in acs_parts(opg * groups, in_channels, groups, split):
        kernel = w2[:, o0:o1] if groups == 1 else w2[c0:c1]
        out.append((axis, o0, o1, c0, c1, gg, kernel))
    return out


class ConvertedConvTranspose(nn.Module):
    """A ConvTranspose2d in one of the 3D modes (section 14); parameters weight, bias, soft_w_core."""

    def __init__(self, conv, mode, axis='d', split=None):
        super().__init__()
        if conv.padding_mode != 'zeros':
            raise ValueError(f'padding_mode={conv.padding_mode!r} is not supported')
        self.k, self.s, self.p = pair(conv.kernel_size), pair(conv.stride), pair(conv.padding)
        self.d, self.op, self.g = pair(conv.dilation), pair(conv.output_padding), conv.groups
        check_sizes_agree(self.k, self.s, self.p, self.d, self.op)
        self.mode, self.axis, self.split = mode, AXES[axis], split
        w = conv.weight.detach()
        self.weight = nn.Parameter(weight_for_mode_ns(w, mode, self.axis))
        if conv.bias is None:
            self.register_parameter('bias', None)
        else:
            self.bias = nn.Parameter(conv.bias.detach().clone())
        if mode == 'soft-acs':
            self.soft_w_core = nn.Parameter(torch.zeros(conv.out_channels, 3))

    def view(self, x, w2, axis, g):
        return view_conv_transpose(x, w2, axis, self.s, self.p, self.d, self.op, g)

    def forward(self, x):
        if self.mode == 'acs':
            outs = [self.view(x[:, c0:c1], kern, axis, gg)
                    for axis, _, _, c0, c1, gg, kern in transposed_parts(self.weight, x.shape[1], self.g, self.split)]
            return _add_bias(torch.cat(outs, 1) if len(outs) > 1 else outs[0], self.bias)
        if self.mode in ('mean-acs', 'soft-acs'):
            fa, fc, fs = (self.view(x, self.weight, axis, self.g) for axis in range(3))
            if self.mode == 'mean-acs':
                return _add_bias((fa + fc + fs) / 3, self.bias)
            w = torch.softmax(self.soft_w_core, dim=1)
            col = lambda j: w[:, j].view(1, -1, 1, 1, 1)  # noqa: E731
            return _add_bias(fa * col(0) + fc * col(1) + fs * col(2), self.bias)
        if self.mode == '2.5d':
            return _add_bias(self.view(x, self.weight.squeeze(2 + self.axis), self.axis, self.g), self.bias)
        st = axis_settings(self.k, self.s, self.p, self.d, self.axis)
        ops = [self.op[0], self.op[0], self.op[1]] if self.axis != 2 else [self.op[0], self.op[1], self.op[1]]
        return F.conv_transpose3d(x, self.weight, self.bias, [a[1] for a in st], [a[2] for a in st], ops, self.g, [a[3] for a in st])


def weight_for_mode_ns(w2, mode, axis=0):
    """weight_for_mode for (kh, kw) kernels: the i3d repeat count is the extent of the repeat
    axis's setting, kw along W and kh along D or H."""
    if mode != 'i3d':
        return weight_for_mode(w2, mode, axis)
    t = w2.shape[3] if axis == 2 else w2.shape[2]
    return torch.cat([w2.unsqueeze(2 + axis)] * t, 2 + axis) / t


class ConvertedConvNS(nn.Module):
    """A (possibly non-square) Conv2d in one of the 3D modes (section 15)."""

    def __init__(self, conv, mode, axis='d', split=None):
        super().__init__()
        if conv.padding_mode != 'zeros' or isinstance(conv.padding, str):
            raise ValueError('only zero padding given as numbers is supported')
        self.k, self.s, self.p = pair(conv.kernel_size), pair(conv.stride), pair(conv.padding)
        self.d, self.g = pair(conv.dilation), conv.groups
        check_sizes_agree(self.k, self.s, self.p, self.d)
        self.mode, self.axis, self.split = mode, AXES[axis], split
        self.weight = nn.Parameter(weight_for_mode_ns(conv.weight.detach(), mode, self.axis))
        if conv.bias is None:
            self.register_parameter('bias', None)
        else:
            self.bias = nn.Parameter(conv.bias.detach().clone())
        if mode == 'soft-acs':
            self.soft_w_core = nn.Parameter(torch.zeros(conv.out_channels, 3))

    def view(self, x, w2, axis, g):
        return view_conv_ns(x, w2, axis, self.s, self.p, self.d, g)

    def forward(self, x):
        if self.mode == 'acs':
            outs = [self.view(x[:, c0:c1], self.weight[o0:o1], axis, gg)
                    for axis, o0, o1, c0, c1, gg in acs_parts(self.weight.shape[0], x.shape[1], self.g, self.split)]
            return _add_bias(torch.cat(outs, 1) if len(outs) > 1 else outs[0], self.bias)
        if self.mode in ('mean-acs', 'soft-acs'):
            fa, fc, fs = (self.view(x, self.weight, axis, self.g) for axis in range(3))
            if self.mode == 'mean-acs':
                return _add_bias((fa + fc + fs) / 3, self.bias)
            w = torch.softmax(self.soft_w_core, dim=1)
            col = lambda j: w[:, j].view(1, -1, 1, 1, 1)  # noqa: E731
            return _add_bias(fa * col(0) + fc * col(1) + fs * col(2), self.bias)
        st = axis_settings(self.k, self.s, self.p, self.d, self.axis)
        strides, pads, dils = [a[1] for a in st], [a[2] for a in st], [a[3] for a in st]
        if self.mode == '2.5d':
            pads[self.axis] = 0
        return F.conv3d(x, self.weight, self.bias, strides, pads, dils, self.g)


def adapt_input_conv(in_chans, weight):
    """converters/SPEC-acs.md section 6 (timm's adapt_input_conv), in float32."""
    w = weight.detach().float()
    if in_chans == 1:
        w = w.sum(dim=1, keepdim=True)
    elif in_chans != 3:
        w = w.repeat(1, math.ceil(in_chans / 3), 1, 1)[:, :in_chans] * (3 / float(in_chans))
    return w.to(weight.dtype).contiguous()


# ---------------------------------------------------------------- layers other than convs

def _batchnorm3d(bn):
    new = nn.BatchNorm3d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    new.load_state_dict(bn.state_dict())
    return new


def _pool3d(m):
    if isinstance(m, nn.MaxPool2d):
        if m.return_indices:
            raise ValueError('MaxPool2d(return_indices=True) is not supported')
        return nn.MaxPool3d(square(m.kernel_size, 'kernel_size'), square(m.stride, 'stride'),
                            square(m.padding, 'padding'), square(m.dilation, 'dilation'), ceil_mode=m.ceil_mode)
    if isinstance(m, nn.AvgPool2d):
        return nn.AvgPool3d(square(m.kernel_size, 'kernel_size'), square(m.stride, 'stride'),
                            square(m.padding, 'padding'), m.ceil_mode, m.count_include_pad, m.divisor_override)
    o = square(m.output_size, 'output_size')
    return (nn.AdaptiveAvgPool3d if isinstance(m, nn.AdaptiveAvgPool2d) else nn.AdaptiveMaxPool3d)((o, o, o))


def _upsample3d(m):
    mode = {'bilinear': 'trilinear', 'nearest': 'nearest'}.get(m.mode)
    if mode is None:
        raise ValueError(f'Upsample(mode={m.mode!r}) is not supported')
    size = None if m.size is None else (square(m.size, 'size'),) * 3
    scale = m.scale_factor
    if isinstance(scale, (tuple, list)):
        if scale[0] != scale[1]:
            raise ValueError(f'non-square Upsample scale_factor={scale}')
        scale = scale[0]
    scale = None if scale is None else (float(scale),) * 3
    return nn.Upsample(size, scale, mode, m.align_corners if mode == 'trilinear' else None)


def convert_leaf(m, mode, axis, split):
    if isinstance(m, nn.Conv2d):
        return ConvertedConv(m, mode, axis, split)
    if isinstance(m, nn.BatchNorm2d):
        return _batchnorm3d(m)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return _pool3d(m)
    if isinstance(m, nn.Dropout2d):
        return nn.Dropout3d(m.p, m.inplace)
    if isinstance(m, nn.Upsample):
        return _upsample3d(m)
    if isinstance(m, nn.ConvTranspose2d):
        return ConvertedConvTranspose(m, mode, axis, split)
    if isinstance(m, (nn.LPPool2d, nn.FractionalMaxPool2d, nn.PixelShuffle)):
        raise ValueError(f'{type(m).__name__} has no 3D conversion here')
    return None


TWO_D_ONLY = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
              nn.AdaptiveMaxPool2d, nn.Dropout2d)


def swap_layers(module, mode, axis, split=None):
    for name, child in list(module.named_children()):
        new = convert_leaf(child, mode, axis, split)
        if new is None:
            swap_layers(child, mode, axis, split)
        else:
            setattr(module, name, new)


# ------------------------------------- forward functions for 2 or 3 spatial dimensions
# Each one mirrors torchvision 0.14's forward, with the 2D-only functional calls generalised;
# with 4D inputs they must agree with torchvision to the bit (checked by make_goldens.py).

def global_avg_pool(x):
    return (F.adaptive_avg_pool2d if x.dim() == 4 else F.adaptive_avg_pool3d)(x, (1,) * (x.dim() - 2))


def channels_last(x):
    return x.permute(0, *range(2, x.dim()), 1)


def channels_first(x):
    return x.permute(0, x.dim() - 1, *range(1, x.dim() - 1))


def densenet_forward(self, x):
    features = self.features(x)
    out = F.relu(features, inplace=True)
    out = global_avg_pool(out)
    out = torch.flatten(out, 1)
    return self.classifier(out)


def mobilenet_v2_forward(self, x):
    x = self.features(x)
    x = global_avg_pool(x)
    x = torch.flatten(x, 1)
    return self.classifier(x)


def channel_shuffle(x, groups):
    n, c, *spatial = x.size()
    x = x.view(n, groups, c // groups, *spatial)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(n, -1, *spatial)


def shufflenet_unit_forward(self, x):
    if self.stride == 1:
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1, self.branch2(x2)), dim=1)
    else:
        out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
    return channel_shuffle(out, 2)


def shufflenet_forward(self, x):
    x = self.conv1(x)
    x = self.maxpool(x)
    x = self.stage2(x)
    x = self.stage3(x)
    x = self.stage4(x)
    x = self.conv5(x)
    x = x.mean(list(range(2, x.dim())))
    return self.fc(x)


def cnblock_forward(self, input):
    # layer_scale (C, 1, 1) broadcasts against (N, C, H, W); one more unit axis for 3D
    scale = self.layer_scale.reshape(-1, *([1] * (input.dim() - 2)))
    result = scale * self.block(input)
    result = self.stochastic_depth(result)
    result += input
    return result


def layernorm2d_forward(self, x):
    x = channels_last(x)
    x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
    return channels_first(x)


def permute_forward(self, x):
    if list(self.dims) == [0, 2, 3, 1]:
        return channels_last(x)
    if list(self.dims) == [0, 3, 1, 2]:
        return channels_first(x)
    raise ValueError(f'Permute({self.dims}) has no 3D meaning here')


FORWARDS = [
    (densenet.DenseNet, densenet_forward),
    (mobilenetv2.MobileNetV2, mobilenet_v2_forward),
    (shufflenetv2.ShuffleNetV2, shufflenet_forward),
    (shufflenetv2.InvertedResidual, shufflenet_unit_forward),
    (convnext.CNBlock, cnblock_forward),
    (convnext.LayerNorm2d, layernorm2d_forward),
    (Permute, permute_forward),
]


def patch_forwards(model, extra=()):
    for m in model.modules():
        for cls, fn in list(FORWARDS) + list(extra):
            if type(m) is cls:
                m.forward = types.MethodType(fn, m)


def set_submodule(model, name, new):
    parent, _, leaf = name.rpartition('.')
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def convert(model, mode, *, stem, classifier, axis='d', split=None, in_channels=3, head='keep',
            features_head=None, extra_forwards=()):
    """A converted deep copy of `model` (eval mode).

    stem: name of the first conv (input-channel adaptation); classifier: name of the final
    Linear, replaced by Identity for head='features'; features_head: a function that makes the
    features head instead, for models whose head only fits 2D (VGG), which then refuse 'keep'
    in 3D; extra_forwards: (class, forward) pairs for models of one's own."""
    m = copy.deepcopy(model).eval()
    if in_channels != 3:
        conv = m.get_submodule(stem)
        new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                        conv.dilation, conv.groups, conv.bias is not None)
        with torch.no_grad():
            new.weight.copy_(adapt_input_conv(in_channels, conv.weight))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
        set_submodule(m, stem, new)
    if head == 'features':
        if features_head is not None:
            features_head(m)
        else:
            if not isinstance(m.get_submodule(classifier), nn.Linear):
                raise ValueError(f'{classifier} is not a Linear')
            set_submodule(m, classifier, nn.Identity())
    elif head != 'keep':
        raise ValueError(f'head={head!r}')
    elif mode != '2d' and features_head is not None:
        raise ValueError('this head only fits 2D feature maps; use head="features"')
    patch_forwards(m, extra_forwards)
    if mode != '2d':
        swap_layers(m, mode, axis, split)
        left = [n for n, x in m.named_modules() if isinstance(x, TWO_D_ONLY)]
        if left:
            raise ValueError(f'2D layers left after conversion: {left}')
    return m.eval()
