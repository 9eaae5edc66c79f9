/**
 * Lookups in constant tables by names that come from outside (an ONNX op type, an option, a
 * DICOM UID): only the table's own entries count, never a name every object inherits
 * (`constructor`, `toString`, `__proto__`).
 */

/** `table[key]` when `key` is one of the table's own entries. */
export function own<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}
