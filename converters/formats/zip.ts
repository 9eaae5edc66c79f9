/**
 * ZIP archives: a reader (central directory, ZIP64, stored and deflated entries, every
 * offset checked against the archive size; over bytes in memory or over a file read at
 * offsets) and a writer of stored entries aligned the way
 * `torch.save` aligns them (data at multiples of 64 bytes), with ZIP64 records when needed.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { crc32, inflateRawSync } from 'node:zlib';
import { boundMessage, budgetSetting, resolveBudgets, type Budgets } from '../budgets.js';
import { CheckpointFormatError, LimitExceededError } from '../errors.js';

/** One entry of an archive's central directory. */
export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflated. */
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly crc32: number;
  /** Offset of the entry's local header. */
  readonly localOffset: number;
}

/** Limits applied before anything is allocated. */
export interface ZipLimits {
  /** Most entries read from a central directory. @default 1_000_000 */
  maxEntries?: number;
  /** Largest inflated size of one deflated entry, below `budgets.unpackedEntryBytes`. @default budgets.unpackedEntryBytes */
  maxEntrySize?: number;
  /**
   * Budgets on unpacking: `unpackedEntryBytes`, `unpackedTotalBytes`, `compressionRatio`
   * (per entry and for the whole archive), `errorMessageChars`. @default DEFAULT_BUDGETS
   */
  budgets?: Partial<Budgets>;
}

/** Entries (and archives) unpacking to at most this many bytes are not held to the compression ratio. */
const RATIO_EXEMPT_BYTES = 1024 * 1024;

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;

/** Does this look like a ZIP archive (local file header signature)? */
export function looksLikeZip(head: Uint8Array): boolean {
  return head.byteLength >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

/**
 * Where an archive's bytes come from: memory, or a file read at offsets (`ZipReader.openFile`),
 * so that an archive on disk is never held whole.
 */
export interface ZipSource {
  readonly byteLength: number;
  /** The bytes [start, end) of the archive; the caller keeps within `byteLength`. */
  read(start: number, end: number): Uint8Array;
  close?(): void;
}

function bytesSource(bytes: Uint8Array): ZipSource {
  return { byteLength: bytes.byteLength, read: (start, end) => bytes.subarray(start, end) };
}

function fileSource(path: string): ZipSource {
  const fd = openSync(path, 'r');
  try {
    const byteLength = fstatSync(fd).size;
    return {
      byteLength,
      read(start, end) {
        const out = Buffer.allocUnsafe(end - start);
        let got = 0;
        while (got < out.byteLength) {
          const n = readSync(fd, out, got, out.byteLength - got, start + got);
          if (n === 0) throw new CheckpointFormatError(`${path}: ends at byte ${start + got}, before the ${byteLength} bytes it had when opened`, { file: path });
          got += n;
        }
        return out;
      },
      close: () => closeSync(fd),
    };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

const UTF8 = new TextDecoder('utf-8');

/** Most bytes a central directory may take (it is read whole). */
const MAX_CENTRAL_DIRECTORY_BYTES = 64 * 1024 * 1024;

/** Little-endian fields of a piece of the archive that starts at byte `base`. */
class Piece {
  private readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly base: number,
    private readonly fail: (msg: string) => never,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private at(off: number, n: number): number {
    const i = off - this.base;
    if (i < 0 || i + n > this.bytes.byteLength) this.fail(`record at byte ${off} runs past the end of the archive`);
    return i;
  }

  u16(off: number): number {
    return this.view.getUint16(this.at(off, 2), true);
  }

  u32(off: number): number {
    return this.view.getUint32(this.at(off, 4), true);
  }

  u64(off: number): number {
    const v = this.view.getBigUint64(this.at(off, 8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`64-bit field at byte ${off} is out of range`);
    return Number(v);
  }

  text(off: number, n: number): string {
    const i = this.at(off, n);
    return UTF8.decode(this.bytes.subarray(i, i + n));
  }
}

/**
 * A read-only ZIP archive, over bytes held in memory or over a file (`ZipReader.openFile`:
 * the central directory is read whole, each entry's data when it is read; `close` it).
 */
export class ZipReader {
  readonly entries: readonly ZipEntry[];
  private readonly byName: Map<string, ZipEntry>;
  private readonly source: ZipSource;
  private readonly budgets: Readonly<Budgets>;
  /** Bytes inflated so far (each entry counted once), for `budgets.unpackedTotalBytes` and the archive's ratio. */
  private unpacked = 0;
  private readonly counted = new Set<ZipEntry>();

  constructor(
    bytes: Uint8Array | ZipSource,
    private readonly file = 'zip archive',
    private readonly limits: ZipLimits = {},
  ) {
    this.budgets = resolveBudgets(limits.budgets);
    this.source = bytes instanceof Uint8Array ? bytesSource(bytes) : bytes;
    this.entries = this.readCentralDirectory();
    this.byName = new Map(this.entries.map((e) => [e.name, e]));
  }

  /** The archive at `path`, read at offsets as its entries are read; `close` it when done. */
  static openFile(path: string, file = path, limits: ZipLimits = {}): ZipReader {
    const source = fileSource(path);
    try {
      return new ZipReader(source, file, limits);
    } catch (err) {
      source.close?.();
      throw err;
    }
  }

  /** Let go of the file under an archive opened with `openFile` (nothing for one in memory). */
  close(): void {
    this.source.close?.();
  }

  private fail(msg: string): never {
    throw new CheckpointFormatError(boundMessage(`${this.file}: ${msg}`, this.budgets.errorMessageChars), { file: this.file });
  }

  private exceeded(msg: string): never {
    throw new LimitExceededError(boundMessage(`${this.file}: ${msg}`, this.budgets.errorMessageChars));
  }

  /** The bytes [start, end) as a piece, `end` held to the archive's length. */
  private piece(start: number, end: number): Piece {
    const clipped = Math.min(end, this.source.byteLength);
    return new Piece(start < clipped ? this.source.read(start, clipped) : new Uint8Array(0), start, (msg) => this.fail(msg));
  }

  private readCentralDirectory(): ZipEntry[] {
    const len = this.source.byteLength;
    // the end record, its comment, and the ZIP64 locator before it
    const tailStart = Math.max(0, len - 22 - 0xffff - 20);
    const tail = this.piece(tailStart, len);
    let eocd = -1;
    for (let i = len - 22; i >= Math.max(0, len - 22 - 0xffff); i--) {
      if (tail.u32(i) === SIG_EOCD) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) this.fail('no end-of-central-directory record (truncated or not a zip archive)');
    let count = tail.u16(eocd + 10);
    let cdSize = tail.u32(eocd + 12);
    let cdOffset = tail.u32(eocd + 16);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || tail.u32(loc) !== SIG_EOCD64_LOCATOR) this.fail('ZIP64 values without a ZIP64 locator');
      const recAt = tail.u64(loc + 8);
      const rec = this.piece(recAt, recAt + 56);
      if (rec.u32(recAt) !== SIG_EOCD64) this.fail(`no ZIP64 end-of-central-directory record at byte ${recAt}`);
      count = rec.u64(recAt + 32);
      cdSize = rec.u64(recAt + 40);
      cdOffset = rec.u64(recAt + 48);
    }
    const maxEntries = this.limits.maxEntries ?? 1_000_000;
    if (count > maxEntries) this.exceeded(`${count} entries exceed the limit of ${maxEntries}`);
    if (cdOffset + cdSize > len) this.fail(`central directory [${cdOffset}, ${cdOffset + cdSize}) lies outside the archive (${len} bytes)`);
    if (cdSize > MAX_CENTRAL_DIRECTORY_BYTES) this.exceeded(`central directory of ${cdSize} bytes is over the limit of ${MAX_CENTRAL_DIRECTORY_BYTES}`);
    const cd = this.piece(cdOffset, cdOffset + cdSize);
    const cdEnd = cdOffset + cdSize;
    const entries: ZipEntry[] = [];
    let p = cdOffset;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdEnd || cd.u32(p) !== SIG_CENTRAL) this.fail(`central directory entry ${i} has a bad signature`);
      const method = cd.u16(p + 10);
      const crc = cd.u32(p + 16);
      let compressedSize = cd.u32(p + 20);
      let size = cd.u32(p + 24);
      const nameLen = cd.u16(p + 28);
      const extraLen = cd.u16(p + 30);
      const commentLen = cd.u16(p + 32);
      let localOffset = cd.u32(p + 42);
      const end = p + 46 + nameLen + extraLen + commentLen;
      if (end > cdEnd) this.fail(`central directory entry ${i} runs past the end of the central directory (byte ${cdEnd})`);
      const name = cd.text(p + 46, nameLen);
      let x = p + 46 + nameLen;
      const xEnd = x + extraLen;
      while (x + 4 <= xEnd) {
        const id = cd.u16(x);
        const sz = cd.u16(x + 2);
        if (id === 0x0001) {
          let q = x + 4;
          if (size === 0xffffffff) {
            size = cd.u64(q);
            q += 8;
          }
          if (compressedSize === 0xffffffff) {
            compressedSize = cd.u64(q);
            q += 8;
          }
          if (localOffset === 0xffffffff) localOffset = cd.u64(q);
        }
        x += 4 + sz;
      }
      if (method !== 0 && method !== 8) this.fail(`entry '${name}' uses compression method ${method}; only stored (0) and deflate (8) are supported`);
      if (method === 0 && compressedSize !== size) this.fail(`stored entry '${name}' has compressed size ${compressedSize} but size ${size}`);
      entries.push({ name, method, compressedSize, size, crc32: crc, localOffset });
      p = end;
    }
    return entries;
  }

  /** The entry of that name, if any. */
  entry(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  /** Refuse to inflate an entry whose declared size is past a budget. */
  private checkUnpacked(e: ZipEntry): void {
    const b = this.budgets;
    const max = Math.min(this.limits.maxEntrySize ?? Infinity, b.unpackedEntryBytes);
    if (e.size > max) {
      const which = max === b.unpackedEntryBytes ? ` (${budgetSetting('unpackedEntryBytes')})` : '';
      this.exceeded(`entry '${e.name}' inflates to ${e.size} bytes, more than the limit of ${max}${which}`);
    }
    if (this.counted.has(e)) return;
    const total = this.unpacked + e.size;
    if (total > b.unpackedTotalBytes) {
      this.exceeded(`entries inflate to more than ${b.unpackedTotalBytes} bytes in all (${budgetSetting('unpackedTotalBytes')})`);
    }
    if (e.size > RATIO_EXEMPT_BYTES && e.size > b.compressionRatio * e.compressedSize) {
      this.exceeded(`entry '${e.name}' inflates ${e.compressedSize} bytes to ${e.size}, a ratio over ${b.compressionRatio} (${budgetSetting('compressionRatio')})`);
    }
    const len = this.source.byteLength;
    if (total > RATIO_EXEMPT_BYTES && total > b.compressionRatio * len) {
      this.exceeded(`entries inflate to ${total} bytes from an archive of ${len}, a ratio over ${b.compressionRatio} (${budgetSetting('compressionRatio')})`);
    }
  }

  /** Byte range of an entry's (compressed) data, checked against the archive. */
  private dataRange(e: ZipEntry): [number, number] {
    const p = e.localOffset;
    const local = this.piece(p, p + 30);
    if (local.u32(p) !== SIG_LOCAL) this.fail(`entry '${e.name}' has no local header at byte ${p}`);
    const start = p + 30 + local.u16(p + 26) + local.u16(p + 28);
    const end = start + e.compressedSize;
    const len = this.source.byteLength;
    if (end > len) this.fail(`entry '${e.name}' data [${start}, ${end}) runs past the end of the archive (${len} bytes)`);
    return [start, end];
  }

  /**
   * The bytes of an entry: the stored bytes (a view into an archive in memory), inflated for
   * deflated ones. Before inflating, the declared size is held to the budgets (per entry, in
   * total, and the compression ratio of the entry and of the archive; an entry read again is
   * not counted twice); while inflating, the output is cut at the declared size, so a header
   * that lies about it gains nothing. `verify` checks the CRC-32.
   */
  read(name: string | ZipEntry, options: { verify?: boolean } = {}): Uint8Array {
    const e = typeof name === 'string' ? this.byName.get(name) : name;
    if (e === undefined) this.fail(`has no entry '${String(name)}'`);
    const [start, end] = this.dataRange(e);
    let data: Uint8Array;
    if (e.method === 0) {
      data = this.source.read(start, end);
    } else {
      this.checkUnpacked(e);
      try {
        data = inflateRawSync(this.source.read(start, end), { maxOutputLength: Math.max(1, e.size) });
      } catch (err) {
        if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') this.fail(`entry '${e.name}' inflates to more than its declared ${e.size} bytes`);
        return this.fail(`entry '${e.name}' does not inflate (${(err as Error).message})`);
      }
      if (data.byteLength !== e.size) this.fail(`entry '${e.name}' inflates to ${data.byteLength} bytes, declared ${e.size}`);
      if (!this.counted.has(e)) {
        this.counted.add(e);
        this.unpacked += data.byteLength;
      }
    }
    if (options.verify && crc32(data) >>> 0 !== e.crc32) this.fail(`entry '${e.name}' fails its CRC-32 check`);
    return data;
  }
}

/** An entry to write: its name and its data (possibly split into several chunks). */
export interface ZipWriteEntry {
  readonly name: string;
  readonly data: readonly Uint8Array[];
}

/** Writer options. */
export interface ZipWriteParams {
  /** Data of every entry starts at a multiple of this many bytes. @default 64 */
  align?: number;
}

/**
 * Encode stored entries as a ZIP archive, returned as a list of chunks (entry data are the
 * caller's views, not copies). Each entry's data is aligned with a padding extra field, as
 * PyTorch's writer does, and ZIP64 records are written where a size or offset needs them.
 */
export function encodeZip(entries: readonly ZipWriteEntry[], params: ZipWriteParams = {}): Uint8Array[] {
  const align = params.align ?? 64;
  const out: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const enc = new TextEncoder();
  for (const e of entries) {
    const name = enc.encode(e.name);
    let size = 0;
    let crc = 0;
    for (const c of e.data) {
      size += c.byteLength;
      crc = crc32(c, crc);
    }
    const zip64 = size >= 0xffffffff || offset >= 0xffffffff;
    const z64Local = zip64 ? 20 : 0;
    const base = offset + 30 + name.byteLength + z64Local;
    const pad = (align - ((base + 4) % align)) % align;
    const extraLen = z64Local + 4 + pad;
    const local = new Uint8Array(30 + name.byteLength + extraLen);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, SIG_LOCAL, true);
    lv.setUint16(4, zip64 ? 45 : 20, true);
    lv.setUint16(6, 0x0800, true); // names are UTF-8
    lv.setUint16(8, 0, true);
    lv.setUint32(14, crc >>> 0, true);
    lv.setUint32(18, zip64 ? 0xffffffff : size, true);
    lv.setUint32(22, zip64 ? 0xffffffff : size, true);
    lv.setUint16(26, name.byteLength, true);
    lv.setUint16(28, extraLen, true);
    local.set(name, 30);
    let x = 30 + name.byteLength;
    if (zip64) {
      lv.setUint16(x, 0x0001, true);
      lv.setUint16(x + 2, 16, true);
      lv.setBigUint64(x + 4, BigInt(size), true);
      lv.setBigUint64(x + 12, BigInt(size), true);
      x += 20;
    }
    lv.setUint16(x, 0x4246, true); // 'FB': PyTorch's padding field
    lv.setUint16(x + 2, pad, true);
    out.push(local, ...e.data);

    const cz64 = zip64 ? 28 : 0;
    const cen = new Uint8Array(46 + name.byteLength + cz64);
    const cv = new DataView(cen.buffer);
    cv.setUint32(0, SIG_CENTRAL, true);
    cv.setUint16(4, zip64 ? 45 : 20, true);
    cv.setUint16(6, zip64 ? 45 : 20, true);
    cv.setUint16(8, 0x0800, true);
    cv.setUint32(16, crc >>> 0, true);
    cv.setUint32(20, zip64 ? 0xffffffff : size, true);
    cv.setUint32(24, zip64 ? 0xffffffff : size, true);
    cv.setUint16(28, name.byteLength, true);
    cv.setUint16(30, cz64, true);
    cv.setUint32(42, zip64 ? 0xffffffff : offset, true);
    cen.set(name, 46);
    if (zip64) {
      const q = 46 + name.byteLength;
      cv.setUint16(q, 0x0001, true);
      cv.setUint16(q + 2, 24, true);
      cv.setBigUint64(q + 4, BigInt(size), true);
      cv.setBigUint64(q + 12, BigInt(size), true);
      cv.setBigUint64(q + 20, BigInt(offset), true);
    }
    central.push(cen);
    offset += local.byteLength + size;
  }
  const cdOffset = offset;
  let cdSize = 0;
  for (const c of central) cdSize += c.byteLength;
  for (const c of central) out.push(c);
  const needZip64 = entries.length >= 0xffff || cdOffset >= 0xffffffff || cdSize >= 0xffffffff;
  if (needZip64) {
    const rec = new Uint8Array(56 + 20);
    const rv = new DataView(rec.buffer);
    rv.setUint32(0, SIG_EOCD64, true);
    rv.setBigUint64(4, 44n, true);
    rv.setUint16(12, 45, true);
    rv.setUint16(14, 45, true);
    rv.setBigUint64(24, BigInt(entries.length), true);
    rv.setBigUint64(32, BigInt(entries.length), true);
    rv.setBigUint64(40, BigInt(cdSize), true);
    rv.setBigUint64(48, BigInt(cdOffset), true);
    rv.setUint32(56, SIG_EOCD64_LOCATOR, true);
    rv.setBigUint64(56 + 8, BigInt(cdOffset + cdSize), true);
    rv.setUint32(56 + 16, 1, true);
    out.push(rec);
  }
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, SIG_EOCD, true);
  ev.setUint16(8, needZip64 ? 0xffff : entries.length, true);
  ev.setUint16(10, needZip64 ? 0xffff : entries.length, true);
  ev.setUint32(12, needZip64 ? 0xffffffff : cdSize, true);
  ev.setUint32(16, needZip64 ? 0xffffffff : cdOffset, true);
  out.push(eocd);
  return out;
}
