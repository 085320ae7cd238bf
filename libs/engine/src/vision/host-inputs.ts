/**
 * Inputs of `vision.onnx` that the host derives from the patch grid (docs/bundle-format.md, "Graph: vision.onnx";
 * port of workers/lvr/vision_inputs.py).
 */
export interface VisionGeometry {
  spatialMergeSize: number;
  windowSize: number;
  patchSize: number;
}

export interface VisionHostInputs {
  rotaryPosIds: BigInt64Array; // [N, 2]
  windowIndex: BigInt64Array; // [M]
  reverseWindowIndex: BigInt64Array; // [M]
  windowIds: BigInt64Array; // [N]
  /** Windows as a padded batch: each slot's patch row in window order, -1 for padding. [W, S] */
  windowSlots: BigInt64Array;
  slotsPerWindow: number; // S
  patchSlots: BigInt64Array; // [N]: each patch row's flat slot
}

export function visionHostInputs(gridH: number, gridW: number, geo: VisionGeometry): VisionHostInputs {
  const m = geo.spatialMergeSize;
  if (gridH % m || gridW % m) throw new Error(`grid ${gridH}x${gridW} not divisible by merge size ${m}`);
  const rotary = new Int32Array(gridH * gridW * 2);
  let k = 0;
  for (let br = 0; br < gridH / m; br++)
    for (let bc = 0; bc < gridW / m; bc++)
      for (let ir = 0; ir < m; ir++)
        for (let ic = 0; ic < m; ic++) {
          rotary[k++] = br * m + ir;
          rotary[k++] = bc * m + ic;
        }

  const ws = Math.floor(geo.windowSize / m / geo.patchSize);
  const lh = gridH / m;
  const lw = gridW / m;
  // A full extra window of padding when divisible, as HF does; empty windows get no id.
  const nwh = (lh + ws - (lh % ws)) / ws;
  const nww = (lw + ws - (lw % ws)) / ws;
  const index: number[] = [];
  const ids: number[] = [];
  let w = 0;
  for (let wy = 0; wy < nwh; wy++)
    for (let wx = 0; wx < nww; wx++) {
      let count = 0;
      for (let r = wy * ws; r < Math.min(wy * ws + ws, lh); r++)
        for (let c = wx * ws; c < Math.min(wx * ws + ws, lw); c++) {
          index.push(r * lw + c);
          count++;
        }
      if (count === 0) continue;
      for (let i = 0; i < count * m * m; i++) ids.push(w);
      w++;
    }
  const reverse = new Int32Array(index.length);
  index.forEach((v, i) => (reverse[v] = i));
  const slotsPerWindow = (ws * m) ** 2;
  return {
    rotaryPosIds: int64(rotary),
    windowIndex: int64(index),
    reverseWindowIndex: int64(reverse),
    windowIds: int64(ids),
    slotsPerWindow,
    ...windowSlots(ids, slotsPerWindow),
  };
}

/**
 * int64 copies of int32-range values, written as little-endian word pairs: a `BigInt` per element costs more than
 * the rest of these inputs together at a few thousand patches.
 */
function int64(values: ArrayLike<number>): BigInt64Array {
  const out = new BigInt64Array(values.length);
  const words = new Int32Array(out.buffer);
  for (let i = 0; i < values.length; i++) {
    words[2 * i] = values[i];
    words[2 * i + 1] = values[i] < 0 ? -1 : 0;
  }
  return out;
}

/** Windows (contiguous runs of equal ids, in window order) as W rows of S slots, and each patch's flat slot. */
function windowSlots(
  ids: number[],
  slotsPerWindow: number,
): Pick<VisionHostInputs, 'windowSlots' | 'patchSlots'> {
  const windows = ids.length ? ids[ids.length - 1] + 1 : 0;
  const slots = new Int32Array(windows * slotsPerWindow).fill(-1);
  const patchSlots = new Int32Array(ids.length);
  let rank = 0;
  for (let i = 0; i < ids.length; i++) {
    rank = i > 0 && ids[i] === ids[i - 1] ? rank + 1 : 0;
    if (rank >= slotsPerWindow) throw new Error(`window ${ids[i]} holds more than ${slotsPerWindow} patches`);
    const slot = ids[i] * slotsPerWindow + rank;
    slots[slot] = i;
    patchSlots[i] = slot;
  }
  return { windowSlots: int64(slots), patchSlots: int64(patchSlots) };
}
