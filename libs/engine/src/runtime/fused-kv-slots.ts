import type { StepRow } from './protocol';

/** Inputs of one fused-decoder step over every KV slot (see `FusedNativeDecoder.step`). */
export interface FusedStepInputs {
  positions: BigInt64Array;
  seqlens: Int32Array;
  /** Slot of each requested row, in row order: the rows whose outputs come back. */
  outRows: Int32Array;
}

/** A new sequence for `FusedKvSlots.claimRuns`: its id and the positions its prefill holds. */
export interface NewSequence {
  seq: number;
  length: number;
}

/** Consecutive slots `first ..` given to `members` (indices into the claimed list, in slot order): one prefill call. */
export interface SlotRun {
  first: number;
  members: number[];
}

/**
 * Which sequence owns which KV slot of the fused decoder, and how many positions each slot holds. New sequences take
 * the lowest free slots, so that a step's size (the slots up to the highest it needs) stays small. Slots without a
 * step row below that size still run in the step; each writes its new position just past its valid prefix (or at 0
 * when free), where the next real step of that sequence overwrites it.
 */
export class FusedKvSlots {
  private readonly slotOf = new Map<number, number>();
  private readonly lengths: Int32Array;
  private readonly used: Uint8Array;

  constructor(
    readonly slots: number,
    readonly capacity: number,
  ) {
    this.lengths = new Int32Array(slots);
    this.used = new Uint8Array(slots);
  }

  has(seq: number): boolean {
    return this.slotOf.has(seq);
  }

  /**
   * Slots for new sequences, all or none, as few runs of consecutive free slots as the free slots allow (lowest
   * first): a prefill of several sequences is one call per run.
   */
  claimRuns(news: NewSequence[]): SlotRun[] {
    const seen = new Set<number>();
    for (const { seq, length } of news) {
      if (this.slotOf.has(seq) || seen.has(seq)) throw new Error(`sequence ${seq} already exists`);
      seen.add(seq);
      if (length > this.capacity)
        throw new Error(`prompt of ${length} positions exceeds the KV capacity ${this.capacity}`);
    }
    const free: number[] = [];
    for (let s = 0; s < this.slots && free.length < news.length; s++) if (!this.used[s]) free.push(s);
    if (free.length < news.length) throw new Error(`all ${this.slots} KV slots are in use`);
    const runs: SlotRun[] = [];
    free.forEach((slot, k) => {
      const run = runs[runs.length - 1];
      if (run && run.first + run.members.length === slot) run.members.push(k);
      else runs.push({ first: slot, members: [k] });
      this.used[slot] = 1;
      this.slotOf.set(news[k].seq, slot);
      this.lengths[slot] = news[k].length;
    });
    return runs;
  }

  slot(seq: number): number {
    const slot = this.slotOf.get(seq);
    if (slot === undefined) throw new Error(`unknown sequence ${seq}`);
    return slot;
  }

  /**
   * Positions, per-slot cache lengths after the step (minus one) and the output rows of a step over `rows`;
   * `pending`: steps already run for these rows and not yet advanced (steps run ahead of the engine).
   */
  stepInputs(rows: StepRow[], pending = 0): FusedStepInputs {
    const B = this.slots;
    const positions = new BigInt64Array(3 * B);
    const seqlens = new Int32Array(B);
    for (let b = 0; b < B; b++) seqlens[b] = Math.min(this.lengths[b], this.capacity - 1);
    const outRows = Int32Array.from(rows, (r) => {
      const slot = this.slot(r.seq);
      if (this.lengths[slot] + pending >= this.capacity)
        throw new Error(`sequence ${r.seq} has filled its KV capacity of ${this.capacity}`);
      seqlens[slot] = this.lengths[slot] + pending;
      const p = BigInt(r.position);
      positions[slot] = positions[B + slot] = positions[2 * B + slot] = p;
      return slot;
    });
    return { positions, seqlens, outRows };
  }

  /** After a step: each stepped slot holds one more position. */
  advance(outRows: Int32Array): void {
    for (const slot of outRows) this.lengths[slot]++;
  }

  release(seq: number): void {
    const slot = this.slotOf.get(seq);
    if (slot === undefined) return;
    this.slotOf.delete(seq);
    this.lengths[slot] = 0;
    this.used[slot] = 0;
  }
}
