/**
 * Folding BatchNormalization into the convolution before it (inference only): the kernel is
 * scaled per output channel by gamma / sqrt(var + eps) and the bias shifted, so the BN costs
 * nothing at run time. Onnxruntime does this itself for a Conv followed by a BN, but not once
 * an ACS convolution has become three convolutions and a Concat; hence it is done here, on
 * the 2D graph, before the conversion (converters/SPEC-acs.md section 10).
 */
import type { Tensor } from '../tensor.js';
import { attrFloat, consumersOf, type Graph, type Node } from './ir.js';

/** The graph with every Conv -> BatchNormalization pair (the Conv used only by the BN) folded. */
export function foldBatchNorm(g: Graph): Graph {
  const consumers = consumersOf(g.nodes);
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const initializers = new Map(g.initializers);
  const outputs = new Set(g.outputs.map((o) => o.name));
  const drop = new Set<Node>();
  const replace = new Map<Node, Node>();
  for (const bn of g.nodes) {
    if (bn.op !== 'BatchNormalization' || bn.outputs.length !== 1) continue;
    const conv = producer.get(bn.inputs[0]!);
    if (!conv || conv.op !== 'Conv' || (consumers.get(conv.outputs[0]!) ?? []).length !== 1 || outputs.has(conv.outputs[0]!)) continue;
    const w = initializers.get(conv.inputs[1]!);
    const params = bn.inputs.slice(1).map((x) => initializers.get(x));
    if (!w || w.dtype !== 'F32' || params.some((p) => !p || p.dtype !== 'F32')) continue;
    const b = conv.inputs[2] ? initializers.get(conv.inputs[2]) : undefined;
    if (conv.inputs[2] && !b) continue;
    const [gamma, beta, mean, variance] = params.map((p) => p!.data as Float32Array) as [Float32Array, Float32Array, Float32Array, Float32Array];
    const eps = attrFloat(bn, 'epsilon', 1e-5);
    const O = w.shape[0]!;
    const per = w.data.length / O;
    const src = w.data as Float32Array;
    const wf = new Float32Array(src.length);
    const bf = new Float32Array(O);
    for (let o = 0; o < O; o++) {
      const s = gamma[o]! / Math.sqrt(variance[o]! + eps);
      for (let i = o * per; i < (o + 1) * per; i++) wf[i] = src[i]! * s;
      bf[o] = ((b ? (b.data as Float32Array)[o]! : 0) - mean[o]!) * s + beta[o]!;
    }
    // A weight shared by several convolutions gets one folded copy per BatchNorm.
    const wName = unused(initializers, conv.inputs[1]!, ':bn');
    initializers.set(wName, { ...w, data: wf } as Tensor);
    const bName = unused(initializers, `${conv.inputs[1]!.replace(/weight$/, '')}bias`, ':bn');
    initializers.set(bName, { dtype: 'F32', shape: [O], data: bf });
    replace.set(conv, { ...conv, inputs: [conv.inputs[0]!, wName, bName], outputs: [...bn.outputs] });
    drop.add(bn);
  }
  if (drop.size === 0) return g;
  const nodes = g.nodes.filter((n) => !drop.has(n)).map((n) => replace.get(n) ?? n);
  const used = new Set(nodes.flatMap((n) => n.inputs));
  for (const k of [...initializers.keys()]) if (!used.has(k)) initializers.delete(k);
  return { ...g, nodes, initializers };
}

/** `${base}${tag}`, or `${base}${tag}${i}` for the first i that is not taken yet. */
function unused(taken: ReadonlyMap<string, unknown>, base: string, tag: string): string {
  let name = `${base}${tag}`;
  for (let i = 2; taken.has(name); i++) name = `${base}${tag}${i}`;
  return name;
}
