/**
 * One conversion, start to end: a 2D checkpoint (state dict, or a 2D ONNX graph) and the
 * options of converters/SPEC-acs.md in (modes: sections 1, 3-5; stem: section 6; heads:
 * section 9); the converted state dict (for PyTorch), the 3D ONNX graph, and the model card
 * (section 13) out. Pure: no files, no network; the callers write the outputs.
 */
import { recognise } from './arch/index.js';
import type { Detected } from './arch/types.js';
import { resolveBudgets, type Budgets } from './budgets.js';
import { DTYPES, toFloat32 } from './dtypes.js';
import { ConversionError, InvalidArgumentError } from './errors.js';
import { A, pruneGraph, type Graph } from './graph/ir.js';
import type { SpatialAxis } from './graph/lower-conv.js';
import { inlineIdentityConstants } from './graph/identity-constants.js';
import { inferShapes, InputTooSmallError } from './graph/shapes.js';
import { convertGraphTo3d, type ConvRecord } from './graph/to3d.js';
import { initHead } from './modes/head.js';
import type { Split3 } from './modes/split.js';
import { convertStateDict } from './modes/state-dict.js';
import { adaptInputConv } from './modes/stem.js';
import { checkOutputBytes, predictOutputSizes } from './output-size.js';
import { countParametersAndBuffers, type StateDict, type Tensor } from './tensor.js';
import { own } from './own.js';

/** Version of the conversion rules; part of every cache key. */
export const CONVERTER_VERSION = '4';

/** Modes, by their CLI names. */
export const MODES = ['acs', '2.5d', 'i3d', 'mean-acs', 'soft-acs'] as const;
export type Mode = (typeof MODES)[number];

/** `keep` the classifier, stop at the pooled `features`, or a new head of that many classes. */
export type Head = 'keep' | 'features' | number;

/** Options of a conversion. */
export interface ConvertOptions {
  mode: Mode;
  /** 2.5D unit axis / i3d repeat axis. @default 'd' */
  axis?: 'd' | 'h' | 'w';
  /** Architecture name when the keys do not identify it. */
  arch?: string;
  /** Adapt the stem to this many input channels. */
  inChannels?: number;
  /** @default 'keep' (an error for networks whose head only fits 2D maps) */
  head?: Head;
  /** Seed of a new head's initialisation. @default 0 */
  seed?: number;
  /** Explicit ACS splits, by conv weight key (state dict) or ONNX initializer name. */
  splits?: Record<string, Split3>;
  /** Input size (D, H, W) the card's multiply-adds are counted for. @default [64, 64, 64] */
  inputSize?: [number, number, number];
  /** Fusions in the ONNX graph (see `To3dOptions.fuse`); for measuring lowerings. @default true */
  fuse?: boolean | { batchNorm: boolean; activation: boolean };
  /** How ACS views are computed; for measuring lowerings. @default 'conv3d' */
  lowering?: 'conv3d' | 'fold2d';
  /**
   * Auxiliary heads (torchvision's segmentation models train with an `aux` head on an earlier
   * feature map; inference never reads it): 'drop' removes the ONNX graph outputs named `aux`
   * with the nodes only they need, and a state dict's `aux_classifier.*` tensors and the
   * train-only heads of its architecture (GoogLeNet's `aux1.`/`aux2.`, Inception-v3's
   * `AuxLogits.`); 'keep' converts them as further outputs, or carries a state dict's
   * train-only heads unchanged (converters/SPEC-acs.md section 18.6). @default 'drop'
   */
  aux?: 'drop' | 'keep';
}

/** `ConvertOptions` with every default filled in: what `convert` works with, and what the cache key is made of. */
export interface NormalisedOptions {
  mode: Mode;
  axis: 'd' | 'h' | 'w';
  arch: string | null;
  inChannels: number | null;
  head: Head;
  seed: number;
  splits: Record<string, Split3>;
  inputSize: [number, number, number];
  fuse: boolean | { batchNorm: boolean; activation: boolean };
  lowering: 'conv3d' | 'fold2d';
  aux: 'drop' | 'keep';
}

/** The options with their defaults, the one place those defaults are written. */
export function normaliseOptions(o: ConvertOptions): NormalisedOptions {
  return {
    mode: o.mode,
    axis: o.axis ?? 'd',
    arch: o.arch ?? null,
    inChannels: o.inChannels ?? null,
    head: o.head ?? 'keep',
    seed: o.seed ?? 0,
    splits: o.splits ?? {},
    inputSize: o.inputSize ?? [64, 64, 64],
    fuse: o.fuse ?? true,
    lowering: o.lowering ?? 'conv3d',
    aux: o.aux ?? 'drop',
  };
}

/** The source of a conversion: a state dict, or a 2D ONNX graph. */
export type ConvertSource = { kind: 'state-dict'; tensors: StateDict } | { kind: 'onnx'; graph: Graph };

/** The model card (card.json). */
export interface Card {
  schema: 'acs-hub/card@1';
  converter: { name: 'acs-hub'; version: string };
  source: Record<string, unknown>;
  architecture: { family: string; arch: string; layout: string } | { family: 'onnx'; arch: string; layout: 'onnx' };
  mode: Mode;
  options: { axis: string; inChannels: number | null; head: Head; seed: number; splits: Record<string, Split3> };
  splitRule: string;
  /** Trainable parameters as PyTorch counts them (`sum(p.numel() for p in model.parameters())`); BatchNorm statistics are buffers, counted apart. */
  parameters: { source2d: number; converted: number };
  /** Elements of buffers (BatchNorm `running_mean`, `running_var`, `num_batches_tracked`). */
  buffers: { source2d: number; converted: number };
  inputSize: [number, number, number];
  multiplyAdds: { converted: number; dense3d: number; ratio: number };
  input: { name: string; shape: (string | number)[]; channels: number };
  output: { name: string; kind: 'logits' | 'features'; size: number | null };
  preprocessing: { mean: number[]; std: number[]; channels: number };
  labels: string[] | null;
}

/** The outputs of a conversion. */
export interface ConvertResult {
  /** The state dict the PyTorch reference model of the mode loads with strict=True. */
  stateDict: StateDict;
  /** The 3D network. */
  graph: Graph;
  /** The 2D network it was converted from (stem and head as converted); model.py is written from it. */
  graph2d: Graph;
  card: Card;
  /** String metadata for safetensors `__metadata__` and ONNX `metadata_props`. */
  metadata: Record<string, string>;
}

const AXES: Record<string, SpatialAxis> = { d: 0, h: 1, w: 2 };
const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** What a conversion records and is bounded by, besides its options. */
export interface ConvertInfo {
  /** Provenance for the card (id, url or file, sha256, ...). */
  source?: Record<string, unknown>;
  /** Class names, kept when the head is kept and its size matches. */
  labels?: string[];
  /** The source's input normalisation. @default ImageNet's */
  preprocessing?: { mean: number[]; std: number[] };
  /** Budgets; `conversionOutputBytes` bounds the outputs, checked before converting. */
  budgets?: Partial<Budgets>;
}

/** Convert a 2D network to 3D. */
export function convert(source: ConvertSource, options: ConvertOptions, info: ConvertInfo = {}): ConvertResult {
  const { mode, axis: axisName, head, seed, inputSize, fuse, lowering, aux } = normaliseOptions(options);
  if (!(MODES as readonly string[]).includes(mode)) throw new InvalidArgumentError(`unknown mode '${String(mode)}'; use one of ${MODES.join(', ')}`);
  const axis = own(AXES, axisName);
  if (axis === undefined) throw new InvalidArgumentError(`axis must be d, h or w, got '${axisName}'`);
  if (inputSize.length !== 3 || inputSize.some((v) => !Number.isInteger(v) || v < 1 || v > 4096)) {
    throw new InvalidArgumentError(`input size must be three integers D,H,W in [1, 4096], got ${inputSize.join(',')}`);
  }
  const splits = new Map(Object.entries(options.splits ?? {}));
  const budget = resolveBudgets(info.budgets).conversionOutputBytes;

  let graph2d: Graph;
  let sd: StateDict;
  let detected: Detected | undefined;
  const outputKind: 'logits' | 'features' = head === 'features' ? 'features' : 'logits';
  if (aux !== 'drop' && aux !== 'keep') throw new InvalidArgumentError(`aux must be 'drop' or 'keep', got '${String(aux)}'`);
  if (source.kind === 'state-dict') {
    const r = recognise(widenToFloat32(aux === 'drop' ? dropAuxTensors(source.tensors) : source.tensors), options.arch);
    detected = r.detected;
    sd = new Map(r.sd);
    // Train-only heads the network never reads (GoogLeNet's aux1/aux2, Inception's AuxLogits).
    const auxiliary = detected.auxiliary ?? [];
    if (aux === 'drop') for (const k of [...sd.keys()]) if (auxiliary.some((p) => k.startsWith(p))) sd.delete(k);
    if (options.inChannels !== undefined) {
      const stem = sd.get(detected.stem)!;
      checkStem(stem, options.inChannels, budget);
      sd.set(detected.stem, adaptInputConv(stem, options.inChannels, detected.stem));
    }
    const { weight, bias } = detected.classifier;
    if (head === 'keep' && !detected.headFits3d) {
      throw new ConversionError(
        `${detected.arch}'s classifier fits only 2D feature maps (its first Linear takes a flattened 7x7 map); ` +
          'a 3D network cannot keep it: convert with head "features" or a number of classes',
      );
    }
    if (head !== 'keep') {
      for (const k of [...sd.keys()]) if (isClassifierKey(k, detected)) sd.delete(k);
    }
    const built = r.builder.build(sd, detected, { features: head !== 'keep' });
    graph2d = built.graph;
    if (typeof head === 'number') {
      checkNewTensor(head * (detected.featureDim + 1), budget, `a new head of ${head} classes`);
      const fresh = initHead(detected.headInit, head, detected.featureDim, seed);
      const wKey = detected.headFits3d ? weight : 'classifier.weight';
      const bKey = detected.headFits3d ? (bias ?? weight.replace(/weight$/, 'bias')) : 'classifier.bias';
      sd.set(wKey, fresh.weight);
      sd.set(bKey, fresh.bias);
      graph2d = appendLinear(graph2d, wKey, bKey, fresh.weight, fresh.bias);
    }
  } else {
    const { inputs, outputs } = source.graph;
    if (inputs.length === 0) throw new ConversionError(`the graph '${source.graph.name}' has no input besides its weights: nothing to feed a volume to`);
    if (outputs.length === 0) throw new ConversionError(`the graph '${source.graph.name}' has no output: nothing to convert`);
    graph2d = inlineIdentityConstants(aux === 'drop' ? dropAuxOutputs(source.graph) : source.graph);
    if (options.inChannels !== undefined) graph2d = adaptOnnxStem(graph2d, options.inChannels, budget);
    if (head !== 'keep') graph2d = replaceOnnxHead(graph2d, head, seed, budget);
    sd = new Map([...graph2d.initializers].filter(([, t]) => t.dtype === 'F32' || DTYPES[t.dtype].float));
  }
  const text = `${graph2d.name}${JSON.stringify(info.source ?? {})}${JSON.stringify(options.splits ?? {})}`;
  checkOutputBytes(predictOutputSizes({ graph: graph2d, stateDict: sd, mode, text }), budget, `the ${mode} conversion of '${graph2d.name}'`);

  const softWCore = new Map<string, Float32Array>();
  const { graph: graph3d, convs } = convertGraphTo3d(graph2d, { mode, axis, splits, softWCore, fuse, lowering });
  const convWeights = new Set(convs.map((c) => c.weightName).filter((k) => sd.has(k)));
  const transposed = new Map(convs.filter((c) => c.transposed).map((c) => [c.weightName, { groups: c.outChannels / (sd.get(c.weightName)?.shape[1] ?? c.outChannels) }]));
  const stateDict = convertStateDict(sd, convWeights, mode, axis, transposed);

  const inputInfo = graph3d.inputs[0]!;
  const channels = typeof inputInfo.shape?.[1] === 'number' ? inputInfo.shape[1] : 3;
  const { size: countedSize, macs } = countMacsAtSize(graph3d, convs, channels, inputSize, options.inputSize === undefined);
  const outputFacts = macs.outputShape;
  const converted = countParametersAndBuffers(stateDict);
  const source2d = countParametersAndBuffers(source.kind === 'state-dict' ? source.tensors : sd);
  const preprocessing = adaptPreprocessing(info.preprocessing ?? IMAGENET, channels);
  const keepsLabels = head === 'keep' && info.labels !== undefined && outputFacts?.[1] === info.labels.length;
  const card: Card = {
    schema: 'acs-hub/card@1',
    converter: { name: 'acs-hub', version: CONVERTER_VERSION },
    source: info.source ?? {},
    architecture: detected ? { family: detected.family, arch: detected.arch, layout: detected.layout } : { family: 'onnx', arch: graph2d.name, layout: 'onnx' },
    mode,
    options: { axis: axisName, inChannels: options.inChannels ?? null, head, seed, splits: Object.fromEntries(splits) },
    splitRule: SPLIT_RULES[mode],
    parameters: { source2d: source2d.parameters, converted: converted.parameters },
    buffers: { source2d: source2d.buffers, converted: converted.buffers },
    inputSize: countedSize,
    multiplyAdds: { converted: macs.converted, dense3d: macs.dense, ratio: macs.dense > 0 ? macs.converted / macs.dense : 1 },
    input: { name: inputInfo.name, shape: ['N', channels, 'D', 'H', 'W'], channels },
    output: { name: graph3d.outputs[0]?.name ?? 'output', kind: outputKind, size: outputFacts?.[1] ?? null },
    preprocessing: { ...preprocessing, channels },
    labels: keepsLabels ? info.labels! : null,
  };
  const metadata: Record<string, string> = {
    format: 'pt',
    'acs_hub.mode': mode,
    'acs_hub.axis': axisName,
    'acs_hub.split': splits.size ? JSON.stringify(Object.fromEntries(splits)) : 'default',
    'acs_hub.arch': card.architecture.arch,
    'acs_hub.converter_version': CONVERTER_VERSION,
  };
  if (typeof card.source['sha256'] === 'string') metadata['acs_hub.source_sha256'] = card.source['sha256'];
  if (typeof card.source['url'] === 'string') metadata['acs_hub.source'] = card.source['url'];
  else if (typeof card.source['file'] === 'string') metadata['acs_hub.source'] = card.source['file'];
  graph3d.metadata = { ...graph3d.metadata, ...metadata };
  return { stateDict, graph: graph3d, graph2d, card, metadata };
}

const SPLIT_RULES: Record<Mode, string> = {
  acs: 'Each 2D kernel (O, I/g, k, k) is split by output channel into axial, coronal and sagittal parts of (q+[r>=1], q+[r>=2], q) channels, q = O div 3, r = O mod 3 (for grouped convolutions the groups are split the same way); each part convolves its view with a unit kernel extent on the collapsed axis.',
  '2.5d': 'Each 2D kernel gains a unit axis at the chosen position; padding 0 on that axis, stride and dilation on all three.',
  i3d: 'Each 2D kernel is stacked k times along the chosen axis and divided by k.',
  'mean-acs': 'Every view uses the whole kernel; the three outputs are averaged, then the bias added.',
  'soft-acs': 'Every view uses the whole kernel; the outputs are weighted per channel by softmax(soft_w_core) (zeros: 1/3 each), then the bias added.',
};

/** The graph without its outputs named `aux` (and what only they used), unless that is all it has. */
function dropAuxOutputs(g: Graph): Graph {
  const outputs = g.outputs.filter((o) => !AUX_OUTPUT.test(o.name));
  return outputs.length === g.outputs.length || outputs.length === 0 ? g : pruneGraph({ ...g, outputs });
}

/** torchvision's auxiliary segmentation head: output `aux`, state dict prefix `aux_classifier.`. */
const AUX_OUTPUT = /^aux$/i;

function dropAuxTensors(sd: StateDict): StateDict {
  return [...sd.keys()].some((k) => k.startsWith('aux_classifier.')) ? new Map([...sd].filter(([k]) => !k.startsWith('aux_classifier.'))) : sd;
}

function isClassifierKey(key: string, d: Detected): boolean {
  const w = d.classifier.weight.replace(/\.weight$/, '');
  if (key.startsWith(`${w}.`)) return true;
  // VGG: the whole classifier goes (it only fits 2D maps).
  return !d.headFits3d && key.startsWith('classifier.');
}

function widenToFloat32(sd: StateDict): StateDict {
  let changed = false;
  const out: StateDict = new Map();
  for (const [k, t] of sd) {
    if (t.dtype === 'F16' || t.dtype === 'BF16' || t.dtype === 'F64') {
      out.set(k, { dtype: 'F32', shape: t.shape, data: toFloat32(t.dtype, t.data) });
      changed = true;
    } else out.set(k, t);
  }
  return changed ? out : sd;
}

function appendLinear(g: Graph, wKey: string, bKey: string, w: Tensor, b: Tensor): Graph {
  const out = g.outputs[0]!;
  const producer = g.nodes.find((n) => n.outputs.includes(out.name))!;
  const features = producer.op === 'Identity' ? producer.inputs[0]! : out.name;
  const nodes = g.nodes.filter((n) => n !== producer || producer.op !== 'Identity');
  const initializers = new Map(g.initializers);
  initializers.set(wKey, w);
  initializers.set(bKey, b);
  nodes.push({ name: 'head', op: 'Gemm', domain: '', inputs: [features, wKey, bKey], outputs: ['output'], attrs: { transB: A.int(1) } });
  return pruneGraph({ ...g, nodes, initializers, outputs: [{ name: 'output', dtype: 'F32', shape: null }] });
}

/** ONNX sources: adapt the convolution that reads the graph input. */
function adaptOnnxStem(g: Graph, inChannels: number, budget: number): Graph {
  const input = g.inputs[0]!;
  const stem = g.nodes.find((n) => n.op === 'Conv' && n.inputs[0] === input.name);
  const w = stem ? g.initializers.get(stem.inputs[1]!) : undefined;
  if (!stem || !w) throw new ConversionError(`no convolution reads the graph input '${input.name}' directly; cannot adapt the stem`);
  if (g.nodes.some((n) => n !== stem && n.inputs.includes(input.name))) {
    throw new ConversionError(`the graph input '${input.name}' feeds more than the stem convolution; cannot adapt it`);
  }
  checkStem(w, inChannels, budget);
  const initializers = new Map(g.initializers);
  initializers.set(stem.inputs[1]!, adaptInputConv(w, inChannels, stem.inputs[1]!));
  const shape = input.shape ? [...input.shape] : ['N', inChannels, 'H', 'W'];
  shape[1] = inChannels;
  return { ...g, initializers, inputs: [{ ...input, shape }] };
}

/** ONNX sources: end at the input of the final Linear (Gemm, or MatMul + Add), or replace it. */
function replaceOnnxHead(g: Graph, head: Exclude<Head, 'keep'>, seed: number, budget: number): Graph {
  const out = g.outputs[0]!;
  const producer = (v: string) => g.nodes.find((n) => n.outputs.includes(v));
  let last = producer(out.name);
  while (last && (last.op === 'Identity' || last.op === 'Dropout')) last = producer(last.inputs[0]!);
  let features: string | undefined;
  let weight: string | undefined;
  if (last?.op === 'Gemm' && g.initializers.has(last.inputs[1]!)) {
    features = last.inputs[0];
    weight = last.inputs[1];
  } else if (last?.op === 'Add') {
    const mm = last.inputs.map(producer).find((n) => n?.op === 'MatMul');
    if (mm && g.initializers.has(mm.inputs[1]!)) {
      features = mm.inputs[0];
      weight = mm.inputs[1];
    }
  }
  if (!features || !weight) throw new ConversionError(`the graph does not end in a Linear layer (Gemm or MatMul + Add); cannot change its head`);
  if (head === 'features') return pruneGraph({ ...g, outputs: [{ name: features, dtype: 'F32', shape: null }] });
  const transB = last!.op === 'Gemm' && last!.attrs['transB']?.type === 'int' && last!.attrs['transB'].value === 1;
  const w = g.initializers.get(weight)!;
  const featureDim = last!.op === 'Gemm' && transB ? w.shape[1]! : w.shape[0]!;
  checkNewTensor(head * (featureDim + 1), budget, `a new head of ${head} classes`);
  const fresh = initHead('torch-linear', head, featureDim, seed);
  return appendLinear(pruneGraph({ ...g, outputs: [{ name: features, dtype: 'F32', shape: null }] }), 'head.weight', 'head.bias', fresh.weight, fresh.bias);
}

/** A float32 tensor the conversion makes, written to all three outputs, checked before it is allocated. */
function checkNewTensor(elements: number, budget: number, what: string): void {
  checkOutputBytes(3 * 4 * elements, budget, what);
}

/** The stem adapted to `inChannels` (from 3) grows by `inChannels / 3`. */
function checkStem(w: Tensor, inChannels: number, budget: number): void {
  if (w.shape[1] === 3) checkNewTensor((w.data.length / 3) * inChannels, budget, `the stem adapted to ${inChannels} input channels`);
}

function adaptPreprocessing(p: { mean: number[]; std: number[] }, channels: number): { mean: number[]; std: number[] } {
  if (p.mean.length === channels) return p;
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean: new Array(channels).fill(avg(p.mean)), std: new Array(channels).fill(avg(p.std)) };
}

/**
 * Cube sides the card's multiply-adds fall back to, in order, when the default 64^3 is too small
 * for the network (Inception-v3 needs 75 planes).
 */
const FALLBACK_SIDES = [80, 96, 128, 160, 224, 299];

/**
 * The multiply-adds at the card's input size. When the size was not given and the network
 * cannot run at the default, the first cube of FALLBACK_SIDES it runs at is counted instead
 * (and named in the card); a size the caller gave that is too small is refused by name.
 */
function countMacsAtSize(graph: Graph, convs: ConvRecord[], channels: number, inputSize: [number, number, number], defaulted: boolean): { size: [number, number, number]; macs: ReturnType<typeof countMacs> } {
  const sizes: [number, number, number][] = [inputSize, ...(defaulted ? FALLBACK_SIDES.map((s): [number, number, number] => [s, s, s]) : [])];
  let tooSmall: InputTooSmallError | undefined;
  for (const size of sizes) {
    try {
      return { size, macs: countMacs(graph, convs, [1, channels, ...size]) };
    } catch (err) {
      if (!(err instanceof InputTooSmallError)) throw err;
      tooSmall = err;
    }
  }
  if (defaulted) throw new ConversionError(`the network does not run at any input size up to ${FALLBACK_SIDES.at(-1)}^3 (${tooSmall!.message})`);
  throw new InvalidArgumentError(`input size ${inputSize.join('x')} is too small for this network (${tooSmall!.message}); give a larger input size`);
}

/** Multiply-adds of the 3D graph at one input size, and of the same network with dense k^3 kernels. */
function countMacs(graph: Graph, convs: ConvRecord[], shape: number[]): { converted: number; dense: number; outputShape: number[] | undefined } {
  const facts = inferShapes(graph, { [graph.inputs[0]!.name]: shape });
  let total = 0;
  let convTotal = 0;
  for (const n of graph.nodes) {
    const out = facts.get(n.outputs[0]!);
    if (!out) continue;
    if (n.op === 'Conv' || n.op === 'ConvTranspose') {
      const w = facts.get(n.inputs[1]!)!.shape;
      // A transposed conv multiplies every input element by its row of the kernel.
      const driver = n.op === 'Conv' ? out : facts.get(n.inputs[0]!)!;
      const macs = driver.shape.reduce((a, b) => a * b, 1) * w.slice(1).reduce((a, b) => a * b, 1);
      total += macs;
      convTotal += macs;
    } else if (n.op === 'Gemm' || n.op === 'MatMul') {
      const a = facts.get(n.inputs[0]!)!.shape;
      total += out.shape.reduce((x, y) => x * y, 1) * a[a.length - 1]!;
    }
  }
  let dense = 0;
  for (const c of convs) {
    const out = facts.get(c.output);
    if (!out) continue;
    if (c.transposed) {
      // Input elements times their kernel rows: (Cout/g) * dense kernel per input channel.
      const xin = facts.get(c.input ?? '');
      if (!xin) continue;
      dense += xin.shape.reduce((a, b) => a * b, 1) * (c.outChannels / (xin.shape[1]! / c.inPerGroup)) * c.kernel3;
      continue;
    }
    const vol = out.shape.slice(2).reduce((a, b) => a * b, 1) * out.shape[0]!;
    dense += vol * c.outChannels * c.inPerGroup * c.kernel3;
  }
  const outputShape = facts.get(graph.outputs[0]!.name)?.shape;
  return { converted: total, dense: total - convTotal + dense, outputShape };
}
