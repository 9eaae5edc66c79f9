#!/usr/bin/python3
"""Write the torchvision entries of zoo/catalogue.json from the installed torchvision.

Each torchvision weights enum carries the public file (`.url`), the parameter count and
ImageNet accuracy or COCO-VOC mIoU and pixel accuracy (`.meta`) and the evaluation transforms (`.transforms`: resize, crop, mean,
std, interpolation): the source of truth for those entries. Entries of other sources (the
Hugging Face Hub, GitHub releases) are kept as they are in the file. Needs Debian's
python3-torchvision:

    /usr/bin/python3 tools/zoo/make_catalogue.py
"""
import json
import pathlib
import re

import torchvision.models as tvm
import torchvision.models.segmentation as seg

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
    # converted through the architecture templates (converters/arch/templates)
    ("squeezenet", "squeezenet1_0", tvm.SqueezeNet1_0_Weights),
    ("squeezenet", "squeezenet1_1", tvm.SqueezeNet1_1_Weights),
    ("googlenet", "googlenet", tvm.GoogLeNet_Weights),
    ("inception", "inception_v3", tvm.Inception_V3_Weights),
    ("mnasnet", "mnasnet0_5", tvm.MNASNet0_5_Weights),
    ("mnasnet", "mnasnet0_75", tvm.MNASNet0_75_Weights),
    ("mnasnet", "mnasnet1_0", tvm.MNASNet1_0_Weights),
    ("mnasnet", "mnasnet1_3", tvm.MNASNet1_3_Weights),
    ("shufflenet_v2", "shufflenet_v2_x0_5", tvm.ShuffleNet_V2_X0_5_Weights),
    ("shufflenet_v2", "shufflenet_v2_x1_0", tvm.ShuffleNet_V2_X1_0_Weights),
    ("shufflenet_v2", "shufflenet_v2_x1_5", tvm.ShuffleNet_V2_X1_5_Weights),
    ("shufflenet_v2", "shufflenet_v2_x2_0", tvm.ShuffleNet_V2_X2_0_Weights),
    ("regnet", "regnet_x_400mf", tvm.RegNet_X_400MF_Weights),
    ("regnet", "regnet_x_800mf", tvm.RegNet_X_800MF_Weights),
    ("regnet", "regnet_x_1_6gf", tvm.RegNet_X_1_6GF_Weights),
    ("regnet", "regnet_x_3_2gf", tvm.RegNet_X_3_2GF_Weights),
    ("regnet", "regnet_x_8gf", tvm.RegNet_X_8GF_Weights),
    ("regnet", "regnet_x_16gf", tvm.RegNet_X_16GF_Weights),
    ("regnet", "regnet_x_32gf", tvm.RegNet_X_32GF_Weights),
    ("regnet", "regnet_y_400mf", tvm.RegNet_Y_400MF_Weights),
    ("regnet", "regnet_y_800mf", tvm.RegNet_Y_800MF_Weights),
    ("regnet", "regnet_y_1_6gf", tvm.RegNet_Y_1_6GF_Weights),
    ("regnet", "regnet_y_3_2gf", tvm.RegNet_Y_3_2GF_Weights),
    ("regnet", "regnet_y_8gf", tvm.RegNet_Y_8GF_Weights),
    ("regnet", "regnet_y_16gf", tvm.RegNet_Y_16GF_Weights),
    ("regnet", "regnet_y_32gf", tvm.RegNet_Y_32GF_Weights),
    ("regnet", "regnet_y_128gf", tvm.RegNet_Y_128GF_Weights),
    ("efficientnet_v2", "efficientnet_v2_s", tvm.EfficientNet_V2_S_Weights),
    ("efficientnet_v2", "efficientnet_v2_m", tvm.EfficientNet_V2_M_Weights),
    ("efficientnet_v2", "efficientnet_v2_l", tvm.EfficientNet_V2_L_Weights),
    # segmentation (COCO val2017, the 20 VOC categories and background)
    ("fcn", "fcn_resnet50", seg.FCN_ResNet50_Weights),
    ("fcn", "fcn_resnet101", seg.FCN_ResNet101_Weights),
    ("deeplabv3", "deeplabv3_resnet50", seg.DeepLabV3_ResNet50_Weights),
    ("deeplabv3", "deeplabv3_resnet101", seg.DeepLabV3_ResNet101_Weights),
    ("deeplabv3", "deeplabv3_mobilenet_v3_large", seg.DeepLabV3_MobileNet_V3_Large_Weights),
    ("lraspp", "lraspp_mobilenet_v3_large", seg.LRASPP_MobileNet_V3_Large_Weights),
]

# Label sets shipped under zoo/labels, by the weights' category list.
VOC_LABELS = "coco-voc-21"
LABELS_DIR = ROOT / "zoo" / "labels"

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
    segmentation = "COCO-val2017-VOC-labels" in meta.get("_metrics", {})
    if segmentation:
        m = meta["_metrics"]["COCO-val2017-VOC-labels"]
        metrics = {"coco-val2017-voc-labels": {"miou": m["miou"], "pixel_acc": m["pixel_acc"]}}
        # the evaluation resizes the shorter side to 520 and does not crop
        size = {"inputSize": t.resize_size[0], "resizeSize": t.resize_size[0]}
        labels = VOC_LABELS
        assert meta["categories"] == json.loads((LABELS_DIR / f"{VOC_LABELS}.json").read_text(encoding="utf-8")), arch
        licence_note = LICENCE_NOTE.replace("ImageNet-1k", "COCO and ImageNet-1k")
    else:
        m = meta["_metrics"]["ImageNet-1K"]
        metrics = {"imagenet-1k": {"acc@1": m["acc@1"], "acc@5": m["acc@5"]}}
        size = {"inputSize": t.crop_size[0], "resizeSize": t.resize_size[0]}
        labels = "imagenet-1k"
        assert len(meta["categories"]) == 1000
        licence_note = LICENCE_NOTE
    is_default = type(weights).DEFAULT == weights
    out = {
        "id": f"torchvision/{arch}.{weights.name.lower()}",
    }
    if is_default:
        out["aliases"] = [f"torchvision/{arch}"]
    out.update({
        "family": family,
        "arch": arch,
        "task": "segmentation" if segmentation else "classification",
        "title": f"{arch} ({weights.name})",
        "source": {"type": "torchvision", "file": file},
        "url": BASE + file,
        "format": "pth",
        "licence": "BSD-3-Clause",
        "licenceNote": licence_note,
        "params": meta["num_params"],
        "metrics": metrics,
        "preprocessing": {
            "inChannels": 3,
            **size,
            "mean": list(t.mean),
            "std": list(t.std),
            "interpolation": t.interpolation.value,
        },
        "labels": labels,
        "recipe": meta["recipe"],
    })
    if note:
        out["note"] = note
    assert re.search(r"-([a-f0-9]+)\.", file), file
    return out


def write_voc_labels():
    """zoo/labels/coco-voc-21.json: the categories of torchvision's segmentation weights."""
    categories = seg.FCN_ResNet50_Weights.DEFAULT.meta["categories"]
    assert len(categories) == 21 and categories[0] == "__background__"
    (LABELS_DIR / f"{VOC_LABELS}.json").write_text(json.dumps(categories, indent=0) + "\n", encoding="utf-8")


def main():
    write_voc_labels()
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
