/**
 * Python names for a generated model.py: identifiers for the values of `forward`, and the tree
 * of modules and tensors of `Model.__init__`, laid out by the state dict's dotted names so that
 * `Model().state_dict()` has the converted checkpoint's keys. A name that cannot be a module
 * path as it is (an ONNX export's `onnx::Conv_144`, a clash with a module attribute) gets a
 * Python name of its own, and the model keeps a table from that name to the checkpoint's.
 */

const KEYWORDS = new Set([
  'False', 'None', 'True', 'and', 'as', 'assert', 'async', 'await', 'break', 'class', 'continue', 'def', 'del', 'elif', 'else',
  'except', 'finally', 'for', 'from', 'global', 'if', 'import', 'in', 'is', 'lambda', 'nonlocal', 'not', 'or', 'pass', 'raise',
  'return', 'try', 'while', 'with', 'yield',
  // names the generated code uses
  'self', 'input', 'torch', 'nn', 'F', 'math', 'float', 'getattr', 'super', 'OrderedDict',
]);

/** Attributes of `nn.Module` and `nn.ModuleDict` that a child or a tensor cannot be named. */
const RESERVED = new Set([
  'training', 'forward', 'state_dict', 'load_state_dict', 'parameters', 'buffers', 'children', 'modules', 'train', 'eval', 'cuda',
  'cpu', 'to', 'type', 'float', 'double', 'half', 'bfloat16', 'apply', 'zero_grad', 'share_memory', 'extra_repr', 'register_buffer',
  'register_parameter', 'add_module', 'get_submodule', 'get_parameter', 'get_buffer', 'requires_grad_', 'named_parameters',
  'named_buffers', 'named_children', 'named_modules', 'keys', 'items', 'values', 'update', 'pop', 'clear', 'dump_patches',
  'call_super_init', 'SOURCE_NAMES',
]);

/** Is `s` usable as a Python identifier (and attribute) in generated code? */
export function isIdentifier(s: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(s) && !KEYWORDS.has(s);
}

/** A Python identifier made from any name: `layer1.0.conv1` -> `layer1_0_conv1`. */
export function identifier(hint: string): string {
  let s = hint.replace(/[^A-Za-z0-9_]+/g, '_').replace(/_+/g, '_').replace(/^_+|_+$/g, '');
  if (s === '') s = 'v';
  if (/^[0-9]/.test(s)) s = `v${s}`;
  return isIdentifier(s) ? s : `${s}_`;
}

/**
 * The module path of a node of a `torch.onnx.export` graph, from its scoped name:
 * `/layer1/layer1.0/conv1/Conv` -> `layer1.0.conv1`, `/stem/stem.0/Conv` -> `stem.0`
 * (a scope that repeats its parent's name with a dotted suffix is that parent's child).
 * Undefined for names without a scope.
 */
export function scopePath(nodeName: string): string | undefined {
  if (!nodeName.startsWith('/')) return undefined;
  const scopes = nodeName.split('/').slice(1, -1).filter((s) => s !== '');
  if (scopes.length === 0) return undefined;
  const path: string[] = [];
  let previous = '';
  for (const s of scopes) {
    path.push(previous !== '' && s.startsWith(`${previous}.`) ? s.slice(previous.length + 1) : s);
    previous = s;
  }
  return path.join('.');
}

/** A readable variable name for an ONNX value: `/stem/stem.0/Conv_output_0` -> `stem_0_conv`. */
export function valueHint(name: string): string {
  const m = /^(\/.*)_output_(\d+)$/.exec(name);
  const base = m ? m[1]! : name;
  const suffix = m && m[2] !== '0' ? `_${m[2]}` : '';
  if (base.startsWith('/')) {
    const op = base.slice(base.lastIndexOf('/') + 1);
    const scope = scopePath(base);
    return `${scope ? `${scope}.` : ''}${op.toLowerCase()}${suffix}`;
  }
  return `${base}${suffix}`;
}

/** Hands out unique identifiers. */
export class Names {
  private readonly used = new Set<string>();

  constructor(reserved: Iterable<string> = []) {
    for (const r of reserved) this.used.add(r);
  }

  /** A fresh identifier derived from `hint`. */
  fresh(hint: string): string {
    const base = identifier(hint);
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
}

/** A tensor registered on a module: a parameter, or a buffer (BatchNorm statistics). */
export interface TreeTensor {
  kind: 'parameter' | 'buffer';
  /** The Python expression of its initial value, e.g. `torch.zeros(16, 1, 1)`. */
  init: string;
  /** A comment on its line. */
  note?: string;
  /** False for constants that are not part of the state dict. @default true */
  persistent?: boolean;
}

interface Container {
  kind: 'container';
  children: Map<string, TreeNode>;
}

interface Leaf {
  kind: 'module';
  /** The Python constructor call. */
  ctor: string;
  /** Local names of the tensors the module registers itself. */
  owns: Set<string>;
  /** Tensors added to it after construction. */
  extra: Map<string, TreeTensor>;
}

type TreeNode = Container | Leaf | { kind: 'tensor'; tensor: TreeTensor };

/** The modules and tensors of `Model`, by path; see the module comment. */
export class ModuleTree {
  private readonly root: Container = { kind: 'container', children: new Map() };
  /** Model path -> checkpoint key, where they differ. */
  readonly sourceNames = new Map<string, string>();
  private readonly renamed = new Names();

  /**
   * Add a module under `path` (the checkpoint's dotted name when it can be one) that owns the
   * tensors `owns` (local name -> checkpoint key). Returns the path it got.
   */
  addModule(path: string, ctor: string, owns: Record<string, string>): string {
    const leaf: Leaf = { kind: 'module', ctor, owns: new Set(Object.keys(owns)), extra: new Map() };
    let segs = this.place(path.split('.'), leaf);
    if (!segs) segs = this.place([this.renamed.fresh(path)], leaf)!;
    const at = segs.join('.');
    for (const [local, key] of Object.entries(owns)) if (`${at}.${local}` !== key) this.sourceNames.set(`${at}.${local}`, key);
    return at;
  }

  /** Add a tensor that no module owns, under its checkpoint key when it can be a path. */
  addTensor(key: string, tensor: TreeTensor): string {
    const segs = key.split('.');
    const leafName = segs[segs.length - 1]!;
    let placed: string[] | undefined;
    if (isIdentifier(leafName) && !RESERVED.has(leafName)) placed = this.place(segs, { kind: 'tensor', tensor });
    if (!placed) placed = this.place([this.renamed.fresh(key)], { kind: 'tensor', tensor })!;
    const at = placed.join('.');
    if (at !== key) this.sourceNames.set(at, key);
    return at;
  }

  /** Put `node` at `segs`, creating containers; undefined when the place is taken or invalid. */
  private place(segs: string[], node: TreeNode): string[] | undefined {
    if (segs.some((s) => s === '' || RESERVED.has(s)) || (!isIdentifier(segs[0]!) && !/^[0-9]+$/.test(segs[0]!))) return undefined;
    let parent: Container | Leaf = this.root;
    for (const s of segs.slice(0, -1)) {
      if (parent.kind === 'module') return undefined;
      const next: TreeNode | undefined = parent.children.get(s);
      if (next === undefined) {
        const c: Container = { kind: 'container', children: new Map() };
        parent.children.set(s, c);
        parent = c;
      } else if (next.kind === 'tensor') return undefined;
      else parent = next;
    }
    const last = segs[segs.length - 1]!;
    if (parent.kind === 'module') {
      if (node.kind !== 'tensor' || parent.owns.has(last) || parent.extra.has(last)) return undefined;
      parent.extra.set(last, node.tensor);
      return segs;
    }
    if (parent.children.has(last)) return undefined;
    parent.children.set(last, node);
    return segs;
  }

  /** The Python expression that reaches `path` from `self`: `self.layer1['0'].conv1`. */
  access(path: string): string {
    let e = 'self';
    path.split('.').forEach((s, i) => {
      if (isIdentifier(s) && !RESERVED.has(s)) e += `.${s}`;
      else if (i === 0) e = `getattr(self, ${pyString(s)})`;
      else e += `[${pyString(s)}]`;
    });
    return e;
  }

  /** The lines of `__init__` that build the tree (indented for a method body). */
  initLines(indent = '        '): string[] {
    const lines: string[] = [];
    const later: string[] = [];
    for (const [name, node] of this.root.children) {
      const target = isIdentifier(name) && !RESERVED.has(name) ? `self.${name}` : undefined;
      if (node.kind === 'tensor') {
        lines.push(tensorLine(target ?? `self.${identifier(name)}`, node.tensor, indent));
        continue;
      }
      const value = this.nodeExpr(node, indent, name, later);
      lines.push(target ? `${indent}${target} = ${value}` : `${indent}self.add_module(${pyString(name)}, ${value})`);
    }
    return [...lines, ...later];
  }

  private nodeExpr(node: Container | Leaf, indent: string, path: string, later: string[]): string {
    if (node.kind === 'module') {
      for (const [name, t] of node.extra) later.push(tensorLine(`${this.access(path)}.${name}`, t, '        '));
      return node.ctor;
    }
    const inner = `${indent}    `;
    const items: string[] = [];
    for (const [name, child] of node.children) {
      if (child.kind === 'tensor') {
        later.push(tensorLine(this.access(`${path}.${name}`), child.tensor, '        '));
        continue;
      }
      items.push(`${inner}${pyString(name)}: ${this.nodeExpr(child, inner, `${path}.${name}`, later)},`);
    }
    return items.length ? `nn.ModuleDict({\n${items.join('\n')}\n${indent}})` : 'nn.ModuleDict()';
  }
}

function tensorLine(target: string, t: TreeTensor, indent: string): string {
  const note = t.note ? `  # ${t.note}` : '';
  if (t.kind === 'parameter') return `${indent}${target} = nn.Parameter(${t.init})${note}`;
  const dot = target.lastIndexOf('.');
  const persistent = t.persistent === false ? ', persistent=False' : '';
  return `${indent}${target.slice(0, dot)}.register_buffer(${pyString(target.slice(dot + 1))}, ${t.init}${persistent})${note}`;
}

/** A Python string literal. */
export function pyString(s: string): string {
  return `'${pyEscape(s)}'`;
}

/**
 * `s` as the inside of a Python string literal, single-quoted or a `"""` docstring: backslashes,
 * both quotes, control characters, line separators and lone surrogates as escapes, so that
 * no name from a checkpoint can end the literal or the line (`"""; __import__('os')...`) and
 * the file stays valid UTF-8. Python reads the escapes back to the same text.
 */
export function pyEscape(s: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what this escapes
  return s.replace(/[\\'"\x00-\x1f\x7f-\x9f\u2028\u2029]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, (c) => {
    if (c === '\\' || c === "'" || c === '"') return `\\${c}`;
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
