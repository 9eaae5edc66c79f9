/**
 * The architecture ids a catalogue entry may name in its `arch` field: torchvision's model
 * function names. timm weights use the same names (timm's resnet50 keys equal torchvision's;
 * timm's ConvNeXt has its own key layout, which the builder tells apart by the keys).
 *
 * The catalogue test checks every entry against this list; the conversion engine checks that it
 * has a builder for each (squeezenet to the segmentation networks: an architecture template).
 */
export const KNOWN_ARCHITECTURES = [
  'resnet18',
  'resnet34',
  'resnet50',
  'resnet101',
  'resnet152',
  'resnext50_32x4d',
  'resnext101_32x8d',
  'wide_resnet50_2',
  'wide_resnet101_2',
  'densenet121',
  'densenet161',
  'densenet169',
  'densenet201',
  'vgg11',
  'vgg11_bn',
  'vgg13',
  'vgg13_bn',
  'vgg16',
  'vgg16_bn',
  'vgg19',
  'vgg19_bn',
  'convnext_tiny',
  'convnext_small',
  'convnext_base',
  'convnext_large',
  'efficientnet_b0',
  'efficientnet_b1',
  'efficientnet_b2',
  'efficientnet_b3',
  'efficientnet_b4',
  'efficientnet_b5',
  'efficientnet_b6',
  'efficientnet_b7',
  'mobilenet_v2',
  'mobilenet_v3_small',
  'mobilenet_v3_large',
  'squeezenet1_0',
  'squeezenet1_1',
  'googlenet',
  'inception_v3',
  'mnasnet0_5',
  'mnasnet0_75',
  'mnasnet1_0',
  'mnasnet1_3',
  'shufflenet_v2_x0_5',
  'shufflenet_v2_x1_0',
  'shufflenet_v2_x1_5',
  'shufflenet_v2_x2_0',
  'regnet_x_400mf',
  'regnet_x_800mf',
  'regnet_x_1_6gf',
  'regnet_x_3_2gf',
  'regnet_x_8gf',
  'regnet_x_16gf',
  'regnet_x_32gf',
  'regnet_y_400mf',
  'regnet_y_800mf',
  'regnet_y_1_6gf',
  'regnet_y_3_2gf',
  'regnet_y_8gf',
  'regnet_y_16gf',
  'regnet_y_32gf',
  'regnet_y_128gf',
  'efficientnet_v2_s',
  'efficientnet_v2_m',
  'efficientnet_v2_l',
  'fcn_resnet50',
  'fcn_resnet101',
  'deeplabv3_resnet50',
  'deeplabv3_resnet101',
  'deeplabv3_mobilenet_v3_large',
  'lraspp_mobilenet_v3_large',
] as const;

/** One of `KNOWN_ARCHITECTURES`. */
export type Architecture = (typeof KNOWN_ARCHITECTURES)[number];

const KNOWN: ReadonlySet<string> = new Set(KNOWN_ARCHITECTURES);

/** Whether `name` is a known architecture id. */
export function isKnownArchitecture(name: string): name is Architecture {
  return KNOWN.has(name);
}
