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
  /**
   * Voxels (all channels) of one array that preprocessing (resampling, padding or cropping,
   * channel replication) or sliding windows may produce (their blend accumulator, a ring of
   * `K x window depth x H x W`; a segmentation's kept probabilities or scores, `K x D x H x W`),
   * and of all the windows of one sliding-window inference together.
   */
  outputVoxels: number;
  /** Files read from one folder or archive of slices (DICOM, PNG). */
  volumeFiles: number;
  /** Elements of one KServe tensor body (JSON `data` entries or binary elements). */
  kserveElements: number;
  /** Bytes one conversion may write as its output (i3d and mean-acs grow the weights). */
  conversionOutputBytes: number;
  /** Heap (old generation) of one fenced worker, in bytes: past it the worker is ended. */
  workerHeapBytes: number;
  /**
   * Windows one sliding-window inference may run (one network run each): tiny windows with a
   * large overlap would otherwise make millions of runs out of few voxels.
   */
  slidingWindows: number;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * The defaults (see the module comment for what they must let through).
 *
 * The arithmetic for a 512x512x600 int16 CT (157,286,400 voxels; the readers' own limit is
 * 2^29 voxels): its 600 DICOM slices are far under `volumeFiles`; zipped, its 315 MB of slices
 * under `unpackedTotalBytes`; fed whole to a one-channel network it is 157M voxels, under
 * `outputVoxels` = 2^28 (268,435,456 voxels, 1 GiB of float32); resampled to a typical input
 * (1.5 mm isotropic from 0.7 x 0.7 x 1 mm: 239 x 239 x 400, 22.8M voxels, x 3 channels = 68.5M),
 * and tiled into 96^3 windows with overlap 0.25 (3 x 3 x 6 windows x 3 x 884,736 = 143M), it
 * stays under it too; 54 windows, or 4,050 of 64^3 with overlap 0.5 over the native grid, are
 * under `slidingWindows`. What it refuses: `size=800,800,800` (512M voxels for one channel), the
 * same CT at native resolution replicated to a three-channel stem (471M; resample it first).
 * Sliding windows never make the network's input or its scores whole: over a 512x512x300 CT at
 * native resolution, 96^3 windows with overlap 0.25 (4 x 7 x 7 = 196) of a one-channel network
 * are 173M voxels, and the ring of a 2-class segmentation 2 x 96 x 512 x 512 = 50M; a 21-class,
 * three-channel one needs the budget raised (its windows are 520M, its ring 528M: 2 GiB of
 * float32, which the process then holds).
 */
export const DEFAULT_BUDGETS: Readonly<Budgets> = Object.freeze({
  unpackedEntryBytes: 4 * GiB,
  unpackedTotalBytes: 8 * GiB,
  compressionRatio: 100,
  pickleOpcodes: 50_000_000,
  pickleObjects: 1_000_000,
  pickleMemo: 1_000_000,
  nestingDepth: 256,
  errorMessageChars: 2_000,
  outputVoxels: 2 ** 28,
  volumeFiles: 20_000,
  kserveElements: 2 ** 28,
  conversionOutputBytes: 8 * GiB,
  workerHeapBytes: 2 * GiB,
  slidingWindows: 10_000,
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
