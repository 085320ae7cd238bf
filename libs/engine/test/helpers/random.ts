import { SeededRandom } from '../../src/sampling/sampler';

/** The engine's seeded PRNG (mulberry32) with helpers, so generated test inputs are reproducible. */
export class Rng extends SeededRandom {
  int(lo: number, hiExclusive: number): number {
    return lo + Math.floor(this.next() * (hiExclusive - lo));
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length)];
  }
}
