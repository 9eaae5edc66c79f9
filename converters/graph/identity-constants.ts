/**
 * Initializers that the exporter deduplicates: `torch.onnx.export` keeps one copy of equal
 * tensors (zero biases, shared modules) and feeds the other users through `Identity` nodes.
 * Those Identity nodes are removed and their readers pointed at the initializer itself, so
 * that a convolution's weight and bias are constants again (converters/SPEC-acs.md section 18).
 */
import { topologicalSort, type Graph } from './ir.js';

/** The graph with every `Identity` of an initializer (or of such an Identity) inlined. */
export function inlineIdentityConstants(g: Graph): Graph {
  const outputs = new Set(g.outputs.map((o) => o.name));
  const alias = new Map<string, string>();
  for (const n of topologicalSort(g)) {
    const x = n.inputs[0];
    if (n.op !== 'Identity' || !x || n.outputs.length !== 1 || outputs.has(n.outputs[0]!)) continue;
    const src = alias.get(x) ?? x;
    if (g.initializers.has(src)) alias.set(n.outputs[0]!, src);
  }
  if (alias.size === 0) return g;
  const nodes = g.nodes
    .filter((n) => !(n.op === 'Identity' && alias.has(n.outputs[0]!)))
    .map((n) => (n.inputs.some((x) => alias.has(x)) ? { ...n, inputs: n.inputs.map((x) => alias.get(x) ?? x) } : n));
  return { ...g, nodes };
}
