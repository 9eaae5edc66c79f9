/**
 * Budgets on the work an input may cause: not its declared size, but what parsing, unpacking,
 * resampling or converting it would allocate and compute. One table, so the server's
 * configuration (`budgets.*`, `ACS_HUB_BUDGET_*`), the CLI and the readers agree; every reader
 * takes a `Partial<Budgets>` and falls back to these defaults.
 *
 * The defaults let every real model in the catalogue and a 512x512x600 CT through; an input
 * past a budget is refused with a `LimitExceededError` (code `LIMIT_EXCEEDED`) whose message
 * names the budget's setting.
 */

/** See the module comment. Every field is a count or a byte size; all are positive integers. */
export interface Budgets {
  /** Bytes one archive entry (zip, gzip member) may unpack to. */
  unpackedEntryBytes: number;
  /** Bytes all the entries of one archive may unpack to together. */
  unpackedTotalBytes: number;
  /** Largest ratio of unpacked to packed bytes of an entry larger than 1 MiB (and of a whole archive). */
  compressionRatio: number;
  /** Opcodes one pickle may execute. */
  pickleOpcodes: number;
  /**
   * Objects (containers, tuples, strings, tensors) one pickle may build, each item put in a
   * container counting as one too; also the most values its stack may hold at once.
   */
  pickleObjects: number;
  /** Entries in one pickle's memo. */
  pickleMemo: number;
  /** Nesting depth of one pickle's objects (and of JSON documents read from an input). */
  nestingDepth: number;
  /** Characters of an error message built from input (longer ones are cut). */
  errorMessageChars: number;
  /** Voxels (all channels) that resampling, padding or patching may produce. */
  outputVoxels: number;
  /** Files read from one folder or archive of slices (DICOM, PNG). */
  volumeFiles: number;
  /** Elements of one KServe tensor body (JSON `data` entries or binary elements). */
  kserveElements: number;
  /** Bytes one conversion may write as its output (i3d and mean-acs grow the weights). */
  conversionOutputBytes: number;
  /** Heap (old generation) of one fenced worker, in bytes: past it the worker is ended. */
  workerHeapBytes: number;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** The defaults (see the module comment for what they must let through). */
export const DEFAULT_BUDGETS: Readonly<Budgets> = Object.freeze({
  unpackedEntryBytes: 4 * GiB,
  unpackedTotalBytes: 8 * GiB,
  compressionRatio: 100,
  pickleOpcodes: 50_000_000,
  pickleObjects: 1_000_000,
  pickleMemo: 1_000_000,
  nestingDepth: 256,
  errorMessageChars: 2_000,
  outputVoxels: 2 ** 29,
  volumeFiles: 20_000,
  kserveElements: 2 ** 28,
  conversionOutputBytes: 8 * GiB,
  workerHeapBytes: 2 * GiB,
});

/** The budgets with the defaults filled in. */
export function resolveBudgets(b: Partial<Budgets> | undefined): Readonly<Budgets> {
  return b === undefined ? DEFAULT_BUDGETS : { ...DEFAULT_BUDGETS, ...b };
}

/** The setting that names a budget, for messages: `budgets.pickleOpcodes`. */
export function budgetSetting(name: keyof Budgets): string {
  return `budgets.${name}`;
}

/** Cut a message built from input to the budget, saying how much was cut. */
export function boundMessage(message: string, max: number = DEFAULT_BUDGETS.errorMessageChars): string {
  if (message.length <= max) return message;
  return `${message.slice(0, max)}... (${message.length - max} more characters)`;
}
