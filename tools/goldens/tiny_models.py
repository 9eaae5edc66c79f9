"""Tiny networks of every supported family: the real torchvision classes and key names with
small widths, so the checkpoints stay small and the 3D runs stay fast.

Each family is described by a `Family`: how to build it, the names of its stem conv and of its
final Linear, and what else the goldens need. `build_family` seeds torch, builds the model and
then `randomise` gives every layer non-trivial parameters (no near-identity layer).
"""
import collections
import contextlib
import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import convnext, densenet, efficientnet, mobilenetv2, mobilenetv3, regnet, resnet, \
    shufflenetv2, vgg

from acs_reference import channel_shuffle, channels_first, channels_last, global_avg_pool

NUM_CLASSES = 10


# ------------------------------------------------------------- narrowing torchvision builders

class _Factory(type):
    """A stand-in for an nn class inside a torchvision module: calling it builds the real class
    with changed arguments, and isinstance checks (torchvision's init loops) still see the real class."""

    def __call__(cls, *args, **kwargs):
        return cls.build(*args, **kwargs)

    def __instancecheck__(cls, obj):
        return isinstance(obj, cls.real)


class _NN:
    def __getattr__(self, name):
        return getattr(nn, name)


@contextlib.contextmanager
def narrowed(module, width, group_div=1, linear=None):
    """Inside the block, `module`'s nn.Conv2d / BatchNorm2d / Linear divide every channel count
    c > 3 by `width` and conv groups g > 1 by `group_div`; Linear keeps its out_features unless
    `linear` (a function of (in, out)) says otherwise."""
    c = lambda n: n // width if n > 3 else n  # noqa: E731

    def conv(i, o, *a, groups_=1, **k):
        return nn.Conv2d(c(i), c(o), *a, groups=groups_ // group_div if groups_ > 1 else 1, **k)

    ns = _NN()
    ns.Conv2d = _Factory('Conv2d', (), {'real': nn.Conv2d, 'build': staticmethod(
        lambda i, o, *a, groups=1, **k: conv(i, o, *a, groups_=groups, **k))})
    ns.BatchNorm2d = _Factory('BatchNorm2d', (), {'real': nn.BatchNorm2d, 'build': staticmethod(
        lambda n, *a, **k: nn.BatchNorm2d(c(n), *a, **k))})
    ns.Linear = _Factory('Linear', (), {'real': nn.Linear, 'build': staticmethod(
        linear or (lambda i, o, *a, **k: nn.Linear(c(i), o, *a, **k)))})
    saved = module.nn
    module.nn = ns
    try:
        yield
    finally:
        module.nn = saved


# ------------------------------------------------------------------------- the builders

def build_resnet(block, layers, width, group_div=1, **kwargs):
    with narrowed(resnet, width, group_div):
        return resnet.ResNet(block, layers, num_classes=NUM_CLASSES, **kwargs)


def build_densenet():
    return densenet.DenseNet(growth_rate=4, block_config=(2, 2, 2, 2), num_init_features=8, bn_size=2,
                             num_classes=NUM_CLASSES)


VGG11_CFG = [4, 'M', 8, 'M', 16, 16, 'M', 32, 32, 'M', 32, 32, 'M']
VGG16_CFG = [4, 4, 'M', 8, 8, 'M', 16, 16, 16, 'M', 32, 32, 32, 'M', 32, 32, 32, 'M']


def build_vgg(cfg, batch_norm):
    # torchvision's classifier: Linear(512*7*7, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU, Dropout,
    # Linear(4096, classes); here Linear(32*7*7, 32), ..., Linear(32, 32), ..., Linear(32, 10)
    sizes = {512 * 7 * 7: cfg[-2] * 7 * 7, 4096: 32}
    small = lambda i, o, *a, **k: nn.Linear(sizes.get(i, i), sizes.get(o, o), *a, **k)  # noqa: E731
    with narrowed(vgg, 1, linear=small):
        return vgg.VGG(vgg.make_layers(cfg, batch_norm=batch_norm), num_classes=NUM_CLASSES)


CONVNEXT_SETTING = [convnext.CNBlockConfig(8, 16, 1), convnext.CNBlockConfig(16, 32, 1),
                    convnext.CNBlockConfig(32, 64, 2), convnext.CNBlockConfig(64, None, 1)]


def build_convnext():
    return convnext.ConvNeXt(CONVNEXT_SETTING, num_classes=NUM_CLASSES)


def build_efficientnet():
    setting, last = efficientnet._efficientnet_conf('efficientnet_b0', width_mult=0.125, depth_mult=0.5)
    return efficientnet.EfficientNet(setting, 0.2, last_channel=last, num_classes=NUM_CLASSES)


def build_mobilenet_v3(arch):
    setting, last = mobilenetv3._mobilenet_v3_conf(arch, width_mult=0.125)
    return mobilenetv3.MobileNetV3(setting, last, num_classes=NUM_CLASSES)


def build_regnet():
    params = regnet.BlockParams.from_init_params(depth=4, w_0=8, w_a=4.0, w_m=2.0, group_width=4)
    return regnet.RegNet(params, num_classes=NUM_CLASSES)


def build_shufflenet():
    return shufflenetv2.ShuffleNetV2(stages_repeats=[2, 2, 2], stages_out_channels=[8, 16, 32, 64, 128],
                                     num_classes=NUM_CLASSES)


class FunctionalCNN(nn.Module):
    """A small CNN of our own that computes in `forward` with functional calls, the kind of model
    a module swapper cannot convert. `forward` is plain 2D code (what is exported to ONNX);
    `forward_nd` is the same computation for 2 or 3 spatial dimensions."""

    def __init__(self, num_classes=NUM_CLASSES):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 5, padding=2, groups=8)
        self.dilated = nn.Conv2d(8, 12, 3, padding=2, dilation=2)
        self.norm = nn.LayerNorm(12)
        self.mix = nn.Linear(12, 12)
        self.se_reduce = nn.Conv2d(12, 4, 1)
        self.se_expand = nn.Conv2d(4, 12, 1)
        self.fuse = nn.Conv2d(12, 12, 3, padding=1, groups=3)
        self.branch_a = nn.Conv2d(4, 6, 1)
        self.branch_b = nn.Conv2d(8, 6, 3, padding=1)
        self.post = nn.Conv2d(12, 16, 4, stride=2)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        x = F.gelu(self.dilated(self.dw(x)))
        x = x.permute(0, 2, 3, 1)
        x = self.mix(self.norm(x))
        x = x.permute(0, 3, 1, 2)
        s = x.mean((2, 3), keepdim=True)
        x = x * torch.sigmoid(self.se_expand(F.relu(self.se_reduce(s))))
        up = (F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)
              + F.interpolate(x, scale_factor=2, mode='nearest'))
        x = F.avg_pool2d(self.fuse(up), 3, 2, padding=1, count_include_pad=False)
        a, b = torch.split(x, [4, 8], dim=1)
        x = torch.cat([self.branch_a(a), self.branch_b(b)], 1)
        x1, x2 = torch.chunk(x, 2, dim=1)
        x = torch.cat([x2, F.relu(x1)], 1)
        n, c, h, w = x.size()
        x = x.view(n, 3, c // 3, h, w)
        x = torch.transpose(x, 1, 2).contiguous()
        x = x.view(n, -1, h, w)
        x = F.pad(x, (1, 1, 1, 1))
        x = F.relu(self.post(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.head(x)

    def forward_nd(self, x):
        nd = x.dim() - 2
        max_pool = F.max_pool2d if nd == 2 else F.max_pool3d
        avg_pool = F.avg_pool2d if nd == 2 else F.avg_pool3d
        x = F.relu(self.bn(self.stem(x)))
        x = max_pool(x, 3, 2, ceil_mode=True)
        x = F.gelu(self.dilated(self.dw(x)))
        x = channels_first(self.mix(self.norm(channels_last(x))))
        s = x.mean(tuple(range(2, x.dim())), keepdim=True)
        x = x * torch.sigmoid(self.se_expand(F.relu(self.se_reduce(s))))
        up = (F.interpolate(x, scale_factor=2, mode='bilinear' if nd == 2 else 'trilinear', align_corners=False)
              + F.interpolate(x, scale_factor=2, mode='nearest'))
        x = avg_pool(self.fuse(up), 3, 2, padding=1, count_include_pad=False)
        a, b = torch.split(x, [4, 8], dim=1)
        x = torch.cat([self.branch_a(a), self.branch_b(b)], 1)
        x1, x2 = torch.chunk(x, 2, dim=1)
        x = torch.cat([x2, F.relu(x1)], 1)
        x = channel_shuffle(x, 3)
        x = F.pad(x, (1, 1) * nd)
        x = F.relu(self.post(x))
        x = torch.flatten(global_avg_pool(x), 1)
        return self.head(x)


# ------------------------------------------------------------------------- randomising

def randomise(model, seed):
    """Weights with unit-scale activations and no near-identity layer: He-normal convs, Linear
    with variance 1/in, small random biases, random BatchNorm and LayerNorm affine parameters,
    ConvNeXt layer scales in [0.3, 1) instead of 1e-6, and BatchNorm running statistics measured
    on one random batch (layer by layer, the layers before in eval mode), then perturbed at random:
    variance floored at 0.1 and scaled by 0.5..1.5, mean shifted by up to 0.3 standard deviations.
    So every BatchNorm normalises roughly but not exactly."""
    g = torch.Generator().manual_seed(seed)
    uniform = lambda t, lo, hi: t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)  # noqa: E731
    normal = lambda t, std: t.copy_(torch.randn(t.shape, generator=g) * std)  # noqa: E731
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                normal(m.weight, math.sqrt(2.0 / m.weight[0].numel()))
            elif isinstance(m, nn.Linear):
                normal(m.weight, math.sqrt(1.0 / m.in_features))
            elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                uniform(m.weight, 0.5, 1.5)
                uniform(m.bias, -0.3, 0.3)
            elif isinstance(m, convnext.CNBlock):
                uniform(m.layer_scale, 0.3, 1.0)
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                uniform(m.bias, -0.1, 0.1)
        model.eval()
        batch = torch.randn(8, 3, 48, 48, generator=g)
        for m in bns:  # in order, each one measured on what the already-set layers before it produce
            m.reset_running_stats()
            m.momentum, momentum = None, m.momentum
            m.train()
            model(batch)
            m.eval()
            m.momentum = momentum
            m.running_var.clamp_(min=0.1)  # a dead channel must not be divided by sqrt(eps)
            std = m.running_var.sqrt()
            m.running_mean.add_(torch.rand(std.shape, generator=g).mul_(0.6).sub_(0.3) * std)
            m.running_var.mul_(torch.rand(std.shape, generator=g) + 0.5)
            m.num_batches_tracked.fill_(100)
    return model.eval()


# ---------------------------------------------------------------- the families

class Family:
    def __init__(self, name, build, config, stem, classifier, *, features_head=None, acs64=False,
                 onnx=False, extra_forwards=(), in4=False):
        self.name, self.build, self.config = name, build, config
        self.stem, self.classifier = stem, classifier
        self.features_head, self.acs64, self.onnx, self.in4 = features_head, acs64, onnx, in4
        self.extra_forwards = extra_forwards


def vgg_features_head(m):
    """VGG's head (pool to 7x7, flatten, Linear) cannot work in 3D: global average pool of the
    last feature map, flattened to (N, C), and no classifier."""
    m.avgpool = nn.AdaptiveAvgPool2d(1)
    m.classifier = nn.Identity()


FAMILIES = [
    Family('resnet18', lambda: build_resnet(resnet.BasicBlock, [2, 2, 2, 2], 16),
           'torchvision ResNet(BasicBlock, [2,2,2,2]) with every channel count c > 3 divided by 16 '
           '(widths 4/8/16/32, fc 32 -> 10)', 'conv1', 'fc', in4=True),
    Family('resnet50', lambda: build_resnet(resnet.Bottleneck, [1, 1, 1, 1], 16),
           'torchvision ResNet(Bottleneck, [1,1,1,1]) with channel counts divided by 16 (fc 128 -> 10)',
           'conv1', 'fc'),
    Family('resnext50_32x4d', lambda: build_resnet(resnet.Bottleneck, [1, 1, 1, 1], 16, 8, groups=32,
                                                   width_per_group=4),
           'torchvision ResNet(Bottleneck, [1,1,1,1], groups=32, width_per_group=4) with channel counts '
           'divided by 16 and groups by 8 (4 groups; grouped widths 8/16/32/64; fc 128 -> 10)', 'conv1', 'fc'),
    Family('wide_resnet50_2', lambda: build_resnet(resnet.Bottleneck, [1, 1, 1, 1], 16, width_per_group=128),
           'torchvision ResNet(Bottleneck, [1,1,1,1], width_per_group=128) with channel counts divided by 16',
           'conv1', 'fc'),
    Family('densenet121', build_densenet,
           'torchvision DenseNet(growth_rate=4, block_config=(2,2,2,2), num_init_features=8, bn_size=2, '
           'num_classes=10)', 'features.conv0', 'classifier', acs64=True),
    Family('vgg11_bn', lambda: build_vgg(VGG11_CFG, True),
           f'torchvision VGG(make_layers({VGG11_CFG}, batch_norm=True)), classifier Linear(1568, 32), '
           'ReLU, Dropout, Linear(32, 32), ReLU, Dropout, Linear(32, 10)', 'features.0', 'classifier.6',
           features_head=vgg_features_head),
    Family('vgg16', lambda: build_vgg(VGG16_CFG, False),
           f'torchvision VGG(make_layers({VGG16_CFG}, batch_norm=False)), classifier Linear(1568, 32), '
           'ReLU, Dropout, Linear(32, 32), ReLU, Dropout, Linear(32, 10)', 'features.0', 'classifier.6',
           features_head=vgg_features_head),
    Family('convnext_tiny', build_convnext,
           'torchvision ConvNeXt([CNBlockConfig(8,16,1), CNBlockConfig(16,32,1), CNBlockConfig(32,64,2), '
           'CNBlockConfig(64,None,1)], num_classes=10)', 'features.0.0', 'classifier.2'),
    Family('efficientnet_b0', build_efficientnet,
           "torchvision EfficientNet(*_efficientnet_conf('efficientnet_b0', width_mult=0.125, depth_mult=0.5), "
           'dropout=0.2, num_classes=10)', 'features.0.0', 'classifier.1'),
    Family('mobilenet_v2', lambda: mobilenetv2.MobileNetV2(width_mult=0.125, num_classes=NUM_CLASSES),
           'torchvision MobileNetV2(width_mult=0.125, num_classes=10)', 'features.0.0', 'classifier.1',
           acs64=True),
    Family('mobilenet_v3_large', lambda: build_mobilenet_v3('mobilenet_v3_large'),
           "torchvision MobileNetV3(*_mobilenet_v3_conf('mobilenet_v3_large', width_mult=0.125), num_classes=10)",
           'features.0.0', 'classifier.3'),
    Family('mobilenet_v3_small', lambda: build_mobilenet_v3('mobilenet_v3_small'),
           "torchvision MobileNetV3(*_mobilenet_v3_conf('mobilenet_v3_small', width_mult=0.125), num_classes=10)",
           'features.0.0', 'classifier.3'),
    Family('regnet', build_regnet,
           'torchvision RegNet(BlockParams.from_init_params(depth=4, w_0=8, w_a=4.0, w_m=2.0, group_width=4), '
           'num_classes=10)', 'stem.0', 'fc', onnx=True),
    Family('shufflenet_v2', build_shufflenet,
           'torchvision ShuffleNetV2(stages_repeats=[2,2,2], stages_out_channels=[8,16,32,64,128], num_classes=10)',
           'conv1.0', 'fc', onnx=True),
    Family('functional_cnn', FunctionalCNN,
           'FunctionalCNN in tools/goldens/tiny_models.py (functional ops in forward)', 'stem', 'head',
           onnx=True, extra_forwards=((FunctionalCNN, FunctionalCNN.forward_nd),)),
]


def build_family(family, seed):
    torch.manual_seed(seed)
    return randomise(family.build(), seed)


# ------------------------------------------------------------- other key layouts

LEGACY_DENSE = re.compile(r'^(.*denselayer\d+\.(?:norm|relu|conv))([12])\.(weight|bias|running_mean|running_var)$')


def densenet_legacy_keys(sd):
    """The layout of the original torchvision DenseNet files: denselayerN.norm.1 / conv.1 / norm.2 /
    conv.2 instead of norm1 / conv1 / norm2 / conv2, and no num_batches_tracked (they predate it)."""
    out = collections.OrderedDict()
    for k, v in sd.items():
        if not k.endswith('num_batches_tracked'):
            out[LEGACY_DENSE.sub(r'\1.\2.\3', k)] = v
    return out


def convnext_timm_key(key):
    """torchvision ConvNeXt key -> timm ConvNeXt key (timm's convnext.py layout):

        features.0.0.*                -> stem.0.*                    (4x4/4 conv)
        features.0.1.*                -> stem.1.*                    (LayerNorm2d)
        features.{2i+1}.{j}.layer_scale -> stages.{i}.blocks.{j}.gamma  (shape (C,1,1) -> (C,))
        features.{2i+1}.{j}.block.0.* -> stages.{i}.blocks.{j}.conv_dw.*  (7x7 depthwise)
        features.{2i+1}.{j}.block.2.* -> stages.{i}.blocks.{j}.norm.*     (LayerNorm, channels-last)
        features.{2i+1}.{j}.block.3.* -> stages.{i}.blocks.{j}.mlp.fc1.*
        features.{2i+1}.{j}.block.5.* -> stages.{i}.blocks.{j}.mlp.fc2.*
        features.{2i}.0.*  (i >= 1)   -> stages.{i}.downsample.0.*   (LayerNorm2d)
        features.{2i}.1.*  (i >= 1)   -> stages.{i}.downsample.1.*   (2x2/2 conv)
        classifier.0.*                -> head.norm.*                 (LayerNorm2d)
        classifier.2.*                -> head.fc.*
    """
    m = re.fullmatch(r'features\.0\.([01])\.(\w+)', key)
    if m:
        return f'stem.{m[1]}.{m[2]}'
    m = re.fullmatch(r'features\.(\d+)\.(\d+)\.(layer_scale|block\.(\d)\.(\w+))', key)
    if m and int(m[1]) % 2 == 1:
        base = f'stages.{(int(m[1]) - 1) // 2}.blocks.{m[2]}'
        if m[3] == 'layer_scale':
            return f'{base}.gamma'
        return f'{base}.{ {"0": "conv_dw", "2": "norm", "3": "mlp.fc1", "5": "mlp.fc2"}[m[4]] }.{m[5]}'
    m = re.fullmatch(r'features\.(\d+)\.([01])\.(\w+)', key)
    if m and int(m[1]) % 2 == 0:
        return f'stages.{int(m[1]) // 2}.downsample.{m[2]}.{m[3]}'
    m = re.fullmatch(r'classifier\.([02])\.(\w+)', key)
    if m:
        return f'head.{ {"0": "norm", "2": "fc"}[m[1]] }.{m[2]}'
    raise KeyError(f'no timm name for {key}')


def convnext_timm_state_dict(sd):
    out = collections.OrderedDict()
    for k, v in sd.items():
        out[convnext_timm_key(k)] = v.reshape(-1).clone() if k.endswith('layer_scale') else v
    return out
