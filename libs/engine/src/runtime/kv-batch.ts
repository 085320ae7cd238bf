/**
 * KV-cache layout for batched decoding. The decoder's cache is `[B, KVH, W, D]` per layer and tensor; every row keeps
 * its `len` real slots right-aligned (left padding: slots `0..W-len-1` are zeros masked out by `attention_mask`).
 * A decode step appends one slot to every row, so the layout survives steps without any copy; only a change of the
 * batch's members (a sequence joins or leaves) repacks the rows, into the smallest width that fits them.
 */

export type KvArray = Float32Array | Uint16Array;

/** One row of an existing cache array: the last `len` of its `width` slots are real. */
export interface KvRowSource {
  data: KvArray;
  /** Slots per row in `data` (its P axis). */
  width: number;
  /** Row index in `data`'s batch axis. */
  row: number;
  /** Real slots of this row (`len <= width`). */
  len: number;
}

/**
 * Copies `sources` into a new `[sources.length, kvHeads, width, headDim]` array, each row right-aligned with zero
 * left padding. `width` must be at least every source's `len`. Cost: one copy of the real slots.
 */
export function packRows(
  sources: readonly KvRowSource[],
  width: number,
  kvHeads: number,
  headDim: number,
): KvArray {
  const first = sources[0]?.data;
  const n = sources.length * kvHeads * width * headDim;
  const out: KvArray = first instanceof Uint16Array ? new Uint16Array(n) : new Float32Array(n);
  sources.forEach((s, b) => {
    if (s.len > width || s.len > s.width)
      throw new Error(`row of ${s.len} slots does not fit ${width}/${s.width}`);
    for (let h = 0; h < kvHeads; h++) {
      const from = ((s.row * kvHeads + h) * s.width + s.width - s.len) * headDim;
      const to = ((b * kvHeads + h) * width + width - s.len) * headDim;
      out.set(s.data.subarray(from, from + s.len * headDim) as never, to);
    }
  });
  return out;
}

/** `attention_mask [B, width + extra]`: per row `width - len` zeros, then ones (past real slots and the new ones). */
export function leftPaddedMask(lens: readonly number[], width: number, extra: number): BigInt64Array {
  const cols = width + extra;
  const mask = new BigInt64Array(lens.length * cols);
  lens.forEach((len, b) => mask.fill(1n, b * cols + width - len, (b + 1) * cols));
  return mask;
}
