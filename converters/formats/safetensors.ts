/**
 * safetensors: read and write, following the format's specification to the letter.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON starting with `{`
 * (`name -> { dtype, shape, data_offsets }` plus an optional `__metadata__` string map),
 * then the byte buffer. The reader checks every rule of the spec before it trusts an offset;
 * tensors are views into the given bytes (zero-copy where aligned).
 */
import { boundMessage, budgetSetting, resolveBudgets, type Budgets } from '../budgets.js';
import { DTYPES, isDType, type DType } from '../dtypes.js';
import { CheckpointFormatError, InvalidArgumentError, LimitExceededError } from '../errors.js';
import { bytesOf, LIMITS, numel, typedView, type Checkpoint, type StateDict, type Tensor } from '../tensor.js';

/** Largest header a reader accepts (the reference implementation's limit is 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';

/** Is this file a safetensors file? A cheap check of the first bytes. */
export function looksLikeSafetensors(head: Uint8Array): boolean {
  if (head.byteLength < 9) return false;
  const n = Number(new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true));
  return n > 1 && n <= MAX_HEADER_BYTES && head[8] === 0x7b;
}

/** Parse options. */
export interface ReadSafetensorsParams {
  /** File name used in error messages. @default 'safetensors file' */
  file?: string;
  /** Budgets: `nestingDepth` of the header's JSON, `errorMessageChars`. @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** Read a safetensors file held in memory. Tensors are views into `bytes` where aligned. */
export function readSafetensors(bytes: Uint8Array, params: ReadSafetensorsParams = {}): Checkpoint {
  const file = params.file ?? 'safetensors file';
  const budgets = resolveBudgets(params.budgets);
  const fail = (msg: string): never => {
    throw new CheckpointFormatError(boundMessage(`${file}: ${msg}`, budgets.errorMessageChars), { file });
  };
  const exceeded = (msg: string): never => {
    throw new LimitExceededError(boundMessage(`${file}: ${msg}`, budgets.errorMessageChars));
  };
  if (bytes.byteLength < 8) fail(`is ${bytes.byteLength} bytes long, too short for the 8-byte header length`);
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    exceeded(`header length ${headerLen} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  }
  const n = Number(headerLen);
  if (8 + n > bytes.byteLength) fail(`header length ${n} runs past the end of the file (${bytes.byteLength} bytes)`);
  const headerBytes = bytes.subarray(8, 8 + n);
  if (n === 0 || headerBytes[0] !== 0x7b) fail('header does not start with "{"');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail('header is not valid UTF-8');
  }
  const scan = scanHeader(text);
  if (scan.depth > budgets.nestingDepth) exceeded(`header nests JSON more than ${budgets.nestingDepth} deep (${budgetSetting('nestingDepth')})`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    return fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');
  if (!scan.balanced) fail('header JSON is unbalanced');
  const keys = scan.keys.map((k) => JSON.parse(k) as string);
  const seen = new Set<string>();
  for (const k of keys) {
    if (seen.has(k)) fail(`tensor name '${k}' appears twice in the header`);
    seen.add(k);
  }
  const entries = header as Record<string, unknown>;
  const metadata: Record<string, string> = {};
  const infos: { name: string; dtype: DType; shape: number[]; begin: number; end: number }[] = [];
  if (keys.length > LIMITS.maxTensors) {
    exceeded(`${keys.length} tensors exceed the limit of ${LIMITS.maxTensors}`);
  }
  for (const name of keys) {
    const value = entries[name];
    if (name === METADATA_KEY) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__ value of '${k}' is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const where = `tensor '${name}'`;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${where} is not an object`);
    const info = value as Record<string, unknown>;
    const dtype = info['dtype'];
    if (typeof dtype !== 'string' || !isDType(dtype)) fail(`${where} has unknown dtype ${JSON.stringify(dtype)}`);
    const shape = info['shape'];
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)) {
      fail(`${where} has an invalid shape ${JSON.stringify(shape)}`);
    }
    const offsets = info['data_offsets'];
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      offsets.some((o) => !Number.isSafeInteger(o) || (o as number) < 0)
    ) {
      fail(`${where} has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const count = numel(shape as number[], boundMessage(`${file}: ${where}`, budgets.errorMessageChars));
    const itemsize = DTYPES[dtype as DType].itemsize;
    if (end < begin || end - begin !== count * itemsize) {
      fail(`${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} [${(shape as number[]).join(', ')}] needs ${count * itemsize}`);
    }
    infos.push({ name, dtype: dtype as DType, shape: shape as number[], begin, end });
  }
  const dataStart = 8 + n;
  const dataLen = bytes.byteLength - dataStart;
  const sorted = [...infos].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const t of sorted) {
    if (t.begin !== expected) {
      fail(`tensor '${t.name}' starts at byte ${t.begin} of the buffer, expected ${expected} (offsets must be contiguous from 0)`);
    }
    expected = t.end;
  }
  if (expected !== dataLen) {
    fail(`tensors index ${expected} bytes but the buffer after the header holds ${dataLen} (header + buffer must equal the file size)`);
  }
  const tensors: StateDict = new Map();
  for (const t of infos) {
    const data = typedView(t.dtype, bytes, dataStart + t.begin, (t.end - t.begin) / DTYPES[t.dtype].itemsize);
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data } as Tensor);
  }
  return { tensors, metadata };
}

/**
 * The keys of the top-level JSON object as JSON strings, in file order, duplicates included
 * (JSON.parse keeps only the last of two equal keys, and the spec forbids them), and the
 * deepest nesting, found before the header is parsed.
 */
function scanHeader(text: string): { keys: string[]; depth: number; balanced: boolean } {
  const keys: string[] = [];
  let depth = 0;
  let deepest = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      if (depth === 1 && expectKey) {
        keys.push(text.slice(i, j + 1));
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
      deepest = Math.max(deepest, depth);
      if (depth === 1) expectKey = true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    } else if (c === 0x2c /* , */ && depth === 1) {
      expectKey = true;
    }
  }
  return { keys, depth: deepest, balanced: depth === 0 };
}

/** Options of the writer. */
export interface WriteSafetensorsParams {
  /** String metadata stored under `__metadata__`. @default {} */
  metadata?: Record<string, string>;
}

/**
 * Encode a state dict as safetensors, as a list of chunks (the header, then views of each
 * tensor's bytes: nothing is copied). The data are laid out by descending item size, so every
 * tensor is aligned in the file; the header lists the tensors in the state dict's order, so a
 * reader that keeps header order gets the original order back. The header is padded with
 * spaces to a multiple of 8 bytes.
 */
export function encodeSafetensors(tensors: StateDict, params: WriteSafetensorsParams = {}): Uint8Array[] {
  const entries = [...tensors.entries()];
  const layout = entries
    .map(([name, t], index) => ({ name, t, index }))
    .sort((a, b) => DTYPES[b.t.dtype].itemsize - DTYPES[a.t.dtype].itemsize || a.index - b.index);
  const offsets = new Map<string, [number, number]>();
  let offset = 0;
  for (const { name, t } of layout) {
    if (name === METADATA_KEY) throw new InvalidArgumentError(`a tensor cannot be named '${METADATA_KEY}'`);
    const size = t.data.byteLength;
    if (size !== numel(t.shape, `tensor '${name}'`) * DTYPES[t.dtype].itemsize) {
      throw new InvalidArgumentError(`tensor '${name}' holds ${size} bytes, which does not match ${t.dtype} [${t.shape.join(', ')}]`);
    }
    offsets.set(name, [offset, offset + size]);
    offset += size;
  }
  // Built by hand so that keys keep their order even when they look like integers.
  const fields: string[] = [];
  const metadata = params.metadata ?? {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new InvalidArgumentError(`metadata value of '${k}' must be a string`);
    }
    fields.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  for (const [name, t] of entries) {
    fields.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: offsets.get(name) })}`);
  }
  let json = Buffer.from(`{${fields.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) json = Buffer.concat([json, Buffer.alloc(padded - json.byteLength, 0x20)]);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  return [prefix, json, ...layout.map(({ t }) => bytesOf(t))];
}
