/**
 * A DICOM Part 10 parser of its own: 128-byte preamble and `DICM`, the file meta group
 * (explicit VR little endian), then the data set in implicit VR little endian, explicit VR
 * little endian, explicit VR big endian or deflated explicit VR little endian. Sequences
 * and items of defined or undefined length are walked (and kept, so nested attributes such
 * as per-frame positions can be read); every length is checked against the bytes left.
 * Compressed (encapsulated) transfer syntaxes are recognised and refused by name.
 */
import { inflateRawSync } from 'node:zlib';
import { LimitExceededError } from '../../converters/errors.js';
import { VolumeFormatError, VolumeUnsupportedError } from './errors.js';
import { own } from '../../converters/own.js';

/** One attribute: its VR, where its value lies in `bytes`, and for sequences their items. */
export interface DicomElement {
  readonly vr: string;
  readonly offset: number;
  readonly length: number;
  readonly items?: DicomDataset[];
}

/** A data set: tag (`group << 16 | element`, unsigned) -> element, over the bytes it came from. */
export interface DicomDataset {
  readonly bytes: Uint8Array;
  readonly littleEndian: boolean;
  readonly elements: Map<number, DicomElement>;
}

/** A parsed Part 10 file. */
export interface DicomFile extends DicomDataset {
  readonly transferSyntaxUid: string;
}

/** Tags the readers use. */
export const TAGS = {
  TransferSyntaxUID: 0x00020010,
  SOPClassUID: 0x00080016,
  Modality: 0x00080060,
  SeriesDescription: 0x0008103e,
  SliceThickness: 0x00180050,
  SpacingBetweenSlices: 0x00180088,
  SeriesInstanceUID: 0x0020000e,
  InstanceNumber: 0x00200013,
  ImagePositionPatient: 0x00200032,
  ImageOrientationPatient: 0x00200037,
  SamplesPerPixel: 0x00280002,
  PhotometricInterpretation: 0x00280004,
  NumberOfFrames: 0x00280008,
  Rows: 0x00280010,
  Columns: 0x00280011,
  PixelSpacing: 0x00280030,
  BitsAllocated: 0x00280100,
  BitsStored: 0x00280101,
  PixelRepresentation: 0x00280103,
  RescaleIntercept: 0x00281052,
  RescaleSlope: 0x00281053,
  SharedFunctionalGroupsSequence: 0x52009229,
  PerFrameFunctionalGroupsSequence: 0x52009230,
  PlanePositionSequence: 0x00209113,
  PlaneOrientationSequence: 0x00209116,
  PixelMeasuresSequence: 0x00289110,
  PixelValueTransformationSequence: 0x00289145,
  PixelData: 0x7fe00010,
} as const;

/** VRs of the attributes read from implicit-VR data sets (everything else is `UN`). */
const IMPLICIT_VR = new Map<number, string>([
  [TAGS.SOPClassUID, 'UI'],
  [TAGS.Modality, 'CS'],
  [TAGS.SeriesDescription, 'LO'],
  [TAGS.SliceThickness, 'DS'],
  [TAGS.SpacingBetweenSlices, 'DS'],
  [TAGS.SeriesInstanceUID, 'UI'],
  [TAGS.InstanceNumber, 'IS'],
  [TAGS.ImagePositionPatient, 'DS'],
  [TAGS.ImageOrientationPatient, 'DS'],
  [TAGS.SamplesPerPixel, 'US'],
  [TAGS.PhotometricInterpretation, 'CS'],
  [TAGS.NumberOfFrames, 'IS'],
  [TAGS.Rows, 'US'],
  [TAGS.Columns, 'US'],
  [TAGS.PixelSpacing, 'DS'],
  [TAGS.BitsAllocated, 'US'],
  [TAGS.BitsStored, 'US'],
  [TAGS.PixelRepresentation, 'US'],
  [TAGS.RescaleIntercept, 'DS'],
  [TAGS.RescaleSlope, 'DS'],
  [TAGS.SharedFunctionalGroupsSequence, 'SQ'],
  [TAGS.PerFrameFunctionalGroupsSequence, 'SQ'],
  [TAGS.PlanePositionSequence, 'SQ'],
  [TAGS.PlaneOrientationSequence, 'SQ'],
  [TAGS.PixelMeasuresSequence, 'SQ'],
  [TAGS.PixelValueTransformationSequence, 'SQ'],
  [TAGS.PixelData, 'OW'],
]);

/** Explicit VRs whose length field is 4 bytes after 2 reserved bytes. */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** Transfer syntaxes: the ones decoded, and the names of those refused. */
export const TRANSFER_SYNTAXES: Record<string, { name: string; supported: boolean }> = {
  '1.2.840.10008.1.2': { name: 'Implicit VR Little Endian', supported: true },
  '1.2.840.10008.1.2.1': { name: 'Explicit VR Little Endian', supported: true },
  '1.2.840.10008.1.2.2': { name: 'Explicit VR Big Endian', supported: true },
  '1.2.840.10008.1.2.1.99': { name: 'Deflated Explicit VR Little Endian', supported: true },
  '1.2.840.10008.1.2.4.50': { name: 'JPEG Baseline (Process 1)', supported: false },
  '1.2.840.10008.1.2.4.51': { name: 'JPEG Extended (Process 2 & 4)', supported: false },
  '1.2.840.10008.1.2.4.57': { name: 'JPEG Lossless, Non-Hierarchical (Process 14)', supported: false },
  '1.2.840.10008.1.2.4.70': { name: 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14, Selection Value 1)', supported: false },
  '1.2.840.10008.1.2.4.80': { name: 'JPEG-LS Lossless', supported: false },
  '1.2.840.10008.1.2.4.81': { name: 'JPEG-LS Lossy (Near-Lossless)', supported: false },
  '1.2.840.10008.1.2.4.90': { name: 'JPEG 2000 Image Compression (Lossless Only)', supported: false },
  '1.2.840.10008.1.2.4.91': { name: 'JPEG 2000 Image Compression', supported: false },
  '1.2.840.10008.1.2.4.201': { name: 'High-Throughput JPEG 2000 (Lossless Only)', supported: false },
  '1.2.840.10008.1.2.4.202': { name: 'High-Throughput JPEG 2000 with RPCL Options (Lossless Only)', supported: false },
  '1.2.840.10008.1.2.4.203': { name: 'High-Throughput JPEG 2000', supported: false },
  '1.2.840.10008.1.2.5': { name: 'RLE Lossless', supported: false },
  '1.2.840.10008.1.2.4.100': { name: 'MPEG2 Main Profile / Main Level', supported: false },
  '1.2.840.10008.1.2.4.102': { name: 'MPEG-4 AVC/H.264 High Profile / Level 4.1', supported: false },
};

/** Does this look like a DICOM Part 10 file (`DICM` after the 128-byte preamble)? */
export function looksLikeDicom(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

const ITEM = 0xfffee000;
const ITEM_END = 0xfffee00d;
const SEQ_END = 0xfffee0dd;
const UNDEFINED = 0xffffffff;
const MAX_DEPTH = 12;

const tagName = (tag: number): string =>
  `(${((tag >>> 16) & 0xffff).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')})`.toUpperCase();

class Parser {
  private readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly file: string,
    readonly littleEndian: boolean,
    readonly explicit: boolean,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(msg: string): never {
    throw new VolumeFormatError(`${this.file}: ${msg}`, { file: this.file });
  }

  private need(pos: number, n: number, end: number, what: string): void {
    if (pos + n > end) this.fail(`${what} at byte ${pos} runs past the end of its ${end === this.bytes.byteLength ? 'file' : 'enclosing item'} (byte ${end})`);
  }

  private tag(pos: number): number {
    return ((this.view.getUint16(pos, this.littleEndian) << 16) | this.view.getUint16(pos + 2, this.littleEndian)) >>> 0;
  }

  /**
   * Parse elements from `pos` until `end` (defined length) or a delimiter (undefined
   * length; then `end` is the bytes' end). Returns the position after what was consumed.
   */
  dataset(pos: number, end: number, undefinedLength: boolean, depth: number, into: Map<number, DicomElement>, stopGroup?: number): number {
    if (depth > MAX_DEPTH) this.fail(`sequences nest deeper than ${MAX_DEPTH} levels`);
    while (pos < end) {
      this.need(pos, 4, end, 'element tag');
      const tag = this.tag(pos);
      if (stopGroup !== undefined && tag >>> 16 !== stopGroup) return pos;
      if (tag === ITEM_END || tag === SEQ_END) {
        this.need(pos, 8, end, 'delimiter');
        if (!undefinedLength) this.fail(`unexpected delimiter ${tagName(tag)} at byte ${pos} inside a defined-length item`);
        return pos + 8;
      }
      let vr: string;
      let length: number;
      if (this.explicit && tag >>> 16 !== 0xfffe) {
        this.need(pos, 8, end, `element ${tagName(tag)} header`);
        vr = String.fromCharCode(this.bytes[pos + 4]!, this.bytes[pos + 5]!);
        if (!/^[A-Z]{2}$/.test(vr)) this.fail(`element ${tagName(tag)} at byte ${pos} has an invalid VR ${JSON.stringify(vr)}`);
        if (LONG_VRS.has(vr)) {
          this.need(pos, 12, end, `element ${tagName(tag)} header`);
          length = this.view.getUint32(pos + 8, this.littleEndian);
          pos += 12;
        } else {
          length = this.view.getUint16(pos + 6, this.littleEndian);
          pos += 8;
        }
      } else {
        this.need(pos, 8, end, `element ${tagName(tag)} header`);
        vr = IMPLICIT_VR.get(tag) ?? 'UN';
        length = this.view.getUint32(pos + 4, this.littleEndian);
        pos += 8;
      }
      if (length === UNDEFINED) {
        if (tag === TAGS.PixelData) {
          return this.fail(`pixel data is encapsulated (compressed) although the transfer syntax is uncompressed`);
        }
        if (vr !== 'SQ' && vr !== 'UN') this.fail(`element ${tagName(tag)} (VR ${vr}) has an undefined length`);
        const items: DicomDataset[] = [];
        pos = this.sequence(pos, end, true, depth, items, vr === 'UN' ? new Parser(this.bytes, this.file, true, false) : this);
        into.set(tag, { vr: 'SQ', offset: pos, length: 0, items });
        continue;
      }
      if (length > end - pos) this.fail(`element ${tagName(tag)} declares ${length} bytes at byte ${pos}, but only ${end - pos} remain`);
      if (vr === 'SQ') {
        const items: DicomDataset[] = [];
        this.sequence(pos, pos + length, false, depth, items, this);
        into.set(tag, { vr, offset: pos, length, items });
      } else {
        into.set(tag, { vr, offset: pos, length });
      }
      pos += length;
    }
    if (undefinedLength) this.fail('item of undefined length has no delimiter');
    return pos;
  }

  private sequence(pos: number, end: number, undefinedLength: boolean, depth: number, items: DicomDataset[], p: Parser): number {
    const limit = undefinedLength ? this.bytes.byteLength : end;
    while (pos < limit) {
      p.need(pos, 8, limit, 'sequence item');
      const tag = p.tag(pos);
      const len = p.view.getUint32(pos + 4, p.littleEndian);
      pos += 8;
      if (tag === SEQ_END) {
        if (!undefinedLength) p.fail(`sequence delimiter at byte ${pos - 8} inside a defined-length sequence`);
        return pos;
      }
      if (tag !== ITEM) p.fail(`expected a sequence item at byte ${pos - 8}, found ${tagName(tag)}`);
      const elements = new Map<number, DicomElement>();
      if (len === UNDEFINED) {
        pos = p.dataset(pos, this.bytes.byteLength, true, depth + 1, elements);
      } else {
        if (len > limit - pos) p.fail(`sequence item declares ${len} bytes at byte ${pos}, but only ${limit - pos} remain`);
        p.dataset(pos, pos + len, false, depth + 1, elements);
        pos += len;
      }
      items.push({ bytes: this.bytes, littleEndian: p.littleEndian, elements });
    }
    if (undefinedLength) p.fail('sequence of undefined length has no delimiter');
    return pos;
  }
}

/** Options of `parseDicom`. */
export interface ParseDicomParams {
  /** Name used in error messages. @default 'dicom' */
  file?: string;
  /** Largest inflated size of a deflated data set. @default 2 GiB */
  maxInflatedBytes?: number;
}

/** Parse a DICOM Part 10 file held in memory. */
export function parseDicom(bytes: Uint8Array, params: ParseDicomParams = {}): DicomFile {
  const file = params.file ?? 'dicom';
  if (!looksLikeDicom(bytes)) throw new VolumeFormatError(`${file}: not a DICOM Part 10 file (no 'DICM' after the 128-byte preamble)`, { file });
  const meta = new Map<number, DicomElement>();
  const metaParser = new Parser(bytes, file, true, true);
  const start = metaParser.dataset(132, bytes.byteLength, false, 0, meta, 0x0002);
  const tsEl = meta.get(TAGS.TransferSyntaxUID);
  if (tsEl === undefined) throw new VolumeFormatError(`${file}: file meta information has no TransferSyntaxUID (0002,0010)`, { file });
  const ts = decodeString(bytes, tsEl);
  const known = own(TRANSFER_SYNTAXES, ts);
  if (known === undefined) throw new VolumeUnsupportedError(`${file}: unknown transfer syntax ${ts}`, { file });
  if (!known.supported) throw new VolumeUnsupportedError(`${file}: compressed transfer syntax ${known.name} (${ts}) is not supported; decompress the series first (e.g. gdcmconv --raw or dcmdjpeg)`, { file });
  let body = bytes;
  let from = start;
  if (ts === '1.2.840.10008.1.2.1.99') {
    const max = params.maxInflatedBytes ?? 2 ** 31;
    try {
      body = inflateRawSync(bytes.subarray(start), { maxOutputLength: max });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw new LimitExceededError(`${file}: deflated data set inflates to more than ${max} bytes`);
      throw new VolumeFormatError(`${file}: deflated data set does not inflate (${(err as Error).message})`, { file });
    }
    from = 0;
  }
  const le = ts !== '1.2.840.10008.1.2.2';
  const explicit = ts !== '1.2.840.10008.1.2';
  const elements = new Map<number, DicomElement>();
  new Parser(body, file, le, explicit).dataset(from, body.byteLength, false, 0, elements);
  return { bytes: body, littleEndian: le, elements, transferSyntaxUid: ts };
}

/** The text value of an element, trailing spaces and NULs removed. */
export function decodeString(bytes: Uint8Array, el: DicomElement): string {
  return new TextDecoder('latin1').decode(bytes.subarray(el.offset, el.offset + el.length)).replace(/[\0 ]+$/, '').trimStart();
}

/** A string attribute, or undefined when absent. */
export function getString(ds: DicomDataset, tag: number): string | undefined {
  const el = ds.elements.get(tag);
  return el === undefined ? undefined : decodeString(ds.bytes, el);
}

/** Numbers of an attribute: DS/IS strings split on backslashes, or binary US/SS/UL/SL/FL/FD values. */
export function getNumbers(ds: DicomDataset, tag: number): number[] | undefined {
  const el = ds.elements.get(tag);
  if (el === undefined || el.length === 0) return undefined;
  const v = new DataView(ds.bytes.buffer, ds.bytes.byteOffset + el.offset, el.length);
  const le = ds.littleEndian;
  const many = (size: number, get: (o: number) => number): number[] => Array.from({ length: Math.floor(el.length / size) }, (_, i) => get(i * size));
  switch (el.vr) {
    case 'US':
      return many(2, (o) => v.getUint16(o, le));
    case 'SS':
      return many(2, (o) => v.getInt16(o, le));
    case 'UL':
      return many(4, (o) => v.getUint32(o, le));
    case 'SL':
      return many(4, (o) => v.getInt32(o, le));
    case 'FL':
      return many(4, (o) => v.getFloat32(o, le));
    case 'FD':
      return many(8, (o) => v.getFloat64(o, le));
    default: {
      const s = decodeString(ds.bytes, el);
      if (s === '') return undefined;
      return s.split('\\').map((x) => Number(x.trim()));
    }
  }
}

/** The first item of a sequence attribute, if any. */
export function firstItem(ds: DicomDataset | undefined, tag: number): DicomDataset | undefined {
  return ds?.elements.get(tag)?.items?.[0];
}
