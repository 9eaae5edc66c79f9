#!/usr/bin/python3
"""Write the torchvision entries of zoo/catalogue.json from the installed torchvision.

Each torchvision weights enum carries the public file (`.url`), the parameter count and
ImageNet accuracy (`.meta`) and the evaluation transforms (`.transforms`: resize, crop, mean,
std, interpolation): the source of truth for those entries. Entries of other sources (the
Hugging Face Hub, GitHub releases) are kept as they are in the file. Needs Debian's
python3-torchvision:

    /usr/bin/python3 tools/zoo/make_catalogue.py
"""
import json
import pathlib
import re

import torchvision.models as tvm

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "zoo" / "catalogue.json"
BASE = "https://download.pytorch.org/models/"

# (family, arch, weights enum) in catalogue order.
MODELS = [
    ("resnet", "resnet18", tvm.ResNet18_Weights),
    ("resnet", "resnet34", tvm.ResNet34_Weights),
    ("resnet", "resnet50", tvm.ResNet50_Weights),
    ("resnet", "resnet101", tvm.ResNet101_Weights),
    ("resnet", "resnet152", tvm.ResNet152_Weights),
    ("resnext", "resnext50_32x4d", tvm.ResNeXt50_32X4D_Weights),
    ("resnext", "resnext101_32x8d", tvm.ResNeXt101_32X8D_Weights),
    ("wide_resnet", "wide_resnet50_2", tvm.Wide_ResNet50_2_Weights),
    ("wide_resnet", "wide_resnet101_2", tvm.Wide_ResNet101_2_Weights),
    ("densenet", "densenet121", tvm.DenseNet121_Weights),
    ("densenet", "densenet161", tvm.DenseNet161_Weights),
    ("densenet", "densenet169", tvm.DenseNet169_Weights),
    ("densenet", "densenet201", tvm.DenseNet201_Weights),
    ("vgg", "vgg11", tvm.VGG11_Weights),
    ("vgg", "vgg11_bn", tvm.VGG11_BN_Weights),
    ("vgg", "vgg13", tvm.VGG13_Weights),
    ("vgg", "vgg13_bn", tvm.VGG13_BN_Weights),
    ("vgg", "vgg16", tvm.VGG16_Weights),
    ("vgg", "vgg16_bn", tvm.VGG16_BN_Weights),
    ("vgg", "vgg19", tvm.VGG19_Weights),
    ("vgg", "vgg19_bn", tvm.VGG19_BN_Weights),
    ("convnext", "convnext_tiny", tvm.ConvNeXt_Tiny_Weights),
    ("convnext", "convnext_small", tvm.ConvNeXt_Small_Weights),
    ("convnext", "convnext_base", tvm.ConvNeXt_Base_Weights),
    ("convnext", "convnext_large", tvm.ConvNeXt_Large_Weights),
    ("efficientnet", "efficientnet_b0", tvm.EfficientNet_B0_Weights),
    ("efficientnet", "efficientnet_b1", tvm.EfficientNet_B1_Weights),
    ("efficientnet", "efficientnet_b2", tvm.EfficientNet_B2_Weights),
    ("efficientnet", "efficientnet_b3", tvm.EfficientNet_B3_Weights),
    ("mobilenet", "mobilenet_v2", tvm.MobileNet_V2_Weights),
    ("mobilenet", "mobilenet_v3_small", tvm.MobileNet_V3_Small_Weights),
    ("mobilenet", "mobilenet_v3_large", tvm.MobileNet_V3_Large_Weights),
]

# Weights that only make sense with their own head (VGG-16 features without a classifier).
SKIP = {("vgg16", "IMAGENET1K_FEATURES")}

# The rwightman EfficientNet ports were re-uploaded under new names: the files behind torchvision
# 0.14's names fail torch.hub's own check of the hash prefix in the name (`-3dd342df` for B0).
# Later torchvision releases name these files.
RENAMED = {
    "efficientnet_b0_rwightman-3dd342df.pth": "efficientnet_b0_rwightman-7f5810bc.pth",
    "efficientnet_b1_rwightman-533bc792.pth": "efficientnet_b1_rwightman-bac287d4.pth",
    "efficientnet_b2_rwightman-bcdf34b7.pth": "efficientnet_b2_rwightman-c35c1473.pth",
    "efficientnet_b3_rwightman-cf984f9c.pth": "efficientnet_b3_rwightman-b3899882.pth",
}

LICENCE_NOTE = (
    "torchvision is BSD-3-Clause; its documentation warns that pre-trained weights may carry "
    "terms derived from their training data (ImageNet-1k), which users must check for their use."
)


def entry(family, arch, weights):
    url = weights.url
    assert url.startswith(BASE), url
    file = url[len(BASE):]
    note = None
    if file in RENAMED:
        note = f"torchvision 0.14 names this file {file}, which fails its own hash check; later releases serve {RENAMED[file]}"
        file = RENAMED[file]
    t = weights.transforms()
    meta = weights.meta
    metrics = meta.get("_metrics", {}).get("ImageNet-1K", {})
    is_default = type(weights).DEFAULT == weights
    out = {
        "id": f"torchvision/{arch}.{weights.name.lower()}",
    }
    if is_default:
        out["aliases"] = [f"torchvision/{arch}"]
    out.update({
        "family": family,
        "arch": arch,
        "title": f"{arch} ({weights.name})",
        "source": {"type": "torchvision", "file": file},
        "url": BASE + file,
        "format": "pth",
        "licence": "BSD-3-Clause",
        "licenceNote": LICENCE_NOTE,
        "params": meta["num_params"],
        "metrics": {"imagenet-1k": {"acc@1": metrics["acc@1"], "acc@5": metrics["acc@5"]}},
        "preprocessing": {
            "inChannels": 3,
            "inputSize": t.crop_size[0],
            "resizeSize": t.resize_size[0],
            "mean": list(t.mean),
            "std": list(t.std),
            "interpolation": t.interpolation.value,
        },
        "labels": "imagenet-1k",
        "recipe": meta["recipe"],
    })
    assert len(meta["categories"]) == 1000
    if note:
        out["note"] = note
    assert re.search(r"-([a-f0-9]+)\.", file), file
    return out


def main():
    existing = json.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else {"version": 1, "models": []}
    others = [m for m in existing["models"] if m["source"]["type"] != "torchvision"]
    models = []
    for family, arch, enum in MODELS:
        for w in enum:
            if (arch, w.name) in SKIP:
                continue
            models.append(entry(family, arch, w))
    doc = {"version": 1, "models": models + others}
    OUT.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(models)} torchvision entries, {len(others)} others kept")


if __name__ == "__main__":
    main()
