import fs from 'node:fs';
import { readLatentEndEmb } from './bundle/latent-end';
import { LocalDirSource } from './bundle/local-source';
import { LoadedBundle, openBundle } from './bundle/loader';
import type { BundleSource } from './bundle/source';
import { renderChat } from './chat/template';
import { Channel, Slots, StepBatcher } from './decoding/batcher';
import { decodeLoop, Hidden, ModelStepper } from './decoding/loop';
import type { LvrConfig } from './decoding/lvr-state';
import { EngineError, RequestError } from './errors';
import { completionBudget, DEFAULT_MAX_MODEL_LEN } from './decoding/context';
import { MAX_TOP_LOGPROBS } from './sampling/logprobs';
import { ropeIndex } from './rope/mrope';
import { ModelWorker } from './runtime/model-worker';
import { Tokenizer } from './tokenizer';
import type {
  ExecutionProviderName,
  GenerateOptions,
  GenerationDelta,
  GenerationRequest,
  ImagePart,
  ModelInfo,
  SamplingParams,
  Timings,
} from './types';
import { visionHostInputs } from './vision/host-inputs';
import { ImageProcessorConfig, imageTokenCount, processImage, ProcessedImage } from './vision/preprocess';

export interface EngineLoadOptions {
  executionProvider?: ExecutionProviderName;
  /** Verify every file's sha256 against the manifest (default true). */
  verifyChecksums?: boolean;
  /** Intra-op threads per session (default: onnxruntime's choice). */
  threads?: number;
  /**
   * Sequences decoded together, one decoder call per step for all of them (continuous batching; default 8). More
   * concurrent requests wait, in arrival order, until one finishes. 1 = one request at a time.
   */
  maxBatchSize?: number;
  /**
   * Context length (prompt + completion tokens) to serve, at most the bundle's `architecture.max_position_embeddings`
   * (default: that value, or 32768 for bundles that do not record it).
   */
  maxModelLen?: number;
}

/** Default of `EngineLoadOptions.maxBatchSize`. */
export const DEFAULT_MAX_BATCH_SIZE = 8;

/** A prompt ready for prefill: ids with image pads expanded, processed images, M-RoPE positions. */
export interface PreparedPrompt {
  ids: number[];
  images: ProcessedImage[];
  positions: BigInt64Array;
  ropeDelta: number;
  imageTokens: number;
}

/** A rendered, tokenized prompt whose images are not decoded yet (pads expanded from the image headers). */
interface TokenizedPrompt {
  ids: number[];
  images: Uint8Array[];
  imageTokens: number[];
  cfg: ImageProcessorConfig;
}

/** Extra hooks for tests and benchmarks; not part of the serving API. */
export interface GenerateInternals {
  onHidden?(h: Float32Array): void;
  onPrompt?(p: PreparedPrompt): void;
}

function halfToFloat(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const f = bits & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

function toFloat32(h: Hidden): Float32Array {
  return h instanceof Float32Array ? h : Float32Array.from(h, halfToFloat);
}

/** The served context length: the bundle's, or a smaller override (a larger one would exceed the trained positions). */
function resolveMaxModelLen(bundleLen: number | undefined, override: number | undefined): number {
  const limit = bundleLen ?? DEFAULT_MAX_MODEL_LEN;
  if (override === undefined) return limit;
  if (!Number.isInteger(override) || override < 1 || override > limit)
    throw new RangeError(
      `maxModelLen must be an integer in 1..${limit} (the bundle's context length), got ${override}`,
    );
  return override;
}

/**
 * A loaded LVR bundle ready to generate. Up to `maxBatchSize` requests decode together (one decoder call per step
 * for all of them, each with its own cache length, positions, sampling, LVR state and stop rules); prefill (vision +
 * prompt) runs one request at a time between steps, after which the request joins the running batch. Further
 * requests wait in arrival order.
 */
export class LvrEngine {
  private readonly slots: Slots;
  private readonly batcher: StepBatcher;
  private nextSeq = 1;
  /** Decode batching counters: decoder step calls, rows stepped, largest batch (tests and benchmarks). */
  readonly batchStats: { readonly calls: number; readonly rows: number; readonly maxRows: number };

  private constructor(
    private readonly bundle: LoadedBundle,
    readonly tokenizer: Tokenizer,
    private readonly worker: ModelWorker,
    private readonly imageConfig: ImageProcessorConfig,
    private readonly latentEndEmb: Float32Array | undefined,
    readonly info: ModelInfo,
    readonly maxBatchSize: number,
  ) {
    this.slots = new Slots(maxBatchSize);
    this.batcher = new StepBatcher(
      (rows) => worker.step(rows),
      info.vocabSize,
      info.hiddenSize,
      maxBatchSize,
    );
    this.batchStats = this.batcher.stats;
  }

  /** Loads a bundle from a local directory path or a BundleSource. */
  static async load(source: string | BundleSource, options: EngineLoadOptions = {}): Promise<LvrEngine> {
    const maxBatchSize = options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1)
      throw new RangeError(`maxBatchSize must be an integer >= 1, got ${maxBatchSize}`);
    const src = typeof source === 'string' ? new LocalDirSource(source) : source;
    const bundle = await openBundle(src, options.verifyChecksums ?? true);
    const m = bundle.manifest;
    const tokenizer = Tokenizer.fromJSON(fs.readFileSync(bundle.paths.get(m.tokenizer)!, 'utf8'));
    // Checked before the worker starts: a bad file or option leaks nothing.
    const latentEndEmb = readLatentEndEmb(bundle);
    const maxContextTokens = resolveMaxModelLen(m.architecture.max_position_embeddings, options.maxModelLen);
    const ep = options.executionProvider ?? 'cpu';
    const worker = await ModelWorker.start({
      graphs: {
        vision: bundle.paths.get(m.graphs.vision)!,
        embed: bundle.paths.get(m.graphs.embed_tokens)!,
        decoder: bundle.paths.get(m.graphs.decoder)!,
        lvrHead: m.graphs.lvr_head && bundle.paths.get(m.graphs.lvr_head)!,
      },
      executionProvider: ep,
      threads: options.threads,
      dtype: m.io_dtypes.embeds,
      numLayers: m.architecture.num_hidden_layers,
      numKvHeads: m.architecture.num_key_value_heads,
      headDim: m.architecture.head_dim,
      hiddenSize: m.architecture.hidden_size,
    });
    const pp = m.preprocessing;
    const imageConfig: ImageProcessorConfig = {
      patchSize: pp.patch_size,
      temporalPatchSize: pp.temporal_patch_size,
      mergeSize: pp.merge_size,
      rescaleFactor: pp.rescale_factor,
      imageMean: pp.image_mean,
      imageStd: pp.image_std,
      minPixels: pp.min_pixels,
      maxPixels: pp.max_pixels,
    };
    const st = m.special_tokens;
    const info: ModelInfo = {
      id: m.provenance?.run_id ?? m.provenance?.source ?? src.uri,
      maxContextTokens,
      vocabSize: m.architecture.vocab_size,
      hiddenSize: m.architecture.hidden_size,
      specialTokens: {
        imagePad: st.image_pad_id,
        visionStart: st.vision_start_id,
        visionEnd: st.vision_end_id,
        lvrStart: st.lvr_start_id,
        lvr: st.lvr_id,
        lvrLatentEnd: st.lvr_latent_end_id,
        lvrEnd: st.lvr_end_id,
        eos: st.eos_ids,
        pad: st.pad_id,
      },
      lvrDefaults: { strategy: m.lvr.strategy, steps: m.lvr.steps },
      executionProvider: ep,
    };
    return new LvrEngine(bundle, tokenizer, worker, imageConfig, latentEndEmb, info, maxBatchSize);
  }

  /**
   * Renders and tokenizes a request, with each image's `<|image_pad|>` run expanded to the count its header implies
   * (no pixel decoding yet): enough to check the context length before any compute.
   */
  private async tokenizePrompt(request: GenerationRequest): Promise<TokenizedPrompt> {
    if (!request.messages?.length) throw new RequestError('messages must not be empty', 'messages');
    const text =
      renderChat(request.messages, { addGenerationPrompt: request.addGenerationPrompt ?? true }) +
      (request.assistantPrefix ?? '');
    const cfg: ImageProcessorConfig = {
      ...this.imageConfig,
      minPixels: request.image?.minPixels ?? this.imageConfig.minPixels,
      maxPixels: request.image?.maxPixels ?? this.imageConfig.maxPixels,
    };
    const images = request.messages.flatMap((m) =>
      typeof m.content === 'string'
        ? []
        : m.content.filter((p): p is ImagePart => p.type === 'image').map((p) => p.image),
    );
    const imageTokens = await Promise.all(images.map((bytes) => imageTokenCount(bytes, cfg)));
    const pad = this.info.specialTokens.imagePad;
    const ids: number[] = [];
    let next = 0;
    for (const id of this.tokenizer.encode(text)) {
      if (id !== pad) ids.push(id);
      else {
        if (next >= images.length)
          throw new RequestError(
            'the prompt text contains more <|image_pad|> tokens than images',
            'messages',
          );
        for (let i = 0; i < imageTokens[next]; i++) ids.push(pad);
        next++;
      }
    }
    if (next !== images.length)
      throw new RequestError('an image part has no <|image_pad|> placeholder', 'messages');
    return { ids, images, imageTokens, cfg };
  }

  /** Decodes and resizes the images of a tokenized prompt and computes its M-RoPE positions. */
  private async processPrompt(t: TokenizedPrompt): Promise<PreparedPrompt> {
    const images = await Promise.all(t.images.map((bytes) => processImage(bytes, t.cfg)));
    images.forEach((img, i) => {
      if (img.tokens !== t.imageTokens[i])
        throw new EngineError(
          `image ${i}: ${img.tokens} tokens after decoding, ${t.imageTokens[i]} from its header`,
          'inference_failed',
        );
    });
    const rope = ropeIndex(
      t.ids,
      images.map((i) => i.gridThw),
      this.info.specialTokens.imagePad,
      this.bundle.manifest.architecture.vision.spatial_merge_size,
    );
    const imageTokens = images.reduce((n, i) => n + i.tokens, 0);
    return { ids: t.ids, images, positions: rope.positions, ropeDelta: rope.ropeDelta, imageTokens };
  }

  /** Renders, tokenizes and preprocesses a request (images decoded and resized, pads expanded, M-RoPE positions). */
  async preparePrompt(request: GenerationRequest): Promise<PreparedPrompt> {
    return this.processPrompt(await this.tokenizePrompt(request));
  }

  /**
   * Token count of the rendered prompt, images included, from image headers only (no decoding, no model compute):
   * what context-length checks use.
   */
  async countPromptTokens(request: GenerationRequest): Promise<number> {
    return (await this.tokenizePrompt(request)).ids.length;
  }

  /** Sampling with the bundle's defaults; `maxTokens` is only the default here (the context check sets it). */
  private resolveSampling(s: SamplingParams = {}): SamplingParams & { maxTokens: number } {
    const g = this.bundle.manifest.generation as Record<string, number | boolean | undefined>;
    const doSample = g.do_sample !== false;
    return {
      ...s,
      temperature: s.temperature ?? (doSample ? ((g.temperature as number | undefined) ?? 1) : 0),
      topK: s.topK ?? (g.top_k as number | undefined),
      topP: s.topP ?? (g.top_p as number | undefined),
      repetitionPenalty: s.repetitionPenalty ?? (g.repetition_penalty as number | undefined) ?? 1,
      maxTokens: s.maxTokens ?? (g.max_new_tokens as number | undefined) ?? 512,
    };
  }

  /** Sampling values the engine cannot take (the API checks ranges too; the engine API needs them checked here). */
  private checkSampling(s: SamplingParams): void {
    for (const [name, param, v] of [
      ['presencePenalty', 'presence_penalty', s.presencePenalty],
      ['frequencyPenalty', 'frequency_penalty', s.frequencyPenalty],
    ] as const) {
      if (v !== undefined && !(Number.isFinite(v) && v >= -2 && v <= 2))
        throw new RequestError(`${name} must be a number in -2..2`, param);
    }
    for (const [key, bias] of Object.entries(s.logitBias ?? {})) {
      const id = Number(key);
      if (!Number.isInteger(id) || id < 0 || id >= this.info.vocabSize)
        throw new RequestError(
          `logit_bias: token id ${key} is not in the vocabulary (0..${this.info.vocabSize - 1})`,
          'logit_bias',
        );
      if (!(Number.isFinite(bias) && bias >= -100 && bias <= 100))
        throw new RequestError(`logit_bias: the bias of token ${key} must be in -100..100`, 'logit_bias');
    }
  }

  private lvrConfig(request: GenerationRequest): LvrConfig {
    const l = this.bundle.manifest.lvr;
    const r = request.lvr ?? {};
    const strategy = r.strategy ?? l.strategy;
    const steps = r.steps ?? l.steps;
    if (!Number.isInteger(steps) || steps < 1)
      throw new RequestError('lvr.steps must be an integer >= 1', 'lvr.steps');
    if (strategy === 'latent' && !this.latentEndEmb) {
      throw new RequestError(
        "lvr.strategy 'latent' needs a model with latent_end_token=true",
        'lvr.strategy',
      );
    }
    return {
      strategy,
      steps,
      criterion: r.criterion ?? l.latent_criterion ?? 'mse',
      threshold: r.threshold ?? l.latent_threshold ?? 0.02,
      upstreamCompat: r.upstreamCompat ?? l.upstream_compat ?? false,
      lvrStartId: this.info.specialTokens.lvrStart,
      lvrEndId: this.info.specialTokens.lvrEnd,
    };
  }

  generate(
    request: GenerationRequest,
    options: GenerateOptions = {},
    internals: GenerateInternals = {},
  ): AsyncIterable<GenerationDelta> {
    return { [Symbol.asyncIterator]: () => this.run(request, options, internals)[Symbol.asyncIterator]() };
  }

  /**
   * Decouples the decode loop from the consumer: the loop runs as soon as its batch step returns and pushes deltas
   * into a channel, so a slow reader never holds back the other sequences of the batch. A consumer that stops
   * iterating cancels the sequence (it leaves the batch within one step).
   */
  private async *run(
    request: GenerationRequest,
    options: GenerateOptions,
    internals: GenerateInternals,
  ): AsyncGenerator<GenerationDelta> {
    const ctrl = new AbortController();
    const user = options.signal;
    const onAbort = () => ctrl.abort(user?.reason);
    if (user?.aborted) onAbort();
    else user?.addEventListener('abort', onAbort, { once: true });
    const channel = new Channel<GenerationDelta>();
    const pump = (async () => {
      try {
        for await (const delta of this.generateOne(request, ctrl.signal, internals)) channel.push(delta);
        channel.close();
      } catch (error) {
        channel.fail(error);
      } finally {
        user?.removeEventListener('abort', onAbort);
      }
    })();
    try {
      yield* channel;
    } finally {
      // When the reader stops early this cancels the sequence; either way the iterator closes only once compute for
      // it has stopped (the loop leaves the batch at its next step).
      ctrl.abort();
      await pump;
    }
  }

  private async *generateOne(
    request: GenerationRequest,
    signal: AbortSignal,
    internals: GenerateInternals,
  ): AsyncGenerator<GenerationDelta> {
    const t0 = performance.now();
    const sampling = this.resolveSampling(request.sampling);
    const lvr = this.lvrConfig(request);
    this.checkSampling(sampling);
    const k = request.topLogprobs;
    if (k !== undefined && !(Number.isInteger(k) && k >= 0 && k <= MAX_TOP_LOGPROBS)) {
      throw new RequestError(`topLogprobs must be an integer in 0..${MAX_TOP_LOGPROBS}`, 'top_logprobs');
    }
    const tokenized = await this.tokenizePrompt(request);
    sampling.maxTokens = completionBudget(
      tokenized.ids.length,
      request.sampling?.maxTokens,
      this.info.maxContextTokens,
      sampling.maxTokens,
    );
    const prompt = await this.processPrompt(tokenized);
    internals.onPrompt?.(prompt);
    const tPrepared = performance.now();
    // A decode slot is held from prefill until the sequence leaves the batch; requests beyond maxBatchSize wait here.
    const holding = await this.slots.acquire(signal);
    const seq = this.nextSeq++;
    let prefilled = false;
    const t1 = performance.now();
    let prefillMs = 0;
    let tokenSteps = 0;
    let latentSteps = 0;
    let tDecode = 0;
    const worker = this.worker;
    const stepper = {
      prefill: async () => {
        const merged = await this.imageFeatures(prompt);
        prefilled = true;
        const res = await worker.prefill({
          seq,
          inputIds: BigInt64Array.from(prompt.ids, BigInt),
          imageFeatures: merged,
          imagePadId: this.info.specialTokens.imagePad,
          positions: prompt.positions,
        });
        prefillMs = performance.now() - t1;
        tDecode = performance.now();
        this.batcher.join(seq);
        return res;
      },
      step: async (input: { kind: 'token'; id: number } | { kind: 'latent' }, position: number) => {
        if (input.kind === 'latent') latentSteps++;
        else tokenSteps++;
        return this.batcher.step({ seq, tokenId: input.kind === 'latent' ? null : input.id, position });
      },
    };
    try {
      yield* this.decodeSequence(stepper, prompt, sampling, lvr, k, signal, internals, () => ({
        preprocessMs: tPrepared - t0,
        prefillMs,
        decodeMs: tDecode ? performance.now() - tDecode : 0,
        tokenSteps,
        latentSteps,
      }));
    } finally {
      this.batcher.leave(seq);
      if (prefilled) void worker.release(seq).catch(() => undefined);
      if (holding) this.slots.release();
    }
  }

  /** Runs the vision graph on every image and concatenates the features (model dtype). */
  private async imageFeatures(prompt: PreparedPrompt): Promise<Float32Array | Uint16Array> {
    const geo = this.bundle.manifest.architecture.vision;
    const features: Array<Float32Array | Uint16Array> = [];
    for (const img of prompt.images) {
      const [, gh, gw] = img.gridThw;
      const host = visionHostInputs(gh, gw, {
        spatialMergeSize: geo.spatial_merge_size,
        windowSize: geo.window_size,
        patchSize: geo.patch_size,
      });
      features.push(await this.worker.vision({ pixelValues: img.pixelValues, numPatches: gh * gw, ...host }));
    }
    const dtype = this.bundle.manifest.io_dtypes.embeds;
    const total = features.reduce((n, f) => n + f.length, 0);
    const merged = dtype === 'float16' ? new Uint16Array(total) : new Float32Array(total);
    let off = 0;
    for (const f of features) {
      merged.set(f as never, off);
      off += f.length;
    }
    return merged;
  }

  private async *decodeSequence(
    stepper: ModelStepper,
    prompt: PreparedPrompt,
    sampling: SamplingParams & { maxTokens: number },
    lvr: LvrConfig,
    k: number | undefined,
    signal: AbortSignal,
    internals: GenerateInternals,
    timings: () => Timings,
  ): AsyncGenerator<GenerationDelta> {
    const loop = decodeLoop(stepper, {
      promptIds: prompt.ids,
      ropeDelta: prompt.ropeDelta,
      imageTokens: prompt.imageTokens,
      sampling,
      lvr,
      eosIds: this.info.specialTokens.eos,
      latentEndEmb: this.latentEndEmb,
      tokenizer: this.tokenizer,
      signal,
      topLogprobs: k,
      toFloat32,
      onHidden: internals.onHidden ? (h) => internals.onHidden!(toFloat32(h)) : undefined,
    });
    for await (const delta of loop) {
      if (delta.finishReason !== null) delta.timings = timings();
      yield delta;
    }
  }

  async close(): Promise<void> {
    await this.worker.close();
  }
}
