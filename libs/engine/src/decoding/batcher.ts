import type { BatchOutputs, StepRow } from '../runtime/protocol';
import { rowResult } from './batch-outputs';
import type { StepResult } from './loop';

/** Runs one decoder call over `rows` (`BatchOutputs` in row order; `ranAhead` as in `WorkerReply`). */
export type BatchStepFn = (
  rows: StepRow[],
) => Promise<BatchOutputs & { ranAhead?: number; fedAhead?: boolean }>;

interface Pending {
  row: StepRow;
  resolve(r: StepResult): void;
  reject(e: unknown): void;
}

/**
 * Continuous batching of decode steps: every sequence in its decode phase submits its next input here, and the
 * batcher runs one decoder call for all rows submitted since the previous call. A call starts as soon as every
 * member (a sequence between `join` and `leave`) has submitted, otherwise on the macrotask after the first
 * submission (`setImmediate`), so every sequence whose previous step just resolved (their loops continue in
 * microtasks) is in it; while a call runs, submissions wait for the next one. Rows are ordered by sequence id, so a
 * batch whose members did not change keeps its order (and the worker its cache as is).
 */
export class StepBatcher {
  private pending: Pending[] = [];
  private scheduled = false;
  private running = false;
  private readonly members = new Set<number>();
  /** Decoder calls made, rows stepped, the most rows in a call, calls whose step had run ahead (tests, benchmarks). */
  readonly stats = { calls: 0, rows: 0, maxRows: 0, ranAhead: 0, maxAheadDepth: 0, fedAhead: 0 };

  constructor(
    private readonly run: BatchStepFn,
    private readonly vocabSize: number,
    private readonly hiddenSize: number,
    private readonly maxBatchSize: number,
  ) {}

  step(row: StepRow): Promise<StepResult> {
    return new Promise<StepResult>((resolve, reject) => {
      this.pending.push({ row, resolve, reject });
      this.kick();
    });
  }

  /** A sequence starts decoding (after its prefill): the next call waits for its row, at most one macrotask. */
  join(seq: number): void {
    this.members.add(seq);
  }

  /** A sequence stopped decoding (finished, cancelled or failed). */
  leave(seq: number): void {
    this.members.delete(seq);
    this.kick();
  }

  private kick(): void {
    if (this.running || this.pending.length === 0) return;
    const all =
      this.pending.length >= Math.min(this.members.size, this.maxBatchSize) &&
      [...this.members].every((m) => this.pending.some((p) => p.row.seq === m));
    if (all) {
      // Every member's row is in: start now instead of after a turn of the event loop.
      this.running = true;
      queueMicrotask(() => void this.flush());
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.running) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) {
      this.running = false;
      return;
    }
    this.running = true;
    this.pending.sort((a, b) => a.row.seq - b.row.seq);
    const batch = this.pending.splice(0, this.maxBatchSize);
    try {
      const out = await this.run(batch.map((p) => p.row));
      const { ranAhead, fedAhead } = out;
      this.stats.calls++;
      if (ranAhead) this.stats.ranAhead++;
      if (fedAhead) this.stats.fedAhead++;
      this.stats.maxAheadDepth = Math.max(this.stats.maxAheadDepth, ranAhead ?? 0);
      this.stats.rows += batch.length;
      this.stats.maxRows = Math.max(this.stats.maxRows, batch.length);
      batch.forEach((p, b) => p.resolve(rowResult(out, b, this.vocabSize, this.hiddenSize)));
    } catch (error) {
      for (const p of batch) p.reject(error);
    } finally {
      this.running = false;
      this.kick();
    }
  }
}

/** FIFO counting semaphore whose waiters give up when their signal aborts. */
export class Slots {
  private free: number;
  private readonly waiters: Array<() => void> = [];

  constructor(size: number) {
    this.free = size;
  }

  /** Resolves true with a slot held, or false (no slot) when `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    if (this.free > 0 && this.waiters.length === 0) {
      this.free--;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(grant);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(false);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(grant);
    });
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }
}

/** An async queue of deltas: the decode loop pushes without waiting for the consumer, which reads at its pace. */
export class Channel<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private done = false;
  private error: unknown;
  private failed = false;
  private wake: (() => void) | undefined;

  push(item: T): void {
    this.items.push(item);
    this.notify();
  }

  close(): void {
    this.done = true;
    this.notify();
  }

  fail(error: unknown): void {
    this.failed = true;
    this.error = error;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.items.length) {
        yield this.items.shift()!;
        continue;
      }
      if (this.failed) throw this.error;
      if (this.done) return;
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}
