import type { BatchOutputs } from '../runtime/protocol';
import type { StepResult } from './loop';

/** Row b of a batched call's outputs, as its sequence's forward result (views, no copies). */
export function rowResult(out: BatchOutputs, b: number, vocabSize: number, hiddenSize: number): StepResult {
  const row = out.logitRows ? out.logitRows[b] : b;
  const { top } = out;
  return {
    logits: row >= 0 ? out.logits.subarray(row * vocabSize, (row + 1) * vocabSize) : undefined,
    hidden: out.hidden.subarray(b * hiddenSize, (b + 1) * hiddenSize),
    top: top && {
      k: top.k,
      ids: top.ids.subarray(b * top.k, (b + 1) * top.k),
      values: top.values.subarray(b * top.k, (b + 1) * top.k),
    },
  };
}
