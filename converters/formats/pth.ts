/**
 * PyTorch checkpoints (`.pth`, `.pt`, `.bin`): the zip format of `torch.save` since 1.6 and
 * the legacy format before it, read through the restricted unpickler; written in the zip
 * format that `torch.load(path, weights_only=True)` accepts.
 */
import { boundMessage, resolveBudgets, type Budgets } from '../budgets.js';
import { DTYPES, isDType, type DType } from '../dtypes.js';
import { CheckpointFormatError, LimitExceededError } from '../errors.js';
import { bytesOf, LIMITS, numel, typedView, type StateDict, type Tensor } from '../tensor.js';
import { describeValue, PickleWriter, PyDict, PyGlobal, PyTuple, unpickle, type GlobalHandler } from './pickle.js';
import { encodeZip, looksLikeZip, ZipReader } from './zip.js';
import { extractStateDict, type StateDictOrigin } from './unwrap.js';

/** Magic number that opens a legacy (pre-1.6) torch file. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
/** Largest size a strided (possibly repeating) view may be materialised to beyond its storage. */
const MAX_EXPANDED_BYTES = 64 * 1024 * 1024;

/** The file being read and the budgets it is read under. */
interface ReadContext {
  readonly file: string;
  readonly budgets: Readonly<Budgets>;
}

/** A format error whose message (which may quote the file's own strings) is bounded. */
function formatError(ctx: ReadContext, msg: string): CheckpointFormatError {
  return new CheckpointFormatError(boundMessage(`${ctx.file}: ${msg}`, ctx.budgets.errorMessageChars), { file: ctx.file });
}

/** A storage referenced by the pickle; its bytes are attached once known. */
class Storage {
  bytes: Uint8Array | undefined;
  constructor(
    readonly key: string,
    readonly dtype: DType,
    readonly numel: number,
    /** For a legacy view: the root storage and the element offset into it. */
    readonly root?: { storage: Storage; offset: number },
  ) {}

  data(ctx: ReadContext): Uint8Array {
    if (this.root) {
      const itemsize = DTYPES[this.dtype].itemsize;
      const rootBytes = this.root.storage.data(ctx);
      const start = this.root.offset * itemsize;
      const end = start + this.numel * itemsize;
      if (end > rootBytes.byteLength) throw formatError(ctx, `storage view '${this.key}' runs past its root storage`);
      return rootBytes.subarray(start, end);
    }
    if (this.bytes === undefined) throw formatError(ctx, `storage '${this.key}' has no data in the file`);
    return this.bytes;
  }
}

/** A tensor as the pickle describes it, materialised once the storages are read. */
export class TensorRef {
  constructor(
    readonly storage: Storage,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}

  /** Parameters may carry state set by BUILD; nothing of it is needed. */
  setState(_state: unknown): void {}
}

function asInt(v: unknown, what: string, ctx: ReadContext): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw formatError(ctx, `${what} is not a non-negative integer`);
  }
  return v;
}

function asIntList(v: unknown, what: string, ctx: ReadContext): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : undefined;
  if (items === undefined) throw formatError(ctx, `${what} is not a tuple`);
  if (items.length > LIMITS.maxDims) throw new LimitExceededError(`${ctx.file}: ${what} has ${items.length} dimensions, more than ${LIMITS.maxDims}`);
  return items.map((x, i) => asInt(x, `${what}[${i}]`, ctx));
}

/** The globals a state dict needs, and nothing else. */
function torchGlobals(ctx: ReadContext): Map<string, GlobalHandler> {
  const g = new Map<string, GlobalHandler>();
  const rebuild = (args: unknown[]): TensorRef => {
    const [storage, offset, size, stride] = args;
    if (!(storage instanceof Storage)) throw formatError(ctx, `tensor rebuilt from something that is not a storage`);
    return new TensorRef(storage, asInt(offset, 'storage offset', ctx), asIntList(size, 'tensor size', ctx), asIntList(stride, 'tensor stride', ctx));
  };
  const ordered = (args: unknown[]): PyDict => {
    const d = new PyDict();
    const init = args[0];
    if (Array.isArray(init)) {
      for (const pair of init) if (pair instanceof PyTuple && pair.items.length === 2) d.map.set(pair.items[0], pair.items[1]);
    }
    return d;
  };
  g.set('collections.OrderedDict', { call: ordered, construct: ordered });
  g.set('torch._utils._rebuild_tensor', { call: rebuild });
  g.set('torch._utils._rebuild_tensor_v2', { call: rebuild });
  g.set('torch._utils._rebuild_parameter', { call: (args) => args[0] });
  g.set('torch._utils._rebuild_parameter_with_state', { call: (args) => args[0] });
  g.set('torch._tensor._rebuild_from_type_v2', {
    call: (args) => {
      const [fn, , inner] = args;
      if (!(fn instanceof PyGlobal) || !fn.handler.call || !(inner instanceof PyTuple)) {
        throw formatError(ctx, `_rebuild_from_type_v2 with an unexpected function`);
      }
      return fn.handler.call(inner.items);
    },
  });
  g.set('torch.nn.parameter.Parameter', { value: 'Parameter' });
  g.set('torch.Tensor', { value: 'Tensor' });
  g.set('torch.Size', { call: (args) => asIntList(args[0] ?? [], 'torch.Size', ctx) });
  g.set('torch.device', { call: (args) => args.map((a) => (typeof a === 'string' ? a : describeValue(a))).join(':') });
  for (const info of Object.values(DTYPES)) {
    g.set(`torch.${info.torchStorage}`, { value: info.name });
    g.set(`torch.${info.torchDtype}`, { value: info.name });
  }
  g.set('torch.storage.UntypedStorage', { value: 'U8' });
  g.set('torch.UntypedStorage', { value: 'U8' });
  return g;
}

/** Why a global is refused, for the globals people meet in practice. */
function explainRefusal(qualname: string): string | undefined {
  if (/^(os|posix|nt|subprocess|builtins|__builtin__|sys|shutil|socket|runpy|importlib|pty|webbrowser)\./.test(qualname)) {
    return 'it would run code or touch the system';
  }
  if (qualname.startsWith('numpy.')) return 'NumPy objects are not part of a state dict; save tensors only';
  if (qualname.startsWith('__main__.') || qualname.startsWith('torchvision.') || qualname.startsWith('torch.nn.modules.') || qualname.startsWith('timm.')) {
    return 'it is a pickled Python class: a whole model saved with torch.save(model); save model.state_dict() instead';
  }
  return undefined;
}

function storageDtype(type: unknown, ctx: ReadContext): DType {
  if (type instanceof PyGlobal && typeof type.handler.value === 'string' && isDType(type.handler.value)) return type.handler.value;
  throw formatError(ctx, `persistent id names no storage type`);
}

function pidItems(pid: unknown, ctx: ReadContext): unknown[] {
  if (!(pid instanceof PyTuple) || pid.items[0] !== 'storage') {
    throw formatError(ctx, `persistent id is not a ('storage', ...) tuple`);
  }
  return pid.items;
}

/** A decoded checkpoint: its state dict and where in the file it was found. */
export interface PthCheckpoint {
  readonly tensors: StateDict;
  readonly origin: StateDictOrigin;
  /** 'zip' (torch >= 1.6) or 'legacy'. */
  readonly layout: 'zip' | 'legacy';
}

/** Options of `readPth`. */
export interface ReadPthParams {
  /** Name used in error messages. @default 'checkpoint' */
  file?: string;
  /** Budgets on unpacking the archive and running the pickle. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** Read a PyTorch checkpoint held in memory, in either layout. */
export function readPth(bytes: Uint8Array, params: ReadPthParams = {}): PthCheckpoint {
  const ctx: ReadContext = { file: params.file ?? 'checkpoint', budgets: resolveBudgets(params.budgets) };
  if (looksLikeZip(bytes)) return readZipPth(bytes, ctx);
  if (bytes.byteLength >= 2 && (bytes[0] === 0x80 || '(c]})'.includes(String.fromCharCode(bytes[0]!)))) return readLegacyPth(bytes, ctx);
  if (bytes.byteLength > 262 && Buffer.from(bytes.subarray(257, 262)).toString('latin1') === 'ustar') {
    throw formatError(ctx, `is a tar archive (the torch < 0.4 checkpoint layout), which is not supported; re-save it with a current torch`);
  }
  throw formatError(ctx, `is neither a torch zip archive nor a legacy torch pickle`);
}

/** A storage key from a persistent id: torch writes them as strings. */
function storageKey(key: unknown, ctx: ReadContext): string {
  if (typeof key !== 'string') throw formatError(ctx, `storage key ${describeValue(key)} is not a string`);
  return key;
}

function readZipPth(bytes: Uint8Array, ctx: ReadContext): PthCheckpoint {
  const { file, budgets } = ctx;
  const zip = new ZipReader(bytes, file, { budgets });
  const first = zip.entries[0];
  if (first === undefined) throw formatError(ctx, `zip archive is empty`);
  const slash = first.name.indexOf('/');
  const prefix = slash >= 0 ? first.name.slice(0, slash + 1) : '';
  const pkl = zip.entry(`${prefix}data.pkl`);
  if (pkl === undefined) throw formatError(ctx, `zip archive has no '${prefix}data.pkl' (not a torch.save file)`);
  const byteorderEntry = zip.entry(`${prefix}byteorder`);
  if (byteorderEntry !== undefined && byteorderEntry.size > 16) throw formatError(ctx, `'${byteorderEntry.name}' holds ${byteorderEntry.size} bytes, not a byte order`);
  const byteorder = byteorderEntry ? Buffer.from(zip.read(byteorderEntry)).toString('latin1').trim() : 'little';
  if (byteorder !== 'little' && byteorder !== 'big') throw formatError(ctx, `unknown byteorder '${byteorder}'`);
  const storages = new Map<string, Storage>();
  const { value } = unpickle(zip.read(pkl), {
    file: `${file}:${pkl.name}`,
    globals: torchGlobals(ctx),
    explainRefusal,
    budgets,
    persistentLoad: (pid) => {
      const [, type, key, , count] = pidItems(pid, ctx);
      const k = storageKey(key, ctx);
      const existing = storages.get(k);
      if (existing) return existing;
      const dtype = storageDtype(type, ctx);
      const n = asInt(count, `storage '${k}' size`, ctx);
      const s = new Storage(k, dtype, n);
      const entry = zip.entry(`${prefix}data/${k}`);
      if (entry === undefined) throw formatError(ctx, `storage '${k}' has no entry '${prefix}data/${k}'`);
      if (entry.size < n * DTYPES[dtype].itemsize) {
        throw formatError(ctx, `storage '${k}' holds ${entry.size} bytes, less than ${n} x ${dtype}`);
      }
      s.bytes = zip.read(entry).subarray(0, n * DTYPES[dtype].itemsize);
      storages.set(k, s);
      return s;
    },
  });
  return finish(value, ctx, 'zip', byteorder === 'big');
}

function readLegacyPth(bytes: Uint8Array, ctx: ReadContext): PthCheckpoint {
  const { file, budgets } = ctx;
  const none = new Map<string, GlobalHandler>();
  let r = unpickle(bytes, { file, globals: none, explainRefusal, budgets });
  if (r.value !== LEGACY_MAGIC) throw formatError(ctx, `a pickle, but not a torch checkpoint (no torch magic number)`);
  r = unpickle(bytes, { file, globals: none, explainRefusal, budgets, offset: r.end });
  if (r.value !== LEGACY_PROTOCOL) throw formatError(ctx, `unsupported legacy torch protocol ${describeValue(r.value)}`);
  r = unpickle(bytes, { file, globals: none, budgets, offset: r.end });
  const sysInfo = r.value;
  const little = !(sysInfo instanceof PyDict) || sysInfo.map.get('little_endian') !== false;
  const storages = new Map<string, Storage>();
  r = unpickle(bytes, {
    file,
    globals: torchGlobals(ctx),
    explainRefusal,
    budgets,
    offset: r.end,
    persistentLoad: (pid) => {
      const [, type, key, , count, view] = pidItems(pid, ctx);
      const k = storageKey(key, ctx);
      const dtype = storageDtype(type, ctx);
      let root = storages.get(k);
      if (root === undefined) {
        root = new Storage(k, dtype, asInt(count, `storage '${k}' size`, ctx));
        storages.set(k, root);
      }
      if (view instanceof PyTuple) {
        const [viewKey, offset, viewSize] = view.items;
        const vk = storageKey(viewKey, ctx);
        const n = asInt(viewSize, 'view size', ctx);
        const off = asInt(offset, 'view offset', ctx);
        if (off + n > root.numel) throw formatError(ctx, `storage view '${vk}' runs past storage '${k}'`);
        return new Storage(vk, dtype, n, { storage: root, offset: off });
      }
      return root;
    },
  });
  const value = r.value;
  r = unpickle(bytes, { file, globals: none, budgets, offset: r.end });
  if (!Array.isArray(r.value)) throw formatError(ctx, `legacy storage key list is missing`);
  let pos = r.end;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const key of r.value) {
    const s = storages.get(storageKey(key, ctx));
    if (s === undefined) throw formatError(ctx, `storage key '${String(key)}' is listed but never used`);
    if (pos + 8 > bytes.byteLength) throw formatError(ctx, `truncated before storage '${s.key}'`);
    const count = Number(view.getBigUint64(pos, little));
    pos += 8;
    const size = count * DTYPES[s.dtype].itemsize;
    if (count !== s.numel) {
      throw formatError(ctx, `storage '${s.key}' declares ${count} elements, the pickle ${s.numel}`);
    }
    if (pos + size > bytes.byteLength) {
      throw formatError(ctx, `storage '${s.key}' (${size} bytes at byte ${pos}) runs past the end of the file (${bytes.byteLength} bytes)`);
    }
    s.bytes = bytes.subarray(pos, pos + size);
    pos += size;
  }
  return finish(value, ctx, 'legacy', !little);
}

function finish(value: unknown, ctx: ReadContext, layout: 'zip' | 'legacy', bigEndian: boolean): PthCheckpoint {
  const { entries, origin } = extractStateDict(value, (v): v is TensorRef => v instanceof TensorRef, ctx.file, ctx.budgets.errorMessageChars);
  // Strided views are copied: all together they may not outgrow the storages they view.
  const roots = new Set<Storage>();
  for (const [, ref] of entries) roots.add(ref.storage.root?.storage ?? ref.storage);
  let storageBytes = 0;
  for (const s of roots) storageBytes += s.bytes?.byteLength ?? 0;
  const copies = { left: Math.max(storageBytes, MAX_EXPANDED_BYTES) };
  const tensors: StateDict = new Map();
  for (const [name, ref] of entries) tensors.set(name, materialise(ref, name, ctx, bigEndian, copies));
  return { tensors, origin, layout };
}

/** Turn a (storage, offset, size, stride) reference into a contiguous tensor. */
function materialise(ref: TensorRef, name: string, ctx: ReadContext, bigEndian: boolean, copies: { left: number }): Tensor {
  const { dtype } = ref.storage;
  const itemsize = DTYPES[dtype].itemsize;
  const shape = ref.size;
  if (ref.stride.length !== shape.length) {
    throw formatError(ctx, `tensor '${name}' has ${shape.length} sizes but ${ref.stride.length} strides`);
  }
  const n = numel(shape, boundMessage(`${ctx.file}: tensor '${name}'`, ctx.budgets.errorMessageChars));
  const storageBytes = ref.storage.data(ctx);
  const storageLen = storageBytes.byteLength / itemsize;
  let last = ref.offset;
  for (let i = 0; i < shape.length; i++) last += (shape[i]! - 1) * ref.stride[i]!;
  if (n > 0 && last >= storageLen) {
    throw formatError(ctx, `tensor '${name}' reaches element ${last} of a storage of ${storageLen}`);
  }
  let contiguous = true;
  for (let i = shape.length - 1, expect = 1; i >= 0; i--) {
    if (shape[i] !== 1 && ref.stride[i] !== expect) contiguous = false;
    expect *= shape[i]!;
  }
  let raw: Uint8Array;
  if (n === 0) raw = new Uint8Array(0);
  else if (contiguous) raw = storageBytes.subarray(ref.offset * itemsize, (ref.offset + n) * itemsize);
  else {
    // A strided view can repeat elements (stride 0): bound what it may expand to.
    const limit = Math.max(storageBytes.byteLength, MAX_EXPANDED_BYTES);
    if (n * itemsize > limit) {
      throw new LimitExceededError(
        boundMessage(`${ctx.file}: tensor '${name}' would expand its ${storageBytes.byteLength}-byte storage to ${n * itemsize} bytes`, ctx.budgets.errorMessageChars),
      );
    }
    copies.left -= n * itemsize;
    if (copies.left < 0) {
      throw new LimitExceededError(boundMessage(`${ctx.file}: strided tensors up to '${name}' would copy more bytes than all their storages hold`, ctx.budgets.errorMessageChars));
    }
    raw = gather(storageBytes, itemsize, ref.offset, shape, ref.stride, n);
  }
  if (bigEndian && itemsize > 1) {
    const copy = Uint8Array.from(raw);
    for (let i = 0; i < copy.byteLength; i += itemsize) copy.subarray(i, i + itemsize).reverse();
    raw = copy;
  }
  return { dtype, shape, data: typedView(dtype, raw, 0, n) } as Tensor;
}

/** Copy a strided view into a new contiguous buffer. */
function gather(src: Uint8Array, itemsize: number, offset: number, shape: number[], stride: number[], n: number): Uint8Array {
  const out = new Uint8Array(n * itemsize);
  const idx = new Array<number>(shape.length).fill(0);
  let s = offset;
  for (let k = 0; k < n; k++) {
    for (let b = 0; b < itemsize; b++) out[k * itemsize + b] = src[s * itemsize + b]!;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d]!++;
      s += stride[d]!;
      if (idx[d]! < shape[d]!) break;
      s -= stride[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** Options of `encodePth`. */
export interface WritePthParams {
  /** Name of the archive's top-level folder. @default 'archive' */
  archiveName?: string;
}

/**
 * Encode a state dict in the zip layout of `torch.save` (an OrderedDict of tensors, one
 * storage per tensor, data aligned to 64 bytes), as a list of chunks.
 */
export function encodePth(tensors: StateDict, params: WritePthParams = {}): Uint8Array[] {
  const root = params.archiveName ?? 'archive';
  const w = new PickleWriter();
  w.global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  const data: { name: string; data: Uint8Array[] }[] = [];
  let key = 0;
  for (const [name, t] of tensors) {
    const info = DTYPES[t.dtype];
    const k = String(key++);
    w.str(name);
    w.global('torch._utils', '_rebuild_tensor_v2').mark();
    w.mark().str('storage').global('torch', info.torchStorage).str(k).str('cpu').int(t.data.length).tuple().binPersId();
    w.int(0).mark();
    for (const d of t.shape) w.int(d);
    w.tuple().mark();
    let stride = 1;
    const strides: number[] = [];
    for (let i = t.shape.length - 1; i >= 0; i--) {
      strides.unshift(stride);
      stride *= t.shape[i]!;
    }
    for (const s of strides) w.int(s);
    w.tuple().bool(false).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
    data.push({ name: `${root}/data/${k}`, data: [bytesOf(t)] });
  }
  w.setItems();
  const enc = new TextEncoder();
  return encodeZip([
    { name: `${root}/data.pkl`, data: [w.finish()] },
    { name: `${root}/byteorder`, data: [enc.encode('little')] },
    ...data,
    { name: `${root}/version`, data: [enc.encode('3\n')] },
  ]);
}
