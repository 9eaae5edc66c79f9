/**
 * What crosses the fence by transfer: the large ArrayBuffers under a message's typed arrays
 * move to the other thread instead of being copied (the sender's views of them become empty).
 * Small buffers are copied: they cost little, and Node's pool of small Buffers must not move.
 */

/** Buffers smaller than this are copied rather than moved. */
const MIN_TRANSFER_BYTES = 64 * 1024;
const MAX_DEPTH = 64;

function walk(value: unknown, onView: (v: ArrayBufferView | ArrayBuffer) => void): void {
  const seen = new Set<object>();
  const visit = (v: unknown, depth: number): void => {
    if (typeof v !== 'object' || v === null || depth > MAX_DEPTH || seen.has(v)) return;
    seen.add(v);
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return onView(v);
    if (v instanceof Map) {
      for (const [k, x] of v) {
        visit(k, depth + 1);
        visit(x, depth + 1);
      }
    } else if (Array.isArray(v) || v instanceof Set) {
      for (const x of v) visit(x, depth + 1);
    } else {
      for (const x of Object.values(v)) visit(x, depth + 1);
    }
  };
  visit(value, 0);
}

/** The ArrayBuffers to move with `value` (each once). */
export function transferList(value: unknown): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  walk(value, (v) => {
    const buffer = v instanceof ArrayBuffer ? v : v.buffer;
    if (buffer instanceof ArrayBuffer && buffer.byteLength >= MIN_TRANSFER_BYTES) out.add(buffer);
  });
  return [...out];
}

/** Bytes of the typed arrays in `value` (what a waiting task holds). */
export function bytesHeld(value: unknown): number {
  let n = 0;
  walk(value, (v) => (n += v.byteLength));
  return n;
}
