/**
 * The architecture ids a catalogue entry may name in its `arch` field: torchvision's model
 * function names. timm weights use the same names (timm's resnet50 keys equal torchvision's;
 * timm's ConvNeXt has its own key layout, which the builder tells apart by the keys).
 *
 * The catalogue test checks every entry against this list; the conversion engine checks that it
 * has a builder for each.
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
] as const;

/** One of `KNOWN_ARCHITECTURES`. */
export type Architecture = (typeof KNOWN_ARCHITECTURES)[number];

const KNOWN: ReadonlySet<string> = new Set(KNOWN_ARCHITECTURES);

/** Whether `name` is a known architecture id. */
export function isKnownArchitecture(name: string): name is Architecture {
  return KNOWN.has(name);
}
