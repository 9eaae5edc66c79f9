/**
 * A bounded queue in front of the fence's workers (or of the inference engine): at most
 * `concurrency` runs at once, at most `maxPending` waiting, and at most `maxPendingBytes` of
 * input held by waiting requests, so that a burst of requests cannot exhaust memory; beyond
 * that a request is refused at once with the error `refuse` makes (a retryable one: the
 * fence's `WORKER_UNAVAILABLE`, the engine's `ENGINE_BUSY`), rather than queued.
 */

/** Options of the queue. */
export interface RunQueueParams {
  /** Runs at once. @default 1 */
  concurrency?: number;
  /** Requests waiting at most. @default 32 */
  maxPending?: number;
  /** Input bytes held by waiting requests at most. @default 1 GiB */
  maxPendingBytes?: number;
  /** What waits, for messages. @default 'inference requests' */
  what?: string;
  /** The error of a refused request. */
  refuse: (message: string) => Error;
}

/** See the module comment. */
export class RunQueue {
  private running = 0;
  private pendingBytes = 0;
  private readonly waiting: { bytes: number; start: () => void }[] = [];
  private readonly concurrency: number;
  private readonly maxPending: number;
  private readonly maxPendingBytes: number;
  private readonly what: string;
  private readonly refuse: (message: string) => Error;

  constructor(params: RunQueueParams) {
    this.concurrency = params.concurrency ?? 1;
    this.maxPending = params.maxPending ?? 32;
    this.maxPendingBytes = params.maxPendingBytes ?? 1024 ** 3;
    this.what = params.what ?? 'inference requests';
    this.refuse = params.refuse;
  }

  /** Requests waiting now. */
  get pending(): number {
    return this.waiting.length;
  }

  /** Run `fn` when a slot is free; `bytes` is the input it holds while waiting. */
  async run<T>(bytes: number, fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.maxPending) throw this.refuse(`${this.waiting.length} ${this.what} are already waiting; retry later`);
      if (this.pendingBytes + bytes > this.maxPendingBytes) {
        throw this.refuse(`waiting ${this.what} already hold ${this.pendingBytes} bytes of input; retry later`);
      }
      this.pendingBytes += bytes;
      await new Promise<void>((resolve) => this.waiting.push({ bytes, start: resolve }));
    } else {
      this.running++;
    }
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) {
        this.pendingBytes -= next.bytes;
        next.start();
      } else this.running--;
    }
  }
}
