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
    logits[id] = repetitionPenalized(logits[id], p);
  }
}

/** One logit under the repetition penalty `p` (a float32): negative ×p, else ÷p. */
function repetitionPenalized(s: number, p: number): number {
  return s < 0 ? Math.fround(s * p) : Math.fround(s / p);
}

/** OpenAI `logit_bias`: adds each bias to its token's logit (in place); -100 / 100 effectively ban / force it. */
export function applyLogitBias(
  logits: Float32Array,
  bias: Readonly<Record<number, number>> | undefined,
): void {
  if (!bias) return;
  for (const [id, b] of Object.entries(bias)) logits[Number(id)] = Math.fround(logits[Number(id)] + b);
}

/**
 * OpenAI/vLLM presence and frequency penalties over the generated ids (not the prompt), in place:
 * `logit -= presence · [count > 0] + frequency · count`.
 */
export function applyOccurrencePenalties(
  logits: Float32Array,
  counts: ReadonlyMap<number, number>,
  presence: number,
  frequency: number,
): void {
  if (presence === 0 && frequency === 0) return;
  for (const [id, n] of counts) logits[id] = occurrencePenalized(logits[id], n, presence, frequency);
}

function occurrencePenalized(s: number, n: number, presence: number, frequency: number): number {
  return Math.fround(s - presence - frequency * n);
}

/**
 * Whether a row's token can be picked from its top candidates (`greedyFromTop`): greedy, no logprobs, and only
 * adjustments that never raise a logit (no logit bias; repetition penalty ≥ 1; presence and frequency penalties ≥ 0).
 */
export function pickableFromTop(params: SamplingParams, topLogprobs: number | undefined): boolean {
  return (
    isGreedy(params) &&
    topLogprobs === undefined &&
    (!params.logitBias || Object.keys(params.logitBias).length === 0) &&
    (params.repetitionPenalty ?? 1) >= 1 &&
    (params.presencePenalty ?? 0) >= 0 &&
    (params.frequencyPenalty ?? 0) >= 0
  );
}

/**
 * `pickToken`'s greedy pick from the row's K largest logits only (`ids`/`values`, largest first, ties by lower id),
 * or undefined when they do not decide it. Penalties only lower logits (`pickableFromTop`), so every other token
 * stays at or below the K-th value: a penalized candidate strictly above it is the argmax of the whole row (ties
 * between candidates go to the lower id, as in `argmax`).
 */
export function greedyFromTop(
  ids: Int32Array,
  values: Float32Array,
  history: Iterable<number>,
  params: SamplingParams,
  generated: ReadonlyMap<number, number> = new Map(),
): number | undefined {
  // Without penalties the first candidate is the row's argmax: ties there went to the lowest id as in `argmax`.
  if (unpenalized(params)) return ids.length ? ids[0] : undefined;
  const penalty = params.repetitionPenalty ?? 1;
  const p = Math.fround(penalty);
  const presence = params.presencePenalty ?? 0;
  const frequency = params.frequencyPenalty ?? 0;
  const seen = penalty === 1 ? undefined : history instanceof Set ? history : new Set(history);
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    let v = values[i];
    if (seen?.has(id)) v = repetitionPenalized(v, p);
    const n = generated.get(id);
    if (n !== undefined && (presence !== 0 || frequency !== 0))
      v = occurrencePenalized(v, n, presence, frequency);
    if (v > bestValue || (v === bestValue && id < best)) {
      best = id;
      bestValue = v;
    }
  }
  return best >= 0 && bestValue > values[values.length - 1] ? best : undefined;
}

function unpenalized(params: SamplingParams): boolean {
  return (
    (params.repetitionPenalty ?? 1) === 1 &&
    (params.presencePenalty ?? 0) === 0 &&
    (params.frequencyPenalty ?? 0) === 0
  );
}

export function isGreedy(params: SamplingParams): boolean {
  return (params.temperature ?? 1) === 0 || params.topK === 1;
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/**
 * The tokens a sampled step may pick with their (unnormalised) probabilities. Most likely first when top-p cut the
 * list; without top-p the order is unspecified (sampling needs the set and the weights, not an order).
 */
export interface Candidates {
  ids: number[];
  weights: number[];
}

/**
 * Temperature, then top-k, top-p and min-p, in that order (probabilities renormalised over the top-k set), exactly as
 * sorting the whole vocabulary would give — but only the kept prefix is ever sorted. Sorting 152K logits per token
 * cost ~60 ms; selecting the few hundred candidates a step can keep costs about one pass over the vocabulary.
 */
export function samplingCandidates(logits: Float32Array, params: SamplingParams): Candidates {
  const vocab = logits.length;
  const temperature = Math.max(params.temperature ?? 1, 1e-6);
  const k = params.topK && params.topK > 0 ? Math.min(params.topK, vocab) : vocab;
  const topP = params.topP ?? 1;
  const minP = params.minP ?? 0;
  const maxLogit = logits[argmax(logits)] / temperature;
  const weight = (id: number) => Math.exp(logits[id] / temperature - maxLogit);

  // Normaliser of the top-k set: the whole vocabulary, or the k largest.
  let topK: number[] | undefined;
  let total = 0;
  if (k < vocab) {
    topK = largest(logits, k);
    for (const id of topK) total += weight(id);
  } else {
    for (let id = 0; id < vocab; id++) total += weight(id);
  }

  // min-p keeps the prefix whose probability is at least minP × the best one (whose weight is 1): a count.
  let keep = k;
  if (minP > 0) {
    let count = 0;
    if (topK) for (const id of topK) count += weight(id) >= minP ? 1 : 0;
    else for (let id = 0; id < vocab; id++) count += weight(id) >= minP ? 1 : 0;
    keep = Math.max(1, Math.min(keep, count));
  }
  if (topP >= 1) {
    // The kept set is the top-k set, or the tokens min-p keeps: collected in index order, never sorted.
    let ids: number[];
    if (keep === k) ids = topK ?? Array.from(logits.keys());
    else if (topK) ids = topK.slice(0, keep);
    else {
      ids = [];
      for (let id = 0; id < vocab; id++) if (weight(id) >= minP) ids.push(id);
    }
    return { ids, weights: ids.map(weight) };
  }

  // top-p needs the sorted prefix up to the first token where the cumulative probability reaches topP; grow the
  // selection until it covers that point (almost always within the first few hundred tokens).
  let limit = Math.min(keep, 256);
  for (;;) {
    const ids = topK ? topK.slice(0, limit) : largest(logits, limit);
    const weights = ids.map(weight);
    let cum = 0;
    for (let i = 0; i < ids.length; i++) {
      cum += weights[i] / total;
      if (cum >= topP) return { ids: ids.slice(0, i + 1), weights: weights.slice(0, i + 1) };
    }
    if (limit >= keep) return { ids, weights };
    limit = Math.min(keep, limit * 8);
  }
}

/**
 * Logit bias, repetition penalty (over `history`: prompt + generated), presence/frequency penalties (over `generated`
 * counts), then argmax or temperature / top-k / top-p / min-p sampling (vLLM's order). Mutates `logits`.
 */
export function pickToken(
  logits: Float32Array,
  history: Iterable<number>,
  params: SamplingParams,
  rng: SeededRandom,
  generated: ReadonlyMap<number, number> = new Map(),
): number {
  applyLogitBias(logits, params.logitBias);
  applyRepetitionPenalty(logits, history, params.repetitionPenalty ?? 1);
  applyOccurrencePenalties(logits, generated, params.presencePenalty ?? 0, params.frequencyPenalty ?? 0);
  if (isGreedy(params)) return argmax(logits);
  if (!truncates(params, logits.length)) return sampleFull(logits, params, rng);
  const { ids, weights } = samplingCandidates(logits, params);
  let sum = 0;
  for (const w of weights) sum += w;
  let r = rng.next() * sum;
  for (let i = 0; i < ids.length; i++) {
    r -= weights[i];
    if (r <= 0) return ids[i];
  }
  return ids[ids.length - 1];
}

function truncates(params: SamplingParams, vocab: number): boolean {
  const k = params.topK && params.topK > 0 ? params.topK : vocab;
  return k < vocab || (params.topP ?? 1) < 1 || (params.minP ?? 0) > 0;
}

/** Temperature only: one pass of weights and one walk over the vocabulary in index order. */
function sampleFull(logits: Float32Array, params: SamplingParams, rng: SeededRandom): number {
  const temperature = Math.max(params.temperature ?? 1, 1e-6);
  const max = logits[argmax(logits)] / temperature;
  const weights = new Float64Array(logits.length);
  let sum = 0;
  for (let id = 0; id < logits.length; id++) sum += weights[id] = Math.exp(logits[id] / temperature - max);
  let r = rng.next() * sum;
  for (let id = 0; id < logits.length; id++) {
    r -= weights[id];
    if (r <= 0) return id;
  }
  return argmax(logits);
}

/** Ids of the n largest logits, largest first, ties by lower id (a stable descending sort's prefix). */
export function largest(logits: Float32Array, n: number): number[] {
  const vocab = logits.length;
  if (n >= vocab) return sortDescending(logits, Array.from(logits.keys()));
  // The n-th largest value by selection on a copy, then only the ids at or above it are sorted.
  const threshold = nthLargest(Float32Array.from(logits), n);
  const above: number[] = [];
  const equal: number[] = [];
  for (let id = 0; id < vocab; id++) {
    const v = logits[id];
    if (v > threshold) above.push(id);
    else if (v === threshold) equal.push(id);
  }
  return sortDescending(logits, above).concat(equal.slice(0, n - above.length));
}

function sortDescending(logits: Float32Array, ids: number[]): number[] {
  return ids.sort((a, b) => logits[b] - logits[a] || a - b);
}

/** Quickselect (Hoare partition) for the n-th largest value; reorders `values`. */
function nthLargest(values: Float32Array, n: number): number {
  let lo = 0;
  let hi = values.length - 1;
  const target = n - 1;
  while (lo < hi) {
    const pivot = values[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (values[i] > pivot) i++;
      while (values[j] < pivot) j--;
      if (i <= j) {
        const t = values[i];
        values[i] = values[j];
        values[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return values[target];
  }
  return values[target];
}
