import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LvrEngine } from '../src';
import { assertSameOutcomes, concurrentRequests } from './helpers/concurrent-parity';

// The device-KV path (caches kept in the EP's memory, batch repacks run as graphs: what WebGPU uses) on the CPU EP,
// against the host path, over the committed tiny fp32 bundle: greedy outputs must be token-identical.
const BUNDLE = path.resolve(__dirname, '../../../models/lvr-tiny-demo');

describe('engine: KV caches repacked by graphs (device-KV path) on the CPU EP', () => {
  let host: LvrEngine;
  let graph: LvrEngine;

  before(async () => {
    host = await LvrEngine.load(BUNDLE, { threads: 1, verifyChecksums: false, maxBatchSize: 3 });
    graph = await LvrEngine.load(BUNDLE, {
      threads: 1,
      verifyChecksums: false,
      maxBatchSize: 3,
      deviceKv: true,
    });
  });

  after(async () => {
    await host?.close();
    await graph?.close();
  });

  it('concurrent requests (joins, leaves, a cancellation, latent steps, an image) give the host path’s tokens', async () => {
    await assertSameOutcomes(host, graph, await concurrentRequests());
    assert.ok(graph.batchStats.maxRows > 1, 'requests were batched, so rows were repacked by the graphs');
  });
});
