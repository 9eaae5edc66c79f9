/**
 * The size of a conversion's outputs (model.safetensors, model.pth, model.onnx), predicted
 * from the 2D graph's shapes before anything is converted, so that a conversion past
 * `budgets.conversionOutputBytes` is refused before it allocates.
 *
 * What makes outputs larger than their input: i3d stacks each k x k kernel k times, mean- and
 * soft-ACS write each kernel once per view, and the 3D graph writes a kernel (and a constant
 * broadcast against a feature map) once for every node that uses it, so one weight shared by
 * many nodes is written many times; each lowered convolution also emits tens of nodes whose
 * names repeat its own. The prediction is an upper bound of the encoded bytes: headers, names
 * and emitted nodes are counted generously (test/converters/output-size.test.ts holds it
 * against the encoders, long names and shared weights included).
 */
import { budgetSetting } from './budgets.js';
import { LimitExceededError } from './errors.js';
import type { Attr, Graph, Node } from './graph/ir.js';
import type { ConvMode } from './graph/lower-conv.js';
import { ELEMENTWISE, SHAPE_SLOTS } from './graph/to3d.js';
import type { StateDict } from './tensor.js';
import { own } from './own.js';

/** Predicted bytes of each output, and their sum. */
export interface OutputSizes {
  safetensors: number;
  pth: number;
  onnx: number;
  total: number;
}

/** Per tensor: a safetensors header entry, the pickle's opcodes and zip headers, or a TensorProto's fields. */
const TENSOR_OVERHEAD = 1024;
/** Per file: headers, the end of an archive, the model's own fields. */
const FILE_OVERHEAD = 64 * 1024;
/** Bound on the nodes a lowered convolution emits times the references each makes to the names of the 2D node. */
const CONV_NAME_COPIES = 512;
/** The same for every other node (a Reshape rebuilds its target from Shape and Gather nodes). */
const NODE_NAME_COPIES = 32;
/** Per node: the int64 vectors of axes, pads or shapes it is rewritten with (at most 32 entries each). */
const NODE_CONSTANTS = 4096;

/** UTF-8 bytes of a name, or of JSON text with every character escaped (6 bytes). */
function textBytes(s: string, escaped = false): number {
  return escaped ? 6 * s.length : Buffer.byteLength(s, 'utf8');
}

function attrBytes(a: Attr): number {
  switch (a.type) {
    case 'ints':
      return 16 + 10 * a.value.length;
    case 'floats':
      return 16 + 5 * a.value.length;
    case 'string':
      return 16 + textBytes(a.value);
    case 'strings':
      return 16 + a.value.reduce((n, s) => n + 8 + textBytes(s), 0);
    case 'tensor':
      return TENSOR_OVERHEAD + a.value.data.byteLength;
    default:
      return 16;
  }
}

/** Bytes and elements of the constants of a graph: its initializers and its Constant nodes' values. */
function constants(graph: Graph): Map<string, { bytes: number; numel: number; shape: readonly number[] }> {
  const out = new Map<string, { bytes: number; numel: number; shape: readonly number[] }>();
  for (const [k, t] of graph.initializers) out.set(k, { bytes: t.data.byteLength, numel: t.data.length, shape: t.shape });
  for (const n of graph.nodes) {
    if (n.op !== 'Constant' || !n.outputs[0]) continue;
    const a = Object.values(n.attrs)[0];
    if (a?.type === 'tensor') out.set(n.outputs[0], { bytes: a.value.data.byteLength, numel: a.value.data.length, shape: a.value.shape });
    else if (a?.type === 'ints' || a?.type === 'floats') out.set(n.outputs[0], { bytes: 8 * a.value.length, numel: a.value.length, shape: [a.value.length] });
  }
  return out;
}

/** How many times a mode writes a convolution's kernel elements (float32) in the 3D graph. */
function kernelCopies(mode: ConvMode, shape: readonly number[], node?: Node): number {
  if (mode === 'i3d') return Math.max(shape[2] ?? 1, shape[3] ?? 1, 1);
  if (node && isPointwise(node, shape)) return 1;
  return mode === 'mean-acs' || mode === 'soft-acs' ? 3 : 1;
}

/** An unpadded 1x1 convolution: the same 1x1x1 convolution in every mode. */
function isPointwise(node: Node, shape: readonly number[]): boolean {
  const ints = (name: string) => {
    const a = node.attrs[name];
    return a?.type === 'ints' ? a.value : [];
  };
  return shape[2] === 1 && shape[3] === 1 && ints('kernel_shape').every((v) => v === 1) && ints('pads').every((v) => v === 0);
}

function onnxBytes(graph: Graph, mode: ConvMode, text: number): number {
  const consts = constants(graph);
  let n = FILE_OVERHEAD + 2 * text + 2 * textBytes(graph.name);
  for (const [k, v] of Object.entries(graph.metadata)) n += 16 + textBytes(k) + textBytes(v);
  for (const v of [...graph.inputs, ...graph.outputs]) n += 256 + 2 * textBytes(v.name);
  // A constant read other than as a kernel may be kept once under its own name.
  const kept = new Set(graph.nodes.flatMap((node) => node.inputs.filter((x, i) => !isConvOp(node) || i !== 1)));
  for (const [k, c] of consts) if (kept.has(k)) n += TENSOR_OVERHEAD + textBytes(k) + c.bytes;
  for (const node of graph.nodes) n += nodeBytes(node, consts, mode);
  return n;
}

function nodeBytes(node: Node, consts: ReturnType<typeof constants>, mode: ConvMode): number {
  const names = 64 + textBytes(node.name) + [...node.inputs, ...node.outputs].reduce((a, x) => a + textBytes(x), 0);
  let n = Object.entries(node.attrs).reduce((a, [k, v]) => a + 2 * (textBytes(k) + attrBytes(v)), 0);
  const w = isConvOp(node) ? consts.get(node.inputs[1] ?? '') : undefined;
  if (w) {
    // Its kernel (folded with a BatchNorm, sliced, inflated or repeated per view), and per
    // output channel: bias parts, a folded bias, soft-ACS weights.
    const out = outChannels(node, w.shape);
    return n + CONV_NAME_COPIES * names + 4 * w.numel * kernelCopies(mode, w.shape, node) + 32 * out + 8 * TENSOR_OVERHEAD;
  }
  n += NODE_NAME_COPIES * names + NODE_CONSTANTS;
  const slots = own(SHAPE_SLOTS, node.op) ?? [];
  node.inputs.forEach((x, i) => {
    const c = consts.get(x);
    if (!c) return;
    // A shape or axes vector is rewritten as int64, an axis of it doubled (H becomes D, H); a
    // constant broadcast against a feature map is written again with a unit D axis.
    if (slots.includes(i)) n += 16 * c.numel;
    else if (ELEMENTWISE.has(node.op)) n += TENSOR_OVERHEAD + c.bytes;
  });
  return n;
}

function isConvOp(node: Node): boolean {
  return node.op === 'Conv' || node.op === 'ConvTranspose';
}

/** Output channels of a Conv `(O, C/g, kh, kw)` or a ConvTranspose `(C, O/g, kh, kw)`. */
function outChannels(node: Node, shape: readonly number[]): number {
  if (node.op !== 'ConvTranspose') return shape[0] ?? 1;
  const g = node.attrs['group'];
  return (shape[1] ?? 1) * (g?.type === 'int' ? Math.max(1, g.value) : 1);
}

function stateDictBytes(sd: StateDict, kernels: ReadonlyMap<string, number>, mode: ConvMode, text: number): number {
  let n = FILE_OVERHEAD + text;
  for (const [k, t] of sd) {
    n += TENSOR_OVERHEAD + textBytes(k, true) + t.data.byteLength;
    if (!kernels.has(k) || t.shape.length !== 4) continue;
    if (mode === 'i3d') n += 4 * t.data.length * kernelCopies(mode, t.shape) - t.data.byteLength;
    else if (mode === 'soft-acs') n += TENSOR_OVERHEAD + textBytes(`${k}.soft_w_core`, true) + 12 * kernels.get(k)!;
  }
  return n;
}

/** Parameters of `predictOutputSizes`. */
export interface PredictOutputParams {
  /** The 2D graph about to be converted. */
  graph: Graph;
  /** The state dict about to be converted (written to model.safetensors and model.pth). */
  stateDict: StateDict;
  mode: ConvMode;
  /** Text the outputs carry besides names (metadata: the source's URL or file, splits). */
  text?: string;
}

/** Predict the bytes of a conversion's outputs (an upper bound; see the module comment). */
export function predictOutputSizes(p: PredictOutputParams): OutputSizes {
  const kernels = new Map<string, number>();
  for (const n of p.graph.nodes) {
    const w = n.inputs[1] !== undefined ? p.stateDict.get(n.inputs[1]) ?? p.graph.initializers.get(n.inputs[1]) : undefined;
    if (isConvOp(n) && w) kernels.set(n.inputs[1]!, Math.max(kernels.get(n.inputs[1]!) ?? 0, outChannels(n, w.shape)));
  }
  const text = textBytes(p.text ?? '', true);
  const sd = stateDictBytes(p.stateDict, kernels, p.mode, text);
  const onnx = onnxBytes(p.graph, p.mode, text);
  return { safetensors: sd, pth: sd, onnx, total: 2 * sd + onnx };
}

/** Refuse a conversion whose outputs (`what`, of `bytes`) would pass `budget` bytes. */
export function checkOutputBytes(bytes: number | OutputSizes, budget: number, what: string): void {
  const total = typeof bytes === 'number' ? bytes : bytes.total;
  if (total <= budget) return;
  const parts = typeof bytes === 'number' ? '' : ` (model.safetensors ${bytes.safetensors}, model.pth ${bytes.pth}, model.onnx ${bytes.onnx})`;
  throw new LimitExceededError(`${what} would write up to ${total} bytes${parts}, more than ${budget} (${budgetSetting('conversionOutputBytes')})`);
}
