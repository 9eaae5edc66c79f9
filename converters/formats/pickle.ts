/**
 * A restricted unpickler and a small pickler, written for state dicts.
 *
 * The unpickler implements the opcodes that state dicts use (protocols 0 to 5) as a pure
 * data decoder: it never imports, calls or evaluates anything. A global is resolved only
 * through the caller's allow-list (`globals`), to a handler implemented here in TypeScript;
 * any other global is refused with an `UnsafePickleError` naming it. Every length is checked
 * against the bytes that remain before anything is allocated, and the work a pickle causes is
 * bounded by the budgets (opcodes run, objects built, memo entries, nesting depth).
 *
 * A pickle is a program: a few bytes can build a structure whose size as a tree is exponential
 * (a list memoised and referred to many times, level after level). Decoded values are therefore
 * never turned into text with `String` or walked recursively; messages describe them with
 * `describeValue`, which is bounded.
 */
import { boundMessage, budgetSetting, resolveBudgets, type Budgets } from '../budgets.js';
import { CheckpointFormatError, LimitExceededError, UnsafePickleError } from '../errors.js';

/** A Python tuple (kept apart from lists, which are plain arrays). */
export class PyTuple {
  constructor(readonly items: unknown[]) {}
}

/** A Python dict or OrderedDict, in insertion order; `attrs` holds state set by BUILD. */
export class PyDict {
  // Created on first use: a pickle may build millions of empty dicts that nothing reads.
  private entries: Map<unknown, unknown> | undefined;
  attrs: Map<string, unknown> | undefined;

  /** The dict's entries; tuple keys are kept as the `PyTuple` objects themselves. */
  get map(): Map<unknown, unknown> {
    return (this.entries ??= new Map());
  }
}

/** A Python set or frozenset (kept only so that well-formed pickles decode). */
export class PySet {
  constructor(readonly items: unknown[]) {}
}

/** What an allow-listed global does when the pickle uses it. */
export interface GlobalHandler {
  /** Called by REDUCE with the argument tuple's items. */
  call?: (args: unknown[]) => unknown;
  /** Called by NEWOBJ with the argument tuple's items. */
  construct?: (args: unknown[]) => unknown;
  /** A global that is only a marker (a storage type, a dtype): its value. */
  value?: unknown;
}

/** A resolved, allow-listed global as it sits on the unpickler's stack. */
export class PyGlobal {
  constructor(
    readonly qualname: string,
    readonly handler: GlobalHandler,
  ) {}
}

/** Options of `unpickle`. */
export interface UnpickleParams {
  /** Name used in error messages. @default 'pickle' */
  file?: string;
  /** The allow-list: `module.name` -> handler. Anything else is refused. */
  globals: ReadonlyMap<string, GlobalHandler>;
  /** Resolves persistent ids (PERSID / BINPERSID); without it they are refused. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Explains a refused global (e.g. "a pickled model class"), appended to the message. */
  explainRefusal?: (qualname: string) => string | undefined;
  /** Start reading at this byte. @default 0 */
  offset?: number;
  /**
   * Budgets on the work: `pickleOpcodes`, `pickleObjects` (also the most values on the stack
   * at once), `pickleMemo`, `nestingDepth`, `errorMessageChars`. @default DEFAULT_BUDGETS
   */
  budgets?: Partial<Budgets>;
}

/** The result of `unpickle`: the value and the offset just after its STOP opcode. */
export interface UnpickleResult {
  value: unknown;
  end: number;
}

const MARK = Symbol('mark');
const MAX_LONG_BYTES = 4096;

/**
 * Decode one pickle from `bytes` (starting at `params.offset`).
 *
 * Next to each stack slot and memo entry the decoder keeps the nesting depth of its value as it
 * was built, and refuses a container deeper than `budgets.nestingDepth`. A container changed
 * after it was put inside another (through the memo) can end up deeper than its count says;
 * that is why nothing downstream walks decoded values recursively.
 */
export function unpickle(bytes: Uint8Array, params: UnpickleParams): UnpickleResult {
  const file = params.file ?? 'pickle';
  const budgets = resolveBudgets(params.budgets);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  const depths: number[] = [];
  const memo = new Map<number, unknown>();
  // Depths of memoised values, kept only for those deeper than 1 (most are strings or flat tuples).
  const memoDepths = new Map<number, number>();
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let pos = params.offset ?? 0;
  let opcodes = 0;
  let objects = 0;
  /** Depth of the value(s) the last `pop` or `popMark` took off the stack. */
  let popped = 0;

  const fail = (msg: string): never => {
    throw new CheckpointFormatError(boundMessage(`${file}: ${msg} (at byte ${pos})`, budgets.errorMessageChars), { file });
  };
  const exceeded = (what: string, name: keyof Budgets): never => {
    throw new LimitExceededError(boundMessage(`${file}: pickle ${what} (${budgetSetting(name)}; at byte ${pos})`, budgets.errorMessageChars));
  };
  /** Count `n` objects built (a container, a string, an item put in a container). */
  const build = (n = 1): void => {
    objects += n;
    if (objects > budgets.pickleObjects) exceeded(`builds more than ${budgets.pickleObjects} objects`, 'pickleObjects');
  };
  /** The depth of a container holding values of depth `d`. */
  const nest = (d: number): number => {
    if (d >= budgets.nestingDepth) exceeded(`nests objects more than ${budgets.nestingDepth} deep`, 'nestingDepth');
    return d + 1;
  };
  const need = (n: number): void => {
    if (n < 0 || pos + n > bytes.byteLength) fail(`opcode needs ${n} more bytes but the data ends`);
  };
  const take = (n: number): Uint8Array => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const u8 = (): number => {
    need(1);
    return bytes[pos++]!;
  };
  const u16 = (): number => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.byteLength)) fail(`length ${v} is larger than the data`);
    return Number(v);
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('text opcode has no terminating newline');
    const s = Buffer.from(bytes.buffer, bytes.byteOffset + pos, end - pos).toString('latin1');
    pos = end + 1;
    return s;
  };
  const text = (n: number): string => {
    const b = take(n);
    try {
      return utf8.decode(b);
    } catch {
      return fail('string is not valid UTF-8');
    }
  };
  const push = (v: unknown, depth = 0): void => {
    if (stack.length >= budgets.pickleObjects) exceeded(`holds more than ${budgets.pickleObjects} values on its stack`, 'pickleObjects');
    stack.push(v);
    depths.push(depth);
  };
  /** Push a newly built object (a string, bytes, a big integer) that holds nothing. */
  const pushBuilt = (v: unknown): void => {
    build();
    push(v);
  };
  const pop = (): unknown => {
    if (stack.length === 0) fail('stack underflow');
    popped = depths.pop()!;
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1];
  };
  /** Record that the value on top of the stack now holds values of depth `d`. */
  const deepenTop = (d: number): void => {
    const i = depths.length - 1;
    depths[i] = Math.max(depths[i]!, nest(d));
  };
  const popMark = (): unknown[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) fail('no MARK on the stack');
    const items = stack.slice(i + 1);
    let d = 0;
    for (let j = i + 1; j < depths.length; j++) d = Math.max(d, depths[j]!);
    stack.length = i;
    depths.length = i;
    popped = d;
    return items;
  };
  const memoPut = (k: number): void => {
    const v = top();
    const d = depths[depths.length - 1]!;
    if (!memo.has(k) && memo.size >= budgets.pickleMemo) exceeded(`memoises more than ${budgets.pickleMemo} values`, 'pickleMemo');
    memo.set(k, v);
    if (d > 1) memoDepths.set(k, d);
    else memoDepths.delete(k);
  };
  const memoGet = (k: number): void => {
    if (!memo.has(k)) fail(`memo key ${k} was never stored`);
    const v = memo.get(k);
    push(v, memoDepths.get(k) ?? (typeof v === 'object' && v !== null ? 1 : 0));
  };
  const signedLE = (b: Uint8Array): number | bigint => {
    if (b.byteLength === 0) return 0;
    let v = 0n;
    for (let i = b.byteLength - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.byteLength - 1]! & 0x80) v -= 1n << BigInt(8 * b.byteLength);
    return narrow(v);
  };
  const resolve = (module: string, name: string): PyGlobal => {
    const qualname = `${module}.${name}`;
    const handler = params.globals.get(qualname);
    if (handler === undefined) {
      const why = params.explainRefusal?.(qualname);
      const shown = boundMessage(qualname, 200);
      throw new UnsafePickleError(
        boundMessage(
          `${file}: refused global '${shown}': it is not on the allow-list of what a state dict needs` +
            `${why ? ` (${why})` : ''}; nothing was imported or called`,
          budgets.errorMessageChars,
        ),
        { global: shown },
      );
    }
    return new PyGlobal(qualname, handler);
  };
  /** Put key/value pairs into the dict on top of the stack. */
  const setItems = (items: unknown[]): void => {
    const target = top();
    if (!(target instanceof PyDict)) fail('SETITEM(S) on something that is not a dict');
    if (items.length % 2 !== 0) fail('SETITEMS with an odd number of items');
    build(items.length / 2);
    const map = (target as PyDict).map;
    for (let i = 0; i < items.length; i += 2) map.set(items[i], items[i + 1]);
    deepenTop(popped);
  };
  const callGlobal = (callable: unknown, args: unknown, how: 'call' | 'construct'): unknown => {
    if (!(callable instanceof PyGlobal)) fail(`${how === 'call' ? 'REDUCE' : 'NEWOBJ'} on something that is not an allowed global`);
    if (!(args instanceof PyTuple)) fail(`${how === 'call' ? 'REDUCE' : 'NEWOBJ'} arguments are not a tuple`);
    const g = callable as PyGlobal;
    const fn = how === 'call' ? g.handler.call : g.handler.construct;
    if (fn === undefined) {
      throw new UnsafePickleError(`${file}: global '${g.qualname}' may not be ${how === 'call' ? 'called' : 'constructed'}`, {
        global: g.qualname,
      });
    }
    const out = fn((args as PyTuple).items);
    // A handler may copy its arguments (OrderedDict from a list of pairs): count what it built.
    build(1 + (out instanceof PyDict ? out.map.size : Array.isArray(out) ? out.length : out instanceof PyTuple ? out.items.length : 0));
    return out;
  };

  for (;;) {
    if (++opcodes > budgets.pickleOpcodes) exceeded(`executes more than ${budgets.pickleOpcodes} opcodes`, 'pickleOpcodes');
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('pickle protocol above 5');
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        return { value: pop(), end: pos };
      case 0x28: // MARK
        push(MARK);
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top(), depths[depths.length - 1]);
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x49: {
        // INT (text)
        const s = line().trim();
        if (s === '01') push(true);
        else if (s === '00') push(false);
        else push(parseIntText(s, fail));
        break;
      }
      case 0x4c: // LONG (text)
        pushBuilt(parseIntText(line().trim().replace(/L$/, ''), fail));
        break;
      case 0x4a: // BININT
        need(4);
        push(view.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x8a: // LONG1
        pushBuilt(signedLE(take(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = u32();
        if (n > MAX_LONG_BYTES) throw new LimitExceededError(`${file}: LONG4 of ${n} bytes exceeds the limit of ${MAX_LONG_BYTES}`);
        pushBuilt(signedLE(take(n)));
        break;
      }
      case 0x46: {
        // FLOAT (text)
        const v = Number(line().trim());
        if (Number.isNaN(v)) fail('FLOAT is not a number');
        push(v);
        break;
      }
      case 0x47: // BINFLOAT
        need(8);
        push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x53: // STRING (text, quoted)
        pushBuilt(unquote(line(), fail));
        break;
      case 0x54: // BINSTRING
        pushBuilt(text(u32()));
        break;
      case 0x55: // SHORT_BINSTRING
        pushBuilt(text(u8()));
        break;
      case 0x56: // UNICODE (raw-unicode-escape text)
        pushBuilt(line().replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))));
        break;
      case 0x58: // BINUNICODE
        pushBuilt(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        pushBuilt(text(u8()));
        break;
      case 0x8d: // BINUNICODE8
        pushBuilt(text(u64()));
        break;
      case 0x42: // BINBYTES
        pushBuilt(take(u32()));
        break;
      case 0x43: // SHORT_BINBYTES
        pushBuilt(take(u8()));
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        pushBuilt(take(u64()));
        break;
      case 0x5d: // EMPTY_LIST
        build();
        push([], 1);
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) fail('APPEND to something that is not a list');
        build();
        (list as unknown[]).push(v);
        deepenTop(popped);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) fail('APPENDS to something that is not a list');
        build(items.length);
        for (const it of items) (list as unknown[]).push(it);
        deepenTop(popped);
        break;
      }
      case 0x6c: {
        // LIST
        const items = popMark();
        build(1 + items.length);
        push(items, nest(popped));
        break;
      }
      case 0x29: // EMPTY_TUPLE
        build();
        push(new PyTuple([]), 1);
        break;
      case 0x74: {
        // TUPLE
        const items = popMark();
        build(1 + items.length);
        push(new PyTuple(items), nest(popped));
        break;
      }
      case 0x85: {
        // TUPLE1
        const a = pop();
        build(2);
        push(new PyTuple([a]), nest(popped));
        break;
      }
      case 0x86: {
        // TUPLE2
        const b = pop();
        const db = popped;
        const a = pop();
        build(3);
        push(new PyTuple([a, b]), nest(Math.max(db, popped)));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const dc = popped;
        const b = pop();
        const db = popped;
        const a = pop();
        build(4);
        push(new PyTuple([a, b, c]), nest(Math.max(dc, db, popped)));
        break;
      }
      case 0x7d: // EMPTY_DICT
        build();
        push(new PyDict(), 1);
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        build();
        push(new PyDict(), 1);
        setItems(items);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const dv = popped;
        const k = pop();
        popped = Math.max(dv, popped);
        setItems([k, v]);
        break;
      }
      case 0x75: // SETITEMS
        setItems(popMark());
        break;
      case 0x8f: // EMPTY_SET
        build();
        push(new PySet([]), 1);
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof PySet)) fail('ADDITEMS to something that is not a set');
        build(items.length);
        for (const it of items) (s as PySet).items.push(it);
        deepenTop(popped);
        break;
      }
      case 0x91: {
        // FROZENSET
        const items = popMark();
        build(1 + items.length);
        push(new PySet(items), nest(popped));
        break;
      }
      case 0x67: // GET (text)
        memoGet(Number(parseIntText(line().trim(), fail)));
        break;
      case 0x68: // BINGET
        memoGet(u8());
        break;
      case 0x6a: // LONG_BINGET
        memoGet(u32());
        break;
      case 0x70: // PUT (text)
        memoPut(Number(parseIntText(line().trim(), fail)));
        break;
      case 0x71: // BINPUT
        memoPut(u8());
        break;
      case 0x72: // LONG_BINPUT
        memoPut(u32());
        break;
      case 0x94: // MEMOIZE
        memoPut(memo.size);
        break;
      case 0x63: {
        // GLOBAL
        const module = line();
        const name = line();
        push(resolve(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        push(resolve(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const d = popped;
        const callable = pop();
        push(callGlobal(callable, args, 'call'), d);
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const d = popped;
        const cls = pop();
        push(callGlobal(cls, args, 'construct'), d);
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const d = popped;
        const cls = pop();
        if (!(kwargs instanceof PyDict) || kwargs.map.size > 0) fail('NEWOBJ_EX with keyword arguments is not supported');
        push(callGlobal(cls, args, 'construct'), d);
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const ds = popped;
        const obj = top();
        if (obj instanceof PyDict) {
          obj.attrs ??= new Map();
          if (state instanceof PyDict) {
            build(state.map.size);
            for (const [k, v] of state.map) obj.attrs.set(typeof k === 'string' ? k : describeValue(k), v);
          } else if (state !== null) fail('BUILD on a dict with a state that is not a dict');
        } else if (!(typeof obj === 'object' && obj !== null && 'setState' in obj)) {
          fail('BUILD on an object that takes no state');
        } else {
          (obj as { setState(s: unknown): void }).setState(state);
        }
        depths[depths.length - 1] = Math.max(depths[depths.length - 1]!, ds);
        break;
      }
      case 0x50: // PERSID (text)
      case 0x51: {
        // BINPERSID
        const pid = op === 0x50 ? line() : pop();
        if (!params.persistentLoad) fail('persistent id found but no persistent storage is expected');
        build();
        push(params.persistentLoad!(pid), 1);
        break;
      }
      case 0x69: {
        // INST: calls a class by name
        const module = line();
        const name = line();
        resolve(module, name);
        throw new UnsafePickleError(`${file}: INST of '${module}.${name}' instantiates a class; refused`, { global: `${module}.${name}` });
      }
      case 0x6f: // OBJ
        throw new UnsafePickleError(`${file}: OBJ instantiates a class; refused`);
      case 0x82:
      case 0x83:
      case 0x84:
        throw new UnsafePickleError(`${file}: EXT opcodes load globals from the copyreg extension registry; refused`);
      case 0x97:
      case 0x98:
        return fail('out-of-band buffers (protocol 5 NEXT_BUFFER) are not supported');
      default:
        return fail(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}

function narrow(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function parseIntText(s: string, fail: (m: string) => never): number | bigint {
  if (!/^[-+]?\d{1,4000}$/.test(s)) fail(`'${s.slice(0, 40)}' is not an integer`);
  return narrow(BigInt(s));
}

function unquote(s: string, fail: (m: string) => never): string {
  const q = s[0];
  if ((q !== "'" && q !== '"') || s[s.length - 1] !== q || s.length < 2) fail('STRING is not quoted');
  return s.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    return ({ n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"' } as Record<string, string>)[e] ?? e;
  });
}

/** One open container while `describeValue` writes it out. */
interface Open {
  readonly items: Iterator<unknown>;
  readonly separator: string;
  readonly close: string;
  first: boolean;
}

/** One `key: value` of a dict being described. */
class KeyValue {
  constructor(
    readonly key: unknown,
    readonly value: unknown,
  ) {}
}

/**
 * A short Python-like rendering of a decoded value for messages, at most `max` characters
 * (then `...`). It walks without recursion and stops when the text is long enough, so a
 * shared or cyclic structure of any size costs at most about `max` steps.
 */
export function describeValue(value: unknown, max = 80): string {
  let out = '';
  const open: Open[] = [];
  const enter = (items: Iterator<unknown>, start: string, separator: string, close: string): void => {
    out += start;
    open.push({ items, separator, close, first: true });
  };
  let pending = true;
  let v = value;
  while (out.length <= max) {
    if (!pending) {
      const o = open[open.length - 1];
      if (o === undefined) return out;
      const r = o.items.next();
      if (r.done === true) {
        out += o.close;
        open.pop();
        continue;
      }
      if (!o.first) out += o.separator;
      o.first = false;
      v = r.value;
    }
    pending = false;
    if (typeof v === 'string') out += `'${v.length > max ? v.slice(0, max) : v}'`;
    else if (v === null || v === undefined) out += 'None';
    else if (typeof v === 'boolean') out += v ? 'True' : 'False';
    else if (typeof v === 'number' || typeof v === 'bigint') out += String(v).slice(0, max + 1);
    else if (Array.isArray(v)) enter(v.values(), '[', ', ', ']');
    else if (v instanceof PyTuple) enter(v.items.values(), '(', ', ', v.items.length === 1 ? ',)' : ')');
    else if (v instanceof PySet) enter(v.items.values(), '{', ', ', '}');
    else if (v instanceof PyDict) enter(dictEntries(v.map), '{', ', ', '}');
    else if (v instanceof KeyValue) enter([v.key, v.value].values(), '', ': ', '');
    else if (v instanceof PyGlobal) out += v.qualname.slice(0, max + 1);
    else if (v instanceof Uint8Array) out += `bytes(${v.byteLength})`;
    else if (typeof v === 'object') out += `<${(v.constructor as { name?: string } | undefined)?.name ?? 'object'}>`;
    else out += typeof v;
  }
  return `${out.slice(0, max)}...`;
}

function* dictEntries(map: Map<unknown, unknown>): Generator<KeyValue> {
  for (const [k, v] of map) yield new KeyValue(k, v);
}

/**
 * A minimal pickler (protocol 2) that writes exactly what the caller asks for. Globals are
 * memoised, so each is written once.
 */
export class PickleWriter {
  private readonly chunks: number[] = [];
  private readonly globalMemo = new Map<string, number>();
  private memoNext = 0;

  constructor() {
    this.chunks.push(0x80, 2);
  }

  private bytes(b: ArrayLike<number>): void {
    for (let i = 0; i < b.length; i++) this.chunks.push(b[i]!);
  }

  private u32(n: number): void {
    this.chunks.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }

  mark(): this {
    this.chunks.push(0x28);
    return this;
  }

  none(): this {
    this.chunks.push(0x4e);
    return this;
  }

  bool(v: boolean): this {
    this.chunks.push(v ? 0x88 : 0x89);
    return this;
  }

  int(v: number): this {
    if (!Number.isSafeInteger(v)) throw new RangeError(`'${v}' is not a safe integer`);
    if (v >= 0 && v < 256) this.chunks.push(0x4b, v);
    else if (v >= 0 && v < 65536) this.chunks.push(0x4d, v & 0xff, v >> 8);
    else if (v >= -(2 ** 31) && v < 2 ** 31) {
      this.chunks.push(0x4a);
      this.u32(v >>> 0);
    } else {
      let x = BigInt(v);
      const out: number[] = [];
      while (x !== 0n && x !== -1n) {
        out.push(Number(x & 0xffn));
        x >>= 8n;
      }
      if ((x === 0n && (out[out.length - 1]! & 0x80) !== 0) || (x === -1n && (out[out.length - 1]! & 0x80) === 0)) {
        out.push(x === 0n ? 0 : 0xff);
      }
      this.chunks.push(0x8a, out.length, ...out);
    }
    return this;
  }

  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    this.chunks.push(0x58);
    this.u32(b.byteLength);
    this.bytes(b);
    return this;
  }

  global(module: string, name: string): this {
    const key = `${module}\n${name}`;
    const m = this.globalMemo.get(key);
    if (m !== undefined) {
      this.chunks.push(0x6a);
      this.u32(m);
      return this;
    }
    this.chunks.push(0x63);
    this.bytes(Buffer.from(`${module}\n${name}\n`, 'utf8'));
    const id = this.memoNext++;
    this.chunks.push(0x72);
    this.u32(id);
    this.globalMemo.set(key, id);
    return this;
  }

  emptyTuple(): this {
    this.chunks.push(0x29);
    return this;
  }

  tuple(): this {
    this.chunks.push(0x74);
    return this;
  }

  emptyDict(): this {
    this.chunks.push(0x7d);
    return this;
  }

  setItems(): this {
    this.chunks.push(0x75);
    return this;
  }

  reduce(): this {
    this.chunks.push(0x52);
    return this;
  }

  binPersId(): this {
    this.chunks.push(0x51);
    return this;
  }

  /** Finish with STOP and return the bytes. */
  finish(): Uint8Array {
    this.chunks.push(0x2e);
    return Uint8Array.from(this.chunks);
  }
}
