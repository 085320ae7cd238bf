import type { NextFunction, Request, Response } from 'express';

/**
 * Process-wide serving state. Counts in-flight HTTP requests; once draining, new generation requests are refused
 * (503) and readiness turns false, and `whenIdle()` tells the SIGTERM handler when the last response finished.
 */
export class Lifecycle {
  private drainingSince: number | undefined;
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];

  get draining(): boolean {
    return this.drainingSince !== undefined;
  }

  get inFlightRequests(): number {
    return this.inFlight;
  }

  startDraining(): void {
    this.drainingSince ??= Date.now();
  }

  /** Express middleware counting requests until their response is finished or the connection closed. */
  readonly track = (_req: Request, res: Response, next: NextFunction): void => {
    this.inFlight += 1;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      this.inFlight -= 1;
      if (this.inFlight === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
    };
    res.on('finish', finish);
    res.on('close', finish);
    next();
  };

  whenIdle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
