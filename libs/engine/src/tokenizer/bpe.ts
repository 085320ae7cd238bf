/**
 * Byte-pair encoding over byte-level strings with merge ranks, matching the HF `tokenizers` BPE model
 * (no dropout, no unk, no continuing-subword prefix): repeatedly merge the lowest-ranked adjacent pair,
 * leftmost first on ties.
 */
const ID_BITS = 2 ** 20;

export class BpeModel {
  private readonly merges = new Map<number, number>(); // pairKey -> rank * ID_BITS + mergedId
  private readonly cache = new Map<string, number[]>();

  constructor(
    readonly vocab: ReadonlyMap<string, number>,
    merges: ReadonlyArray<string | [string, string]>,
  ) {
    merges.forEach((merge, rank) => {
      const [a, b] = typeof merge === 'string' ? splitMerge(merge) : merge;
      const ia = vocab.get(a);
      const ib = vocab.get(b);
      const merged = vocab.get(a + b);
      if (ia === undefined || ib === undefined || merged === undefined) {
        throw new Error(`merge #${rank} "${a} ${b}" refers to a token missing from the vocabulary`);
      }
      const key = ia * ID_BITS + ib;
      if (!this.merges.has(key)) this.merges.set(key, rank * ID_BITS + merged);
    });
  }

  /** Token ids of one byte-level pre-token. */
  encodeWord(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const ids = this.mergeWord(word);
    if (this.cache.size > 100_000) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }

  private mergeWord(word: string): number[] {
    const chars = Array.from(word);
    const n = chars.length;
    const ids = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const id = this.vocab.get(chars[i]);
      if (id === undefined)
        throw new Error(`byte-level symbol ${JSON.stringify(chars[i])} is not in the vocabulary`);
      ids[i] = id;
    }
    if (n === 1) return [ids[0]];
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new MergeHeap();
    const push = (pos: number): void => {
      const right = next[pos];
      if (right < 0) return;
      const entry = this.merges.get(ids[pos] * ID_BITS + ids[right]);
      if (entry !== undefined) heap.push(Math.floor(entry / ID_BITS), pos, ids[right]);
    };
    for (let i = 0; i < n - 1; i++) push(i);
    while (heap.size > 0) {
      const [rank, pos, rightId] = heap.pop();
      if (!alive[pos]) continue;
      const right = next[pos];
      if (right < 0 || ids[right] !== rightId) continue;
      const entry = this.merges.get(ids[pos] * ID_BITS + rightId);
      if (entry === undefined || Math.floor(entry / ID_BITS) !== rank) continue;
      ids[pos] = entry % ID_BITS;
      alive[right] = 0;
      next[pos] = next[right];
      if (next[right] >= 0) prev[next[right]] = pos;
      if (prev[pos] >= 0) push(prev[pos]);
      push(pos);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(ids[i]);
    return out;
  }
}

function splitMerge(merge: string): [string, string] {
  const space = merge.indexOf(' ', 1);
  if (space < 0) throw new Error(`malformed merge "${merge}"`);
  return [merge.slice(0, space), merge.slice(space + 1)];
}

/** Binary min-heap ordered by (rank, position). */
class MergeHeap {
  private readonly ranks: number[] = [];
  private readonly positions: number[] = [];
  private readonly rightIds: number[] = [];

  get size(): number {
    return this.ranks.length;
  }

  push(rank: number, pos: number, rightId: number): void {
    this.ranks.push(rank);
    this.positions.push(pos);
    this.rightIds.push(rightId);
    let i = this.ranks.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): [number, number, number] {
    const top: [number, number, number] = [this.ranks[0], this.positions[0], this.rightIds[0]];
    const last = this.ranks.length - 1;
    this.swap(0, last);
    this.ranks.pop();
    this.positions.pop();
    this.rightIds.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.ranks.length && this.less(l, m)) m = l;
      if (r < this.ranks.length && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }

  private less(a: number, b: number): boolean {
    return (
      this.ranks[a] < this.ranks[b] ||
      (this.ranks[a] === this.ranks[b] && this.positions[a] < this.positions[b])
    );
  }

  private swap(a: number, b: number): void {
    [this.ranks[a], this.ranks[b]] = [this.ranks[b], this.ranks[a]];
    [this.positions[a], this.positions[b]] = [this.positions[b], this.positions[a]];
    [this.rightIds[a], this.rightIds[b]] = [this.rightIds[b], this.rightIds[a]];
  }
}
