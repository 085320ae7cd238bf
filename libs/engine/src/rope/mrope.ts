/**
 * Qwen2.5-VL M-RoPE position ids for one prompt row (LVR-SPEC Appendix A): text tokens advance all three axes by 1;
 * an image's run of `<|image_pad|>` tokens gets (s, s+row, s+col) and text resumes at s + max(rows, cols).
 */
export interface RopeIndex {
  /** [3, S] flattened row-major: t axis, then h, then w. */
  positions: BigInt64Array;
  ropeDelta: number;
}

export function ropeIndex(
  inputIds: readonly number[],
  imageGrids: ReadonlyArray<readonly [number, number, number]>,
  imagePadId: number,
  spatialMergeSize = 2,
): RopeIndex {
  const n = inputIds.length;
  const pos = new BigInt64Array(3 * n);
  let p = 0;
  let maxPos = -1;
  let grid = 0;
  let k = 0;
  while (k < n) {
    if (inputIds[k] !== imagePadId) {
      pos[k] = pos[n + k] = pos[2 * n + k] = BigInt(p);
      maxPos = Math.max(maxPos, p);
      p++;
      k++;
      continue;
    }
    if (grid >= imageGrids.length) throw new Error('more <|image_pad|> runs than images');
    const [t, gh, gw] = imageGrids[grid++];
    const lh = gh / spatialMergeSize;
    const lw = gw / spatialMergeSize;
    const count = t * lh * lw;
    for (let q = 0; q < count; q++) {
      const j = k + q;
      if (j >= n || inputIds[j] !== imagePadId)
        throw new Error(`image grid ${t}x${gh}x${gw} needs ${count} pad tokens`);
      const tt = Math.floor(q / (lh * lw));
      const rem = q % (lh * lw);
      const r = Math.floor(rem / lw);
      const c = rem % lw;
      pos[j] = BigInt(p + tt);
      pos[n + j] = BigInt(p + r);
      pos[2 * n + j] = BigInt(p + c);
      maxPos = Math.max(maxPos, p + tt, p + r, p + c);
    }
    p += Math.max(lh, lw);
    k += count;
  }
  return { positions: pos, ropeDelta: maxPos + 1 - n };
}
