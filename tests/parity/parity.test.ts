import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { LvrEngine } from '@lvr/engine';
import type { ChatMessage, LvrStrategy } from '@lvr/engine';

const ROOT = path.resolve(__dirname, '../..');

interface Req {
  messages: Array<{ role: 'system' | 'user' | 'assistant'; content: string | Array<{ type: 'text'; text: string } | { type: 'image'; index: number }> }>;
  images?: Array<{ seed: number; width: number; height: number }>;
  max_new_tokens: number;
  strategy?: LvrStrategy;
  steps?: number;
  prefix?: string;
}
interface Golden {
  prompt_ids: number[];
  output_ids: number[];
  finish_reason: string;
  latent_steps: number;
  hiddens: number[][];
  image_paths: string[];
}

const LONG = Array.from({ length: 260 }, (_, i) => `word${i} 数据 ${i * 7}`).join(' ');
const SIZES: Array<[number, number]> = [[56, 56], [84, 112], [112, 56], [140, 196], [224, 168], [196, 252]];
const QUESTIONS = ['What is in the image?', 'Describe the colours.', 'Count the objects, please.', '这是什么？'];

function requests(): Req[] {
  const out: Req[] = [];
  const texts = ['Hello!', 'Write a haiku about latent space.', 'def f(x):\n    return x', LONG, '🙂 emoji and  spaces\n\n'];
  texts.forEach((t, i) => out.push({ messages: [{ role: 'user', content: t }], max_new_tokens: 12 + i }));
  out.push({ messages: [{ role: 'system', content: 'Be terse.' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello.' }, { role: 'user', content: 'Again?' }], max_new_tokens: 10 });
  let seed = 1;
  for (const steps of [4, 8, 16]) {
    out.push({ messages: [{ role: 'user', content: `Think about ${steps}.` }], max_new_tokens: steps + 8, steps, prefix: '<|lvr_start|>' });
    out.push({ messages: [{ role: 'user', content: LONG }], max_new_tokens: steps + 4, steps, prefix: '<|lvr_start|>' });
  }
  SIZES.forEach(([h, w], i) => {
    for (const steps of [0, 4, 8, 16]) {
      if ((i + steps) % 3 === 1) continue;
      out.push({
        messages: [{ role: 'user', content: [{ type: 'image', index: 0 }, { type: 'text', text: QUESTIONS[i % 4] }] }],
        images: [{ seed: seed++, width: w, height: h }],
        max_new_tokens: steps + 6,
        steps: steps || 8,
        prefix: steps ? '<|lvr_start|>' : '',
      });
    }
  });
  for (const [a, b] of [[0, 3], [1, 4], [2, 5]]) {
    out.push({
      messages: [
        { role: 'user', content: [{ type: 'image', index: 0 }, { type: 'text', text: 'Compare' }, { type: 'image', index: 1 }, { type: 'text', text: ' these two.' }] },
      ],
      images: [{ seed: seed++, width: SIZES[a][1], height: SIZES[a][0] }, { seed: seed++, width: SIZES[b][1], height: SIZES[b][0] }],
      max_new_tokens: 14,
      steps: 8,
      prefix: a === 1 ? '' : '<|lvr_start|>',
    });
  }
  out.push({ messages: [{ role: 'user', content: 'end token strategy' }], max_new_tokens: 12, strategy: 'end_token', steps: 4, prefix: '<|lvr_start|>' });
  out.push({ messages: [{ role: 'user', content: [{ type: 'image', index: 0 }, { type: 'text', text: 'end token' }] }], images: [{ seed: 99, width: 84, height: 84 }], max_new_tokens: 12, strategy: 'end_token', steps: 6, prefix: '<|lvr_start|>' });
  return out;
}

function relError(a: Float32Array, b: number[]): number {
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < b.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    maxRef = Math.max(maxRef, Math.abs(b[i]));
  }
  return maxDiff / Math.max(maxRef, 1e-6);
}

describe('TS engine vs PyTorch reference (tiny random bundle, fp32, greedy)', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-parity-'));
  const reqs = requests();
  let golden: Golden[];
  let engine: LvrEngine;

  before(async () => {
    const python = process.env.LVR_PYTHON;
    if (!python) throw new Error('LVR_PYTHON is not set: run through `npm test` (or eval "$(node scripts/stack/cli.mjs env)")');
    const input = path.join(work, 'input.json');
    fs.mkdirSync(path.join(work, 'images'));
    fs.writeFileSync(input, JSON.stringify({ seed: 0, bundle: path.join(work, 'bundle'), image_dir: path.join(work, 'images'), requests: reqs }));
    const res = spawnSync(python, [path.join(__dirname, 'golden_oracle.py'), input], {
      cwd: ROOT,
      env: { ...process.env, PYTHONPATH: path.join(ROOT, 'workers') },
      encoding: 'utf8',
      maxBuffer: 1 << 30,
    });
    if (res.status !== 0) throw new Error(`golden oracle failed: ${res.stderr}`);
    golden = (JSON.parse(res.stdout) as { results: Golden[] }).results;
    engine = await LvrEngine.load(path.join(work, 'bundle'));
  });

  after(async () => {
    await engine?.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it(`${reqs.length} requests: prompt ids, greedy output ids, finish reasons and hidden states match`, async (t) => {
    assert.ok(reqs.length >= 30);
    let worstRel = 0;
    let latentTotal = 0;
    let longest = 0;
    for (let i = 0; i < reqs.length; i++) {
      const r = reqs[i];
      const g = golden[i];
      const messages: ChatMessage[] = r.messages.map((m) => ({
        role: m.role,
        content: typeof m.content === 'string' ? m.content : m.content.map((c) => (c.type === 'image' ? { type: 'image' as const, image: fs.readFileSync(g.image_paths[c.index]) } : c)),
      }));
      let promptIds: number[] = [];
      const hiddens: Float32Array[] = [];
      const ids: number[] = [];
      let finish: string | null = null;
      let latentSteps = -1;
      for await (const d of engine.generate(
        { messages, assistantPrefix: r.prefix, sampling: { maxTokens: r.max_new_tokens }, lvr: { strategy: r.strategy ?? 'steps', steps: r.steps ?? 8 } },
        {},
        { onPrompt: (p) => (promptIds = p.ids), onHidden: (h) => hiddens.push(h) },
      )) {
        ids.push(...d.tokenIds);
        if (d.finishReason) {
          finish = d.finishReason;
          latentSteps = d.usage!.latentSteps;
        }
      }
      assert.deepEqual(promptIds, g.prompt_ids, `request ${i}: prompt ids`);
      assert.deepEqual(ids, g.output_ids, `request ${i}: output ids`);
      assert.equal(finish, g.finish_reason, `request ${i}: finish reason`);
      assert.equal(latentSteps, g.latent_steps, `request ${i}: latent steps`);
      assert.equal(hiddens.length, g.hiddens.length, `request ${i}: forward count`);
      hiddens.forEach((h, k) => (worstRel = Math.max(worstRel, relError(h, g.hiddens[k]))));
      latentTotal += g.latent_steps;
      longest = Math.max(longest, g.prompt_ids.length);
    }
    assert.ok(worstRel <= 1e-4, `hidden-state relative error ${worstRel}`);
    assert.ok(latentTotal > 0 && longest > 1000, `latent steps ${latentTotal}, longest prompt ${longest}`);
    t.diagnostic(`worst hidden-state rel error ${worstRel.toExponential(2)}; ${latentTotal} latent steps; longest prompt ${longest}`);
    console.log(`[parity] ${reqs.length} requests token-identical; worst hidden rel err ${worstRel.toExponential(2)}; latent steps ${latentTotal}; longest prompt ${longest} tokens`);
  });

  it('cancellation with an AbortSignal ends generation within one decode step', async () => {
    const ctrl = new AbortController();
    const deltas = [];
    for await (const d of engine.generate({ messages: [{ role: 'user', content: 'Go on forever.' }], sampling: { maxTokens: 200, ignoreEos: true } }, { signal: ctrl.signal })) {
      deltas.push(d);
      if (deltas.length === 3) ctrl.abort();
    }
    assert.equal(deltas.at(-1)!.finishReason, 'abort');
    assert.ok(deltas.length <= 4, `${deltas.length} deltas after abort at 3`);
  });
});
