/**
 * Worker thread that owns the onnxruntime sessions and the KV cache. onnxruntime-node's `run` blocks its thread
 * for the whole forward, so it must not run on the event loop that serves HTTP.
 */
import * as ort from 'onnxruntime-node';
import { parentPort } from 'node:worker_threads';
import { KvArray, leftPaddedMask, packRows } from './kv-batch';
import type {
  PrefillRequest,
  StepRow,
  VisionRequest,
  WorkerInit,
  WorkerReply,
  WorkerRequest,
} from './protocol';

type Feeds = Record<string, ort.Tensor>;

/** A cache of one or more rows: `past` tensors `[B, KVH, width, D]`, row b's last `lens[b]` slots real. */
interface Cache {
  seqs: number[];
  lens: number[];
  width: number;
  past: Feeds;
}

/**
 * Sessions plus the KV caches of every live sequence. Decoding sequences share one left-padded batch cache (`batch`)
 * that a step extends in place (present → past, no copy); prefilled sequences wait in `parked` (a cache of one row
 * each) until their first step, which repacks the batch with them. A step whose rows differ from the batch's repacks
 * it: joining rows come from `parked`, rows not in the step go back to `parked` (unless released), and the width
 * shrinks to the longest remaining row.
 */
class ModelHost {
  private vision!: ort.InferenceSession;
  private embed!: ort.InferenceSession;
  private decoder!: ort.InferenceSession;
  private head: ort.InferenceSession | undefined;
  private batch: Cache | undefined;
  private readonly parked = new Map<number, Cache>();
  private readonly released = new Set<number>();
  private readonly hidden = new Map<number, Float32Array | Uint16Array>();

  constructor(private readonly cfg: WorkerInit) {}

  async load(): Promise<void> {
    const ep = this.cfg.executionProvider;
    const opts: ort.InferenceSession.SessionOptions = {
      executionProviders: ep === 'cpu' ? ['cpu'] : [ep, 'cpu'],
      graphOptimizationLevel: 'all',
      ...(this.cfg.threads ? { intraOpNumThreads: this.cfg.threads, interOpNumThreads: 1 } : {}),
    };
    const head = this.cfg.graphs.lvrHead;
    [this.vision, this.embed, this.decoder, this.head] = await Promise.all([
      ort.InferenceSession.create(this.cfg.graphs.vision, opts),
      ort.InferenceSession.create(this.cfg.graphs.embed, opts),
      ort.InferenceSession.create(this.cfg.graphs.decoder, opts),
      head ? ort.InferenceSession.create(head, opts) : undefined,
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

  private names(): string[] {
    const names: string[] = [];
    for (let i = 0; i < this.cfg.numLayers; i++)
      names.push(`past_key_values.${i}.key`, `past_key_values.${i}.value`);
    return names;
  }

  private emptyPast(): Feeds {
    const { numKvHeads, headDim, dtype } = this.cfg;
    const feeds: Feeds = {};
    const empty = dtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
    for (const name of this.names()) feeds[name] = new ort.Tensor(dtype, empty, [1, numKvHeads, 0, headDim]);
    return feeds;
  }

  /** One decoder call; returns the outputs and the presents renamed as the next past. */
  private async forward(
    embeds: ort.Tensor,
    mask: BigInt64Array,
    positions: BigInt64Array,
    batch: number,
    seqLen: number,
    past: Feeds,
  ): Promise<{ out: ort.InferenceSession.OnnxValueMapType; present: Feeds }> {
    const out = await this.decoder.run({
      inputs_embeds: embeds,
      attention_mask: new ort.Tensor('int64', mask, [batch, mask.length / batch]),
      position_ids: new ort.Tensor('int64', positions, [3, batch, seqLen]),
      ...past,
    });
    for (const old of Object.values(past)) old.dispose?.();
    const present: Feeds = {};
    for (let i = 0; i < this.cfg.numLayers; i++) {
      present[`past_key_values.${i}.key`] = out[`present.${i}.key`];
      present[`past_key_values.${i}.value`] = out[`present.${i}.value`];
    }
    return { out, present };
  }

  async prefill(r: PrefillRequest): Promise<WorkerReply> {
    if (this.hidden.has(r.seq) || this.parked.has(r.seq) || this.batch?.seqs.includes(r.seq))
      throw new Error(`sequence ${r.seq} already exists`);
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
    const { out, present } = await this.forward(
      embeds,
      new BigInt64Array(n).fill(1n),
      r.positions,
      1,
      n,
      this.emptyPast(),
    );
    this.parked.set(r.seq, { seqs: [r.seq], lens: [n], width: n, past: present });
    const hidden = (out.last_hidden_state.data as Float32Array | Uint16Array).slice();
    this.hidden.set(r.seq, hidden);
    return { ok: true, logits: out.logits.data as Float32Array, hidden: hidden.slice() };
  }

  /** Makes `batch` hold exactly `seqs`, in that order (a no-op when it already does). */
  private arrange(seqs: number[]): Cache {
    const cur = this.batch;
    if (cur && cur.seqs.length === seqs.length && cur.seqs.every((s, i) => s === seqs[i])) return cur;
    const { numKvHeads, headDim, dtype } = this.cfg;
    const names = this.names();
    const wanted = new Set(seqs);
    const rowOf = (c: Cache, seq: number) => ({ c, row: c.seqs.indexOf(seq) });
    const sources = seqs.map((seq) => {
      const p = this.parked.get(seq);
      if (p) return rowOf(p, seq);
      if (cur?.seqs.includes(seq)) return rowOf(cur, seq);
      throw new Error(`sequence ${seq} has no KV cache (not prefilled or already released)`);
    });
    const lens = sources.map(({ c, row }) => c.lens[row]);
    const width = Math.max(...lens);
    const pack = (rows: Array<{ c: Cache; row: number }>, w: number, name: string) => {
      const data = packRows(
        rows.map(({ c, row }) => ({
          data: c.past[name].data as KvArray,
          width: c.width,
          row,
          len: c.lens[row],
        })),
        w,
        numKvHeads,
        headDim,
      );
      return new ort.Tensor(dtype, data, [rows.length, numKvHeads, w, headDim]);
    };
    // Rows of the old batch that this step leaves out but that are still live go back to `parked`.
    for (const seq of cur?.seqs ?? []) {
      if (wanted.has(seq) || this.released.has(seq)) continue;
      const src = [rowOf(cur!, seq)];
      const len = src[0].c.lens[src[0].row];
      const past: Feeds = {};
      for (const name of names) past[name] = pack(src, len, name);
      this.parked.set(seq, { seqs: [seq], lens: [len], width: len, past });
    }
    const past: Feeds = {};
    for (const name of names) past[name] = pack(sources, width, name);
    for (const seq of seqs) {
      const p = this.parked.get(seq);
      if (!p) continue;
      for (const t of Object.values(p.past)) t.dispose?.();
      this.parked.delete(seq);
    }
    if (cur) for (const t of Object.values(cur.past)) t.dispose?.();
    for (const seq of cur?.seqs ?? []) this.released.delete(seq);
    this.batch = { seqs: [...seqs], lens, width, past };
    return this.batch;
  }

  async step(rows: StepRow[]): Promise<WorkerReply> {
    const B = rows.length;
    const h = this.cfg.hiddenSize;
    const batch = this.arrange(rows.map((r) => r.seq));
    const embeds = this.cfg.dtype === 'float16' ? new Uint16Array(B * h) : new Float32Array(B * h);
    const tokenRows = rows.flatMap((r, b) => (r.tokenId === null ? [] : [b]));
    if (tokenRows.length) {
      const ids = BigInt64Array.from(tokenRows, (b) => BigInt(rows[b].tokenId!));
      const emb = await this.embed.run({ input_ids: new ort.Tensor('int64', ids, [ids.length, 1]) });
      const data = emb.inputs_embeds.data as Float32Array | Uint16Array;
      tokenRows.forEach((b, k) => embeds.set(data.subarray(k * h, (k + 1) * h) as never, b * h));
    }
    rows.forEach((r, b) => {
      if (r.tokenId !== null) return;
      const last = this.hidden.get(r.seq);
      if (!last) throw new Error(`latent step of sequence ${r.seq} before any forward`);
      embeds.set(last as never, b * h);
    });
    const positions = new BigInt64Array(3 * B);
    rows.forEach((r, b) => (positions[b] = positions[B + b] = positions[2 * B + b] = BigInt(r.position)));
    const { out, present } = await this.forward(
      new ort.Tensor(this.cfg.dtype, embeds, [B, 1, h]),
      leftPaddedMask(batch.lens, batch.width, 1),
      positions,
      B,
      1,
      batch.past,
    );
    batch.past = present;
    batch.width += 1;
    for (let b = 0; b < B; b++) batch.lens[b] += 1;
    const hidden = (out.last_hidden_state.data as Float32Array | Uint16Array).slice();
    const logits = out.logits.data as Float32Array;
    const latentRows = rows.flatMap((r, b) => (r.tokenId === null ? [b] : []));
    if (this.head && latentRows.length) await this.applyHead(latentRows, hidden, logits);
    rows.forEach((r, b) => this.hidden.set(r.seq, hidden.slice(b * h, (b + 1) * h)));
    return { ok: true, logits, hidden };
  }

  /**
   * LVR-SPEC §4.5: the output of a forward whose input was a latent goes through the head; the head state replaces
   * the hidden state (it is what the next latent step feeds back) and the logits are `lm_head(head_state)`. Rows
   * `rows` of `hidden [B,H]` and `logits [B,V]` are replaced in place.
   */
  private async applyHead(
    rows: number[],
    hidden: Float32Array | Uint16Array,
    logits: Float32Array,
  ): Promise<void> {
    const h = this.cfg.hiddenSize;
    const input =
      this.cfg.dtype === 'float16' ? new Uint16Array(rows.length * h) : new Float32Array(rows.length * h);
    rows.forEach((b, k) => input.set(hidden.subarray(b * h, (b + 1) * h) as never, k * h));
    const out = await this.head!.run({
      hidden_state: new ort.Tensor(this.cfg.dtype, input, [rows.length, h]),
    });
    const state = out.head_state.data as Float32Array | Uint16Array;
    const headLogits = out.logits.data as Float32Array;
    const V = headLogits.length / rows.length;
    rows.forEach((b, k) => {
      hidden.set(state.subarray(k * h, (k + 1) * h) as never, b * h);
      logits.set(headLogits.subarray(k * V, (k + 1) * V), b * V);
    });
  }

  release(seq: number): void {
    this.hidden.delete(seq);
    const p = this.parked.get(seq);
    if (p) {
      for (const t of Object.values(p.past)) t.dispose?.();
      this.parked.delete(seq);
    }
    const cur = this.batch;
    if (!cur?.seqs.includes(seq)) return;
    this.released.add(seq);
    if (cur.seqs.every((s) => this.released.has(s))) {
      // Nothing live left in the batch: free it now rather than at the next step.
      for (const t of Object.values(cur.past)) t.dispose?.();
      for (const s of cur.seqs) this.released.delete(s);
      this.batch = undefined;
    }
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
      const reply = msg.op === 'prefill' ? await host!.prefill(msg.req) : await host!.step(msg.rows);
      if (!reply.ok) return { reply, transfer: [] };
      // onnxruntime-node returns each output in a fresh ArrayBuffer of its own: transfer it rather than copy B x V.
      const l = reply.logits!;
      const logits = l.byteOffset === 0 && l.byteLength === l.buffer.byteLength ? l : l.slice();
      return {
        reply: { ...reply, logits },
        transfer: [logits.buffer as ArrayBuffer, reply.hidden!.buffer as ArrayBuffer],
      };
    }
    case 'release':
      host!.release(msg.seq);
      return { reply: { ok: true }, transfer: [] };
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
