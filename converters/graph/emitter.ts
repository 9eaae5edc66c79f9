/** Writes the nodes and initializers of a graph under construction, with unique names. */
import type { Tensor } from '../tensor.js';
import type { Attr, Node } from './ir.js';

/** Collects nodes and initializers; every name it hands out is unique in the graph. */
export class Emitter {
  readonly nodes: Node[] = [];
  readonly initializers = new Map<string, Tensor>();
  private readonly names = new Set<string>();
  /** The next suffix to try for a hint, so that many uses of one hint cost no rescan. */
  private readonly suffixes = new Map<string, number>();
  private readonly intCache = new Map<string, string>();
  private readonly floatCache = new Map<string, string>();

  /** Reserve names that exist already (graph inputs, kept initializers). */
  reserve(name: string): void {
    this.names.add(name);
  }

  unique(hint: string): string {
    let name = hint;
    if (this.names.has(name)) {
      let i = this.suffixes.get(hint) ?? 1;
      while (this.names.has(`${hint}_${i}`)) i++;
      this.suffixes.set(hint, i + 1);
      name = `${hint}_${i}`;
    }
    this.names.add(name);
    return name;
  }

  /** Add a node with one output; returns the output's name. */
  op(op: string, inputs: string[], attrs: Record<string, Attr> = {}, hint = op): string {
    const name = this.unique(hint);
    this.nodes.push({ name, op, domain: '', inputs: [...inputs], outputs: [name], attrs });
    return name;
  }

  /** Add a node with several outputs. */
  opN(op: string, inputs: string[], attrs: Record<string, Attr>, hint: string, outputs: number): string[] {
    const name = this.unique(hint);
    const outs = Array.from({ length: outputs }, (_, i) => (i === 0 ? name : this.unique(`${name}:${i}`)));
    this.nodes.push({ name, op, domain: '', inputs: [...inputs], outputs: outs, attrs });
    return outs;
  }

  /** Add a node whose outputs are named by the caller (keeps 2D value names in the 3D graph). */
  node(op: string, name: string, inputs: string[], outputs: string[], attrs: Record<string, Attr>): void {
    for (const o of outputs) this.names.add(o);
    this.nodes.push({ name: this.unique(name), op, domain: '', inputs: [...inputs], outputs: [...outputs], attrs });
  }

  /** A new initializer. */
  constant(hint: string, t: Tensor): string {
    const name = this.unique(hint);
    this.initializers.set(name, t);
    return name;
  }

  /** Keep an initializer under its own name. */
  keep(name: string, t: Tensor): string {
    this.names.add(name);
    this.initializers.set(name, t);
    return name;
  }

  /** A 1-D int64 constant, shared by value. */
  ints(values: number[]): string {
    const key = values.join(',');
    let name = this.intCache.get(key);
    if (name === undefined) {
      name = this.constant(`const_i64_${key.replace(/[-,]/g, (c) => (c === '-' ? 'm' : '_'))}`, {
        dtype: 'I64',
        shape: [values.length],
        data: BigInt64Array.from(values.map(BigInt)),
      });
      this.intCache.set(key, name);
    }
    return name;
  }

  /** A float32 constant of a given shape, shared by value for scalars. */
  floats(values: number[], shape: number[] = [values.length]): string {
    const key = `${shape.join('x')}:${values.join(',')}`;
    let name = this.floatCache.get(key);
    if (name === undefined) {
      name = this.constant('const_f32', { dtype: 'F32', shape, data: Float32Array.from(values) });
      if (values.length <= 4) this.floatCache.set(key, name);
    }
    return name;
  }
}
