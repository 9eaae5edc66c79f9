/**
 * A task the fence runs: a function exported under a name by a module, so that a worker thread
 * can load it from the module's URL and call it, and a caller without a fence can call it in
 * its own thread. Its input and its output are plain data and typed arrays (what
 * `postMessage` can clone); errors it throws keep their class, code and status (see `errors.ts`).
 */

/** See the module comment. */
export interface Task<I, O> {
  /** URL of the module that exports the task (its `import.meta.url`). */
  readonly module: string;
  /** The name the module exports the task under. */
  readonly name: string;
  readonly run: (input: I) => O | Promise<O>;
}

/** Define a task: `module` is the defining module's `import.meta.url`, `name` its export name. */
export function defineTask<I, O>(module: string, name: string, run: (input: I) => O | Promise<O>): Task<I, O> {
  return Object.freeze({ module, name, run });
}

/** Whether a module's export is a task. */
export function isTask(v: unknown): v is Task<unknown, unknown> {
  const t = v as Partial<Task<unknown, unknown>> | undefined;
  return typeof t === 'object' && t !== null && typeof t.module === 'string' && typeof t.name === 'string' && typeof t.run === 'function';
}
