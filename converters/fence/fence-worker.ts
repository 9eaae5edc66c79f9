/**
 * A fence worker: loads a task's module (once), runs the task on the input it is sent, and
 * answers with the output (large buffers moved, see `transfer.ts`) or the error as plain data.
 * Speaks the messages of `fence.ts`; runs one task at a time.
 *
 * On Linux the thread lowers its own scheduling priority (nice 10), so that on a busy machine
 * the event loop that answers requests gets the CPU before the heavy work does.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { toWireError } from './errors.js';
import type { FenceReply, FenceRequest } from './fence.js';
import { isTask } from './task.js';
import { transferList } from './transfer.js';

const port = parentPort;
if (!port) throw new Error('fence-worker.js runs as a worker thread');

const NICE = 10;

try {
  // `/proc/thread-self` -> `<pid>/task/<tid>`; a thread id names one thread to setpriority(2).
  setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), NICE);
} catch {
  // Not Linux: the thread keeps the process's priority.
}

const modules = new Map<string, Promise<Record<string, unknown>>>();

async function run(m: FenceRequest): Promise<unknown> {
  let mod = modules.get(m.module);
  if (!mod) modules.set(m.module, (mod = import(m.module) as Promise<Record<string, unknown>>));
  const task = (await mod)[m.name];
  if (!isTask(task) || task.name !== m.name) throw new Error(`${m.module} exports no task '${m.name}'`);
  return task.run(m.input);
}

function fail(err: unknown): void {
  const error = toWireError(err);
  try {
    port!.postMessage({ ok: false, error } satisfies FenceReply);
  } catch {
    // A field that cannot be cloned: the error without its fields.
    port!.postMessage({ ok: false, error: { ...error, fields: {} } } satisfies FenceReply);
  }
}

port.on('message', (m: FenceRequest) => {
  run(m).then((value) => {
    try {
      port.postMessage({ ok: true, value } satisfies FenceReply, transferList(value));
    } catch (err) {
      fail(err);
    }
  }, fail);
});
