/**
 * The Python source of the layers a generated `model.py` defines before its `Model`: the ACS
 * split and plane rules of converters/SPEC-acs.md (sections 1.2, 1.4, 1.7, 8, 12 and 15) as
 * plain functions, one convolution module per ACS mode (sections 1 and 5), and their transposed
 * siblings (section 14). 2.5D and i3d convolutions are `nn.Conv3d` with the converted kernels;
 * a transposed 2.5D one places its unit axis's planes (`PlacedConvTranspose3d`).
 */
import type { Mode } from '../convert.js';

const RULES = `
def split3(n):
    """The default 3-way split of n output channels (or groups): (q + [r >= 1], q + [r >= 2], q)
    with q, r = divmod(n, 3), axial first. 64 -> (22, 21, 21); 10 -> (4, 3, 3); 2 -> (1, 1, 0)."""
    q, r = divmod(n, 3)
    return (q + (r >= 1), q + (r >= 2), q)


def acs_parts(out_channels, in_channels, groups, split=None):
    """(axis, out_lo, out_hi, in_lo, in_hi, groups) of each non-empty view, axis 0 (axial) first.

    groups == 1: the output channels are split and every part reads all input channels.
    groups > 1 (depthwise, ResNeXt, ...): the groups are split; each part takes whole groups,
    with their output and input channels, and is a grouped convolution of its own. An explicit
    split is in output channels (whole groups when groups > 1)."""
    per_out, per_in = out_channels // groups, in_channels // groups
    if split is None:
        split = split3(out_channels) if groups == 1 else tuple(n * per_out for n in split3(groups))
    parts, o = [], 0
    for axis, n in enumerate(split):
        g0, gn = (0, 1) if groups == 1 else (o // per_out, n // per_out)
        c0, c1 = (0, in_channels) if groups == 1 else (g0 * per_in, (g0 + gn) * per_in)
        if n:
            parts.append((axis, o, o + n, c0, c1, gn))
        o += n
    return parts


def output_size(n, k, s, p, d):
    """Size of a convolution's output along one axis."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def pair(v):
    """A 2D setting as (H, W)."""
    return (v, v) if isinstance(v, int) else tuple(v)


def axis_settings(kernel, stride, padding, dilation, axis):
    """(k, s, p, d) of the 3D axes D, H, W for the view whose collapsed axis is \`axis\`: D takes
    H's setting; the sagittal view lays the kernel's W extent along H, with W's setting."""
    h = (kernel[0], stride[0], padding[0], dilation[0])
    w = (kernel[1], stride[1], padding[1], dilation[1])
    return [h, w, w] if axis == 2 else [h, h, w]


def collapsed_planes(n, k, s, p, d):
    """The input plane that each output index reads along a view's collapsed axis.

    A view has no kernel extent on its collapsed axis, so output i reads one plane of the n
    input planes:
    - first rule, when the output keeps the input's size or half of it (n_out == n or
      2 * n_out == n): plane i * s;
    - second rule, otherwise: plane i * s + k // 2 - p.
    A plane outside [0, n) reads zeros (None here). "Same" convolutions (k // 2 == p and
    d * (k - 1) == 2 * p) read plane i * s under both rules; the rules differ for e.g. a 4x4
    kernel with stride 4 (plane 4i + 2) or a 2x2 kernel with stride 2 on an odd size (2i + 1)."""
    n_out = output_size(n, k, s, p, d)
    offset = 0 if n_out == n or 2 * n_out == n else k // 2 - p
    return [j if 0 <= j < n else None for j in (i * s + offset for i in range(n_out))]


def view_conv3d(x, weight, bias, axis, stride, padding, dilation, groups):
    """One view: the 2D kernel (O, C/g, kh, kw) convolves the two axes other than \`axis\`
    (0 = D, 1 = H, 2 = W) with their stride, padding and dilation (axis_settings); the collapsed
    axis reads one plane per output index (collapsed_planes, with that axis's setting)."""
    dim = 2 + axis
    st = axis_settings(tuple(weight.shape[-2:]), pair(stride), pair(padding), pair(dilation), axis)
    k, s, p, d = st[axis]
    planes = collapsed_planes(x.shape[dim], k, s, p, d)
    strides, pads, dilations = [a[1] for a in st], [a[2] for a in st], [a[3] for a in st]
    pads[axis], dilations[axis] = 0, 1
    kernel = weight.unsqueeze(dim)
    if planes == list(range(0, len(planes) * s, s)):
        # Planes 0, s, 2s, ...: a stride on the collapsed axis reads them; keep n_out of them.
        y = F.conv3d(x, kernel, bias, strides, pads, dilations, groups)
        return y.narrow(dim, 0, len(planes))
    strides[axis] = 1
    x = x.index_select(dim, torch.tensor([0 if j is None else j for j in planes], device=x.device))
    outside = [i for i, j in enumerate(planes) if j is None]
    if outside:
        x = x.index_fill(dim, torch.tensor(outside, device=x.device), 0.0)
    return F.conv3d(x, kernel, bias, strides, pads, dilations, groups)


def place_planes(y, dim, n, k, s, p, d, output_padding):
    """The collapsed axis of a transposed view: \`y\` holds input plane i at i * s (a stride-s
    unit kernel); plane i goes to i * s + d * ((k - 1) // 2) - p, and the axis gets the
    transposed size (n - 1) * s - 2p + d(k - 1) + 1 + output_padding; zero planes fill the rest."""
    shift = d * ((k - 1) // 2) - p
    size = (n - 1) * s - 2 * p + d * (k - 1) + 1 + output_padding
    pads = [0] * (2 * (y.dim() - 2))
    at = 2 * (y.dim() - 1 - dim)
    pads[at], pads[at + 1] = shift, size - shift - y.shape[dim]
    return F.pad(y, pads)


def view_conv_transpose3d(x, weight, axis, stride, padding, output_padding, dilation, groups):
    """One view of a transposed convolution, kernel (C, O/g, kh, kw): the two other axes as in 2D,
    the collapsed axis by place_planes. No bias (the caller adds it to every plane)."""
    dim = 2 + axis
    st = axis_settings(tuple(weight.shape[-2:]), pair(stride), pair(padding), pair(dilation), axis)
    oh, ow = pair(output_padding)
    ops = [oh, ow, ow] if axis == 2 else [oh, oh, ow]
    k, s, p, d = st[axis]
    pads, dilations, outp = [a[2] for a in st], [a[3] for a in st], list(ops)
    pads[axis], dilations[axis], outp[axis] = 0, 1, 0
    y = F.conv_transpose3d(x, weight.unsqueeze(dim), None, [a[1] for a in st], pads, outp, groups, dilations)
    return place_planes(y, dim, x.shape[dim], k, s, p, d, ops[axis])


class _Conv2dKernel(nn.Module):
    """A 2D convolution's parameters, (O, C/g, kh, kw) weight and (O) bias, initialised as
    nn.Conv2d initialises them; the subclasses apply them to volumes. Settings are a number or
    an (H, W) pair."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *pair(kernel_size)))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)

    def is_pointwise(self):
        """A 1x1 kernel without padding reads one voxel in every view: every mode is the same
        1x1x1 convolution."""
        return pair(self.kernel_size) == (1, 1) and pair(self.padding) == (0, 0) and len(set(pair(self.stride))) == 1

    def pointwise(self, x, bias):
        return F.conv3d(x, self.weight.unsqueeze(-1), bias, pair(self.stride)[0], 0, 1, self.groups)

    def views(self, x):
        """The three views (axial, coronal, sagittal), each with the whole kernel."""
        return [view_conv3d(x, self.weight, None, axis, self.stride, self.padding, self.dilation, self.groups) for axis in range(3)]

    def extra_repr(self):
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, '
                f'padding={self.padding}, dilation={self.dilation}, groups={self.groups}, bias={self.bias is not None}')
`;

const ACS = `

class ACSConv3d(_Conv2dKernel):
    """A 2D convolution applied to volumes as ACS: the output channels (the groups, for grouped
    convolutions) are cut into axial, coronal and sagittal parts (acs_parts); each part
    convolves its own view with its slice of the 2D kernel; the parts are concatenated."""

    def __init__(self, *args, split=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.parts = acs_parts(self.out_channels, self.in_channels, self.groups, split)

    def forward(self, x):
        if self.is_pointwise():
            return self.pointwise(x, self.bias)
        outs = []
        for axis, o0, o1, c0, c1, groups in self.parts:
            bias = None if self.bias is None else self.bias[o0:o1]
            outs.append(view_conv3d(x[:, c0:c1], self.weight[o0:o1], bias, axis, self.stride, self.padding, self.dilation, groups))
        return torch.cat(outs, 1) if len(outs) > 1 else outs[0]
`;

const MEAN = `

class MeanACSConv3d(_Conv2dKernel):
    """Mean-ACS: every view uses the whole kernel; the three outputs are averaged, then the bias
    is added."""

    def forward(self, x):
        if self.is_pointwise():
            return self.pointwise(x, self.bias)
        fa, fc, fs = self.views(x)
        y = (fa + fc + fs) / 3
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1, 1)
`;

const SOFT = `

class SoftACSConv3d(_Conv2dKernel):
    """Soft-ACS: every view uses the whole kernel; output channel o mixes them with the weights
    softmax(soft_w_core[o]) (zeros: 1/3 each, where it starts equal to mean-ACS), then the bias
    is added."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.soft_w_core = nn.Parameter(torch.zeros(self.out_channels, 3))

    def forward(self, x):
        w = torch.softmax(self.soft_w_core, dim=1)
        if self.is_pointwise():
            # The three views are one and the weights sum to one; the sum keeps soft_w_core in
            # the autograd graph, where its gradient is zero.
            y = self.pointwise(x, None) * w.sum(1).view(1, -1, 1, 1, 1)
        else:
            fa, fc, fs = self.views(x)
            y = fa * w[:, 0].view(1, -1, 1, 1, 1) + fc * w[:, 1].view(1, -1, 1, 1, 1) + fs * w[:, 2].view(1, -1, 1, 1, 1)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1, 1)
`;

const TRANSPOSED = `

class _ConvTranspose2dKernel(nn.Module):
    """A 2D transposed convolution's parameters, (C, O/g, kh, kw) weight and (O) bias, initialised
    as nn.ConvTranspose2d initialises them; the subclasses apply them to volumes (views of the
    OUTPUT channels, converters/SPEC-acs.md section 14)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1, bias=True, dilation=1):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.dilation, self.groups = dilation, groups
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels // groups, *pair(kernel_size)))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight[0, 0].numel()
            nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def view(self, x, weight, axis, groups):
        return view_conv_transpose3d(x, weight, axis, self.stride, self.padding, self.output_padding, self.dilation, groups)

    def views(self, x):
        return [self.view(x, self.weight, axis, self.groups) for axis in range(3)]

    def add_bias(self, y):
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1, 1)

    def extra_repr(self):
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, '
                f'padding={self.padding}, output_padding={self.output_padding}, dilation={self.dilation}, '
                f'groups={self.groups}, bias={self.bias is not None}')


class ACSConvTranspose3d(_ConvTranspose2dKernel):
    """A 2D transposed convolution applied to volumes as ACS: the output channels (the groups,
    for grouped ones) are cut into axial, coronal and sagittal parts (acs_parts); each part's
    kernel (its columns of the weight, or its rows of whole groups) scatters into its own view;
    along the collapsed axis the planes land as place_planes says."""

    def __init__(self, *args, split=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.parts = acs_parts(self.out_channels, self.in_channels, self.groups, split)

    def forward(self, x):
        outs = []
        for axis, o0, o1, c0, c1, groups in self.parts:
            kernel = self.weight[:, o0:o1] if self.groups == 1 else self.weight[c0:c1]
            outs.append(self.view(x[:, c0:c1], kernel, axis, groups))
        return self.add_bias(torch.cat(outs, 1) if len(outs) > 1 else outs[0])
`;

const TRANSPOSED_MEAN = `

class MeanACSConvTranspose3d(_ConvTranspose2dKernel):
    """Mean-ACS of a transposed convolution: the three views with the whole kernel, averaged."""

    def forward(self, x):
        fa, fc, fs = self.views(x)
        return self.add_bias((fa + fc + fs) / 3)
`;

const TRANSPOSED_SOFT = `

class SoftACSConvTranspose3d(_ConvTranspose2dKernel):
    """Soft-ACS of a transposed convolution: output channel o mixes the three views with the
    weights softmax(soft_w_core[o])."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.soft_w_core = nn.Parameter(torch.zeros(self.out_channels, 3))

    def forward(self, x):
        w = torch.softmax(self.soft_w_core, dim=1)
        fa, fc, fs = self.views(x)
        return self.add_bias(fa * w[:, 0].view(1, -1, 1, 1, 1) + fc * w[:, 1].view(1, -1, 1, 1, 1) + fs * w[:, 2].view(1, -1, 1, 1, 1))
`;

const PLACED = `

class PlacedConvTranspose3d(nn.ConvTranspose3d):
    """2.5D of a transposed convolution: a kernel with a unit extent on \`axis\`, whose planes
    land along that axis as place_planes says, with the 2D setting \`placed\` = (k, s, p, d,
    output_padding) of that axis."""

    def __init__(self, *args, axis=0, placed=(1, 1, 0, 1, 0), **kwargs):
        super().__init__(*args, **kwargs)
        self.axis, self.placed = axis, placed

    def forward(self, x):
        dim = 2 + self.axis
        y = F.conv_transpose3d(x, self.weight, None, self.stride, self.padding, self.output_padding, self.groups, self.dilation)
        k, s, p, d, op = self.placed
        y = place_planes(y, dim, x.shape[dim], k, s, p, d, op)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1, 1)
`;

/** The Python class that computes a converted transposed convolution in `mode`. */
export const CONV_TRANSPOSE_CLASS: Record<Mode, string> = {
  acs: 'ACSConvTranspose3d',
  'mean-acs': 'MeanACSConvTranspose3d',
  'soft-acs': 'SoftACSConvTranspose3d',
  '2.5d': 'PlacedConvTranspose3d',
  i3d: 'nn.ConvTranspose3d',
};

/** The Python class that computes a converted convolution in `mode` (undefined: `nn.Conv3d`). */
export const CONV_CLASS: Record<Mode, string | undefined> = {
  acs: 'ACSConv3d',
  'mean-acs': 'MeanACSConv3d',
  'soft-acs': 'SoftACSConv3d',
  '2.5d': undefined,
  i3d: undefined,
};

/**
 * The layer definitions a model.py of `mode` needs (empty for 2.5D and i3d without transposed
 * convolutions); `transposed`: the network has transposed convolutions.
 */
export function pythonLayers(mode: Mode, transposed = false): string {
  const own = { acs: ACS, 'mean-acs': MEAN, 'soft-acs': SOFT, '2.5d': '', i3d: '' }[mode];
  const t = transposed ? { acs: TRANSPOSED, 'mean-acs': TRANSPOSED + TRANSPOSED_MEAN, 'soft-acs': TRANSPOSED + TRANSPOSED_SOFT, '2.5d': PLACED, i3d: '' }[mode] : '';
  return own || t ? `${RULES.trimStart()}${own}${t}` : '';
}
