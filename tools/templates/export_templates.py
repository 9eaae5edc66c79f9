#!/usr/bin/python3
"""Export the architecture templates of converters/arch/templates: weightless ONNX graphs of
torchvision networks and of the public PyTorch U-Net (tools/goldens/pytorch_unet.py), filled
from a state dict by name at conversion time.

For each network: build it as its pretrained weights build it (GoogLeNet and Inception-v3 with
`transform_input` and their auxiliary heads, the segmentation models with `aux_loss`), export it
with `torch.onnx.export(export_params=False, keep_initializers_as_inputs=True,
training=PRESERVE, do_constant_folding=False)` in eval mode, so that every parameter or buffer
the forward reads becomes a graph input named by its state-dict key, with its shape and dtype
and without data, and no BatchNormalization is folded into a convolution (the eval peephole
only runs for training=EVAL). The script checks that: every such input is a state-dict key of
the same shape and dtype, every BatchNorm2d of the model is a BatchNormalization node, every
state-dict key is either read by the graph or unused in eval (num_batches_tracked, the
auxiliary heads), and the tensors marked as carrying the number of classes (`classes`: the
classifier, the segmentation heads' last layers, the auxiliary heads' last layers) are exactly
those that change when the network is built for another number of classes. It writes:

    converters/arch/templates/<name>.onnx.gz   the graph (gzip, mtime 0)
    converters/arch/templates/index.json       one entry per template: family, task, input and
                                               output names, signature of the keys and shapes
                                               (classes and the stem's input channels written
                                               `*`), the auxiliary prefixes, classifier, class
                                               tensors, stem
    test/fixtures/templates/cases.json, outputs.safetensors
                                               for a few small templates: the 2D output
                                               (torchvision) and the 3D ACS output
                                               (tools/goldens/acs_reference.py) of the network
                                               filled with `template_weights`, on det_tensor inputs

Run from the repository root:  /usr/bin/python3 tools/templates/export_templates.py [names...]
(with names: only those templates, and the index, whose other entries are recomputed from
their shipped files; the fixtures when every case is among them)
"""
import gzip
import hashlib
import io
import json
import math
import os
import sys
import types

import torch
import torch.nn as nn
import torchvision
import torchvision.models as tvm
import torchvision.models.segmentation as seg
from torchvision.models import mnasnet as tv_mnasnet

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'goldens'))
import pytorch_unet  # noqa: E402
from acs_reference import convert, det_tensor  # noqa: E402
from goldens_io import safetensors_bytes, write_bytes, write_json  # noqa: E402

OUT = os.path.join('converters', 'arch', 'templates')
FIXTURES = os.path.join('test', 'fixtures', 'templates')
OPSET = 13
NBT = '.num_batches_tracked'

CLS = dict(task='classification', classifier='fc', stem=None, aux=())


def c(name, family, ctor, classifier, stem, head_init, **kw):
    return dict(name=name, family=family, ctor=ctor, task='classification', classifier=classifier, stem=stem,
                head_init=head_init, aux=kw.pop('aux', ()), classes=(classifier, *kw.pop('aux_classes', ())), kwargs=kw)


def s(name, ctor, stem, classes, aux=True):
    return dict(name=name, family=name.split('_')[0], ctor=ctor, task='segmentation', classifier=None, stem=stem,
                head_init=None, aux=('aux_classifier.',) if aux else (), classes=classes + (('aux_classifier.4',) if aux else ()),
                kwargs=dict(weights_backbone=None, **(dict(aux_loss=True) if aux else {})))


def unet(weights=None, num_classes=2):
    """The public PyTorch U-Net (tools/goldens/pytorch_unet.py): 3 channels in, 2 classes out."""
    assert weights is None
    return pytorch_unet.UNet(3, num_classes)


# headInit: the architecture's own init of its classifier (converters/arch/types.ts's HeadInit).
TEMPLATES = [
    c('squeezenet1_0', 'squeezenet', tvm.squeezenet1_0, 'classifier.1', 'features.0.weight', 'normal-0.01'),
    c('squeezenet1_1', 'squeezenet', tvm.squeezenet1_1, 'classifier.1', 'features.0.weight', 'normal-0.01'),
    c('googlenet', 'googlenet', tvm.googlenet, 'fc', 'conv1.conv.weight', 'trunc-normal-0.01', aux=('aux1.', 'aux2.'),
      aux_classes=('aux1.fc2', 'aux2.fc2'), aux_logits=True, transform_input=True, init_weights=False),
    c('inception_v3', 'inception', tvm.inception_v3, 'fc', 'Conv2d_1a_3x3.conv.weight', 'trunc-normal-0.1', aux=('AuxLogits.',),
      aux_classes=('AuxLogits.fc',), aux_logits=True, transform_input=True, init_weights=False),
    *[c(n, 'mnasnet', getattr(tvm, n), 'classifier.1', 'layers.0.weight', 'kaiming-uniform-fan-out')
      for n in ('mnasnet0_5', 'mnasnet0_75', 'mnasnet1_0', 'mnasnet1_3')],
    *[c(n, 'shufflenet_v2', getattr(tvm, n), 'fc', 'conv1.0.weight', 'torch-linear')
      for n in ('shufflenet_v2_x0_5', 'shufflenet_v2_x1_0', 'shufflenet_v2_x1_5', 'shufflenet_v2_x2_0')],
    *[c(n, 'regnet', getattr(tvm, n), 'fc', 'stem.0.weight', 'normal-0.01')
      for n in ('regnet_x_400mf', 'regnet_x_800mf', 'regnet_x_1_6gf', 'regnet_x_3_2gf', 'regnet_x_8gf', 'regnet_x_16gf',
                'regnet_x_32gf', 'regnet_y_400mf', 'regnet_y_800mf', 'regnet_y_1_6gf', 'regnet_y_3_2gf', 'regnet_y_8gf',
                'regnet_y_16gf', 'regnet_y_32gf', 'regnet_y_128gf')],
    *[c(n, 'efficientnet_v2', getattr(tvm, n), 'classifier.1', 'features.0.0.weight', 'uniform-out')
      for n in ('efficientnet_v2_s', 'efficientnet_v2_m', 'efficientnet_v2_l')],
    s('fcn_resnet50', seg.fcn_resnet50, 'backbone.conv1.weight', ('classifier.4',)),
    s('fcn_resnet101', seg.fcn_resnet101, 'backbone.conv1.weight', ('classifier.4',)),
    s('deeplabv3_resnet50', seg.deeplabv3_resnet50, 'backbone.conv1.weight', ('classifier.4',)),
    s('deeplabv3_resnet101', seg.deeplabv3_resnet101, 'backbone.conv1.weight', ('classifier.4',)),
    s('deeplabv3_mobilenet_v3_large', seg.deeplabv3_mobilenet_v3_large, 'backbone.0.0.weight', ('classifier.4',)),
    s('lraspp_mobilenet_v3_large', seg.lraspp_mobilenet_v3_large, 'backbone.0.0.weight',
      ('classifier.low_classifier', 'classifier.high_classifier'), aux=False),
    dict(name='unet', family='unet', ctor=unet, task='segmentation', classifier=None, stem='inc.double_conv.0.weight',
         head_init=None, aux=(), classes=('outc.conv',), kwargs={}, dict_out=False),
]

# The golden cases: small networks, 2D input (N, C, H, W) and, where the converter runs them
# today, a 3D input (N, C, D, H, W) with the ACS output of acs_reference.py.
CASES = {
    'squeezenet1_1': ([1, 3, 64, 48], [1, 3, 24, 20, 28]),
    'googlenet': ([1, 3, 64, 48], [1, 3, 24, 20, 28]),
    'mnasnet0_5': ([1, 3, 64, 48], [1, 3, 24, 20, 28]),
    'shufflenet_v2_x0_5': ([1, 3, 64, 48], [1, 3, 24, 20, 28]),
    'regnet_x_400mf': ([1, 3, 64, 48], [1, 3, 24, 20, 28]),
    'regnet_y_400mf': ([1, 3, 64, 48], [1, 3, 24, 20, 28]),
    'efficientnet_v2_s': ([1, 3, 64, 48], [1, 3, 24, 20, 28]),
    'inception_v3': ([1, 3, 80, 96], None),
    'lraspp_mobilenet_v3_large': ([1, 3, 33, 47], None),
    'deeplabv3_mobilenet_v3_large': ([1, 3, 33, 47], None),
    'fcn_resnet50': ([1, 3, 33, 47], None),
    'deeplabv3_resnet50': ([1, 3, 33, 47], None),
}
INPUT_SEED = 7


def segmentation_out(model):
    """The segmentation model, answering its 'out' only (the auxiliary output is dropped)."""
    forward = model.forward
    model.forward = lambda x: forward(x)['out']
    return model


def template_weights(sd, aux=()):
    """The state dict filled by the rule of test/converters/arch/templates.test.ts: key number j in
    sorted order (num_batches_tracked and the auxiliary heads excluded: the keys the template
    reads) gets det_tensor seed 1000 + j, scaled by sqrt(3 / fan_in) for weights of two or more
    axes, 0.1 for biases and running means, and 1 + 0.25 * u for 1-D weights and running
    variances; the auxiliary heads' keys follow, numbered on from there."""
    own = sorted(k for k in sd if not k.endswith(NBT) and not k.startswith(tuple(aux)))
    keys = own + sorted(k for k in sd if not k.endswith(NBT) and k.startswith(tuple(aux)))
    out = {}
    for j, k in enumerate(keys):
        shape = list(sd[k].shape)
        seed = 1000 + j
        if len(shape) >= 2 and k.endswith('weight'):
            v = det_tensor(shape, seed, math.sqrt(3.0 / math.prod(shape[1:])))
        elif k.endswith('running_var') or k.endswith('weight'):
            v = det_tensor(shape, seed, 0.25) + torch.tensor(1.0, dtype=torch.float32)
        else:
            v = det_tensor(shape, seed, 0.1)
        out[k] = v
    for k in sd:
        if k.endswith(NBT):
            out[k] = sd[k]
    return out


def signature(lines):
    return hashlib.sha256('\n'.join(sorted(lines)).encode()).hexdigest()


def class_keys(t):
    """The tensors whose first dimension is the number of classes (weight and bias of each head)."""
    return [f'{p}.{x}' for p in t['classes'] for x in ('weight', 'bias')]


def key_lines(shapes, t):
    """`key<TAB>d0xd1...` for each key; the number of classes (the first dimension of the class
    tensors) and the stem's input channels (its second dimension) written `*`: both may differ."""
    heads = set(class_keys(t))

    def dim(k, i, d):
        return '*' if (i == 0 and k in heads) or (i == 1 and k == t['stem']) else str(d)
    return [f'{k}\t' + 'x'.join(dim(k, i, d) for i, d in enumerate(shape)) for k, shape in shapes.items()]


# ---------------------------------------------------------------- protobuf wire format, read only

def _varint(b, i):
    v = shift = 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        shift += 7
        if x < 0x80:
            return v, i


def fields(b):
    """(field number, wire type, value) of a message: ints for varints, bytes for the rest."""
    i = 0
    while i < len(b):
        tag, i = _varint(b, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f'wire type {wt}')
        yield num, wt, v


def first(b, num, default=None):
    return next((v for n, _, v in fields(b) if n == num), default)


def value_info(b):
    """(name, elem_type, dims) of a ValueInfoProto; dims None when symbolic."""
    name = first(b, 1, b'').decode()
    tt = first(first(b, 2, b''), 1, b'')
    elem = first(tt, 1, 0)
    dims = []
    for n, _, d in fields(first(tt, 2, b'')):
        if n == 1:
            dims.append(first(d, 1))
    return name, elem, dims


def read_graph(onnx_bytes):
    graph = first(onnx_bytes, 7)
    inputs = [value_info(v) for n, _, v in fields(graph) if n == 11]
    outputs = [value_info(v) for n, _, v in fields(graph) if n == 12]
    nodes = [first(v, 4, b'').decode() for n, _, v in fields(graph) if n == 1]
    inits = [v for n, _, v in fields(graph) if n == 5]
    return inputs, outputs, nodes, inits


ONNX_DTYPE = {torch.float32: 1, torch.int64: 7}


def export(t):
    torch.manual_seed(0)
    model = t['ctor'](weights=None, **t['kwargs']).eval()
    net = segmentation_out(model) if t['task'] == 'segmentation' and t.get('dict_out', True) else model
    # distinct values in every tensor: the exporter merges equal initializers (zero biases)
    sd = model.state_dict()
    with torch.no_grad():
        for k, v in template_weights(sd, t['aux']).items():
            sd[k].copy_(v)
    dynamic = {'input': {0: 'N', 2: 'H', 3: 'W'}, 'output': {0: 'N', 2: 'H', 3: 'W'} if t['task'] == 'segmentation' else {0: 'N'}}
    size = 96 if t['name'] == 'inception_v3' else 64
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(net, torch.zeros(1, 3, size, size), buf, export_params=False, keep_initializers_as_inputs=True,
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False, opset_version=OPSET,
                          input_names=['input'], output_names=['output'], dynamic_axes=dynamic)
    data = buf.getvalue()
    inputs, outputs, nodes, inits = read_graph(data)
    assert not inits, f"{t['name']}: the export has initializers with data"
    assert inputs[0][0] == 'input' and [o[0] for o in outputs] == ['output'], (inputs[0], outputs)
    used = {}
    for name, elem, dims in inputs[1:]:
        assert name in sd, f"{t['name']}: graph input '{name}' is not a state-dict key"
        assert list(sd[name].shape) == dims, f"{t['name']}: '{name}' is {dims} in the graph, {list(sd[name].shape)} in the state dict"
        assert ONNX_DTYPE[sd[name].dtype] == elem, f"{t['name']}: '{name}' dtype"
        used[name] = dims
    unused = [k for k in sd if k not in used]
    for k in unused:
        assert k.endswith(NBT) or k.startswith(tuple(t['aux'])), f"{t['name']}: '{k}' is neither read by the graph nor auxiliary"
    bns = sum(isinstance(m, nn.BatchNorm2d) for n, m in net.named_modules() if not (n + '.').startswith(tuple(t['aux'])))
    assert nodes.count('BatchNormalization') == bns, f"{t['name']}: {nodes.count('BatchNormalization')} BatchNormalization nodes, {bns} BatchNorm2d"
    check_classes(t, sd)
    return model, net, sd, used, data


def check_classes(t, sd):
    """The class tensors are exactly those whose shape changes with the number of classes: the
    network built for 7 classes differs from the default one in those first dimensions alone."""
    other = t['ctor'](weights=None, num_classes=7, **t['kwargs']).state_dict()
    changed = {k for k in sd if other[k].shape != sd[k].shape}
    assert changed == set(class_keys(t)), f"{t['name']}: tensors that follow the classes {sorted(changed)}, marked {class_keys(t)}"
    for k in changed:
        assert other[k].shape[0] == 7 and other[k].shape[1:] == sd[k].shape[1:], f"{t['name']}: '{k}' {other[k].shape}"


def make_entry(t, used):
    """The index entry of a template that reads the tensors `used` (key -> shape)."""
    lines = key_lines(used, t)
    return {
        'name': t['name'],
        'family': t['family'],
        'task': t['task'],
        'file': f"{t['name']}.onnx.gz",
        'keys': len(used),
        'signature': signature(lines),
        'keySignature': signature([line.split('\t')[0] for line in lines]),
        'auxiliary': list(t['aux']),
        'stem': t['stem'],
        'classifier': {'weight': f"{t['classifier']}.weight", 'bias': f"{t['classifier']}.bias"} if t['classifier'] else None,
        'classes': class_keys(t),
        'headInit': t['head_init'],
    }


def shipped_entry(t):
    """The entry of a template already shipped, recomputed from its file (the rules of the
    signature may have changed since it was exported)."""
    with gzip.open(os.path.join(OUT, f"{t['name']}.onnx.gz")) as f:
        inputs = read_graph(f.read())[0]
    return make_entry(t, {name: dims for name, _, dims in inputs[1:]})


def main(names):
    os.makedirs(OUT, exist_ok=True)
    index_path = os.path.join(OUT, 'index.json')
    index = json.load(open(index_path)) if os.path.exists(index_path) and names else {'templates': []}
    entries = {e['name']: e for e in index['templates']}
    cases_path = os.path.join(FIXTURES, 'cases.json')
    cases = {}
    outputs, outputs_of = {}, set()
    for t in TEMPLATES:
        if names and t['name'] not in names:
            continue
        model, net, sd, used, data = export(t)
        file = f"{t['name']}.onnx.gz"
        write_bytes(os.path.join(OUT, file), gzip.compress(data, 9, mtime=0))
        entries[t['name']] = make_entry(t, used)
        print(f"{t['name']}: {len(used)} tensors, {len(data)} bytes, {os.path.getsize(os.path.join(OUT, file))} gzipped", flush=True)
        if t['name'] in CASES:
            outputs_of.add(t['name'])
            size2d, size3d = CASES[t['name']]
            with torch.no_grad():
                x2 = det_tensor(size2d, INPUT_SEED)
                outputs[f"{t['name']}/2d"] = net(x2).contiguous()
                case = {'input2d': size2d, 'output2d': list(outputs[f"{t['name']}/2d"].shape), 'seed': INPUT_SEED}
                if size3d:
                    m3 = convert(net, 'acs', stem=t['stem'][:-len('.weight')], classifier=t['classifier'],
                                 extra_forwards=[(tv_mnasnet.MNASNet, mnasnet_forward)])
                    outputs[f"{t['name']}/3d"] = m3(det_tensor(size3d, INPUT_SEED)).contiguous()
                    case.update(input3d=size3d, output3d=list(outputs[f"{t['name']}/3d"].shape))
            cases[t['name']] = case
            del model, net
    for t in TEMPLATES:
        if names and t['name'] not in names and t['name'] in entries:
            entries[t['name']] = shipped_entry(t)
    index = {'torchvision': torchvision.__version__, 'torch': torch.__version__, 'opset': OPSET,
             'templates': [entries[t['name']] for t in TEMPLATES if t['name'] in entries]}
    write_json(index_path, index)
    if all(n in outputs_of for n in CASES):
        write_bytes(os.path.join(FIXTURES, 'outputs.safetensors'), safetensors_bytes(outputs))
        write_json(cases_path, cases)


def mnasnet_forward(self, x):
    x = self.layers(x)
    x = x.mean(list(range(2, x.dim())))
    return self.classifier(x)


if __name__ == '__main__':
    main(sys.argv[1:])
