import type { SamplingParams } from '../types';

/** Seeded uniform generator (mulberry32); deterministic per request seed. */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** HF RepetitionPenaltyLogitsProcessor in float32: for every id seen, logit < 0 → ×p, else ÷p (in place). */
export function applyRepetitionPenalty(
  logits: Float32Array,
  history: Iterable<number>,
  penalty: number,
): void {
  if (penalty === 1) return;
  const p = Math.fround(penalty);
  const seen = new Set<number>();
  for (const id of history) {
    if (id < 0 || id >= logits.length || seen.has(id)) continue;
    seen.add(id);
    const s = logits[id];
    logits[id] = s < 0 ? Math.fround(s * p) : Math.fround(s / p);
  }
}

export function isGreedy(params: SamplingParams): boolean {
  return (params.temperature ?? 1) === 0 || params.topK === 1;
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Repetition penalty, then argmax or temperature / top-k / top-p / min-p sampling. Mutates `logits`. */
export function pickToken(
  logits: Float32Array,
  history: Iterable<number>,
  params: SamplingParams,
  rng: SeededRandom,
): number {
  applyRepetitionPenalty(logits, history, params.repetitionPenalty ?? 1);
  if (isGreedy(params)) return argmax(logits);
  const temperature = Math.max(params.temperature ?? 1, 1e-6);
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  const k = params.topK && params.topK > 0 ? Math.min(params.topK, order.length) : order.length;
  const top = order.slice(0, k);
  const maxLogit = logits[top[0]] / temperature;
  let probs = top.map((id) => Math.exp(logits[id] / temperature - maxLogit));
  let sum = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / sum);
  let keep = probs.length;
  const topP = params.topP ?? 1;
  if (topP < 1) {
    let cum = 0;
    keep = 0;
    while (keep < probs.length && cum < topP) cum += probs[keep++];
    keep = Math.max(keep, 1);
  }
  const minP = params.minP ?? 0;
  if (minP > 0) {
    const floor = probs[0] * minP;
    while (keep > 1 && probs[keep - 1] < floor) keep--;
  }
  sum = 0;
  for (let i = 0; i < keep; i++) sum += probs[i];
  let r = rng.next() * sum;
  for (let i = 0; i < keep; i++) {
    r -= probs[i];
    if (r <= 0) return top[i];
  }
  return top[keep - 1];
}
