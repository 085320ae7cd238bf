/**
 * Worker thread that owns the onnxruntime sessions and the KV cache. onnxruntime-node's `run` blocks its thread
 * for the whole forward, so it must not run on the event loop that serves HTTP.
 */
import * as ort from 'onnxruntime-node';
import { parentPort } from 'node:worker_threads';
import { EmbeddingTable } from './embedding-table';
import { FusedKvSlots } from './fused-kv-slots';
import { FEED_PICK, FusedNativeDecoder, NO_TOKEN, PICK_UNFED } from './fused-native';
import type { FusedStepOutput, GpuAttentionKernel } from './fused-native';
import { leftPaddedMask } from './kv-batch';
import { GraphKvPacker, HostKvPacker } from './kv-packers';
import { KvStore } from './kv-store';
import { deviceKv, gpuBufferKv } from './protocol';
import type { ModelInfo } from '../types';
import { greedyFromTop } from '../sampling/sampler';
import { pixelValues } from '../vision/patchify';
import type {
  BatchOutputs,
  PickRule,
  PrefillRequest,
  StepRow,
  TopCandidates,
  VisionRequest,
  WorkerInit,
  WorkerReply,
  WorkerRequest,
} from './protocol';

type Feeds = Record<string, ort.Tensor>;
type Activations = Float32Array | Uint16Array;

/** A decode step's outputs as the worker replies them (see `WorkerReply`). */
interface StepOutputs extends BatchOutputs {
  ranAhead?: number;
  fedAhead?: boolean;
}

/** The fused decoder (native addon) with its slot bookkeeping; `fresh`: slots whose device hidden state is current. */
interface FusedPath {
  decoder: FusedNativeDecoder;
  slots: FusedKvSlots;
  fresh: Set<number>;
  /** Steps run ahead of the engine, oldest first: the engine's next step, then the one after it (`runAhead`). */
  ahead: AheadStep[];
  /** The most steps run ahead at once (`EngineLoadOptions.runAheadSteps`). */
  aheadLimit: number;
  /** The addon picks and feeds the tokens of steps queued behind a running one (`EngineLoadOptions.addonPicks`). */
  addonPicks: boolean;
  /** No step starts ahead while set (`lastLogits` reads the logits a new step would move). */
  paused: boolean;
  /** While the engine's step is handled: its inputs (those of the first step run ahead) are in the pick rules. */
  firstAheadSeen: boolean;
  /** Sequences whose prefill left its logits out and that have not stepped since (`lastLogits` has none for them). */
  prefillTopOnly: Set<number>;
}

/** Rows' whole logits, some left out (undefined), as one array with each row's place in it (`BatchOutputs`). */
function packRows(
  rows: Array<Float32Array | undefined>,
  V: number,
): Pick<BatchOutputs, 'logits' | 'logitRows'> {
  const present = rows.filter((r) => r !== undefined);
  const logits = new Float32Array(present.length * V);
  const logitRows = new Int32Array(rows.length).fill(-1);
  let next = 0;
  rows.forEach((r, b) => {
    if (!r) return;
    logits.set(r, next * V);
    logitRows[b] = next++;
  });
  return { logits, logitRows };
}

/** A sequence's pick rule with the tokens so far (prompt and inputs fed) and its fed tokens' counts. */
interface ForeseenPicks {
  rule: PickRule;
  seen: Set<number>;
  counts: Map<number, number>;
}

/** A fused step's call arguments and how its outputs map back to its rows. */
interface FusedPlan {
  rows: StepRow[];
  args: Parameters<FusedNativeDecoder['step']>;
  outRows: Int32Array;
  /** Per row, its row in the step's whole-logits output, or -1. */
  logitRows: Int32Array;
}

interface AheadStep {
  plan: FusedPlan;
  /** undefined when the step failed (the engine's real step then runs it again and reports the error). */
  result: Promise<FusedStepOutput | undefined>;
  /** The result once settled (`settled`). */
  out?: FusedStepOutput;
  settled: boolean;
  /** Steps ahead of the engine when it started: 1 for the engine's next step, 2 for the one after. */
  depth: number;
  /** Its rows' picks (token inputs, latent placeholders) were made by the addon. */
  fed: boolean;
  /** It ran (true unless it failed at the addon's picks, before changing the decoder's logits). */
  ran: boolean;
}

/**
 * `StepRow.tokenId` of a row the addon picks and feeds (`FEED_PICK`), or `placeholderId` of a latent row whose
 * placeholder it picks (`PICK_UNFED`), until its step returns with the id.
 */
const FED_ON_DEVICE = -1;

/** The token a row adds to its sequence's seen tokens: its input, or a latent row's placeholder. */
function seenToken(r: StepRow): number | undefined {
  return r.tokenId ?? r.placeholderId;
}

/** Whether the addon can make a sequence's picks (`FusedNativeDecoder.setPickRule`): repetition penalties only. */
function addonCanPick(picks: ForeseenPicks | undefined): boolean {
  return !!picks && (picks.rule.presencePenalty ?? 0) === 0 && (picks.rule.frequencyPenalty ?? 0) === 0;
}

/** Runs of each fused step size at load: ONNX Runtime captures a graph after its first uncaptured runs. */
const STEP_WARM_UP_RUNS = 3;

/** 1, 2, 4, … below `slots`, then `slots`: the fused decoder's step sizes (`WorkerInit.fusedDecoder.stepRowBuckets`). */
function stepBucketSizes(slots: number): number[] {
  const sizes: number[] = [];
  for (let size = 1; size < slots; size *= 2) sizes.push(size);
  return [...sizes, slots];
}

/** Rows `at` (in that order) of a row-major array with `width` values per row, as a new array of the same type. */
function gatherRows<T extends Float32Array | Uint16Array | Int32Array>(
  src: T,
  width: number,
  at: number[],
): T {
  const out = new (src.constructor as new (n: number) => T)(at.length * width);
  at.forEach((i, b) => out.set(src.subarray(i * width, (i + 1) * width) as never, b * width));
  return out;
}

/**
 * Sessions plus the KV caches of every live sequence (their bookkeeping is `KvStore`'s). With the WebGPU execution
 * provider the caches stay on the device by default: the decoder's presents come back as GPU buffers
 * (`preferredOutputLocation`) and go straight into the next step as its pasts, and batch repacks run as small
 * graphs on the device (`GraphKvPacker`); logits and the last hidden state still come to the host, where sampling
 * and the LVR rules need them. Otherwise the caches are host arrays.
 */
class ModelHost {
  private vision!: ort.InferenceSession;
  private embed!: EmbeddingTable;
  private decoder: ort.InferenceSession | undefined;
  private fused: FusedPath | undefined;
  private head: ort.InferenceSession | undefined;
  private kv!: KvStore<ort.Tensor>;
  private packer: GraphKvPacker | undefined;
  private readonly hidden = new Map<number, Float32Array | Uint16Array>();
  /** Sequences whose picks the engine takes from the top candidates: their rule and tokens so far (`runAhead`). */
  private readonly picks = new Map<number, ForeseenPicks>();

  constructor(private readonly cfg: WorkerInit) {}

  async load(): Promise<void> {
    const ep = this.cfg.executionProvider;
    const opts: ort.InferenceSession.SessionOptions = {
      executionProviders: ep === 'cpu' ? ['cpu'] : [ep, 'cpu'],
      graphOptimizationLevel: 'all',
      ...(this.cfg.threads ? { intraOpNumThreads: this.cfg.threads, interOpNumThreads: 1 } : {}),
    };
    const onDevice = deviceKv(this.cfg);
    const gpuBuffers = gpuBufferKv(this.cfg);
    const profilePrefix = process.env.LVR_ORT_PROFILE_PREFIX;
    const presents: Record<string, 'gpu-buffer'> = {};
    for (let i = 0; i < this.cfg.numLayers; i++)
      presents[`present.${i}.key`] = presents[`present.${i}.value`] = 'gpu-buffer';
    const head = this.cfg.graphs.lvrHead;
    const shape = {
      names: this.names(),
      numKvHeads: this.cfg.numKvHeads,
      headDim: this.cfg.headDim,
      dtype: this.cfg.dtype,
    };
    const fused = this.cfg.fusedDecoder;
    if (fused) this.fused = this.openFused(fused);
    const opening = [
      ort.InferenceSession.create(this.cfg.graphs.vision, opts),
      // The step's inputs are assembled on the host (with latent rows and image features): rows of a host table.
      EmbeddingTable.read(this.cfg.graphs.embed, this.cfg.vocabSize, this.cfg.hiddenSize),
      fused
        ? undefined
        : ort.InferenceSession.create(this.cfg.graphs.decoder, {
            ...opts,
            ...(gpuBuffers ? { preferredOutputLocation: presents } : {}),
            // Benchmarks only: onnxruntime's per-node profile of the decoder (written when the engine closes).
            ...(profilePrefix ? { enableProfiling: true, profileFilePrefix: profilePrefix } : {}),
          }),
      // The head (a few small layers) and vision run in onnxruntime-node; on the CUDA EP their I/O is host memory.
      head ? ort.InferenceSession.create(head, opts) : undefined,
      onDevice && !fused
        ? GraphKvPacker.create(shape, gpuBuffers ? { ...opts, preferredOutputLocation: 'gpu-buffer' } : opts)
        : undefined,
    ] as const;
    [this.vision, this.embed, this.decoder, this.head, this.packer] = await Promise.all(opening).catch(
      async (e: unknown) => {
        // No session may still be opening when the engine terminates this thread (onnxruntime-node aborts the process).
        await Promise.allSettled(opening);
        throw providerLoadError(ep, e);
      },
    );
    if (this.fused?.addonPicks) this.fused.decoder.setEmbeddings(this.embed.rows);
    this.kv = new KvStore(this.packer ?? new HostKvPacker(shape));
  }

  decoderPath(): ModelInfo['decoder'] {
    if (!this.fused) return 'plain';
    const { gpu, cudaGraph } = this.fused.decoder.options;
    return gpu && cudaGraph ? 'fused-cuda-graph' : 'fused';
  }

  /** The fused decoder's attention kernel on the CUDA EP, as its session was built. */
  gpuAttention(): GpuAttentionKernel | undefined {
    return this.fused?.decoder.attention;
  }

  /** Who runs the fused decoder's projections, as it was opened (undefined: the plain decoder). */
  fusedProjections(): ModelInfo['fusedProjections'] {
    return this.fused?.decoder.projections;
  }

  private openFused(f: NonNullable<WorkerInit['fusedDecoder']>): FusedPath {
    const { graphs, executionProvider, numLayers, numKvHeads, headDim, hiddenSize, vocabSize, dtype } =
      this.cfg;
    if (!graphs.decoderFused) throw new Error('fusedDecoder needs graphs.decoderFused');
    if (executionProvider === 'webgpu')
      throw new Error('the fused decoder runs on the cpu or cuda execution provider');
    const lvr = f.projections !== 'onnx' && !!graphs.decoderFusedLvr;
    const decoder = FusedNativeDecoder.open(
      {
        model: lvr ? graphs.decoderFusedLvr! : graphs.decoderFused,
        lvrOps: lvr,
        gpu: executionProvider === 'cuda',
        cudaGraph: f.cudaGraph,
        threads: this.cfg.threads,
        batch: f.slots,
        capacity: f.capacity,
        layers: numLayers,
        kvHeads: numKvHeads,
        headDim,
        hidden: hiddenSize,
        vocab: vocabSize,
        fp16: dtype === 'float16',
        topK: f.topK,
        stepSizes: f.stepRowBuckets ? stepBucketSizes(f.slots) : undefined,
        attention: f.attention,
        mixedGemmFrom: f.mixedGemmFrom,
      },
      undefined,
      lvr && f.projections === 'auto' ? graphs.decoderFused : undefined,
    );
    if (decoder.lvrOpsUnavailable)
      console.warn(
        `lvr engine: ${decoder.lvrOpsUnavailable}; the fused decoder runs ONNX Runtime's projections`,
      );
    if (executionProvider === 'cuda') this.warmUp(decoder, f.slots, f.capacity);
    return {
      decoder,
      slots: new FusedKvSlots(f.slots, f.capacity),
      fresh: new Set(),
      ahead: [],
      aheadLimit: f.runAheadSteps,
      addonPicks: f.addonPicks && f.topK > 0 && !this.cfg.graphs.lvrHead,
      paused: false,
      firstAheadSeen: false,
      prefillTopOnly: new Set(),
    };
  }

  /**
   * ONNX Runtime's first CUDA run of a kind of prefill takes tens of milliseconds (kernels chosen and loaded for its
   * sizes, memory reserved): pay it at load instead of in the first requests' time to first token, with prefills of
   * 1, 2, 4, … slots of 32 positions (batched prefills) and of one slot of 64, 128, … up to 4096 positions (long
   * prompts). The slots are free: their next prefill overwrites what these wrote.
   */
  private warmUp(decoder: FusedNativeDecoder, slots: number, capacity: number): void {
    const h = this.cfg.hiddenSize;
    const shapes: Array<[rows: number, length: number]> = [];
    for (let rows = 1; rows < 2 * slots; rows *= 2)
      shapes.push([Math.min(rows, slots), Math.min(32, capacity)]);
    for (let length = 64; length <= Math.min(4096, capacity); length *= 2) shapes.push([1, length]);
    for (const [rows, length] of shapes) {
      const positions = new BigInt64Array(3 * rows * length).map((_, i) => BigInt(i % length));
      decoder.forward(
        0,
        this.activations(rows * length * h),
        positions,
        0,
        new Int32Array(rows).fill(length),
      );
    }
    this.warmUpSteps(decoder, slots);
  }

  /**
   * Each step size runs a few times at load, so that ONNX Runtime captures its CUDA graph there (after its first
   * uncaptured runs) rather than during the first requests. Every slot attends to two positions: a step captured with
   * `total_sequence_length` 1 would keep GroupQueryAttention's first-prompt path, which ignores the cache.
   */
  private warmUpSteps(decoder: FusedNativeDecoder, slots: number): void {
    const embeds = this.activations(slots * this.cfg.hiddenSize);
    const positions = new BigInt64Array(3 * slots).fill(1n);
    const seqlens = new Int32Array(slots).fill(1);
    for (const size of decoder.options.stepSizes ?? [slots]) {
      const rows = Int32Array.from({ length: size }, (_, b) => b);
      for (let run = 0; run < STEP_WARM_UP_RUNS; run++)
        decoder.step(embeds, null, positions, seqlens, rows, new Int32Array(0));
    }
  }

  async runVision(r: VisionRequest): Promise<Float32Array | Uint16Array> {
    const int64 = (data: BigInt64Array, dims: number[]) => new ort.Tensor('int64', data, dims);
    // Graphs exported before the windowed layout take `window_ids`, those before `image_bytes` float `pixel_values`;
    // each graph is fed the inputs it names.
    const inputs: Record<string, () => ort.Tensor> = {
      image_bytes: () => new ort.Tensor('uint8', r.image.data, [r.image.height, r.image.width, 3]),
      pixel_values: () => {
        const values = pixelValues(r.image, r.patches);
        return new ort.Tensor('float32', values, [r.numPatches, values.length / r.numPatches]);
      },
      rotary_pos_ids: () => int64(r.rotaryPosIds, [r.numPatches, 2]),
      window_index: () => int64(r.windowIndex, [r.windowIndex.length]),
      reverse_window_index: () => int64(r.reverseWindowIndex, [r.reverseWindowIndex.length]),
      window_ids: () => int64(r.windowIds, [r.windowIds.length]),
      window_slots: () => int64(r.windowSlots, [r.windowSlots.length / r.slotsPerWindow, r.slotsPerWindow]),
      patch_slots: () => int64(r.patchSlots, [r.patchSlots.length]),
    };
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of this.vision.inputNames) {
      const input = inputs[name];
      if (!input) throw new Error(`vision.onnx has an input this engine does not know: ${name}`);
      feeds[name] = input();
    }
    const out = await this.vision.run(feeds);
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
    const out = await this.decoder!.run({
      inputs_embeds: embeds,
      attention_mask: new ort.Tensor('int64', mask, [batch, mask.length / batch]),
      position_ids: new ort.Tensor('int64', positions, [3, batch, seqLen]),
      ...past,
    });
    const present: Feeds = {};
    for (let i = 0; i < this.cfg.numLayers; i++) {
      present[`past_key_values.${i}.key`] = out[`present.${i}.key`];
      present[`past_key_values.${i}.value`] = out[`present.${i}.value`];
    }
    return { out, present };
  }

  /** The prompt's embeddings with the image features scattered into its image pad slots. */
  private promptEmbeds(r: PrefillRequest): Activations {
    const n = r.inputIds.length;
    const data = this.embed.lookup(r.inputIds);
    if (r.imageFeatures && r.imageFeatures.length) {
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
    return data;
  }

  /**
   * Prompts of new sequences in request order: `logits [n, V]` and `hidden [n, H]` of each one's last position. The
   * fused decoder prefills them together (one call per run of consecutive KV slots, shorter prompts right-padded);
   * the plain decoder one by one. Nothing is kept when it fails.
   */
  async prefill(reqs: PrefillRequest[]): Promise<WorkerReply> {
    // The new rows change the next step's rows: a step run ahead cannot be it.
    await this.dropAhead();
    for (const r of reqs)
      if (this.hidden.has(r.seq) || this.kv.has(r.seq) || this.fused?.slots.has(r.seq))
        throw new Error(`sequence ${r.seq} already exists`);
    const embeds = reqs.map((r) => this.promptEmbeds(r));
    const out = this.fused ? this.fusedPrefill(reqs, embeds) : await this.plainPrefill(reqs, embeds);
    const h = this.cfg.hiddenSize;
    reqs.forEach((r, k) => {
      this.hidden.set(r.seq, out.hidden.slice(k * h, (k + 1) * h));
      if (r.pick && this.fused && !this.head)
        this.picks.set(r.seq, {
          rule: r.pick,
          seen: new Set(Array.from(r.inputIds, Number)),
          counts: new Map(),
        });
      this.syncPickRule(r.seq);
    });
    return { ok: true, ...out };
  }

  /**
   * The addon's copy of `seq`'s pick rule and seen tokens (its slot's previous sequence's are dropped): set at the
   * prefill, and again after steps run ahead were dropped (the tokens they fed are not the sequence's).
   */
  private syncPickRule(seq: number): void {
    const fused = this.fused;
    if (!fused?.addonPicks) return;
    const picks = this.picks.get(seq);
    const penalty = picks ? (picks.rule.repetitionPenalty ?? 1) : 1;
    fused.decoder.setPickRule(
      fused.slots.slot(seq),
      penalty,
      penalty === 1 ? new Int32Array(0) : Int32Array.from(picks!.seen),
    );
  }

  /**
   * One addon forward per run of consecutive KV slots. A prompt with a pick rule gets its logits only when its top
   * candidates do not decide its first token by that rule (`greedyFromTop`, as the engine will pick it), so most
   * greedy prompts cost K values instead of a vocabulary-wide row.
   */
  private fusedPrefill(reqs: PrefillRequest[], embeds: Activations[]): BatchOutputs {
    const { decoder, slots, fresh } = this.fused!;
    const { hiddenSize: h, vocabSize: V } = this.cfg;
    const k = decoder.options.topK ?? 0;
    const rowLogits: Array<Float32Array | undefined> = new Array(reqs.length);
    const hidden = this.activations(reqs.length * h);
    const top = k
      ? { k, ids: new Int32Array(reqs.length * k), values: new Float32Array(reqs.length * k) }
      : undefined;
    const runs = slots.claimRuns(reqs.map((r) => ({ seq: r.seq, length: r.inputIds.length })));
    try {
      for (const { first, members } of runs) {
        const lengths = Int32Array.from(members, (m) => reqs[m].inputIds.length);
        const S = Math.max(...lengths);
        const n = members.length;
        const x = this.activations(n * S * h);
        const positions = new BigInt64Array(3 * n * S);
        members.forEach((m, b) => {
          const len = lengths[b];
          x.set(embeds[m] as never, b * S * h);
          for (let axis = 0; axis < 3; axis++)
            positions.set(reqs[m].positions.subarray(axis * len, (axis + 1) * len), (axis * n + b) * S);
        });
        const unruled = members.flatMap((m, b) => (reqs[m].pick ? [] : [b]));
        const full = k ? Int32Array.from(unruled) : undefined;
        const out = decoder.forward(first, x, positions, 0, lengths, full);
        const candidates = (b: number) => ({
          ids: out.topIds!.subarray(b * k, (b + 1) * k),
          values: out.topLogits!.subarray(b * k, (b + 1) * k),
        });
        const undecided = members.flatMap((m, b) => {
          const rule = reqs[m].pick;
          if (!k || !rule) return [];
          const { ids, values } = candidates(b);
          return greedyFromTop(ids, values, new Set(Array.from(reqs[m].inputIds, Number)), rule) === undefined
            ? [b]
            : [];
        });
        const late = undecided.length ? decoder.forwardLogits(Int32Array.from(undecided)) : undefined;
        members.forEach((m, b) => {
          const at = full ? unruled.indexOf(b) : b;
          const lateAt = undecided.indexOf(b);
          rowLogits[m] =
            at >= 0
              ? out.logits.subarray(at * V, (at + 1) * V)
              : lateAt >= 0
                ? late!.subarray(lateAt * V, (lateAt + 1) * V)
                : undefined;
          hidden.set(out.hidden.subarray(b * h, (b + 1) * h) as never, m * h);
          if (top) {
            const { ids, values } = candidates(b);
            top.ids.set(ids, m * k);
            top.values.set(values, m * k);
          }
          fresh.add(first + b);
          if (!rowLogits[m]) this.fused!.prefillTopOnly.add(reqs[m].seq);
        });
      }
    } catch (e) {
      for (const r of reqs) slots.release(r.seq);
      throw e;
    }
    return { ...packRows(rowLogits, V), hidden, top };
  }

  private async plainPrefill(reqs: PrefillRequest[], embeds: Activations[]): Promise<BatchOutputs> {
    const { hiddenSize: h, vocabSize: V, dtype } = this.cfg;
    const logits = new Float32Array(reqs.length * V);
    const hidden = this.activations(reqs.length * h);
    try {
      for (const [k, r] of reqs.entries()) {
        const n = r.inputIds.length;
        const { out, present } = await this.forward(
          new ort.Tensor(dtype, embeds[k], [1, n, h]),
          new BigInt64Array(n).fill(1n),
          r.positions,
          1,
          n,
          this.emptyPast(),
        );
        this.kv.park(r.seq, n, present);
        logits.set(out.logits.data as Float32Array, k * V);
        hidden.set(out.last_hidden_state.data as never, k * h);
      }
    } catch (e) {
      for (const r of reqs) this.kv.release(r.seq);
      throw e;
    }
    return { logits, hidden };
  }

  private activations(n: number): Activations {
    return this.cfg.dtype === 'float16' ? new Uint16Array(n) : new Float32Array(n);
  }

  /**
   * The step's inputs: token rows embedded, latent rows their last hidden state, except rows in `onDevice` (left
   * zero: the fused decoder feeds those itself). Row b goes to row `at[b]` of `count` rows (default: row b of
   * `rows.length`).
   */
  private stepEmbeds(
    rows: StepRow[],
    onDevice: Set<number> = new Set(),
    at?: Int32Array,
    count = rows.length,
  ): Activations {
    const h = this.cfg.hiddenSize;
    const embeds = this.activations(count * h);
    const put = (b: number, row: Activations) => embeds.set(row as never, (at ? at[b] : b) * h);
    const tokenRows = rows.flatMap((r, b) => (r.tokenId === null || onDevice.has(b) ? [] : [b]));
    for (const b of tokenRows) put(b, this.embed.row(rows[b].tokenId!));
    rows.forEach((r, b) => {
      if (r.tokenId !== null || onDevice.has(b)) return;
      const last = this.hidden.get(r.seq);
      if (!last) throw new Error(`latent step of sequence ${r.seq} before any forward`);
      put(b, last);
    });
    return embeds;
  }

  /**
   * One decode step over `rows` (plain or fused decoder); then the LVR head on latent-input rows and each row's last
   * hidden state kept for its next latent step.
   */
  async step(rows: StepRow[]): Promise<WorkerReply> {
    for (const r of rows) {
      const seen = seenToken(r);
      if (seen !== undefined) this.see(r.seq, seen);
    }
    let out: StepOutputs;
    if (this.fused) {
      for (const r of rows) this.fused.prefillTopOnly.delete(r.seq);
      this.fused.firstAheadSeen = true;
      try {
        out = await this.fusedStep(rows);
      } finally {
        this.fused.firstAheadSeen = false;
      }
    } else out = await this.plainStep(rows);
    const h = this.cfg.hiddenSize;
    const headRows = this.head ? rows.flatMap((r, b) => (r.tokenId === null ? [b] : [])) : [];
    // The fused step returns the logits of head rows (`fusedStep`), so logitRows[b] >= 0 for every one of them.
    const logitRow = (b: number) => (out.logitRows ? out.logitRows[b] : b);
    if (headRows.length) await this.applyHead(headRows, out.hidden, out.logits, logitRow);
    rows.forEach((r, b) => this.hidden.set(r.seq, out.hidden.slice(b * h, (b + 1) * h)));
    if (this.fused && !this.head) this.runAhead(rows, out);
    return { ok: true, ...out };
  }

  private async plainStep(rows: StepRow[]): Promise<StepOutputs> {
    const B = rows.length;
    const h = this.cfg.hiddenSize;
    const batch = await this.kv.arrange(rows.map((r) => r.seq));
    const embeds = this.stepEmbeds(rows);
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
    this.kv.advance(batch, present);
    return {
      logits: out.logits.data as Float32Array,
      hidden: (out.last_hidden_state.data as Activations).slice(),
    };
  }

  /**
   * One fused-decoder step over all KV slots: the step run ahead when it had exactly these inputs (for these rows or
   * more), else a new one.
   */
  private async fusedStep(rows: StepRow[]): Promise<StepOutputs> {
    const next = this.fused!.ahead[0];
    if (next) {
      const out = await next.result;
      const reused = this.reuseAhead(next, out, rows);
      if (reused) return reused;
    }
    await this.dropAhead();
    const plan = this.fusedPlan(rows);
    const out = this.fused!.decoder.step(...plan.args);
    this.commitStep(plan.outRows);
    return this.stepOutputs(out, plan.logitRows);
  }

  /**
   * Inputs of a fused step over `rows`. A latent row whose slot's device hidden state is current (its last forward
   * was the previous step or its prefill) takes it on the device; with an LVR head the fed-back state is the head's
   * output, computed on the host, so it goes through the host. Rows `ahead.fed` take the addon's pick from their
   * predecessor's top candidates, made when the step starts (a latent row's pick is its placeholder). Rows with
   * `needsLogits: false` get their top candidates only (a head's rows always get their logits: the head replaces
   * them).
   */
  private fusedPlan(rows: StepRow[], ahead?: { pending: number; fed?: number[] }): FusedPlan {
    const { slots, fresh } = this.fused!;
    const inputs = slots.stepInputs(rows, ahead?.pending);
    const latentInput = (r: StepRow) => r.tokenId === null;
    // A step run ahead follows the decoder's last run over its rows: their hidden states are on the device.
    const current = (slot: number) => ahead !== undefined || fresh.has(slot);
    const latentOnDevice = new Set(
      this.head ? [] : rows.flatMap((r, b) => (latentInput(r) && current(inputs.outRows[b]) ? [b] : [])),
    );
    const fed = new Set(ahead?.fed);
    const fedTokens = [...fed].filter((b) => !latentInput(rows[b]));
    const embeds = this.stepEmbeds(
      rows,
      new Set([...latentOnDevice, ...fedTokens]),
      inputs.outRows,
      slots.slots,
    );
    const latent = new Uint8Array(slots.slots);
    for (const b of latentOnDevice) latent[inputs.outRows[b]] = 1;
    // Every token input and latent placeholder goes to the addon too, for the seen tokens of its picks (`syncPickRule`).
    const tokens = this.fused!.addonPicks ? new Int32Array(slots.slots).fill(NO_TOKEN) : null;
    rows.forEach((r, b) => {
      const seen = seenToken(r);
      if (!tokens || seen === undefined) return;
      tokens[inputs.outRows[b]] = !fed.has(b) ? seen : latentInput(r) ? PICK_UNFED : FEED_PICK;
    });
    const full = rows.flatMap((r, b) =>
      r.needsLogits !== false || (this.head && latentInput(r)) ? [b] : [],
    );
    const logitRows = new Int32Array(rows.length).fill(-1);
    full.forEach((b, k) => (logitRows[b] = k));
    const args: FusedPlan['args'] = [
      embeds,
      latentOnDevice.size ? latent : null,
      inputs.positions,
      inputs.seqlens,
      inputs.outRows,
      Int32Array.from(full, (b) => inputs.outRows[b]),
      tokens,
    ];
    return { rows, args, outRows: inputs.outRows, logitRows };
  }

  /**
   * After a step of slots `outRows`: each holds one more position; its device hidden state is current unless a step
   * run after it has overwritten it.
   */
  private commitStep(outRows: Int32Array): void {
    const { slots, fresh, ahead } = this.fused!;
    slots.advance(outRows);
    fresh.clear();
    if (ahead.length === 0) for (const slot of outRows) fresh.add(slot);
  }

  private stepOutputs(out: FusedStepOutput, logitRows: Int32Array, ahead?: AheadStep): StepOutputs {
    const n = logitRows.length;
    const top = out.topIds && { k: out.topIds.length / n, ids: out.topIds, values: out.topLogits! };
    const ran = ahead && { ranAhead: ahead.depth, ...(ahead.fed ? { fedAhead: true } : {}) };
    return { logits: out.logits, hidden: out.hidden, logitRows, top, ...ran };
  }

  /**
   * Starts the step the engine is expected to send next when every row's sequence has a pick rule: the same
   * sequences one position on, each token row fed the token the engine will pick (`greedyFromTop` over this step's
   * top candidates with the rule's penalties), each latent row its own hidden state (on the device); a row's kind is
   * `StepRow.next` when the engine sent it (a latent block's first and last steps), else its kind now. The step after
   * it starts the same way (`extendAhead`, up to `aheadLimit` steps ahead), so the decoder runs while the engine picks.
   * A guess the engine does not confirm costs only its time (slots it wrote beyond a sequence's end are overwritten by
   * that sequence's next real step).
   */
  private runAhead(rows: StepRow[], out: StepOutputs): void {
    const { ahead, aheadLimit } = this.fused!;
    if (ahead.length === 0) {
      if (out.top && aheadLimit > 0) this.startAhead(rows, out.top);
    } else this.extendAhead();
  }

  /**
   * The step after the newest step run ahead; each row keeps its kind (the engine's `StepRow.next` covers only the
   * step it sends). Once that step is done, its tokens are picked here from its top candidates. While it runs, when
   * the addon can make every row's pick (`addonPicks`), it picks and feeds them itself (`FEED_PICK`): the step is
   * queued behind it and starts the moment it ends, without a round trip through this thread.
   */
  private extendAhead(): void {
    const { ahead, aheadLimit, paused, addonPicks } = this.fused!;
    const last = ahead[ahead.length - 1];
    if (!last || ahead.length >= aheadLimit || paused) return;
    if (last.out?.topIds) {
      const k = last.out.topIds.length / last.plan.rows.length;
      this.startAhead(last.plan.rows, { k, ids: last.out.topIds, values: last.out.topLogits! });
    } else if (
      addonPicks &&
      !last.settled &&
      last.plan.rows.every((r) => addonCanPick(this.picks.get(r.seq)))
    )
      this.startAhead(last.plan.rows, undefined);
  }

  /**
   * Starts the step after `rows` on the addon's thread, if it foresees it: after a step whose top candidates are
   * `top` (then its token rows are picked here), or, with `top` undefined, queued behind that step while it still runs
   * (its token rows picked and fed by the addon, their ids written in when it returns).
   */
  private startAhead(rows: StepRow[], top: TopCandidates | undefined): void {
    const fused = this.fused!;
    if (!rows.every((r) => this.picks.has(r.seq))) return;
    // Inputs of the steps run ahead are not in the rules' seen tokens yet: count them in for these picks.
    const unconfirmed = fused.ahead.slice(fused.firstAheadSeen ? 1 : 0).flatMap((a) =>
      a.plan.rows.flatMap((r) => {
        const seen = seenToken(r);
        return seen === undefined || seen === FED_ON_DEVICE ? [] : [{ seq: r.seq, seen }];
      }),
    );
    const undo = unconfirmed.map((r) => this.see(r.seq, r.seen));
    const next: StepRow[] = [];
    const fed: number[] = [];
    try {
      for (const [b, r] of rows.entries()) {
        const { rule, seen, counts } = this.picks.get(r.seq)!;
        const [kind, ...later] = r.next ?? [];
        const latent = (kind ?? (r.tokenId === null ? 'latent' : 'token')) === 'latent';
        // The token picked from this row's outputs: the next input, or (latent) the next row's placeholder.
        let pick: number | undefined = FED_ON_DEVICE;
        if (top) {
          const ids = top.ids.subarray(b * top.k, (b + 1) * top.k);
          const values = top.values.subarray(b * top.k, (b + 1) * top.k);
          pick = greedyFromTop(ids, values, seen, rule, counts);
        } else fed.push(b);
        if (pick === undefined) return;
        const input = latent
          ? { tokenId: null, placeholderId: pick }
          : { tokenId: pick, placeholderId: undefined };
        next.push({ ...r, ...input, position: r.position + 1, next: later.length ? later : undefined });
      }
    } finally {
      for (const u of undo.reverse()) u();
    }
    let plan: FusedPlan;
    try {
      plan = this.fusedPlan(next, { pending: fused.ahead.length, fed });
    } catch {
      return; // e.g. a sequence at its KV capacity: the engine's next step reports it
    }
    const step: AheadStep = {
      plan,
      result: fused.decoder.stepAsync(...plan.args).catch((e: { code?: string }) => {
        step.ran = e.code !== 'LVR_NATIVE_NOT_RUN';
        return undefined;
      }),
      settled: false,
      depth: fused.ahead.length + 1,
      fed: fed.length > 0,
      ran: true,
    };
    void step.result.then((out) => {
      // The fed rows' tokens, before anything compares this step's rows (`reuseAhead` awaits the same result later).
      if (out?.fedIds)
        for (const b of fed) {
          const row = plan.rows[b];
          if (row.tokenId === null) row.placeholderId = out.fedIds[b];
          else row.tokenId = out.fedIds[b];
        }
      step.out = out;
      step.settled = true;
      if (fused.ahead.includes(step)) this.extendAhead();
    });
    fused.ahead.push(step);
    this.extendAhead();
  }

  /** Counts `tokenId` as fed to `seq` in its pick rule (if it has one); returns the undo. */
  private see(seq: number, tokenId: number): () => void {
    const rule = this.picks.get(seq);
    if (!rule) return () => undefined;
    const { seen, counts } = rule;
    const had = seen.has(tokenId);
    seen.add(tokenId);
    counts.set(tokenId, (counts.get(tokenId) ?? 0) + 1);
    return () => {
      if (!had) seen.delete(tokenId);
      const c = counts.get(tokenId)! - 1;
      if (c) counts.set(tokenId, c);
      else counts.delete(tokenId);
    };
  }

  /**
   * Drops every step run ahead, once the decoder has finished them (it is free for other calls afterwards); no slot's
   * device hidden state is current any more when one ran (they overwrote them).
   */
  private async dropAhead(): Promise<void> {
    const fused = this.fused;
    if (!fused?.ahead.length) return;
    const dropped = fused.ahead;
    fused.ahead = [];
    await Promise.all(dropped.map((a) => a.result));
    fused.fresh.clear();
    for (const seq of this.picks.keys()) this.syncPickRule(seq);
  }

  /**
   * The step run ahead as the outputs of `rows`, when each row is one of its rows with the same input, position and
   * logits request (rows that left since are dropped), taken off the steps run ahead; otherwise undefined.
   */
  private reuseAhead(
    ahead: AheadStep,
    out: FusedStepOutput | undefined,
    rows: StepRow[],
  ): StepOutputs | undefined {
    const same = (a: StepRow, b: StepRow) =>
      a.seq === b.seq &&
      a.position === b.position &&
      a.tokenId === b.tokenId &&
      a.placeholderId === b.placeholderId &&
      (a.needsLogits !== false) === (b.needsLogits !== false);
    const { plan } = ahead;
    const at = rows.map((r) => plan.rows.findIndex((p) => same(p, r)));
    if (!out || at.some((i) => i < 0)) return undefined;
    this.fused!.ahead.shift();
    this.refreshForecasts(rows);
    this.commitStep(Int32Array.from(at, (i) => plan.outRows[i]));
    if (at.length === plan.rows.length && at.every((i, b) => i === b))
      return this.stepOutputs(out, plan.logitRows, ahead);
    // Fewer rows (sequences that finished): their rows of each output.
    const { hiddenSize: h, vocabSize: V } = this.cfg;
    const k = out.topIds ? out.topIds.length / plan.rows.length : 0;
    const full = at.filter((i) => plan.logitRows[i] >= 0);
    const logitRows = new Int32Array(rows.length).fill(-1);
    at.forEach((i, b) => (logitRows[b] = full.indexOf(i)));
    const kept: FusedStepOutput = {
      logits: gatherRows(
        out.logits,
        V,
        full.map((i) => plan.logitRows[i]),
      ),
      hidden: gatherRows(out.hidden, h, at),
      topIds: out.topIds && gatherRows(out.topIds, k, at),
      topLogits: out.topLogits && gatherRows(out.topLogits, k, at),
    };
    return this.stepOutputs(kept, logitRows, ahead);
  }

  /**
   * The engine's step `rows` knows its sequences' next input kinds further than when the steps still ahead of it were
   * started: their rows take that knowledge, so that the steps started after them follow it (a latent block's end).
   */
  private refreshForecasts(rows: StepRow[]): void {
    const bySeq = new Map(rows.map((r) => [r.seq, r.next]));
    this.fused!.ahead.forEach(({ plan }, depth) => {
      plan.rows = plan.rows.map((r) => {
        const later = bySeq.get(r.seq)?.slice(depth + 1);
        return later?.length ? { ...r, next: later } : r;
      });
    });
  }

  /** The whole logits row of `seq` from the last fused step the engine saw (kept aside when a step ran ahead). */
  async lastLogits(seq: number): Promise<Float32Array> {
    const fused = this.fused!;
    if (fused.prefillTopOnly.has(seq))
      throw new Error(`sequence ${seq} has not stepped since its prefill, which left its logits out`);
    fused.paused = true;
    try {
      await Promise.all(fused.ahead.map((a) => a.result));
      // The steps still ahead all started after the engine's last step; those that ran moved its logits aside (kept).
      // A step runs ahead only when every row's pick was decided by its top candidates (a step the addon picks for
      // stops before running when they do not decide), so the engine, which picks by the same rule, never asks for
      // the logits of a step that has a second step run after it.
      const ran = fused.ahead.filter((a) => a.ran).length;
      if (ran > 1) throw new Error('the logits of that step are no longer kept (two steps ran after it)');
      return fused.decoder.lastLogits(Int32Array.of(fused.slots.slot(seq)), ran === 1);
    } finally {
      fused.paused = false;
      this.extendAhead();
    }
  }

  /**
   * LVR-SPEC §4.5: the output of a forward whose input was a latent goes through the head; the head state replaces
   * the hidden state (it is what the next latent step feeds back) and the logits are `lm_head(head_state)`. Rows
   * `rows` of `hidden [B,H]` and rows `logitRow(b)` of `logits` are replaced in place.
   */
  private async applyHead(
    rows: number[],
    hidden: Float32Array | Uint16Array,
    logits: Float32Array,
    logitRow: (b: number) => number = (b) => b,
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
      logits.set(headLogits.subarray(k * V, (k + 1) * V), logitRow(b) * V);
    });
  }

  release(seq: number): void {
    this.hidden.delete(seq);
    this.picks.delete(seq);
    this.fused?.prefillTopOnly.delete(seq);
    if (this.fused) this.fused.slots.release(seq);
    else this.kv.release(seq);
  }

  async close(): Promise<void> {
    await this.dropAhead();
    if (process.env.LVR_ORT_PROFILE_PREFIX) this.decoder?.endProfiling();
    this.kv.clear();
    this.hidden.clear();
    await this.packer?.release();
  }
}

/** onnxruntime-node's bare "Failed to load shared library" for the cuda EP, with what a CUDA node needs. */
function providerLoadError(ep: WorkerInit['executionProvider'], e: unknown): unknown {
  const message = e instanceof Error ? e.message : String(e);
  if (ep !== 'cuda' || !message.includes('Failed to load shared library')) return e;
  return new Error(
    `the cuda execution provider did not load (${message}): onnxruntime-node needs onnxruntime-gpu's ` +
      'libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so beside its libonnxruntime.so.1, ' +
      "cuBLAS, cuRAND and the CUDA 13 runtime on the library path, and the NVIDIA driver's libcuda.so.1 (a GPU " +
      'node); the lvr-node-cuda image holds all but the driver',
  );
}

let host: ModelHost | undefined;

async function handle(msg: WorkerRequest): Promise<{ reply: WorkerReply; transfer: ArrayBuffer[] }> {
  switch (msg.op) {
    case 'init':
      host = new ModelHost(msg.init);
      await host.load();
      return {
        reply: {
          ok: true,
          decoder: host.decoderPath(),
          gpuAttention: host.gpuAttention(),
          fusedProjections: host.fusedProjections(),
        },
        transfer: [],
      };
    case 'vision': {
      const features = (await host!.runVision(msg.req)).slice();
      return { reply: { ok: true, features }, transfer: [features.buffer as ArrayBuffer] };
    }
    case 'prefill':
    case 'step': {
      const reply = msg.op === 'prefill' ? await host!.prefill(msg.reqs) : await host!.step(msg.rows);
      if (!reply.ok) return { reply, transfer: [] };
      // onnxruntime-node returns each output in a fresh ArrayBuffer of its own: transfer it rather than copy B x V.
      const l = reply.logits!;
      const logits = l.byteOffset === 0 && l.byteLength === l.buffer.byteLength ? l : l.slice();
      const top = reply.top
        ? [reply.top.ids.buffer as ArrayBuffer, reply.top.values.buffer as ArrayBuffer]
        : [];
      return {
        reply: { ...reply, logits },
        transfer: [logits.buffer as ArrayBuffer, reply.hidden!.buffer as ArrayBuffer, ...top],
      };
    }
    case 'lastLogits': {
      const logits = await host!.lastLogits(msg.seq);
      return { reply: { ok: true, logits }, transfer: [logits.buffer as ArrayBuffer] };
    }
    case 'release':
      host!.release(msg.seq);
      return { reply: { ok: true }, transfer: [] };
    case 'close':
      await host?.close();
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
