/**
 * Worker thread that owns the onnxruntime sessions and the KV cache. onnxruntime-node's `run` blocks its thread
 * for the whole forward, so it must not run on the event loop that serves HTTP.
 */
import * as ort from 'onnxruntime-node';
import { parentPort } from 'node:worker_threads';
import type { PrefillRequest, VisionRequest, WorkerInit, WorkerReply, WorkerRequest } from './protocol';

type Feeds = Record<string, ort.Tensor>;

class ModelHost {
  private vision!: ort.InferenceSession;
  private embed!: ort.InferenceSession;
  private decoder!: ort.InferenceSession;
  private past: Feeds = {};
  private pastLength = 0;
  private lastHidden: ort.Tensor | undefined;

  constructor(private readonly cfg: WorkerInit) {}

  async load(): Promise<void> {
    const ep = this.cfg.executionProvider;
    const opts: ort.InferenceSession.SessionOptions = {
      executionProviders: ep === 'cpu' ? ['cpu'] : [ep, 'cpu'],
      graphOptimizationLevel: 'all',
      ...(this.cfg.threads ? { intraOpNumThreads: this.cfg.threads, interOpNumThreads: 1 } : {}),
    };
    [this.vision, this.embed, this.decoder] = await Promise.all([
      ort.InferenceSession.create(this.cfg.graphs.vision, opts),
      ort.InferenceSession.create(this.cfg.graphs.embed, opts),
      ort.InferenceSession.create(this.cfg.graphs.decoder, opts),
    ]);
  }

  async runVision(r: VisionRequest): Promise<Float32Array | Uint16Array> {
    const out = await this.vision.run({
      pixel_values: new ort.Tensor('float32', r.pixelValues, [
        r.numPatches,
        r.pixelValues.length / r.numPatches,
      ]),
      rotary_pos_ids: new ort.Tensor('int64', r.rotaryPosIds, [r.numPatches, 2]),
      window_index: new ort.Tensor('int64', r.windowIndex, [r.windowIndex.length]),
      reverse_window_index: new ort.Tensor('int64', r.reverseWindowIndex, [r.reverseWindowIndex.length]),
      window_ids: new ort.Tensor('int64', r.windowIds, [r.windowIds.length]),
    });
    return out.image_features.data as Float32Array | Uint16Array;
  }

  private emptyPast(): Feeds {
    const { numLayers, numKvHeads, headDim, dtype } = this.cfg;
    const feeds: Feeds = {};
    const empty = dtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
    for (let i = 0; i < numLayers; i++) {
      feeds[`past_key_values.${i}.key`] = new ort.Tensor(dtype, empty, [1, numKvHeads, 0, headDim]);
      feeds[`past_key_values.${i}.value`] = new ort.Tensor(dtype, empty, [1, numKvHeads, 0, headDim]);
    }
    return feeds;
  }

  private async decode(embeds: ort.Tensor, positions: BigInt64Array, seqLen: number): Promise<WorkerReply> {
    const total = this.pastLength + seqLen;
    const out = await this.decoder.run({
      inputs_embeds: embeds,
      attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
      position_ids: new ort.Tensor('int64', positions, [3, 1, seqLen]),
      ...this.past,
    });
    for (const old of Object.values(this.past)) old.dispose?.();
    const past: Feeds = {};
    for (let i = 0; i < this.cfg.numLayers; i++) {
      past[`past_key_values.${i}.key`] = out[`present.${i}.key`];
      past[`past_key_values.${i}.value`] = out[`present.${i}.value`];
    }
    this.past = past;
    this.pastLength = total;
    this.lastHidden = out.last_hidden_state;
    return {
      ok: true,
      logits: out.logits.data as Float32Array,
      hidden: (out.last_hidden_state.data as Float32Array | Uint16Array).slice(),
    };
  }

  async prefill(r: PrefillRequest): Promise<WorkerReply> {
    this.past = this.emptyPast();
    this.pastLength = 0;
    const n = r.inputIds.length;
    const emb = await this.embed.run({ input_ids: new ort.Tensor('int64', r.inputIds, [1, n]) });
    const embeds = emb.inputs_embeds;
    if (r.imageFeatures && r.imageFeatures.length) {
      const data = embeds.data as Float32Array | Uint16Array;
      const h = this.cfg.hiddenSize;
      let row = 0;
      for (let s = 0; s < n; s++) {
        if (Number(r.inputIds[s]) !== r.imagePadId) continue;
        data.set(r.imageFeatures.subarray(row * h, (row + 1) * h), s * h);
        row++;
      }
      if (row * h !== r.imageFeatures.length)
        throw new Error(`${row} image pad tokens but ${r.imageFeatures.length / h} visual tokens`);
    }
    return this.decode(embeds, r.positions, n);
  }

  async step(tokenId: number | null, position: number): Promise<WorkerReply> {
    let embeds: ort.Tensor;
    if (tokenId === null) {
      if (!this.lastHidden) throw new Error('latent step before any forward');
      embeds = new ort.Tensor(this.cfg.dtype, this.lastHidden.data as Float32Array, [
        1,
        1,
        this.cfg.hiddenSize,
      ]);
    } else {
      const emb = await this.embed.run({
        input_ids: new ort.Tensor('int64', BigInt64Array.of(BigInt(tokenId)), [1, 1]),
      });
      embeds = emb.inputs_embeds;
    }
    const pos = BigInt(position);
    return this.decode(embeds, BigInt64Array.of(pos, pos, pos), 1);
  }
}

let host: ModelHost | undefined;

async function handle(msg: WorkerRequest): Promise<{ reply: WorkerReply; transfer: ArrayBuffer[] }> {
  switch (msg.op) {
    case 'init':
      host = new ModelHost(msg.init);
      await host.load();
      return { reply: { ok: true }, transfer: [] };
    case 'vision': {
      const features = (await host!.runVision(msg.req)).slice();
      return { reply: { ok: true, features }, transfer: [features.buffer as ArrayBuffer] };
    }
    case 'prefill':
    case 'step': {
      const reply =
        msg.op === 'prefill' ? await host!.prefill(msg.req) : await host!.step(msg.tokenId, msg.position);
      if (!reply.ok) return { reply, transfer: [] };
      const logits = reply.logits!.slice();
      return {
        reply: { ...reply, logits },
        transfer: [logits.buffer as ArrayBuffer, reply.hidden!.buffer as ArrayBuffer],
      };
    }
    case 'close':
      return { reply: { ok: true }, transfer: [] };
  }
}

parentPort!.on('message', (msg: WorkerRequest) => {
  handle(msg).then(
    ({ reply, transfer }) => parentPort!.postMessage(reply, transfer),
    (error: Error) =>
      parentPort!.postMessage({ ok: false, error: error.stack ?? String(error) } satisfies WorkerReply),
  );
});
