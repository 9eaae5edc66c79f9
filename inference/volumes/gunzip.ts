/**
 * Bounded gunzip: inflate only as many bytes as the file's own header says it holds, so a
 * small `.gz` that would inflate to gigabytes (or whose header declares an absurd size) is
 * refused or cut short before that memory is ever allocated. The declared size is held against
 * `budgets.unpackedEntryBytes`, and its ratio to the compressed size against
 * `budgets.compressionRatio`, before the output is allocated.
 */
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { budgetSetting, resolveBudgets, type Budgets } from '../../converters/budgets.js';
import { LimitExceededError } from '../../converters/errors.js';

/** Sizes up to this are exempt from the compression-ratio budget (its own definition). */
const RATIO_EXEMPT_BYTES = 1024 * 1024;

/** Does this look like gzip (magic 1f 8b)? */
export function looksLikeGzip(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Parameters of `gunzipBounded`. */
export interface GunzipBoundedParams {
  /** The compressed bytes. */
  bytes: Uint8Array;
  /**
   * Given the first inflated bytes, the total size to inflate; it may throw to refuse.
   * It is called again with more bytes while it answers `undefined` (needs more).
   */
  sizeFromHead: (head: Uint8Array) => number | undefined;
  /** Called with a message when the stream is not valid gzip or ends early; must throw. */
  fail: (message: string) => never;
  /** Name used in messages. @default 'gzip stream' */
  file?: string;
  /** Budgets on the inflated size (see the module comment). @default DEFAULT_BUDGETS */
  budgets?: Partial<Budgets>;
}

/** Refuse an inflated size over the budgets (`unpackedEntryBytes`, `compressionRatio`), before it is allocated. */
export function checkInflated(total: number, packed: number, file: string, budgets: Partial<Budgets> | undefined): void {
  const b = resolveBudgets(budgets);
  if (total > b.unpackedEntryBytes) {
    throw new LimitExceededError(`${file}: inflates to ${total} bytes, over the budget of ${b.unpackedEntryBytes} (${budgetSetting('unpackedEntryBytes')})`);
  }
  if (total > RATIO_EXEMPT_BYTES && total > b.compressionRatio * packed) {
    throw new LimitExceededError(`${file}: ${packed} compressed bytes inflate to ${total}, a ratio of ${Math.round(total / packed)} over the budget of ${b.compressionRatio} (${budgetSetting('compressionRatio')})`);
  }
}

/**
 * Inflate a gzip stream up to the size its header implies. Trailing data beyond that size is
 * never inflated; a stream that ends before it is an error.
 */
export async function gunzipBounded(params: GunzipBoundedParams): Promise<Uint8Array> {
  const stream = Readable.from([params.bytes]).pipe(createGunzip({ chunkSize: 1 << 20 }));
  let head: Uint8Array[] = [];
  let headLen = 0;
  let out: Uint8Array | undefined;
  let pos = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (out === undefined) {
        head.push(chunk);
        headLen += chunk.byteLength;
        const joined = Buffer.concat(head, headLen);
        const total = params.sizeFromHead(joined);
        if (total === undefined) continue;
        checkInflated(total, params.bytes.byteLength, params.file ?? 'gzip stream', params.budgets);
        out = new Uint8Array(total);
        const n = Math.min(total, joined.byteLength);
        out.set(joined.subarray(0, n));
        pos = n;
        head = [];
      } else {
        const n = Math.min(out.byteLength - pos, chunk.byteLength);
        out.set(chunk.subarray(0, n), pos);
        pos += n;
      }
      if (pos >= out.byteLength) break;
    }
  } catch (err) {
    if (err instanceof Error && 'code' in err && String((err as { code: unknown }).code).startsWith('Z_')) {
      params.fail(`gzip stream is corrupt (${err.message})`);
    }
    if (err instanceof Error && 'code' in err && (err as { code: unknown }).code === 'ERR_STREAM_PREMATURE_CLOSE') {
      params.fail('gzip stream ends early');
    }
    throw err;
  } finally {
    stream.destroy();
  }
  if (out === undefined) {
    const joined = Buffer.concat(head, headLen);
    const total = params.sizeFromHead(joined);
    if (total === undefined || total > joined.byteLength) params.fail(`gzip stream ends after ${headLen} bytes, before the header is complete`);
    return joined.subarray(0, total);
  }
  if (pos < out.byteLength) params.fail(`gzip stream inflates to ${pos} bytes, fewer than the ${out.byteLength} the header implies (truncated)`);
  return out;
}
