/** The contract between the architecture builders and the conversion pipeline. */
import type { Graph } from '../graph/ir.js';
import type { StateDict } from '../tensor.js';

/** How a fresh classifier is initialised, as the architecture's own code does it. */
export type HeadInit =
  /** nn.Linear's default: kaiming_uniform(a=sqrt(5)) weights, uniform(+-1/sqrt(fan_in)) bias. */
  | 'torch-linear'
  /** normal(0, 0.01) weights, zero bias (VGG, MobileNet). */
  | 'normal-0.01'
  /** truncated normal(0, 0.02) weights, zero bias (ConvNeXt). */
  | 'trunc-normal-0.02'
  /** uniform(+-1/sqrt(out_features)) weights, zero bias (EfficientNet). */
  | 'uniform-out'
  /** nn.Linear's default weights, zero bias (DenseNet). */
  | 'torch-linear-zero-bias'
  /** truncated normal(0, 0.01) weights (cut at +-2), nn.Linear's default bias (GoogLeNet). */
  | 'trunc-normal-0.01'
  /** truncated normal(0, 0.1) weights (cut at +-2), nn.Linear's default bias (Inception-v3). */
  | 'trunc-normal-0.1'
  /** kaiming_uniform(mode='fan_out', nonlinearity='sigmoid'): uniform(+-sqrt(3/out_features)) weights, zero bias (MNASNet). */
  | 'kaiming-uniform-fan-out';

/** What a builder knows about a state dict it recognised. */
export interface Detected {
  /** Family id, e.g. `resnet`. */
  family: string;
  /** The torchvision name when the shapes match one exactly (`resnet50`), else `<family>-like`. */
  arch: string;
  /** Key layout: `torchvision` or `timm`. */
  layout: 'torchvision' | 'timm';
  /** The final Linear layer's keys. */
  classifier: { weight: string; bias?: string };
  /** The first convolution's weight key (the stem that input-channel adaptation changes). */
  stem: string;
  headInit: HeadInit;
  /** Number of features that reach the final Linear. */
  featureDim: number;
  /** False when the classifier only fits 2D feature maps (VGG's Linear over a 7x7 map). */
  headFits3d: boolean;
  /** BatchNorm epsilon where the architecture sets one (EfficientNet-B5..B7: 1e-3). */
  bnEps?: number;
  /** What the network answers. @default 'classification' */
  task?: 'classification' | 'segmentation';
  /** Key prefixes of heads that only train (GoogLeNet's `aux1.`), never read by the network. */
  auxiliary?: readonly string[];
}

/** Options of a build. */
export interface BuildOptions {
  /** Stop at the pooled features instead of applying the final Linear. */
  features: boolean;
  /** The 2D input size (H, W), for heads that only work at one size (VGG's 7x7 pool). */
  inputSize?: [number, number];
}

/** A 2D network built from a state dict: input `input` (N, C, H, W), output `output`. */
export interface BuiltNetwork {
  graph: Graph;
  detected: Detected;
}

/** One architecture family. */
export interface ArchBuilder {
  readonly family: string;
  /** The torchvision names this builder builds. */
  readonly architectures: readonly string[];
  /** Recognise a state dict of this family (undefined if it is not one). */
  detect(sd: StateDict, arch?: string): Detected | undefined;
  /** Rename legacy keys to the current ones (e.g. DenseNet's `norm.1` -> `norm1`). */
  normalize?(sd: StateDict): StateDict;
  /** Build the 2D graph. */
  build(sd: StateDict, detected: Detected, options: BuildOptions): BuiltNetwork;
}
