#!/usr/bin/python3
"""Seeded state dicts of the catalogue's torchvision architectures, saved as .pth, for the
model.py test of every catalogue model (test/converters/model-py-catalogue.test.ts).

Usage: python3 catalogue_weights.py JOB.json
JOB.json: {"dir": DIR, "archs": [NAME, ...]}

Each network is built as its published weights build it (the architecture templates' own
constructors from tools/templates/export_templates.py: GoogLeNet and Inception-v3 with
`transform_input` and their auxiliary heads, the segmentation models with `aux_loss` where the
published file has it; torchvision's builder of the name otherwise), with the architecture's own
initialisation under torch.manual_seed, then every BatchNorm gets running statistics away from
(0, 1) so that folding them is checked. Writes DIR/NAME.pth (the state dict, as torch.save
writes a published file) and DIR/weights.json: {NAME: {"params": sum of numel of the
parameters, "seconds": ...}}.
"""
import json
import os
import sys
import time
import zlib

import torch
import torch.nn as nn
import torchvision.models as tvm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'templates'))
from export_templates import TEMPLATES  # noqa: E402

BY_NAME = {t['name']: t for t in TEMPLATES}


def build(name):
    t = BY_NAME.get(name)
    if t is not None:
        return t['ctor'](weights=None, **t['kwargs'])
    return getattr(tvm, name)(weights=None)


def main(job_file):
    with open(job_file) as f:
        job = json.load(f)
    torch.set_num_threads(1)
    report = {}
    for name in job['archs']:
        started = time.time()
        torch.manual_seed(zlib.crc32(name.encode()))
        net = build(name).eval()
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        torch.save(net.state_dict(), os.path.join(job['dir'], f'{name}.pth'))
        report[name] = {'params': sum(p.numel() for p in net.parameters()), 'seconds': round(time.time() - started, 2)}
        del net
    with open(os.path.join(job['dir'], 'weights.json'), 'w') as f:
        json.dump(report, f)


if __name__ == '__main__':
    main(sys.argv[1])
