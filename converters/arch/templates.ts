/**
 * Architectures from templates: weightless ONNX graphs of torchvision networks
 * (converters/arch/templates, written by tools/templates/export_templates.py), recognised from
 * a state dict's keys and shapes and filled from it by name. The filled 2D graph then takes
 * the ONNX path of the converter like any exported network. See converters/SPEC-acs.md,
 * "Architectures from templates".
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { ConversionError, UnsupportedError } from '../errors.js';
import { decodeOnnx, type Onnx } from '../formats/onnx.js';
import { graphFromModel, pruneGraph, type Graph, type Node, type ValueInfo } from '../graph/ir.js';
import type { StateDict, Tensor } from '../tensor.js';
import type { ArchBuilder, BuildOptions, BuiltNetwork, Detected, HeadInit } from './types.js';

/** One template of templates/index.json. */
export interface TemplateEntry {
  /** The torchvision builder's name, e.g. `regnet_y_400mf`. */
  name: string;
  family: string;
  task: 'classification' | 'segmentation';
  /** The gzipped ONNX file, in the templates folder. */
  file: string;
  /** Number of state-dict tensors the graph reads. */
  keys: number;
  /** sha256 of the sorted `key<TAB>shape` lines of those tensors (see `signatureLines`). */
  signature: string;
  /** sha256 of the sorted keys alone. */
  keySignature: string;
  /** Key prefixes of heads that only train (GoogLeNet's `aux1.`): allowed in a state dict, unused. */
  auxiliary: string[];
  /** The first convolution's weight key. */
  stem: string;
  /** The final classifier's keys; null for segmentation networks. */
  classifier: { weight: string; bias: string } | null;
  /**
   * The tensors whose first dimension is the number of classes: the classifier's, a
   * segmentation network's last layers (LR-ASPP's two), and those of its auxiliary heads. The
   * number may differ from the template's; the tensors the network reads must agree on it.
   */
  classes: string[];
  headInit: HeadInit | null;
}

/** The index of the shipped templates. */
export interface TemplateIndex {
  torchvision: string;
  torch: string;
  opset: number;
  templates: TemplateEntry[];
}

/** The folder of the shipped templates. */
export const TEMPLATES_DIR = new URL('../../../converters/arch/templates/', import.meta.url);

let index: TemplateIndex | undefined;

/** The shipped templates' index (read once). */
export function templateIndex(): TemplateIndex {
  index ??= JSON.parse(readFileSync(new URL('index.json', TEMPLATES_DIR), 'utf8')) as TemplateIndex;
  return index;
}

const NBT = '.num_batches_tracked';

/** Dimension `i` of tensor `key` is free: the number of classes, or the stem's input channels. */
function freeDim(entry: Pick<TemplateEntry, 'classes' | 'stem'>, key: string, i: number): boolean {
  return (i === 0 && entry.classes.includes(key)) || (i === 1 && key === entry.stem);
}

/**
 * The lines a signature hashes: `key<TAB>d0xd1x...` for each tensor the template reads, the
 * number of classes and the stem's input channels written `*`; without `shapes`, the keys alone.
 */
export function signatureLines(shapes: ReadonlyMap<string, readonly number[]>, entry: Pick<TemplateEntry, 'classes' | 'stem'>, withShapes = true): string[] {
  return [...shapes].map(([k, shape]) => (withShapes ? `${k}\t${shape.map((d, i) => (freeDim(entry, k, i) ? '*' : String(d))).join('x')}` : k));
}

/** sha256 of the lines sorted and joined by newlines (as the export script computes it). */
export function signature(lines: string[]): string {
  return createHash('sha256').update([...lines].sort().join('\n')).digest('hex');
}

/**
 * The tensors of `sd` a template would read: without `num_batches_tracked` (kept only beside
 * a BatchNorm's running mean) and without the template's auxiliary heads. Undefined when a
 * key is neither (then the key set cannot match).
 */
function readKeys(sd: StateDict, entry: TemplateEntry): Map<string, readonly number[]> | undefined {
  const out = new Map<string, readonly number[]>();
  for (const [k, t] of sd) {
    if (entry.auxiliary.some((p) => k.startsWith(p))) continue;
    if (k.endsWith(NBT)) {
      if (!sd.has(`${k.slice(0, -NBT.length)}.running_mean`)) return undefined;
      continue;
    }
    out.set(k, t.shape);
    if (out.size > entry.keys) return undefined;
  }
  return out;
}

/** How a state dict compares with one template. */
type Match = 'exact' | 'keys' | 'none';

function compare(sd: StateDict, entry: TemplateEntry): Match {
  const keys = readKeys(sd, entry);
  if (!keys || keys.size !== entry.keys) return 'none';
  if (signature(signatureLines(keys, entry, false)) !== entry.keySignature) return 'none';
  return signature(signatureLines(keys, entry)) === entry.signature ? 'exact' : 'keys';
}

const decoded = new Map<string, Onnx.ModelProto>();

/** A template's decoded ONNX model (read once; trusted: shipped with the converter). */
function templateModel(entry: TemplateEntry): Onnx.ModelProto {
  let model = decoded.get(entry.name);
  if (!model) {
    model = decodeOnnx(gunzipSync(readFileSync(new URL(entry.file, TEMPLATES_DIR))), { file: `template ${entry.file}` });
    decoded.set(entry.name, model);
  }
  return model;
}

/** The template's graph, without weights: its input, and the tensors it reads (graph inputs). */
export function loadTemplate(entry: TemplateEntry): { graph: Graph; tensors: ValueInfo[] } {
  const graph = graphFromModel(templateModel(entry), { file: `template ${entry.file}` });
  const [input, ...tensors] = graph.inputs;
  return { graph: { ...graph, inputs: [input!] }, tensors };
}

/** The first tensor whose shape differs from the template's, for the error of a near match. */
function firstDifference(sd: StateDict, entry: TemplateEntry): string {
  for (const spec of loadTemplate(entry).tensors) {
    const t = sd.get(spec.name);
    if (t && !fits(t, spec, entry)) return `'${spec.name}' is ${t.shape.join('x')}, ${entry.name} has ${(spec.shape ?? []).join('x')}`;
  }
  return 'the shapes differ';
}

/** A tensor fits a template's tensor: same shape, except the number of classes and the stem's input channels. */
function fits(t: Tensor, spec: ValueInfo, entry: TemplateEntry): boolean {
  const shape = spec.shape ?? [];
  if (t.shape.length !== shape.length) return false;
  return t.shape.every((d, i) => d === shape[i] || freeDim(entry, spec.name, i));
}

/**
 * Check the free dimensions of a state dict that matches `entry`: the stem takes at least one
 * input channel, and the first dimension of every class tensor the network reads is one number
 * of at least 1. Auxiliary heads are not compared: a template's network never reads them (they
 * only train).
 */
function checkFreeDims(sd: StateDict, entry: TemplateEntry): void {
  const stem = sd.get(entry.stem)?.shape;
  if (stem && !(stem[1]! >= 1)) throw new ConversionError(`tensor '${entry.stem}' is ${stem.join('x')}: the stem of ${entry.name} needs at least one input channel`);
  let first: string | undefined;
  for (const key of entry.classes) {
    const n = sd.get(key)?.shape[0];
    if (n === undefined || entry.auxiliary.some((p) => key.startsWith(p))) continue;
    if (n < 1) throw new ConversionError(`tensor '${key}' is ${sd.get(key)!.shape.join('x')}: ${entry.name} needs at least one class`);
    if (first === undefined) first = key;
    const m = sd.get(first)!.shape[0]!;
    if (n !== m) throw new ConversionError(`tensors '${first}' (${m} classes) and '${key}' (${n} classes) disagree on the number of classes of ${entry.name}`);
  }
}

function detected(entry: TemplateEntry, sd: StateDict): Detected {
  const cls = entry.classifier;
  return {
    family: entry.family,
    arch: entry.name,
    layout: 'torchvision',
    task: entry.task,
    classifier: cls ? { weight: cls.weight, bias: sd.has(cls.bias) ? cls.bias : undefined } : { weight: '' },
    stem: entry.stem,
    headInit: entry.headInit ?? 'torch-linear',
    featureDim: cls ? (sd.get(cls.weight)?.shape[1] ?? 0) : 0,
    headFits3d: true,
    auxiliary: entry.auxiliary,
  };
}

function entryOf(arch: string): TemplateEntry | undefined {
  return templateIndex().templates.find((e) => e.name === arch);
}

/** Fill a template from a state dict: the 2D network, its classifier cut off for `features`. */
function build(sd: StateDict, det: Detected, options: BuildOptions): BuiltNetwork {
  const entry = entryOf(det.arch);
  if (!entry) throw new ConversionError(`no architecture template '${det.arch}'`);
  const template = loadTemplate(entry);
  const graph = pruneGraph(options.features ? cutClassifier(template.graph, entry) : template.graph);
  const read = new Set(graph.nodes.flatMap((n) => n.inputs));
  const initializers = new Map<string, Tensor>();
  for (const spec of template.tensors) {
    if (!read.has(spec.name)) continue;
    const t = sd.get(spec.name);
    if (!t) throw new ConversionError(`the state dict has no tensor '${spec.name}', which ${entry.name} reads`);
    if (!fits(t, spec, entry)) throw new ConversionError(`tensor '${spec.name}' is ${t.shape.join('x')}; ${entry.name} needs ${(spec.shape ?? []).join('x')}`);
    if (t.dtype !== spec.dtype) throw new ConversionError(`tensor '${spec.name}' is ${t.dtype}; ${entry.name} needs ${spec.dtype}`);
    initializers.set(spec.name, t);
  }
  const input = graph.inputs[0]!;
  const channels = initializers.get(entry.stem)?.shape[1];
  if (channels === undefined) throw new ConversionError(`${entry.name}: the graph does not read its stem '${entry.stem}'`);
  const readers = graph.nodes.filter((n) => n.inputs.includes(input.name));
  if (channels !== 3 && (readers.length !== 1 || readers[0]!.inputs[1] !== entry.stem)) {
    throw new UnsupportedError(`${entry.name} reads its input's channels one by one before the stem (transform_input); its stem cannot take ${channels} channels`);
  }
  const shape = input.shape ? [...input.shape] : ['N', channels, 'H', 'W'];
  shape[1] = channels;
  const out: Graph = { ...graph, name: entry.name, inputs: [{ ...input, shape }], initializers };
  return { graph: out, detected: det };
}

/** End the graph at the pooled features (N, C) that reach the classifier. */
function cutClassifier(graph: Graph, entry: TemplateEntry): Graph {
  if (!entry.classifier) throw new UnsupportedError(`${entry.name} is a segmentation network: its head is kept (head "keep")`);
  const weight = entry.classifier.weight;
  const head = graph.nodes.find((n) => n.inputs[1] === weight);
  if (!head) throw new ConversionError(`${entry.name}: no node reads the classifier '${weight}'`);
  const output = graph.outputs[0]!.name;
  const nodes: Node[] = graph.nodes.filter((n) => !n.outputs.includes(output));
  let features = head.inputs[0]!;
  if (head.op === 'Conv') {
    // SqueezeNet classifies with a 1x1 convolution, then pools: its features are the pooled input.
    nodes.push(
      { name: 'features_pool', op: 'GlobalAveragePool', domain: '', inputs: [features], outputs: ['features_pool'], attrs: {} },
      { name: 'features_flatten', op: 'Flatten', domain: '', inputs: ['features_pool'], outputs: ['features'], attrs: {} },
    );
    features = 'features';
  } else if (head.op !== 'Gemm') {
    throw new ConversionError(`${entry.name}: the classifier '${weight}' is read by a ${head.op}, not a Gemm or Conv`);
  }
  nodes.push({ name: output, op: 'Identity', domain: '', inputs: [features], outputs: [output], attrs: {} });
  return { ...graph, nodes, outputs: [{ name: output, dtype: 'F32', shape: null }] };
}

/**
 * The template builder: one architecture per template. A state dict is recognised when its
 * keys are exactly a template's (plus `num_batches_tracked` and auxiliary heads, optional) and
 * every shape matches (the number of classes and the stem's input channels may differ; the
 * heads must agree on the classes).
 */
export const templates: ArchBuilder = {
  family: 'template',
  get architectures(): readonly string[] {
    return templateIndex().templates.map((e) => e.name);
  },

  detect(sd: StateDict, arch?: string): Detected | undefined {
    const candidates = arch === undefined ? templateIndex().templates : templateIndex().templates.filter((e) => e.name === arch || e.family === arch);
    const near: TemplateEntry[] = [];
    for (const entry of candidates) {
      const m = compare(sd, entry);
      if (m === 'exact') {
        checkFreeDims(sd, entry);
        return detected(entry, sd);
      }
      if (m === 'keys') near.push(entry);
    }
    if (near.length > 0) {
      const entry = near[0]!;
      throw new ConversionError(`the state dict has the keys of ${entry.name} but not its shapes (${firstDifference(sd, entry)})`);
    }
    return undefined;
  },

  build,
};
