/**
 * Where the engine's decode step spends its time on the cuda EP (diagnostic, not a benchmark): the fused-decoder
 * engine decodes batch-1 text requests under `node --cpu-prof` (main thread and session worker get one profile
 * each; cpuprofile_summary.py reduces them). Reports ms/token with `SLOTS` KV slots.
 *   node --cpu-prof --cpu-prof-dir=DIR bench.js WORK OUT.json [SLOTS]
 */
import fs from 'node:fs';
import path from 'node:path';
import { LvrEngine } from '@lvr/engine';
import type { GenerationRequest, Timings } from '@lvr/engine';

async function main(): Promise<void> {
  const [work, outPath, slotsArg] = process.argv.slice(2);
  const slots = Number(slotsArg ?? 8);
  const engine = await LvrEngine.load(path.join(work, 'bundle-fp16'), {
    executionProvider: 'cuda',
    verifyChecksums: false,
    maxBatchSize: slots,
    maxModelLen: 4096,
  });
  const request: GenerationRequest = {
    messages: [{ role: 'user', content: 'Write a long story about a lighthouse keeper and the sea.' }],
    sampling: { maxTokens: 256, ignoreEos: true, temperature: 0 },
  };
  const runs: number[] = [];
  for (let i = 0; i < 4; i++) {
    let timings: Timings | undefined;
    for await (const d of engine.generate(request)) if (d.finishReason) timings = d.timings;
    runs.push(timings!.decodeMs / timings!.tokenSteps);
  }
  await engine.close();
  fs.writeFileSync(outPath, JSON.stringify({ slots, ms_per_token: runs }, null, 2));
  console.log(`PROFILE_ENGINE ${JSON.stringify({ slots, ms_per_token: runs })}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
