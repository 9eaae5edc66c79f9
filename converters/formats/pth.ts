/**
 * PyTorch checkpoints (`.pth`, `.pt`, `.bin`): the zip format of `torch.save` since 1.6 and
 * the legacy format before it, read through the restricted unpickler; written in the zip
 * format that `torch.load(path, weights_only=True)` accepts.
 */
import { DTYPES, isDType, type DType } from '../dtypes.js';
import { CheckpointFormatError, LimitExceededError } from '../errors.js';
import { bytesOf, LIMITS, numel, typedView, type StateDict, type Tensor } from '../tensor.js';
import { PickleWriter, PyDict, PyGlobal, PyTuple, unpickle, type GlobalHandler } from './pickle.js';
import { encodeZip, looksLikeZip, ZipReader } from './zip.js';
import { extractStateDict, type StateDictOrigin } from './unwrap.js';

/** Magic number that opens a legacy (pre-1.6) torch file. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
/** Largest size a strided (possibly repeating) view may be materialised to beyond its storage. */
const MAX_EXPANDED_BYTES = 64 * 1024 * 1024;

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

  data(file: string): Uint8Array {
    if (this.root) {
      const itemsize = DTYPES[this.dtype].itemsize;
      const rootBytes = this.root.storage.data(file);
      const start = this.root.offset * itemsize;
      const end = start + this.numel * itemsize;
      if (end > rootBytes.byteLength) throw new CheckpointFormatError(`${file}: storage view '${this.key}' runs past its root storage`, { file });
      return rootBytes.subarray(start, end);
    }
    if (this.bytes === undefined) throw new CheckpointFormatError(`${file}: storage '${this.key}' has no data in the file`, { file });
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

function asInt(v: unknown, what: string, file: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new CheckpointFormatError(`${file}: ${what} is not a non-negative integer`, { file });
  }
  return v;
}

function asIntList(v: unknown, what: string, file: string): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : undefined;
  if (items === undefined) throw new CheckpointFormatError(`${file}: ${what} is not a tuple`, { file });
  if (items.length > LIMITS.maxDims) throw new LimitExceededError(`${file}: ${what} has ${items.length} dimensions, more than ${LIMITS.maxDims}`);
  return items.map((x, i) => asInt(x, `${what}[${i}]`, file));
}

/** The globals a state dict needs, and nothing else. */
function torchGlobals(file: string): Map<string, GlobalHandler> {
  const g = new Map<string, GlobalHandler>();
  const rebuild = (args: unknown[]): TensorRef => {
    const [storage, offset, size, stride] = args;
    if (!(storage instanceof Storage)) throw new CheckpointFormatError(`${file}: tensor rebuilt from something that is not a storage`, { file });
    return new TensorRef(storage, asInt(offset, 'storage offset', file), asIntList(size, 'tensor size', file), asIntList(stride, 'tensor stride', file));
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
        throw new CheckpointFormatError(`${file}: _rebuild_from_type_v2 with an unexpected function`, { file });
      }
      return fn.handler.call(inner.items);
    },
  });
  g.set('torch.nn.parameter.Parameter', { value: 'Parameter' });
  g.set('torch.Tensor', { value: 'Tensor' });
  g.set('torch.Size', { call: (args) => asIntList(args[0] ?? [], 'torch.Size', file) });
  g.set('torch.device', { call: (args) => args.map(String).join(':') });
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

function storageDtype(type: unknown, file: string): DType {
  if (type instanceof PyGlobal && typeof type.handler.value === 'string' && isDType(type.handler.value)) return type.handler.value;
  throw new CheckpointFormatError(`${file}: persistent id names no storage type`, { file });
}

function pidItems(pid: unknown, file: string): unknown[] {
  if (!(pid instanceof PyTuple) || pid.items[0] !== 'storage') {
    throw new CheckpointFormatError(`${file}: persistent id is not a ('storage', ...) tuple`, { file });
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
}

/** Read a PyTorch checkpoint held in memory, in either layout. */
export function readPth(bytes: Uint8Array, params: ReadPthParams = {}): PthCheckpoint {
  const file = params.file ?? 'checkpoint';
  if (looksLikeZip(bytes)) return readZipPth(bytes, file);
  if (bytes.byteLength >= 2 && (bytes[0] === 0x80 || '(c]})'.includes(String.fromCharCode(bytes[0]!)))) return readLegacyPth(bytes, file);
  if (bytes.byteLength > 262 && Buffer.from(bytes.subarray(257, 262)).toString('latin1') === 'ustar') {
    throw new CheckpointFormatError(`${file}: is a tar archive (the torch < 0.4 checkpoint layout), which is not supported; re-save it with a current torch`, { file });
  }
  throw new CheckpointFormatError(`${file}: is neither a torch zip archive nor a legacy torch pickle`, { file });
}

function readZipPth(bytes: Uint8Array, file: string): PthCheckpoint {
  const zip = new ZipReader(bytes, file);
  const first = zip.entries[0];
  if (first === undefined) throw new CheckpointFormatError(`${file}: zip archive is empty`, { file });
  const slash = first.name.indexOf('/');
  const prefix = slash >= 0 ? first.name.slice(0, slash + 1) : '';
  const pkl = zip.entry(`${prefix}data.pkl`);
  if (pkl === undefined) throw new CheckpointFormatError(`${file}: zip archive has no '${prefix}data.pkl' (not a torch.save file)`, { file });
  const byteorderEntry = zip.entry(`${prefix}byteorder`);
  const byteorder = byteorderEntry ? Buffer.from(zip.read(byteorderEntry)).toString('latin1').trim() : 'little';
  if (byteorder !== 'little' && byteorder !== 'big') throw new CheckpointFormatError(`${file}: unknown byteorder '${byteorder}'`, { file });
  const storages = new Map<string, Storage>();
  const { value } = unpickle(zip.read(pkl), {
    file: `${file}:${pkl.name}`,
    globals: torchGlobals(file),
    explainRefusal,
    persistentLoad: (pid) => {
      const [, type, key, , count] = pidItems(pid, file);
      const k = String(key);
      const existing = storages.get(k);
      if (existing) return existing;
      const dtype = storageDtype(type, file);
      const n = asInt(count, `storage '${k}' size`, file);
      const s = new Storage(k, dtype, n);
      const entry = zip.entry(`${prefix}data/${k}`);
      if (entry === undefined) throw new CheckpointFormatError(`${file}: storage '${k}' has no entry '${prefix}data/${k}'`, { file });
      if (entry.size < n * DTYPES[dtype].itemsize) {
        throw new CheckpointFormatError(`${file}: storage '${k}' holds ${entry.size} bytes, less than ${n} x ${dtype}`, { file });
      }
      s.bytes = zip.read(entry).subarray(0, n * DTYPES[dtype].itemsize);
      storages.set(k, s);
      return s;
    },
  });
  return finish(value, file, 'zip', byteorder === 'big');
}

function readLegacyPth(bytes: Uint8Array, file: string): PthCheckpoint {
  const none = new Map<string, GlobalHandler>();
  let r = unpickle(bytes, { file, globals: none, explainRefusal });
  if (r.value !== LEGACY_MAGIC) throw new CheckpointFormatError(`${file}: a pickle, but not a torch checkpoint (no torch magic number)`, { file });
  r = unpickle(bytes, { file, globals: none, explainRefusal, offset: r.end });
  if (r.value !== LEGACY_PROTOCOL) throw new CheckpointFormatError(`${file}: unsupported legacy torch protocol ${String(r.value)}`, { file });
  r = unpickle(bytes, { file, globals: none, offset: r.end });
  const sysInfo = r.value;
  const little = !(sysInfo instanceof PyDict) || sysInfo.map.get('little_endian') !== false;
  const storages = new Map<string, Storage>();
  r = unpickle(bytes, {
    file,
    globals: torchGlobals(file),
    explainRefusal,
    offset: r.end,
    persistentLoad: (pid) => {
      const [, type, key, , count, view] = pidItems(pid, file);
      const k = String(key);
      const dtype = storageDtype(type, file);
      let root = storages.get(k);
      if (root === undefined) {
        root = new Storage(k, dtype, asInt(count, `storage '${k}' size`, file));
        storages.set(k, root);
      }
      if (view instanceof PyTuple) {
        const [viewKey, offset, viewSize] = view.items;
        const n = asInt(viewSize, 'view size', file);
        const off = asInt(offset, 'view offset', file);
        if (off + n > root.numel) throw new CheckpointFormatError(`${file}: storage view '${String(viewKey)}' runs past storage '${k}'`, { file });
        return new Storage(String(viewKey), dtype, n, { storage: root, offset: off });
      }
      return root;
    },
  });
  const value = r.value;
  r = unpickle(bytes, { file, globals: none, offset: r.end });
  if (!Array.isArray(r.value)) throw new CheckpointFormatError(`${file}: legacy storage key list is missing`, { file });
  let pos = r.end;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const key of r.value) {
    const s = storages.get(String(key));
    if (s === undefined) throw new CheckpointFormatError(`${file}: storage key '${String(key)}' is listed but never used`, { file });
    if (pos + 8 > bytes.byteLength) throw new CheckpointFormatError(`${file}: truncated before storage '${s.key}'`, { file });
    const count = Number(view.getBigUint64(pos, little));
    pos += 8;
    const size = count * DTYPES[s.dtype].itemsize;
    if (count !== s.numel) {
      throw new CheckpointFormatError(`${file}: storage '${s.key}' declares ${count} elements, the pickle ${s.numel}`, { file });
    }
    if (pos + size > bytes.byteLength) {
      throw new CheckpointFormatError(`${file}: storage '${s.key}' (${size} bytes at byte ${pos}) runs past the end of the file (${bytes.byteLength} bytes)`, { file });
    }
    s.bytes = bytes.subarray(pos, pos + size);
    pos += size;
  }
  return finish(value, file, 'legacy', !little);
}

function finish(value: unknown, file: string, layout: 'zip' | 'legacy', bigEndian: boolean): PthCheckpoint {
  const { entries, origin } = extractStateDict(value, (v): v is TensorRef => v instanceof TensorRef, file);
  const tensors: StateDict = new Map();
  for (const [name, ref] of entries) tensors.set(name, materialise(ref, name, file, bigEndian));
  return { tensors, origin, layout };
}

/** Turn a (storage, offset, size, stride) reference into a contiguous tensor. */
function materialise(ref: TensorRef, name: string, file: string, bigEndian: boolean): Tensor {
  const { dtype } = ref.storage;
  const itemsize = DTYPES[dtype].itemsize;
  const shape = ref.size;
  if (ref.stride.length !== shape.length) {
    throw new CheckpointFormatError(`${file}: tensor '${name}' has ${shape.length} sizes but ${ref.stride.length} strides`, { file });
  }
  const n = numel(shape, `${file}: tensor '${name}'`);
  const storageBytes = ref.storage.data(file);
  const storageLen = storageBytes.byteLength / itemsize;
  let last = ref.offset;
  for (let i = 0; i < shape.length; i++) last += (shape[i]! - 1) * ref.stride[i]!;
  if (n > 0 && last >= storageLen) {
    throw new CheckpointFormatError(`${file}: tensor '${name}' reaches element ${last} of a storage of ${storageLen}`, { file });
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
      throw new LimitExceededError(`${file}: tensor '${name}' would expand its ${storageBytes.byteLength}-byte storage to ${n * itemsize} bytes`);
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
    out.set(src.subarray(s * itemsize, (s + 1) * itemsize), k * itemsize);
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
