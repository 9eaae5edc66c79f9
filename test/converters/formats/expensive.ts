/**
 * Checkpoints that are small, mostly well-formed, and expensive: pickles whose memo, opcodes or
 * nesting make decoding cost far more than their size, and zip archives that inflate far beyond
 * theirs. Made at run time by the budget tests and the fuzzer (nothing large is committed).
 */
import { constants, deflateRawSync } from 'node:zlib';
import { PickleWriter } from '../../../converters/formats/pickle.js';
import { encodeZip } from '../../../converters/formats/zip.js';
import { concatChunks } from '../../../converters/io.js';

/** The pickle opcodes these builders use. */
export const OP = {
  PROTO: 0x80,
  STOP: 0x2e,
  MARK: 0x28,
  POP: 0x30,
  DUP: 0x32,
  NONE: 0x4e,
  BININT1: 0x4b,
  BININT2: 0x4d,
  REDUCE: 0x52,
  EMPTY_LIST: 0x5d,
  APPEND: 0x61,
  APPENDS: 0x65,
  LIST: 0x6c,
  EMPTY_TUPLE: 0x29,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  EMPTY_DICT: 0x7d,
  SETITEM: 0x73,
  EMPTY_SET: 0x8f,
  SHORT_BINBYTES: 0x43,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE8: 0x8d,
  BINBYTES8: 0x8e,
  BINSTRING: 0x54,
  LONG4: 0x8b,
  FRAME: 0x95,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  LONG_BINPUT: 0x72,
  MEMOIZE: 0x94,
  GLOBAL: 0x63,
} as const;

/** Bytes built from small pieces and long runs, joined once. */
export class Program {
  private readonly chunks: Uint8Array[] = [];

  constructor(protocol = 4) {
    this.op(OP.PROTO, protocol);
  }

  /** Append a few bytes. */
  op(...bytes: number[]): this {
    this.chunks.push(Uint8Array.from(bytes));
    return this;
  }

  /** Append `unit` repeated `n` times. */
  repeat(unit: readonly number[], n: number): this {
    const out = new Uint8Array(unit.length * n);
    if (unit.length === 1) out.fill(unit[0]!);
    else for (let i = 0; i < n; i++) out.set(unit, i * unit.length);
    this.chunks.push(out);
    return this;
  }

  /** Append raw bytes. */
  raw(b: Uint8Array): this {
    this.chunks.push(b);
    return this;
  }

  /** Append STOP and join. */
  stop(): Uint8Array {
    this.chunks.push(Uint8Array.of(OP.STOP));
    return concatChunks(this.chunks);
  }
}

const u32 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
const u64 = (n: bigint): number[] => Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));

/**
 * The memo bomb: a list holding the previous level's (memoised) list `fan` times, `levels`
 * deep; a few hundred bytes whose tree has fan^levels leaves.
 */
export function memoFanOut(levels: number, fan: number, p = new Program()): Program {
  p.op(OP.EMPTY_LIST, OP.MEMOIZE, OP.POP);
  for (let l = 0; l < levels; l++) {
    p.op(OP.EMPTY_LIST, OP.MARK);
    for (let i = 0; i < fan; i++) p.op(OP.LONG_BINGET, ...u32(l));
    p.op(OP.APPENDS, OP.MEMOIZE, OP.POP);
  }
  return p.op(OP.LONG_BINGET, ...u32(levels));
}

/** Lists linked through the memo, each appended to the one before after both were built: a chain `n` deep. */
export function memoChain(n: number, p = new Program()): Program {
  for (let i = 0; i < n; i++) p.op(OP.EMPTY_LIST, OP.LONG_BINPUT, ...u32(i), OP.POP);
  for (let i = 0; i + 1 < n; i++) p.op(OP.LONG_BINGET, ...u32(i), OP.LONG_BINGET, ...u32(i + 1), OP.APPEND, OP.POP);
  return p.op(OP.LONG_BINGET, 0, 0, 0, 0);
}

/** Containers nested `n` deep: tuples, lists or dicts. */
export function deep(kind: 'tuple' | 'list' | 'dict', n: number, p = new Program()): Program {
  if (kind === 'tuple') return p.op(OP.NONE).repeat([OP.TUPLE1], n);
  if (kind === 'list') return p.repeat([OP.MARK], n).op(OP.NONE).repeat([OP.LIST], n);
  return p.repeat([OP.EMPTY_DICT, OP.BININT1, 1], n).op(OP.NONE).repeat([OP.SETITEM], n);
}

/** Opcodes that declare lengths far past the data (each alone ends the pickle with an error). */
export const HUGE_LENGTHS: readonly (readonly number[])[] = [
  [OP.BINUNICODE8, ...u64(1n << 62n)],
  [OP.BINBYTES8, ...u64(0xffffffffffffn)],
  [OP.BINSTRING, ...u32(0xffffffff)],
  [OP.LONG4, ...u32(0x7fffffff)],
  [OP.FRAME, ...u64(1n << 40n)],
  [OP.SHORT_BINBYTES, 255],
  [OP.LONG_BINGET, ...u32(0xfffffff0)],
];

/** Cheap to encode, expensive to build: one or a few bytes each, each leaving an object or a stack slot. */
export const CHEAP_UNITS: readonly (readonly number[])[] = [
  [OP.EMPTY_DICT],
  [OP.EMPTY_LIST],
  [OP.EMPTY_TUPLE],
  [OP.EMPTY_SET],
  [OP.NONE],
  [OP.MARK],
  [OP.DUP],
  [OP.MEMOIZE],
  [OP.SHORT_BINBYTES, 1, 0],
  [OP.SHORT_BINUNICODE, 1, 0x41],
  [OP.NONE, OP.APPEND],
  [OP.EMPTY_TUPLE, OP.TUPLE1],
];

const LEGACY_MAGIC = [OP.PROTO, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, OP.STOP];

/**
 * A legacy torch file whose second pickle (the protocol version) is `pickle`: the reader runs it
 * whole, then names its value in the error.
 */
export function legacyPth(pickle: Uint8Array): Uint8Array {
  return concatChunks([Uint8Array.from(LEGACY_MAGIC), pickle]);
}

/** A torch zip archive holding `pickle` as its data.pkl, and `entries` beside it. */
export function zipPth(pickle: Uint8Array, entries: { name: string; data: Uint8Array }[] = []): Uint8Array {
  return concatChunks(
    encodeZip([{ name: 'archive/data.pkl', data: [pickle] }, { name: 'archive/byteorder', data: [new TextEncoder().encode('little')] }, ...entries.map((e) => ({ name: e.name, data: [e.data] }))]),
  );
}

/** A tensor of a state dict written by `stateDictPickle`: its storage, size and stride. */
export interface TensorSpec {
  name: string;
  storage: string;
  /** Elements of the storage (uint8). */
  numel: number;
  size: number[];
  stride: number[];
}

/** The data.pkl of a state dict of uint8 tensors as `torch.save` writes it (storages named by key). */
export function stateDictPickle(tensors: readonly TensorSpec[]): Uint8Array {
  const w = new PickleWriter();
  w.global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  return writeTensors(w, tensors).setItems().finish();
}

function writeTensors(w: PickleWriter, tensors: readonly TensorSpec[]): PickleWriter {
  for (const t of tensors) {
    w.str(t.name).global('torch._utils', '_rebuild_tensor_v2').mark();
    w.mark().str('storage').global('torch', 'ByteStorage').str(t.storage).str('cpu').int(t.numel).tuple().binPersId();
    w.int(0).mark();
    for (const d of t.size) w.int(d);
    w.tuple().mark();
    for (const s of t.stride) w.int(s);
    w.tuple().bool(false).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
  }
  return w;
}

/**
 * A torch zip archive whose state dict holds one 2x2 uint8 tensor 'w' and, under '_metadata', a
 * tuple of whatever the opcodes of `body` (a pickle, from after PROTO to before STOP) leave.
 */
export function stateDictWithExtra(body: Uint8Array): Uint8Array {
  const head = new PickleWriter().global('collections', 'OrderedDict').emptyTuple().reduce().mark().str('_metadata').mark().finish();
  // The second writer's memo starts again at 0: it overwrites entries, never reads old ones.
  const tail = writeTensors(new PickleWriter(), [{ name: 'w', storage: '0', numel: 4, size: [2, 2], stride: [2, 1] }]).setItems().finish();
  const pkl = concatChunks([head.subarray(0, -1), body, Uint8Array.of(0x74), tail.subarray(2)]);
  return zipPth(pkl, [{ name: 'archive/data/0', data: Uint8Array.of(1, 2, 3, 4) }]);
}

/** A zip entry written as is: deflated data with whatever sizes it declares. */
export interface RawZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  data: Uint8Array;
  /** The unpacked size the headers declare. */
  size: number;
}

/** A zip archive of raw entries (no ZIP64: sizes below 4 GiB). */
export function rawZip(entries: readonly RawZipEntry[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = enc.encode(e.name);
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(8, e.method, true);
    lv.setUint32(18, e.data.length, true);
    lv.setUint32(22, e.size, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const cen = new Uint8Array(46 + name.length);
    const cv = new DataView(cen.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(10, e.method, true);
    cv.setUint32(20, e.data.length, true);
    cv.setUint32(24, e.size, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    cen.set(name, 46);
    parts.push(local, e.data);
    central.push(cen);
    offset += local.length + e.data.length;
  }
  const cdSize = central.reduce((a, c) => a + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  return concatChunks([...parts, ...central, eocd]);
}

/**
 * A raw deflate stream of `mib` MiB of zeros, about 1 KiB per MiB, made without deflating them
 * all: one fully flushed block of 1 MiB repeated, then an empty final block.
 */
export function deflatedZeros(mib: number): Uint8Array {
  const block = deflateRawSync(new Uint8Array(1 << 20), { finishFlush: constants.Z_FULL_FLUSH });
  const out = new Uint8Array(block.length * mib + 2);
  for (let i = 0; i < mib; i++) out.set(block, i * block.length);
  out.set([0x03, 0x00], block.length * mib);
  return out;
}

/** A zip .pth whose storages are deflated zeros, one of `mib` MiB per entry of `storageMiB`, declaring `declared` bytes each. */
export function deflatedPth(storageMiB: readonly number[], declared: (mib: number) => number = (m) => m * 1024 * 1024): Uint8Array {
  const tensors: TensorSpec[] = storageMiB.map((m, i) => ({ name: `t${i}`, storage: String(i), numel: declared(m), size: [declared(m)], stride: [1] }));
  const pkl = stateDictPickle(tensors);
  return rawZip([
    { name: 'archive/data.pkl', method: 0, data: pkl, size: pkl.length },
    ...storageMiB.map((m, i) => ({ name: `archive/data/${i}`, method: 8, data: deflatedZeros(m), size: declared(m) })),
  ]);
}

/** A checkpoint to decode with the default budgets, made where it is decoded. */
export interface Bomb {
  file: string;
  bytes: Uint8Array;
}

/**
 * The reported attacks, by name, for a child process to make and decode with the default
 * budgets (so that its peak memory is its own).
 */
export const BOMBS: Record<string, () => Bomb> = {
  // 740 bytes whose value, written out, has 4^30 empty lists.
  'memo-bomb': () => ({ file: 'memo-bomb.pth', bytes: legacyPth(memoFanOut(30, 4).stop()) }),
  // The bomb inside a tuple used as a dict key: the reader names the keys when it finds no tensors.
  'memo-bomb-key': () => {
    const p = new Program().op(OP.EMPTY_DICT);
    return { file: 'memo-bomb-key.pth', bytes: zipPth(memoFanOut(30, 4, p).op(OP.TUPLE1, OP.NONE, OP.SETITEM).stop()) };
  },
  // 24 MB of EMPTY_DICT: about 240 bytes of heap per byte when each dict is a Map.
  'empty-dicts': () => ({ file: 'empty-dicts.pth', bytes: new Program().repeat([OP.EMPTY_DICT], 24_000_000).stop() }),
  'memoize': () => ({ file: 'memoize.pth', bytes: new Program().op(OP.EMPTY_LIST).repeat([OP.MEMOIZE], 3_000_000).stop() }),
  // About 4 MB of deflate that inflates to 4000 MiB, declared honestly.
  'zip-bomb': () => ({ file: 'zip-bomb.pth', bytes: deflatedPth([4000]) }),
  // The same data declaring 1 MiB (below the ratio's floor): cut while inflating.
  'zip-bomb-lying': () => ({ file: 'zip-bomb-lying.pth', bytes: deflatedPth([4000], () => 1024 * 1024) }),
};
