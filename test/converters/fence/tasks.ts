/** Tasks for the fence's own tests, loaded by its workers from this module. */
import { AcsHubError, CheckpointFormatError } from '../../../converters/errors.js';
import { defineTask } from '../../../converters/fence/task.js';
import { MixedSeriesError } from '../../../inference/volumes/errors.js';

/** A subclass the caller's side never sees: it comes back as the code's own class, with its fields. */
class TeapotError extends AcsHubError {
  constructor(message: string) {
    super('UNSUPPORTED', message, { retryable: true, spout: 'short' });
  }
}

/** Doubles every value; says whether it runs in a worker. */
export const DOUBLE = defineTask(import.meta.url, 'DOUBLE', async (p: { data: Float32Array }) => {
  const { isMainThread } = await import('node:worker_threads');
  return { data: p.data.map((v) => 2 * v), worker: !isMainThread };
});

/** Throws the error named. */
export const THROW = defineTask(import.meta.url, 'THROW', (kind: 'format' | 'series' | 'other' | 'type' | 'string'): never => {
  if (kind === 'format') throw new CheckpointFormatError('model.pth: truncated', { file: 'model.pth' });
  if (kind === 'series') throw new MixedSeriesError('two series', { series: [{ uid: '1.2.3', files: 4 }] });
  if (kind === 'other') throw new TeapotError('short and stout');
  if (kind === 'type') throw new TypeError('x is not a function');
  throw 'a string';
});

/** Keeps small objects until the heap is full. */
export const HOARD = defineTask(import.meta.url, 'HOARD', () => {
  const kept: unknown[][] = [];
  for (;;) kept.push(Array.from({ length: 1000 }, () => ({})));
});

/** Spins for `ms` milliseconds. */
export const SPIN = defineTask(import.meta.url, 'SPIN', (ms: number) => {
  const end = Date.now() + ms;
  while (Date.now() < end);
  return ms;
});

/** Ends its thread. */
export const EXIT = defineTask(import.meta.url, 'EXIT', () => process.exit(3));
