/**
 * NumPy `.npy` arrays (format versions 1.0, 2.0 and 3.0): booleans, integers and floats of
 * either byte order, C or Fortran order, into a `Volume`. An array has no geometry: a 3-D
 * array is `[D, H, W]`, 4-D is `[C, D, H, W]`, 5-D must have `N = 1`, and a 2-D array is one
 * slice `[H, W]`; spacing is 1 mm unless given, the affine `diag(sw, sh, sd, 1)`.
 */
import { InvalidArgumentError } from '../../converters/errors.js';
import { VolumeFormatError, VolumeUnsupportedError } from './errors.js';
import { decodeSamples, SAMPLE_BYTES, type SampleType } from './samples.js';
import { checkVoxelCount, VOLUME_LIMITS, type Vec3, type Volume } from './volume.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** Longest header accepted (NumPy itself refuses more than 10,000 bytes by default). */
const MAX_HEADER = 1 << 20;

/** Does this look like a `.npy` file? */
export function looksLikeNpy(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 6 && MAGIC.every((b, i) => bytes[i] === b);
}

const KINDS: Record<string, SampleType> = {
  b1: 'bool',
  u1: 'uint8',
  i1: 'int8',
  u2: 'uint16',
  i2: 'int16',
  u4: 'uint32',
  i4: 'int32',
  u8: 'uint64',
  i8: 'int64',
  f2: 'float16',
  f4: 'float32',
  f8: 'float64',
};

/** The parsed header of a `.npy` file. */
export interface NpyHeader {
  type: SampleType;
  littleEndian: boolean;
  fortranOrder: boolean;
  shape: number[];
  /** Byte offset of the data. */
  dataOffset: number;
  /** The `descr` string as written. */
  descr: string;
}

/** A tiny parser for the Python literal dict NumPy writes (strings, booleans, int tuples). */
function parseLiteral(text: string, fail: (msg: string) => never): Record<string, unknown> {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const value = (depth: number): unknown => {
    if (depth > 4) fail('header nests too deep');
    ws();
    const ch = text[i];
    if (ch === "'" || ch === '"') {
      const end = text.indexOf(ch, i + 1);
      if (end < 0) fail('unterminated string in header');
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    if (ch === '(' || ch === '[') {
      const close = ch === '(' ? ')' : ']';
      i++;
      const items: unknown[] = [];
      for (;;) {
        ws();
        if (text[i] === close) {
          i++;
          return items;
        }
        items.push(value(depth + 1));
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== close) fail(`expected ',' or '${close}' at header character ${i}`);
      }
    }
    if (ch === '{') {
      i++;
      const obj: Record<string, unknown> = {};
      for (;;) {
        ws();
        if (text[i] === '}') {
          i++;
          return obj;
        }
        const key = value(depth + 1);
        if (typeof key !== 'string') fail('header dict key is not a string');
        ws();
        if (text[i] !== ':') fail(`expected ':' at header character ${i}`);
        i++;
        obj[key as string] = value(depth + 1);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== '}') fail(`expected ',' or '}' at header character ${i}`);
      }
    }
    const m = /^(True|False|None|-?\d+)/.exec(text.slice(i, i + 32));
    if (m === null) fail(`unexpected ${JSON.stringify(text.slice(i, i + 10))} at header character ${i}`);
    i += m![0].length;
    if (m![0] === 'True') return true;
    if (m![0] === 'False') return false;
    if (m![0] === 'None') return null;
    return Number(m![0]);
  };
  const v = value(0);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('header is not a dict');
  return v as Record<string, unknown>;
}

/** Parse and validate a `.npy` header. */
export function parseNpyHeader(bytes: Uint8Array, file: string): NpyHeader {
  const fail = (msg: string): never => {
    throw new VolumeFormatError(`${file}: ${msg}`, { file });
  };
  if (!looksLikeNpy(bytes)) fail('not a .npy file (no \\x93NUMPY magic)');
  if (bytes.byteLength < 10) fail('truncated .npy header');
  const major = bytes[6]!;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let len: number;
  let start: number;
  if (major === 1) {
    len = v.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.byteLength < 12) fail('truncated .npy header');
    len = v.getUint32(8, true);
    start = 12;
  } else {
    return fail(`unsupported .npy format version ${major}.${bytes[7]}`);
  }
  if (len > MAX_HEADER) fail(`header length ${len} exceeds the limit of ${MAX_HEADER} bytes`);
  if (start + len > bytes.byteLength) fail(`header of ${len} bytes runs past the end of the file (${bytes.byteLength} bytes)`);
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + len));
  const dict = parseLiteral(text, fail);
  const descr = dict['descr'];
  if (typeof descr !== 'string') {
    throw new VolumeUnsupportedError(`${file}: structured dtype ${JSON.stringify(descr)} is not supported; store a plain numeric array`, { file });
  }
  const m = /^([<>|=])([a-z]\d+)$/.exec(descr);
  const type = m ? KINDS[m[2]!] : undefined;
  if (m === null || type === undefined) throw new VolumeUnsupportedError(`${file}: dtype '${descr}' is not supported (bool, integers up to 64 bits, float16/32/64)`, { file });
  const fortranOrder = dict['fortran_order'];
  if (typeof fortranOrder !== 'boolean') fail(`'fortran_order' is ${JSON.stringify(fortranOrder)}, not a boolean`);
  const shape = dict['shape'];
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number')) fail(`'shape' is ${JSON.stringify(shape)}, not a tuple of integers`);
  for (const d of shape as number[]) if (!Number.isSafeInteger(d) || d < 0) fail(`invalid dimension ${d} in shape (${(shape as number[]).join(', ')})`);
  return {
    type: type!,
    littleEndian: m![1] !== '>',
    fortranOrder: fortranOrder as boolean,
    shape: shape as number[],
    dataOffset: start + len,
    descr,
  };
}

/** Options of `decodeNpy`. */
export interface DecodeNpyParams {
  /** Name used in error messages. @default 'npy' */
  file?: string;
  /** Voxel spacing `[sd, sh, sw]` in mm to record (the file has none). @default [1, 1, 1] */
  spacing?: Vec3;
  /** Most voxels (all channels) accepted. @default VOLUME_LIMITS.maxVoxels */
  maxVoxels?: number;
}

/** Affine of a grid without geometry: `diag(sw, sh, sd, 1)`. */
export function spacingAffine(spacing: Vec3): number[] {
  return [spacing[2], 0, 0, 0, 0, spacing[1], 0, 0, 0, 0, spacing[0], 0, 0, 0, 0, 1];
}

/** Check a caller-given spacing. */
export function checkSpacing(spacing: Vec3): Vec3 {
  if (spacing.length !== 3 || !spacing.every((s) => Number.isFinite(s) && s > 0)) {
    throw new InvalidArgumentError(`'spacing' must be three positive numbers [sd, sh, sw], got [${spacing.join(', ')}]`);
  }
  return [...spacing];
}

/** The longest start of a `.npy` that holds any header `parseNpyHeader` accepts. */
export const NPY_HEAD_BYTES = 12 + MAX_HEADER;

/** A `.npy`'s volume: its header, the shape as `[C, D, H, W]` and the voxel count, its data checked to fit the file. */
export interface NpyLayout {
  header: NpyHeader;
  shape: [number, number, number, number];
  count: number;
  channels: 'single' | 'array';
}

/**
 * The volume a `.npy` holds, from the start of the file (`NPY_HEAD_BYTES` of it, or all of a
 * shorter one) and its size: the errors `decodeNpy` gives for the header, the shape and a file
 * too short for its data.
 */
export function npyLayout(head: Uint8Array, fileBytes: number, params: DecodeNpyParams = {}): NpyLayout {
  const file = params.file ?? 'npy';
  const fail = (msg: string): never => {
    throw new VolumeFormatError(`${file}: ${msg}`, { file });
  };
  const h = parseNpyHeader(head, file);
  let shape4: [number, number, number, number];
  const s = h.shape;
  if (s.length === 2) shape4 = [1, 1, s[0]!, s[1]!];
  else if (s.length === 3) shape4 = [1, s[0]!, s[1]!, s[2]!];
  else if (s.length === 4) shape4 = [s[0]!, s[1]!, s[2]!, s[3]!];
  else if (s.length === 5 && s[0] === 1) shape4 = [s[1]!, s[2]!, s[3]!, s[4]!];
  else throw new VolumeUnsupportedError(`${file}: array of shape (${s.join(', ')}) is not a volume: expected (D, H, W), (C, D, H, W), (1, C, D, H, W) or one slice (H, W)`, { file });
  const n = checkVoxelCount(shape4, file, params.maxVoxels ?? VOLUME_LIMITS.maxVoxels, (msg) => fail(`shape: ${msg}`));
  const end = h.dataOffset + n * SAMPLE_BYTES[h.type];
  if (end > fileBytes) fail(`data of ${n} x ${h.descr} needs ${end - h.dataOffset} bytes after the header, the file has ${fileBytes - h.dataOffset} (truncated)`);
  return { header: h, shape: shape4, count: n, channels: s.length >= 4 ? 'array' : 'single' };
}

/** Decode a `.npy` held in memory. */
export function decodeNpy(bytes: Uint8Array, params: DecodeNpyParams = {}): Volume {
  const file = params.file ?? 'npy';
  const spacing = checkSpacing(params.spacing ?? [1, 1, 1]);
  const { header: h, shape: shape4, count: n, channels } = npyLayout(bytes, bytes.byteLength, params);
  const samples = decodeSamples(bytes, h.dataOffset, n, h.type, h.littleEndian);
  const data = new Float32Array(n);
  if (!h.fortranOrder || shape4.filter((d) => d > 1).length <= 1) {
    for (let i = 0; i < n; i++) data[i] = samples[i]!;
  } else {
    // Fortran order: the first index runs fastest in the file.
    const [c, d, hh, w] = shape4;
    let o = 0;
    for (let ci = 0; ci < c; ci++) for (let di = 0; di < d; di++) for (let hi = 0; hi < hh; hi++) for (let wi = 0; wi < w; wi++) data[o++] = samples[ci + c * (di + d * (hi + hh * wi))]!;
  }
  return {
    data,
    shape: shape4,
    spacing,
    affine: spacingAffine(spacing),
    source: { format: 'npy', file, channels, warnings: [] },
  };
}
