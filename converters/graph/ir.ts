/**
 * A small in-memory form of an ONNX graph that the builders emit and the 2D -> 3D rewriter
 * transforms: nodes with plain-number attributes, value infos, and initializers that are
 * tensors of the project's tensor model (views of checkpoint bytes, never copies).
 */
import { DTYPES, type DType } from '../dtypes.js';
import { ConversionError, UnsupportedError } from '../errors.js';
import { int64, onnx, tensorFromProto, tensorToProto, type ExternalDataLoader, type Onnx } from '../formats/onnx.js';
import type { Tensor } from '../tensor.js';

/** An attribute value. Integers and floats are kept apart because ONNX types them. */
export type Attr =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'string'; value: string }
  | { type: 'ints'; value: number[] }
  | { type: 'floats'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensor'; value: Tensor };

/** One operator application. */
export interface Node {
  name: string;
  op: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attr>;
}

/** A dimension: a number, a symbolic name, or unknown. */
export type Dim = number | string | null;

/** A graph input or output: name, element type and (possibly symbolic) shape. */
export interface ValueInfo {
  name: string;
  dtype: DType;
  shape: Dim[] | null;
}

/** A whole graph, with the opset it is written for. */
export interface Graph {
  name: string;
  nodes: Node[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, Tensor>;
  opset: number;
  /** String metadata written to the model's `metadata_props`. */
  metadata: Record<string, string>;
  /**
   * Shapes of intermediate values, written to the model's `value_info`: what the writer knows
   * and shape inference cannot tell (a batch dimension a reshape would otherwise lose).
   */
  valueInfo?: ValueInfo[];
}

/** Attribute helpers: read with a default, checking the type. */
export function attrInt(node: Node, name: string, fallback: number): number {
  const a = node.attrs[name];
  if (a === undefined) return fallback;
  if (a.type !== 'int') throw new ConversionError(`node '${node.name}' (${node.op}): attribute '${name}' is not an int`);
  return a.value;
}

export function attrFloat(node: Node, name: string, fallback: number): number {
  const a = node.attrs[name];
  if (a === undefined) return fallback;
  if (a.type !== 'float') throw new ConversionError(`node '${node.name}' (${node.op}): attribute '${name}' is not a float`);
  return a.value;
}

export function attrInts(node: Node, name: string, fallback: number[] | undefined): number[] | undefined {
  const a = node.attrs[name];
  if (a === undefined) return fallback;
  if (a.type !== 'ints') throw new ConversionError(`node '${node.name}' (${node.op}): attribute '${name}' is not a list of ints`);
  return a.value;
}

export function attrString(node: Node, name: string, fallback: string): string {
  const a = node.attrs[name];
  if (a === undefined) return fallback;
  if (a.type !== 'string') throw new ConversionError(`node '${node.name}' (${node.op}): attribute '${name}' is not a string`);
  return a.value;
}

/** Shorthands to write attributes. */
export const A = {
  int: (value: number): Attr => ({ type: 'int', value }),
  float: (value: number): Attr => ({ type: 'float', value }),
  str: (value: string): Attr => ({ type: 'string', value }),
  ints: (value: number[]): Attr => ({ type: 'ints', value }),
  floats: (value: number[]): Attr => ({ type: 'floats', value }),
  tensor: (value: Tensor): Attr => ({ type: 'tensor', value }),
};

const AT = onnx.AttributeProto.AttributeType;

function attrFromProto(a: Onnx.IAttributeProto, where: string, loadExternal?: ExternalDataLoader): Attr {
  switch (a.type) {
    case AT.INT:
      return { type: 'int', value: int64(a.i) };
    case AT.FLOAT:
      return { type: 'float', value: a.f ?? 0 };
    case AT.STRING:
      return { type: 'string', value: Buffer.from(a.s ?? new Uint8Array()).toString('utf8') };
    case AT.INTS:
      return { type: 'ints', value: (a.ints ?? []).map(int64) };
    case AT.FLOATS:
      return { type: 'floats', value: [...(a.floats ?? [])] };
    case AT.STRINGS:
      return { type: 'strings', value: (a.strings ?? []).map((s) => Buffer.from(s).toString('utf8')) };
    case AT.TENSOR:
      return { type: 'tensor', value: tensorFromProto(a.t ?? {}, { loadExternal }) };
    default:
      throw new UnsupportedError(`${where}: attribute '${a.name ?? ''}' has a type (${a.type ?? 0}) this converter does not handle (subgraphs, sparse tensors)`);
  }
}

function attrToProto(name: string, a: Attr): Onnx.IAttributeProto {
  switch (a.type) {
    case 'int':
      return { name, type: AT.INT, i: a.value };
    case 'float':
      return { name, type: AT.FLOAT, f: a.value };
    case 'string':
      return { name, type: AT.STRING, s: Buffer.from(a.value, 'utf8') };
    case 'ints':
      return { name, type: AT.INTS, ints: a.value };
    case 'floats':
      return { name, type: AT.FLOATS, floats: a.value };
    case 'strings':
      return { name, type: AT.STRINGS, strings: a.value.map((s) => Buffer.from(s, 'utf8')) };
    case 'tensor':
      return { name, type: AT.TENSOR, t: tensorToProto('', a.value) };
  }
}

function valueInfoFromProto(v: Onnx.IValueInfoProto): ValueInfo {
  const t = v.type?.tensorType;
  const dtype = Object.values(DTYPES).find((d) => d.onnx === (t?.elemType ?? 1))?.name ?? 'F32';
  const shape = t?.shape ? (t.shape.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue !== undefined && d.dimValue !== null ? int64(d.dimValue) : null)) : null;
  return { name: v.name ?? '', dtype, shape };
}

function valueInfoToProto(v: ValueInfo): Onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: DTYPES[v.dtype].onnx,
        shape: v.shape ? { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : typeof d === 'string' ? { dimParam: d } : {})) } : undefined,
      },
    },
  };
}

/** Read a graph from a decoded ONNX model (main domain only; custom domains are refused). */
export function graphFromModel(model: Onnx.IModelProto, params: { file?: string; loadExternal?: ExternalDataLoader } = {}): Graph {
  const file = params.file ?? 'ONNX model';
  const g = model.graph;
  if (!g) throw new ConversionError(`${file}: model has no graph`);
  const opset = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx')?.version;
  const initializers = new Map<string, Tensor>();
  for (const init of g.initializer ?? []) initializers.set(init.name ?? '', tensorFromProto(init, { file, loadExternal: params.loadExternal }));
  const nodes: Node[] = (g.node ?? []).map((n, i) => {
    const name = n.name || `${n.opType ?? 'node'}_${i}`;
    if (n.domain && n.domain !== 'ai.onnx') {
      throw new UnsupportedError(`${file}: node '${name}' uses custom domain '${n.domain}' (op ${n.opType ?? ''}), which cannot be converted`);
    }
    const attrs: Record<string, Attr> = {};
    for (const a of n.attribute ?? []) {
      // Set as an own entry: an attribute named '__proto__' would otherwise replace the object's prototype.
      Object.defineProperty(attrs, a.name ?? '', { value: attrFromProto(a, `${file}: node '${name}'`, params.loadExternal), enumerable: true, writable: true, configurable: true });
    }
    return { name, op: n.opType ?? '', domain: '', inputs: [...(n.input ?? [])], outputs: [...(n.output ?? [])], attrs };
  });
  const metadata: Record<string, string> = {};
  for (const p of model.metadataProps ?? []) metadata[p.key ?? ''] = p.value ?? '';
  return {
    name: g.name ?? 'graph',
    nodes,
    inputs: (g.input ?? []).filter((v) => !initializers.has(v.name ?? '')).map(valueInfoFromProto),
    outputs: (g.output ?? []).map(valueInfoFromProto),
    initializers,
    opset: int64(opset ?? 13),
    metadata,
  };
}

/** Write a graph as an ONNX `ModelProto` (initializers as views of the tensors' bytes). */
export function graphToModel(graph: Graph, params: { producerVersion?: string; docString?: string } = {}): Onnx.IModelProto {
  return {
    irVersion: 8,
    producerName: 'acs-hub',
    producerVersion: params.producerVersion ?? '',
    docString: params.docString ?? '',
    opsetImport: [{ domain: '', version: graph.opset }],
    metadataProps: Object.entries(graph.metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      node: graph.nodes.map((n) => ({
        name: n.name,
        opType: n.op,
        domain: n.domain,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs).map(([k, a]) => attrToProto(k, a)),
      })),
      input: graph.inputs.map(valueInfoToProto),
      output: graph.outputs.map(valueInfoToProto),
      ...(graph.valueInfo?.length ? { valueInfo: graph.valueInfo.map(valueInfoToProto) } : {}),
      initializer: [...graph.initializers].map(([name, t]) => tensorToProto(name, t)),
    },
  };
}

/** Remove nodes whose outputs nobody uses, and initializers no node reads. */
export function pruneGraph(graph: Graph): Graph {
  const needed = new Set(graph.outputs.map((o) => o.name));
  const kept: Node[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    if (n.outputs.some((o) => needed.has(o))) {
      kept.push(n);
      for (const x of n.inputs) if (x) needed.add(x);
    }
  }
  kept.reverse();
  const initializers = new Map([...graph.initializers].filter(([k]) => needed.has(k)));
  return { ...graph, nodes: kept, initializers };
}

/** The nodes that read each value, in graph order. */
export function consumersOf(nodes: readonly Node[]): Map<string, Node[]> {
  const out = new Map<string, Node[]>();
  for (const n of nodes) {
    for (const x of n.inputs) {
      const list = out.get(x);
      if (list) list.push(n);
      else out.set(x, [n]);
    }
  }
  return out;
}

/** Order nodes so that every node comes after the producers of its inputs. */
export function topologicalSort(graph: Graph): Node[] {
  const producer = new Map<string, Node>();
  for (const n of graph.nodes) for (const o of n.outputs) producer.set(o, n);
  const done = new Set<Node>();
  const visiting = new Set<Node>();
  const out: Node[] = [];
  const visit = (n: Node): void => {
    if (done.has(n)) return;
    if (visiting.has(n)) throw new ConversionError(`graph has a cycle through node '${n.name}'`);
    visiting.add(n);
    for (const x of n.inputs) {
      const p = producer.get(x);
      if (p) visit(p);
    }
    visiting.delete(n);
    done.add(n);
    out.push(n);
  };
  for (const n of graph.nodes) visit(n);
  return out;
}
