/**
 * `npm run bench -- sampling`: time per sampled token over a Qwen2.5-sized vocabulary (151,936 logits) for the
 * engine's selection-based sampler vs the baseline that sorts the whole vocabulary every token (the engine's previous
 * implementation). Last line: `BENCH {json}` with ms per token and the speed-up per setting.
 */
import { pickToken, SeededRandom } from '../../libs/engine/src/sampling/sampler';
import type { SamplingParams } from '@lvr/engine';

const VOCAB = 151936;
const TOKENS = 40;

/** Baseline: sort everything, then top-k, top-p, min-p over the sorted list. */
function pickBySort(logits: Float32Array, params: SamplingParams, rng: SeededRandom): number {
  const temperature = Math.max(params.temperature ?? 1, 1e-6);
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  const k = params.topK && params.topK > 0 ? Math.min(params.topK, order.length) : order.length;
  const top = order.slice(0, k);
  const max = logits[top[0]] / temperature;
  const probs = top.map((id) => Math.exp(logits[id] / temperature - max));
  let keep = probs.length;
  const total = probs.reduce((a, b) => a + b, 0);
  if ((params.topP ?? 1) < 1) {
    let cum = 0;
    keep = 0;
    while (keep < probs.length && cum < (params.topP ?? 1)) cum += probs[keep++] / total;
  }
  while ((params.minP ?? 0) > 0 && keep > 1 && probs[keep - 1] < probs[0] * (params.minP ?? 0)) keep--;
  let r = rng.next() * probs.slice(0, keep).reduce((a, b) => a + b, 0);
  for (let i = 0; i < keep; i++) if ((r -= probs[i]) <= 0) return top[i];
  return top[keep - 1];
}

/** Logits shaped like a language model's: a few strong candidates over a long, low tail. */
function modelLikeLogits(rng: SeededRandom): Float32Array {
  const logits = new Float32Array(VOCAB);
  for (let i = 0; i < VOCAB; i++) logits[i] = -4 + 4 * (rng.next() + rng.next() + rng.next() - 1.5);
  for (let i = 0; i < 30; i++) logits[Math.floor(rng.next() * VOCAB)] = 8 + 6 * rng.next();
  return logits;
}

function msPerToken(
  pick: (l: Float32Array, p: SamplingParams, r: SeededRandom) => number,
  params: SamplingParams,
) {
  const rng = new SeededRandom(7);
  const inputs = Array.from({ length: TOKENS }, () => modelLikeLogits(rng));
  const start = performance.now();
  for (const logits of inputs) pick(Float32Array.from(logits), params, rng);
  return (performance.now() - start) / TOKENS;
}

const settings: Record<string, SamplingParams> = {
  'temperature 1 (OpenAI default)': { temperature: 1 },
  'temperature 0.7, top_p 0.9': { temperature: 0.7, topP: 0.9 },
  'top_k 50': { temperature: 1, topK: 50 },
  'min_p 0.05': { temperature: 1, minP: 0.05 },
};
const results: Record<string, { selection_ms: number; full_sort_ms: number; speedup: number }> = {};
for (const [name, params] of Object.entries(settings)) {
  const selection = msPerToken((l, p, r) => pickToken(l, [], p, r), params);
  const fullSort = msPerToken(pickBySort, params);
  results[name] = { selection_ms: selection, full_sort_ms: fullSort, speedup: fullSort / selection };
  console.log(
    `${name}: ${selection.toFixed(2)} ms vs full sort ${fullSort.toFixed(2)} ms (${(fullSort / selection).toFixed(1)}x)`,
  );
}
console.log(`BENCH ${JSON.stringify({ bench: 'sampling', vocab: VOCAB, tokens: TOKENS, results })}`);
