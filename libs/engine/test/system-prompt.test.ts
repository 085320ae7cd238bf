import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BundleError, LvrEngine, type GenerationRequest } from '../src';
import { parseManifest } from '../src/bundle/manifest';
import { DEFAULT_SYSTEM_PROMPT } from '../src/chat/template';

// A bundle's default system prompt (a training run's `systemPrompt`, written by the exporter into
// manifest.default_system_prompt) is the system message of chats that send none.
const DEMO = path.resolve(__dirname, '../../../models/lvr-tiny-demo');
const RUN_PROMPT = 'You look twice.\nAnswer with "one" letter.';

/** The demo bundle with `default_system_prompt` in its manifest (weights hard-linked, marker rewritten). */
function bundleWithSystemPrompt(prompt: unknown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-system-prompt-'));
  for (const name of fs.readdirSync(DEMO)) {
    if (name !== 'manifest.json' && name !== '_COMPLETE')
      fs.linkSync(path.join(DEMO, name), path.join(dir, name));
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(DEMO, 'manifest.json'), 'utf8'));
  const text = JSON.stringify({ ...manifest, default_system_prompt: prompt }, null, 2);
  fs.writeFileSync(path.join(dir, 'manifest.json'), text);
  const sha = createHash('sha256').update(text).digest('hex');
  fs.writeFileSync(path.join(dir, '_COMPLETE'), JSON.stringify({ manifest_sha256: sha }));
  return dir;
}

const ask = (messages: GenerationRequest['messages']): GenerationRequest => ({ messages });

describe("engine: the bundle's default system prompt", () => {
  let folder: string;
  let engine: LvrEngine;
  let demo: LvrEngine;

  before(async () => {
    folder = bundleWithSystemPrompt(RUN_PROMPT);
    engine = await LvrEngine.load(folder, { threads: 1, verifyChecksums: false });
    demo = await LvrEngine.load(DEMO, { threads: 1, verifyChecksums: false });
  });
  after(async () => {
    await engine?.close();
    await demo?.close();
    if (folder) fs.rmSync(folder, { recursive: true, force: true });
  });

  it('is the system message when the chat has none', async () => {
    const prompt = await engine.preparePrompt(ask([{ role: 'user', content: 'hi' }]));
    assert.equal(
      engine.tokenizer.decode(prompt.ids),
      `<|im_start|>system\n${RUN_PROMPT}<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n`,
    );
  });

  it("gives way to the chat's own system message", async () => {
    const messages: GenerationRequest['messages'] = [
      { role: 'system', content: 'mine' },
      { role: 'user', content: 'hi' },
    ];
    const prompt = await engine.preparePrompt(ask(messages));
    assert.deepEqual(prompt.ids, (await demo.preparePrompt(ask(messages))).ids);
    assert.ok(!engine.tokenizer.decode(prompt.ids).includes(RUN_PROMPT));
  });

  it('a bundle without the field keeps the Qwen default', async () => {
    const prompt = await demo.preparePrompt(ask([{ role: 'user', content: 'hi' }]));
    assert.ok(
      demo.tokenizer.decode(prompt.ids).startsWith(`<|im_start|>system\n${DEFAULT_SYSTEM_PROMPT}<|im_end|>`),
    );
  });

  it('a manifest whose default_system_prompt is not a string is refused, naming the field', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(DEMO, 'manifest.json'), 'utf8'));
    assert.throws(
      () => parseManifest(JSON.stringify({ ...manifest, default_system_prompt: 7 })),
      (e: unknown) => e instanceof BundleError && /default_system_prompt must be a string/.test(e.message),
    );
  });
});
