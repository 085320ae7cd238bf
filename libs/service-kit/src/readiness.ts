import { Injectable } from '@nestjs/common';

/** What a service still waits for before it can take work; empty means ready. */
@Injectable()
export class Readiness {
  private readonly pending = new Set<string>();

  waitFor(dependency: string): void {
    this.pending.add(dependency);
  }

  markReady(dependency: string): void {
    this.pending.delete(dependency);
  }

  markLost(dependency: string): void {
    this.pending.add(dependency);
  }

  get waitingFor(): string[] {
    return [...this.pending].sort();
  }
}
