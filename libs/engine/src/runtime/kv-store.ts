/**
 * Ownership of every live sequence's KV cache, independent of where the tensors live (host arrays or device
 * buffers): decoding sequences share one left-padded batch cache (`batch`, layout in kv-batch.ts) that a step
 * replaces with the decoder's presents; prefilled sequences wait in `parked` (a cache of one row each) until their
 * first step. Every tensor handed to the store is disposed exactly once, when it is replaced or its sequences are
 * released, so device buffers never outlive their sequence.
 */

/** What the store needs from a tensor: a way to free it (GPU buffers are not garbage-collected in time). */
export interface Disposable {
  dispose(): void;
}

export type KvFeeds<T> = Record<string, T>;

/** A cache of one or more rows: tensors `[B, KVH, width, D]`, row b's last `lens[b]` slots real. */
export interface KvCache<T> {
  seqs: number[];
  lens: number[];
  width: number;
  past: KvFeeds<T>;
}

/** Row `row` of `cache`. */
export interface KvRowRef<T> {
  cache: KvCache<T>;
  row: number;
}

/**
 * Builds new cache tensors from rows of existing caches (right-aligned into `width` slots, zero left padding),
 * one tensor per KV name. The inputs stay owned by the caller; the result is owned by the store.
 */
export interface KvPacker<T> {
  pack(rows: ReadonlyArray<KvRowRef<T>>, width: number): Promise<KvFeeds<T>>;
}

function disposeAll<T extends Disposable>(feeds: KvFeeds<T>): void {
  for (const t of Object.values(feeds)) t.dispose();
}

export class KvStore<T extends Disposable> {
  private batch: KvCache<T> | undefined;
  private readonly parked = new Map<number, KvCache<T>>();
  /** Rows of `batch` whose sequences ended; dropped at the next repack. */
  private readonly released = new Set<number>();

  constructor(private readonly packer: KvPacker<T>) {}

  has(seq: number): boolean {
    return this.parked.has(seq) || (this.batch?.seqs.includes(seq) ?? false);
  }

  /** Sequences whose tensors the store holds (parked, or batch rows not yet dropped). */
  liveSequences(): number[] {
    return [...this.parked.keys(), ...(this.batch?.seqs ?? [])];
  }

  /** A prefilled sequence's cache (`len` real slots, width `len`) waits for its first step. */
  park(seq: number, len: number, past: KvFeeds<T>): void {
    if (this.has(seq)) {
      disposeAll(past);
      throw new Error(`sequence ${seq} already exists`);
    }
    this.parked.set(seq, { seqs: [seq], lens: [len], width: len, past });
  }

  /**
   * Makes the batch hold exactly `seqs`, in that order, and returns it (unchanged when it already does). A parked
   * single sequence becomes the batch as is (no copy); otherwise the rows are repacked into the smallest width that
   * fits them, and rows of the old batch that are still live but not in `seqs` go back to `parked`.
   */
  async arrange(seqs: number[]): Promise<KvCache<T>> {
    const cur = this.batch;
    if (cur && cur.seqs.length === seqs.length && cur.seqs.every((s, i) => s === seqs[i])) return cur;
    const wanted = new Set(seqs);
    const sources: Array<KvRowRef<T>> = seqs.map((seq) => {
      const p = this.parked.get(seq);
      if (p) return { cache: p, row: 0 };
      if (cur?.seqs.includes(seq) && !this.released.has(seq))
        return { cache: cur, row: cur.seqs.indexOf(seq) };
      throw new Error(`sequence ${seq} has no KV cache (not prefilled or already released)`);
    });
    const lens = sources.map(({ cache, row }) => cache.lens[row]);
    const width = Math.max(...lens);
    const leaving = (cur?.seqs ?? []).filter((s) => !wanted.has(s) && !this.released.has(s));
    const parkedNow = new Map<number, KvCache<T>>();
    try {
      for (const seq of leaving) {
        const row = cur!.seqs.indexOf(seq);
        const len = cur!.lens[row];
        parkedNow.set(seq, {
          seqs: [seq],
          lens: [len],
          width: len,
          past: await this.packer.pack([{ cache: cur!, row }], len),
        });
      }
    } catch (error) {
      for (const c of parkedNow.values()) disposeAll(c.past);
      throw error;
    }
    const only = sources.length === 1 ? sources[0].cache : undefined;
    const adopt = only !== undefined && only !== cur && only.width === lens[0];
    let past: KvFeeds<T>;
    try {
      past = adopt ? only.past : await this.packer.pack(sources, width);
    } catch (error) {
      for (const c of parkedNow.values()) disposeAll(c.past);
      throw error;
    }
    for (const seq of seqs) {
      const p = this.parked.get(seq);
      if (!p) continue;
      if (!adopt) disposeAll(p.past);
      this.parked.delete(seq);
    }
    for (const [seq, c] of parkedNow) this.parked.set(seq, c);
    if (cur) disposeAll(cur.past);
    this.released.clear();
    this.batch = { seqs: [...seqs], lens, width, past };
    return this.batch;
  }

  /** After a decode step over `batch`: the presents (one slot longer per row) replace the pasts, which are freed. */
  advance(batch: KvCache<T>, present: KvFeeds<T>): void {
    if (batch !== this.batch) {
      disposeAll(present);
      throw new Error('advance of a cache that is not the current batch');
    }
    disposeAll(batch.past);
    batch.past = present;
    batch.width += 1;
    for (let b = 0; b < batch.lens.length; b++) batch.lens[b] += 1;
  }

  /** Frees a finished or cancelled sequence's cache (a batch row is dropped at the next repack, or now if none is live). */
  release(seq: number): void {
    const p = this.parked.get(seq);
    if (p) {
      disposeAll(p.past);
      this.parked.delete(seq);
    }
    const cur = this.batch;
    if (!cur?.seqs.includes(seq)) return;
    this.released.add(seq);
    if (cur.seqs.every((s) => this.released.has(s))) {
      disposeAll(cur.past);
      this.released.clear();
      this.batch = undefined;
    }
  }

  /** Frees everything (engine close). */
  clear(): void {
    for (const c of this.parked.values()) disposeAll(c.past);
    this.parked.clear();
    if (this.batch) disposeAll(this.batch.past);
    this.batch = undefined;
    this.released.clear();
  }
}
