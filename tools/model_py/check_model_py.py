"""Checks generated model.py files against the ONNX outputs of the same conversions.

Usage: python3 check_model_py.py JOB.json RESULTS.json

JOB.json: {"cases": [CASE, ...], "train": TRAIN (optional), "threads": 1}
CASE: {"name", "model" (model.py), "weights" (model.pth or model.safetensors), "input": {"file", "shape"},
       "expected": {"file", "shape"} (float32 little-endian, as onnxruntime computed them),
       "param_count", "rtol", "checks": ["train", "trace"]}
TRAIN: {"model", "weights", "shape" [N, C, D, H, W], "classes", "steps", "lr"}

For each case: py_compile the file, load the weights with strict=True, compare Model()(x) in
eval() with the expected output (rtol, atol = rtol * max |expected|, the worst element
reported), count the parameters, torch.jit.trace the model (the trace must give the same
output), and run a training step's forward and backward in train() (every parameter must get a
finite gradient, every BatchNorm must update its running statistics). TRAIN fine-tunes a model with
SGD on a synthetic 3D task and reports the loss before and after.

Needs torch (and the safetensors package for .safetensors weights); writes RESULTS.json: {"cases": [RESULT, ...], "train": {...}}.
"""
import importlib.util
import json
import py_compile
import sys
import time
import traceback
import warnings

import torch
import torch.nn as nn


def read_f32(desc):
    with open(desc['file'], 'rb') as f:
        data = bytearray(f.read())
    return torch.frombuffer(data, dtype=torch.float32).reshape(desc['shape']).clone()


def load_module(path, name):
    py_compile.compile(path, doraise=True)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_weights(path):
    """model.pth by torch.load, model.safetensors by the safetensors package (the test venv's)."""
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path)
    return torch.load(path, weights_only=True)


def load_model(path, weights, name):
    model = load_module(path, name).Model()
    state = load_weights(weights)
    model.load_state_dict(state, strict=True)
    return model, state


def compare(actual, expected, rtol):
    """The worst element against the goldens' tolerance: |a - e| <= atol + rtol |e|."""
    if tuple(actual.shape) != tuple(expected.shape):
        return {'ok': False, 'why': f'shape {tuple(actual.shape)} != {tuple(expected.shape)}'}
    atol = rtol * max(expected.abs().max().item(), 1e-3)
    excess = (actual - expected).abs() - (atol + rtol * expected.abs())
    i = int(excess.flatten().argmax())
    worst = {'index': i, 'actual': actual.flatten()[i].item(), 'expected': expected.flatten()[i].item()}
    return {'ok': bool(excess.max().item() <= 0), 'worst': worst, 'max_abs_diff': (actual - expected).abs().max().item(), 'atol': atol}


def batchnorms(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def check_case(case, index):
    result = {'name': case['name']}
    started = time.time()
    model, state = load_model(case['model'], case['weights'], f'generated_{index}')
    own = set(model.state_dict().keys())
    result['missing_from_model'] = sorted(set(state.keys()) - own)
    result['params'] = sum(p.numel() for p in model.parameters())
    result['param_count_ok'] = result['params'] == case['param_count']
    x = read_f32(case['input'])
    expected = read_f32(case['expected'])
    model.eval()
    with torch.no_grad():
        y = model(x)
    result['compare'] = compare(y, expected, case.get('rtol', 1e-4))
    checks = case.get('checks', [])
    if 'trace' in checks:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')
            traced = torch.jit.trace(model, x, check_trace=False)
            result['trace'] = compare(traced(x), y, 1e-5)
    if 'train' in checks:
        # One training step's forward and backward: BatchNorm in train() normalises with the
        # batch's statistics and updates its running ones, as torch's BatchNorm3d does.
        bns = batchnorms(model)
        before = [(bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked)) for bn in bns]
        model.train()
        model.zero_grad()
        out = model(x)
        weights = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
        (out * weights).sum().backward()
        model.eval()
        named = list(model.named_parameters())
        result['tensors'] = len(named)
        result['no_grad'] = [n for n, p in named if p.grad is None or not torch.isfinite(p.grad).all()]
        result['zero_grad'] = [n for n, p in named if p.grad is not None and not p.grad.any()]
        result['train'] = {
            'batchnorms': len(bns),
            'finite': bool(torch.isfinite(out).all()),
            'updated': sum(1 for bn, (m, v, n) in zip(bns, before)
                           if not torch.equal(bn.running_mean, m) and not torch.equal(bn.running_var, v) and int(bn.num_batches_tracked) == n + 1),
        }
    result['seconds'] = round(time.time() - started, 3)
    return result


def synthetic_batch(generator, shape):
    """Noise volumes with one bright cube; the class is the half (along D) that holds it."""
    n, c, d, h, w = shape
    x = torch.randn(shape, generator=generator) * 0.5
    labels = torch.randint(0, 2, (n,), generator=generator)
    size = d // 4
    for i in range(n):
        z0 = int(torch.randint(0, d // 2 - size + 1, (1,), generator=generator)) + (d // 2 if labels[i] else 0)
        y0 = int(torch.randint(0, h - size + 1, (1,), generator=generator))
        x0 = int(torch.randint(0, w - size + 1, (1,), generator=generator))
        x[i, :, z0:z0 + size, y0:y0 + size, x0:x0 + size] += 2.0
    return x, labels


def check_train(job):
    """SGD on the synthetic task: the loss on a fixed set, before and after."""
    torch.manual_seed(0)
    model, _ = load_model(job['model'], job['weights'], 'generated_train')
    generator = torch.Generator().manual_seed(0)
    data = [synthetic_batch(generator, job['shape']) for _ in range(4)]
    optimiser = torch.optim.SGD(model.parameters(), lr=job.get('lr', 0.01), momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def mean_loss():
        model.eval()
        with torch.no_grad():
            return sum(loss_fn(model(x), y).item() for x, y in data) / len(data)

    before = mean_loss()
    losses = []
    model.train()
    for step in range(job['steps']):
        x, y = data[step % len(data)]
        optimiser.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return {'before': before, 'after': mean_loss(), 'steps': losses}


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    torch.set_num_threads(job.get('threads', 1))
    # oneDNN compiles a kernel for every new convolution shape: seconds per model for the tiny
    # networks checked here, whose convolutions take microseconds.
    torch.backends.mkldnn.enabled = False
    results = {'torch': torch.__version__, 'cases': []}
    for i, case in enumerate(job.get('cases', [])):
        try:
            results['cases'].append(check_case(case, i))
        except Exception:
            results['cases'].append({'name': case['name'], 'error': traceback.format_exc()})
    if 'train' in job:
        try:
            results['train'] = check_train(job['train'])
        except Exception:
            results['train'] = {'error': traceback.format_exc()}
    with open(sys.argv[2], 'w') as f:
        json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
