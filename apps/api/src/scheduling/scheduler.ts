/**
 * Bounded admission for generation sequences. At most `maxRunning` sequences generate at once; at most `maxWaiting`
 * more wait in FIFO order. A request that does not fit is refused at once (HTTP 429) instead of growing memory.
 */
export class OverloadedError extends Error {
  constructor() {
    super('overloaded');
  }
}

export class AbortedWhileQueuedError extends Error {
  constructor() {
    super('aborted while queued');
  }
}

interface Waiter {
  grant: () => void;
  cancel: () => void;
}

export type Release = () => void;

/** A request's reservation of `size` sequences: each sequence then waits for a slot with `acquire()`. */
export interface Admission {
  acquire(signal?: AbortSignal): Promise<Release>;
  /** Returns the reservations not yet turned into running slots. */
  close(): void;
}

export class SequenceScheduler {
  private runningCount = 0;
  private reserved = 0;
  private readonly queue: Waiter[] = [];
  private idleWaiters: Array<() => void> = [];

  constructor(
    readonly maxRunning: number,
    readonly maxWaiting: number,
  ) {}

  /** Sequences generating now. */
  get running(): number {
    return this.runningCount;
  }

  /** Sequences admitted but not generating yet (queued or about to queue). */
  get waiting(): number {
    return this.reserved + this.queue.length;
  }

  /** Reserves `size` sequences or throws OverloadedError. */
  admit(size: number): Admission {
    if (this.runningCount + this.waiting + size > this.maxRunning + this.maxWaiting)
      throw new OverloadedError();
    this.reserved += size;
    let left = size;
    const takeReservation = (): boolean => {
      if (left <= 0) return false;
      left -= 1;
      this.reserved -= 1;
      return true;
    };
    return {
      acquire: (signal) => {
        if (!takeReservation()) return Promise.reject(new Error('admission exhausted'));
        return this.acquireSlot(signal);
      },
      close: () => {
        while (takeReservation());
        this.notifyIdle();
      },
    };
  }

  private acquireSlot(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) {
      this.notifyIdle();
      return Promise.reject(new AbortedWhileQueuedError());
    }
    if (this.runningCount < this.maxRunning && this.queue.length === 0) {
      this.runningCount += 1;
      return Promise.resolve(this.releaser());
    }
    return new Promise<Release>((resolve, reject) => {
      const onAbort = (): void => waiter.cancel();
      const waiter: Waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          this.runningCount += 1;
          resolve(this.releaser());
        },
        cancel: () => {
          const i = this.queue.indexOf(waiter);
          if (i >= 0) this.queue.splice(i, 1);
          signal?.removeEventListener('abort', onAbort);
          reject(new AbortedWhileQueuedError());
          this.notifyIdle();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  /** Sequences blocked in acquire(). */
  get queued(): number {
    return this.queue.length;
  }

  private releaser(): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.runningCount -= 1;
      const next = this.queue.shift();
      if (next) next.grant();
      this.notifyIdle();
    };
  }

  /** Resolves once nothing runs, waits or is reserved (used by the SIGTERM drain). */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.runningCount === 0 && this.reserved === 0 && this.queue.length === 0;
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
