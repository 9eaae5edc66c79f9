/**
 * Hostile legacy-torch pickles, made at run time: well within the parse budgets, but costly to
 * decode. Neither is a torch checkpoint, so once decoded each is refused (422).
 */

/** `n` NONE, POP pairs: about 2n opcodes of pure CPU and no memory. */
export function cpuPickle(n: number): Buffer {
  const b = Buffer.alloc(2 + 2 * n + 2);
  b[0] = 0x80; // PROTO 2
  b[1] = 2;
  for (let i = 0; i < n; i++) {
    b[2 + 2 * i] = 0x4e; // NONE
    b[3 + 2 * i] = 0x30; // POP
  }
  b[2 + 2 * n] = 0x4e;
  b[3 + 2 * n] = 0x2e; // STOP
  return b;
}

/**
 * `groups` lists of `perGroup` empty lists each, all kept on the stack: many small objects on
 * the JavaScript heap (tens of bytes each, about 40 bytes a list), from one byte of input each.
 */
export function heapPickle(groups: number, perGroup: number): Buffer {
  const b = Buffer.alloc(2 + groups * (perGroup + 2) + 2);
  b[0] = 0x80;
  b[1] = 2;
  let p = 2;
  for (let g = 0; g < groups; g++) {
    b[p++] = 0x28; // MARK
    b.fill(0x5d, p, p + perGroup); // EMPTY_LIST
    p += perGroup;
    b[p++] = 0x6c; // LIST
  }
  b[p++] = 0x4e; // NONE
  b[p] = 0x2e;
  return b;
}
