#!/usr/bin/python3
"""Write zoo/labels/imagenet-1k.json: the 1000 ImageNet-1k class names, in class-index order.

The names are torchvision's own (`torchvision.models._meta._IMAGENET_CATEGORIES`, the list every
torchvision weights enum carries as `meta["categories"]`). Needs Debian's python3-torchvision:

    /usr/bin/python3 tools/zoo/make_imagenet_labels.py
"""
import json
import pathlib

from torchvision.models._meta import _IMAGENET_CATEGORIES

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "zoo" / "labels" / "imagenet-1k.json"

assert len(_IMAGENET_CATEGORIES) == 1000, len(_IMAGENET_CATEGORIES)
OUT.write_text(json.dumps(list(_IMAGENET_CATEGORIES), indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
print(f"wrote {OUT.relative_to(ROOT)} ({len(_IMAGENET_CATEGORIES)} names)")
