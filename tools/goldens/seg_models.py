"""Segmentation networks for the goldens, and their 3D reference (tools/goldens/acs_reference.py).

The small networks are made of torchvision's own segmentation classes (FCN + FCNHead,
DeepLabV3 + ASPP, LRASPP) on a narrow backbone, plus a small U-Net that interpolates to its
skip connections' sizes. `forwards_3d` lists forwards that work for 2 or 3 spatial dimensions:
each mirrors torchvision 0.14's, with `x.shape[-2:]` read as `x.shape[2:]` and bilinear read as
trilinear on 5D tensors (converters/SPEC-acs.md section 18).
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.segmentation import _utils, deeplabv3, fcn, lraspp

from acs_reference import convert


def interp(x, size=None, scale_factor=None, mode='bilinear', align_corners=None):
    """F.interpolate with bilinear meaning trilinear on a 5D tensor."""
    if mode == 'bilinear' and x.dim() == 5:
        mode = 'trilinear'
    return F.interpolate(x, size=size, scale_factor=scale_factor, mode=mode, align_corners=align_corners)


def simple_seg_forward(self, x):
    input_shape = x.shape[2:]
    features = self.backbone(x)
    result = OrderedDict()
    y = self.classifier(features['out'])
    result['out'] = interp(y, size=input_shape, align_corners=False)
    if self.aux_classifier is not None:
        y = self.aux_classifier(features['aux'])
        result['aux'] = interp(y, size=input_shape, align_corners=False)
    return result


def aspp_pooling_forward(self, x):
    size = x.shape[2:]
    for mod in self:
        x = mod(x)
    return interp(x, size=size, align_corners=False)


def lraspp_head_forward(self, input):
    low, high = input['low'], input['high']
    x = self.cbr(high)
    s = self.scale(high)
    x = x * s
    x = interp(x, size=low.shape[2:], align_corners=False)
    return self.low_classifier(low) + self.high_classifier(x)


def lraspp_forward(self, input):
    features = self.backbone(input)
    out = self.classifier(features)
    result = OrderedDict()
    result['out'] = interp(out, size=input.shape[2:], align_corners=False)
    return result


FORWARDS_3D = [
    (fcn.FCN, simple_seg_forward),
    (deeplabv3.DeepLabV3, simple_seg_forward),
    (deeplabv3.ASPPPooling, aspp_pooling_forward),
    (lraspp.LRASPPHead, lraspp_head_forward),
    (lraspp.LRASPP, lraspp_forward),
]


def cbr(cin, cout, stride=1, dilation=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Backbone(nn.Module):
    """Strides 2 and 4 (a padded stride-2 convolution: ceil(n/2); a max pool: floor(n/2)) and a
    dilated convolution; returns the features by the names torchvision's heads read."""

    def __init__(self, names=('aux', 'out')):
        super().__init__()
        self.names = names
        self.stem = cbr(3, 8, stride=2)
        self.pool = nn.MaxPool2d(2)
        self.body = nn.Sequential(cbr(8, 12), cbr(12, 12, dilation=2))

    def forward(self, x):
        low = self.stem(x)
        high = self.body(self.pool(low))
        return OrderedDict([(self.names[0], low), (self.names[1], high)])


def pad_to(x, ref):
    """F.pad to the size of `ref`, half before and half after, as the common U-Net code does
    (`[dx // 2, dx - dx // 2, dy // 2, dy - dy // 2]`), on every spatial axis."""
    pads = []
    for a in reversed(range(2, x.dim())):
        d = ref.shape[a] - x.shape[a]
        pads += [d // 2, d - d // 2]
    return F.pad(x, pads)


class UNet(nn.Module):
    """A small U-Net whose decoder interpolates to the size of each skip connection. One
    convolution is applied twice (one initializer, two nodes) and two biases are zero (the
    exporter keeps one copy of equal tensors). With `crop`, a branch is upsampled by a scale
    factor (nearest) and cropped back to the input's size by slicing to `x.shape`. With `pad`,
    the deepest level is upsampled by a scale factor of 2 and padded to its skip connection's
    size (sizes computed from shapes by integer arithmetic)."""

    def __init__(self, align_corners, crop=False, pad=False):
        super().__init__()
        self.ac, self.crop, self.pad = align_corners, crop, pad
        self.enc1 = cbr(3, 6)
        self.enc2 = cbr(6, 8, stride=2)
        self.enc3 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.dec2 = nn.Conv2d(16, 8, 3, padding=1)
        self.dec1 = nn.Conv2d(14, 6, 3, padding=1)
        self.head = nn.Conv2d(6, 2, 1)
        if crop:
            self.side = nn.Conv2d(8, 2, 1)
        with torch.no_grad():
            self.dec2.bias.zero_()
            self.shared.bias.zero_()

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        b = F.relu(self.shared(F.relu(self.shared(e3))))
        if self.pad:
            u2 = pad_to(interp(b, scale_factor=2.0, align_corners=self.ac), e2)
        else:
            u2 = interp(b, size=e2.shape[2:], align_corners=self.ac)
        u2 = u2 + interp(e3, size=e2.shape[2:], mode='nearest')
        d2 = F.relu(self.dec2(torch.cat([e2, u2], 1)))
        u1 = interp(d2, size=e1.shape[2:], align_corners=self.ac)
        d1 = F.relu(self.dec1(torch.cat([e1, u1], 1)))
        out = self.head(d1)
        if self.crop:
            side = interp(self.side(e2), scale_factor=2.0, mode='nearest')
            if x.dim() == 4:
                side = side[:, :, :x.shape[2], :x.shape[3]]
            else:
                side = side[:, :, :x.shape[2], :x.shape[3], :x.shape[4]]
            out = out + side
        return out


def randomise_bn(model, seed):
    """Running statistics that are not (0, 1), so that BatchNorm matters."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def build(name, seed=0):
    """A small segmentation network by name (eval mode), seeded."""
    torch.manual_seed(seed)
    nc = 3
    if name.startswith('fcn'):
        m = fcn.FCN(Backbone(), fcn.FCNHead(12, nc), fcn.FCNHead(8, nc))
    elif name == 'deeplabv3':
        head = nn.Sequential(deeplabv3.ASPP(12, [2, 3], out_channels=8), nn.Conv2d(8, 8, 3, padding=1, bias=False),
                             nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, nc, 1))
        m = deeplabv3.DeepLabV3(Backbone(), head, None)
    elif name == 'lraspp':
        m = lraspp.LRASPP(Backbone(('low', 'high')), 8, 12, nc, inter_channels=8)
    elif name == 'unet':
        m = UNet(False)
    elif name == 'unet_ac':
        m = UNet(True, crop=True)
    elif name == 'unet_pad':
        m = UNet(True, pad=True)
    else:
        raise ValueError(name)
    randomise_bn(m, seed + 1)
    return m.eval()


def to_3d(model, mode):
    """The independent 3D reference of `model` in one mode."""
    return convert(model, mode, stem='', classifier='', extra_forwards=FORWARDS_3D)


def first_output(y):
    return y['out'] if isinstance(y, dict) else y


class Flat(nn.Module):
    """Dict outputs as a tuple, for torch.onnx.export (names given by output_names)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        y = self.m(x)
        return tuple(y.values()) if isinstance(y, dict) else y


def output_names(model):
    if isinstance(model, fcn.FCN) and model.aux_classifier is not None:
        return ['out', 'aux']
    return ['out']


def export(model, path, size=(40, 56), dynamic=True, opset=13, channels=3):
    """torch.onnx.export with input 'input' (dynamic N, H, W unless static). PRESERVE keeps the
    BatchNorm nodes (EVAL would fold them into the convolutions and drop their parameters)."""
    names = output_names(model)
    dyn = {'input': {0: 'N', 2: 'H', 3: 'W'}, **{n: {0: 'N', 2: 'H', 3: 'W'} for n in names}} if dynamic else None
    torch.onnx.export(Flat(model), torch.zeros(1, channels, *size), path, opset_version=opset, input_names=['input'],
                      output_names=names, dynamic_axes=dyn, do_constant_folding=True,
                      training=torch.onnx.TrainingMode.PRESERVE)


def check_forwards_2d(model, x):
    """The patched forwards, run in 2D, equal torchvision's own to the bit."""
    ref = first_output(model(x))
    patched = first_output(convert(model, '2d', stem='', classifier='', extra_forwards=FORWARDS_3D)(x))
    assert torch.equal(ref, patched), 'patched 2D forward differs from torchvision'
