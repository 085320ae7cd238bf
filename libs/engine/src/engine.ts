import fs from 'node:fs';
import { readLatentEndEmb } from './bundle/latent-end';
import { LocalDirSource } from './bundle/local-source';
import { openBundle } from './bundle/loader';
import type { BundleManifest } from './bundle/manifest';
import type { BundleSource } from './bundle/source';
import { Channel, Slots, StepBatcher } from './decoding/batcher';
import { completionBudget, DEFAULT_MAX_MODEL_LEN } from './decoding/context';
import { decodeLoop, Hidden, ModelStepper, StepInput } from './decoding/loop';
import { DEFAULT_MAX_PREFILL_POSITIONS, PrefillBatcher } from './decoding/prefill-batcher';
import { GenerationConfig, GenerationConfigResolver } from './generation-config';
import { PreparedPrompt, PromptProcessor } from './prompt/prompt-processor';
import { BundleError } from './errors';
import { FUSED_TOP_K, type GpuAttentionChoice } from './runtime/fused-native';
import { ModelWorker } from './runtime/model-worker';
import { pickableFromTop } from './sampling/sampler';
import { Tokenizer } from './tokenizer';
import type {
  ExecutionProviderName,
  FusedProjections,
  GenerateOptions,
  GenerationDelta,
  GenerationRequest,
  ModelInfo,
  SamplingParams,
  Timings,
} from './types';
import { MAX_RUN_AHEAD_STEPS, type PickRule } from './runtime/protocol';

export type { PreparedPrompt } from './prompt/prompt-processor';

export interface EngineLoadOptions {
  executionProvider?: ExecutionProviderName;
  /**
   * Keep KV caches in the execution provider's memory between decode steps, repacked there by small graphs when the
   * batch changes (default: true on WebGPU, where they are GPU buffers; false elsewhere). `false` on WebGPU copies them
   * through host memory every step (the first GPU path; benchmarks use it as the baseline).
   */
  deviceKv?: boolean;
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
  /**
   * Decode through the bundle's `graphs.decoder_fused` with the native addon (KV slots allocated once in the EP's
   * memory, GroupQueryAttention, the step captured in a CUDA graph on the CUDA EP). Default: on for the `cuda` EP when
   * the bundle has the graph, off otherwise; `true` on the CPU EP runs the same path on host memory.
   */
  fusedDecoder?: boolean;
  /** Capture the fused decoder's step in a CUDA graph (CUDA EP only; default true). */
  cudaGraph?: boolean;
  /**
   * Fused decoder: decode steps started ahead of the engine when every row's next input is foreseeable (greedy rows
   * picked from their top candidates): 1 starts the next step while the engine picks, 2 (default) also the one after
   * it, 0 none.
   */
  runAheadSteps?: number;
  /**
   * Fused decoder: a step run ahead whose predecessor has not returned yet is queued behind it, its token rows picked
   * and fed by the addon from the predecessor's top candidates (greedy, repetition penalty; presence and frequency
   * penalties are picked here) so it starts the moment the predecessor ends. Default true; false picks every step's
   * tokens on the worker thread once its predecessor is back (a round trip between steps).
   */
  addonPicks?: boolean;
  /**
   * Fused decoder: a step runs only the KV slots up to the highest one in use, rounded up to a power of two (one bound
   * step and CUDA graph per size; sequences take the lowest free slots), instead of all `maxBatchSize` slots. Default
   * true; false runs every slot every step.
   */
  stepRowBuckets?: boolean;
  /**
   * Fused decoder on the CUDA EP: GroupQueryAttention's decode kernel, cuDNN's flash attention (`cudnn`: needs cuDNN 9
   * on the library path), ONNX Runtime's XQA kernel (`xqa`, ONNX Runtime's own default), its flash attention
   * (`flash`), or `auto` (default): cuDNN's where cuDNN 9 loads, XQA otherwise. `ModelInfo.gpuAttention` says which.
   */
  attentionKernel?: GpuAttentionChoice;
  /**
   * Fused decoder: who runs its projections (q/k/v, o, the MLP, the LM head). `lvr`: graphs.decoder_fused_lvr, the
   * addon's own kernels (on the CUDA EP a one-row step streams the weights through kernels NVRTC compiles at load,
   * more rows go through cuBLAS; CPU kernels on the CPU EP); `onnx`: graphs.decoder_fused, ONNX Runtime's MatMuls;
   * `auto` (default): `lvr` on the CUDA EP for a float16 bundle with the graph, falling back to `onnx` with a warning
   * when the kernels cannot be built (no NVRTC), `onnx` elsewhere. `lvr` is refused without the graph and for other
   * dtypes than its kernels' (float16 on CUDA, float32 on the CPU). `ModelInfo.fusedProjections` says which ran.
   */
  fusedProjections?: 'auto' | FusedProjections;
  /**
   * Fused decoder on the CUDA EP with an int4 bundle: steps of at least this many KV slots run through a second session
   * whose int4 matmuls use ONNX Runtime's mixed-input GEMM (weights prepacked at load; a second copy of the weights in
   * GPU memory) instead of dequantizing the weights every step; smaller steps keep the one-row kernels. 0 (default):
   * one session. Ignored for other bundles and execution providers.
   */
  int4MixedGemmFromSlots?: number;
  /**
   * Prompts that wait for their prefill together are prefilled in one call (the fused decoder; the plain decoder runs
   * them one by one) up to this many padded positions (prompts × the longest; default 16384); a longer prompt runs
   * alone.
   */
  maxPrefillPositions?: number;
}

/** Default of `EngineLoadOptions.runAheadSteps`. */
export const DEFAULT_RUN_AHEAD_STEPS = 2;

/**
 * Default of `EngineLoadOptions.attentionKernel`: cuDNN's flash attention where cuDNN loads (on an H200, at 3B and 7B
 * shapes, as fast as ONNX Runtime's XQA default or faster after a long image prompt and at 8 streams; README:
 * Benchmarks), XQA otherwise.
 */
export const DEFAULT_GPU_ATTENTION: GpuAttentionChoice = 'auto';

/** Default of `EngineLoadOptions.maxBatchSize`. */
export const DEFAULT_MAX_BATCH_SIZE = 8;

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

function toFloat32(hidden: Hidden): Float32Array {
  return hidden instanceof Float32Array ? hidden : Float32Array.from(hidden, halfToFloat);
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
  return value;
}

function penalties({ repetitionPenalty, presencePenalty, frequencyPenalty }: SamplingParams): PickRule {
  return { repetitionPenalty, presencePenalty, frequencyPenalty };
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
 * The fused decoder's projections for this bundle and EP (`EngineLoadOptions.fusedProjections`): `auto` stays `auto`
 * (lvr, falling back to onnx when the kernels cannot be built) only where the lvr kernels run, float16 bundles with the
 * graph on `cuda`; `lvr` elsewhere than its kernels' EP and dtype, or without the graph, is refused before anything
 * loads.
 */
function fusedProjections(
  requested: EngineLoadOptions['fusedProjections'],
  executionProvider: ExecutionProviderName,
  manifest: BundleManifest,
): 'auto' | FusedProjections {
  const kernelsDtype = executionProvider === 'cuda' ? 'float16' : 'float32';
  const runnable = !!manifest.graphs.decoder_fused_lvr && manifest.io_dtypes.embeds === kernelsDtype;
  const choice = requested ?? (executionProvider === 'cuda' ? 'auto' : 'onnx');
  if (choice === 'auto') return runnable ? 'auto' : 'onnx';
  if (choice === 'lvr' && !manifest.graphs.decoder_fused_lvr)
    throw new BundleError(
      'fusedProjections "lvr" needs graphs.decoder_fused_lvr (a float bundle exported with --fused-decoder by this version)',
      undefined,
      'graphs.decoder_fused_lvr',
    );
  if (choice === 'lvr' && !runnable)
    throw new RangeError(
      `fusedProjections "lvr" runs ${kernelsDtype} bundles on the ${executionProvider} execution provider; this bundle is ${manifest.io_dtypes.embeds}`,
    );
  return choice;
}

/** What the API and the registry learn about a loaded bundle. */
function modelInfo(
  manifest: BundleManifest,
  sourceUri: string,
  maxContextTokens: number,
  executionProvider: ExecutionProviderName,
  decoder: ModelInfo['decoder'],
  gpuAttention: ModelInfo['gpuAttention'],
  fusedProjections: ModelInfo['fusedProjections'],
): ModelInfo {
  const special = manifest.special_tokens;
  return {
    id: manifest.provenance?.run_id ?? manifest.provenance?.source ?? sourceUri,
    maxContextTokens,
    vocabSize: manifest.architecture.vocab_size,
    hiddenSize: manifest.architecture.hidden_size,
    specialTokens: {
      imagePad: special.image_pad_id,
      visionStart: special.vision_start_id,
      visionEnd: special.vision_end_id,
      lvrStart: special.lvr_start_id,
      lvr: special.lvr_id,
      lvrLatentEnd: special.lvr_latent_end_id,
      lvrEnd: special.lvr_end_id,
      eos: special.eos_ids,
      pad: special.pad_id,
    },
    lvrDefaults: { strategy: manifest.lvr.strategy, steps: manifest.lvr.steps },
    executionProvider,
    decoder,
    ...(gpuAttention ? { gpuAttention } : {}),
    ...(fusedProjections ? { fusedProjections } : {}),
  };
}

/**
 * A loaded LVR bundle ready to generate: its lifecycle (load, close) and batching. Prompt preparation lives in
 * `PromptProcessor`, the request's decoding settings in `GenerationConfigResolver`. Up to `maxBatchSize` requests decode together (one decoder call per step
 * for all of them, each with its own cache length, positions, sampling, LVR state and stop rules); prompts waiting for
 * their prefill at the same time are prefilled together between steps (`PrefillBatcher`), after which each request
 * joins the running batch. Further requests wait in arrival order.
 */
export class LvrEngine {
  private readonly slots: Slots;
  private readonly batcher: StepBatcher;
  private readonly prefills: PrefillBatcher;
  private nextSeq = 1;
  /**
   * Decode batching counters: decoder step calls, rows stepped, largest batch, calls whose step the fused decoder
   * had run ahead and, of those, calls whose picks (token inputs, latent placeholders) the addon made from the step
   * before (tests and benchmarks).
   */
  readonly batchStats: {
    readonly calls: number;
    readonly rows: number;
    readonly maxRows: number;
    readonly ranAhead: number;
    readonly maxAheadDepth: number;
    readonly fedAhead: number;
  };
  /**
   * Prefill batching counters: prefill calls, prompts prefilled, most prompts in one call, prompts whose whole logits
   * the fused decoder left out (their top candidates decided the first token).
   */
  readonly prefillStats: Readonly<PrefillBatcher['stats']>;

  private constructor(
    readonly tokenizer: Tokenizer,
    private readonly worker: ModelWorker,
    private readonly prompts: PromptProcessor,
    private readonly generationConfig: GenerationConfigResolver,
    private readonly latentEndEmb: Float32Array | undefined,
    readonly info: ModelInfo,
    readonly maxBatchSize: number,
    maxPrefillPositions: number,
  ) {
    this.slots = new Slots(maxBatchSize);
    this.batcher = new StepBatcher(
      (rows) => worker.step(rows),
      info.vocabSize,
      info.hiddenSize,
      maxBatchSize,
    );
    this.batchStats = this.batcher.stats;
    this.prefills = new PrefillBatcher(
      (reqs) => worker.prefill(reqs),
      info.vocabSize,
      info.hiddenSize,
      maxPrefillPositions,
    );
    this.prefillStats = this.prefills.stats;
  }

  /** Loads a bundle from a local directory path or a BundleSource. */
  static async load(source: string | BundleSource, options: EngineLoadOptions = {}): Promise<LvrEngine> {
    const maxBatchSize = positiveInteger('maxBatchSize', options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE);
    const maxPrefillPositions = positiveInteger(
      'maxPrefillPositions',
      options.maxPrefillPositions ?? DEFAULT_MAX_PREFILL_POSITIONS,
    );
    const runAheadSteps = options.runAheadSteps ?? DEFAULT_RUN_AHEAD_STEPS;
    if (!Number.isInteger(runAheadSteps) || runAheadSteps < 0 || runAheadSteps > MAX_RUN_AHEAD_STEPS)
      throw new RangeError(
        `runAheadSteps must be an integer from 0 to ${MAX_RUN_AHEAD_STEPS}, got ${runAheadSteps}`,
      );
    const mixedGemmFrom = options.int4MixedGemmFromSlots ?? 0;
    if (!Number.isInteger(mixedGemmFrom) || mixedGemmFrom < 0 || mixedGemmFrom > maxBatchSize)
      throw new RangeError(
        `int4MixedGemmFromSlots must be an integer from 0 to maxBatchSize (${maxBatchSize}), got ${mixedGemmFrom}`,
      );
    const bundleSource = typeof source === 'string' ? new LocalDirSource(source) : source;
    const bundle = await openBundle(bundleSource, options.verifyChecksums ?? true);
    const manifest = bundle.manifest;
    const tokenizer = Tokenizer.fromJSON(fs.readFileSync(bundle.paths.get(manifest.tokenizer)!, 'utf8'));
    // Checked before the worker starts: a bad file or option leaks nothing.
    const latentEndEmb = readLatentEndEmb(bundle);
    const maxContextTokens = resolveMaxModelLen(
      manifest.architecture.max_position_embeddings,
      options.maxModelLen,
    );
    const executionProvider = options.executionProvider ?? 'cpu';
    const fused = options.fusedDecoder ?? (executionProvider === 'cuda' && !!manifest.graphs.decoder_fused);
    if (fused && !manifest.graphs.decoder_fused)
      throw new BundleError(
        'fusedDecoder needs a bundle exported with --fused-decoder (graphs.decoder_fused)',
        undefined,
        'graphs.decoder_fused',
      );
    const projections = fusedProjections(options.fusedProjections, executionProvider, manifest);
    const worker = await ModelWorker.start({
      graphs: {
        vision: bundle.paths.get(manifest.graphs.vision)!,
        embed: bundle.paths.get(manifest.graphs.embed_tokens)!,
        decoder: bundle.paths.get(manifest.graphs.decoder)!,
        lvrHead: manifest.graphs.lvr_head && bundle.paths.get(manifest.graphs.lvr_head)!,
        decoderFused: manifest.graphs.decoder_fused && bundle.paths.get(manifest.graphs.decoder_fused)!,
        decoderFusedLvr:
          manifest.graphs.decoder_fused_lvr && bundle.paths.get(manifest.graphs.decoder_fused_lvr)!,
      },
      fusedDecoder: fused
        ? {
            slots: maxBatchSize,
            capacity: maxContextTokens,
            cudaGraph: options.cudaGraph ?? true,
            topK: Math.min(FUSED_TOP_K, manifest.architecture.vocab_size),
            runAheadSteps,
            addonPicks: options.addonPicks ?? true,
            stepRowBuckets: options.stepRowBuckets ?? true,
            attention:
              executionProvider === 'cuda' ? (options.attentionKernel ?? DEFAULT_GPU_ATTENTION) : undefined,
            mixedGemmFrom:
              executionProvider === 'cuda' && manifest.precision.startsWith('int4') ? mixedGemmFrom : 0,
            projections,
          }
        : undefined,
      executionProvider,
      deviceKv: options.deviceKv,
      threads: options.threads,
      dtype: manifest.io_dtypes.embeds,
      numLayers: manifest.architecture.num_hidden_layers,
      numKvHeads: manifest.architecture.num_key_value_heads,
      headDim: manifest.architecture.head_dim,
      hiddenSize: manifest.architecture.hidden_size,
      vocabSize: manifest.architecture.vocab_size,
    });
    const info = modelInfo(
      manifest,
      bundleSource.uri,
      maxContextTokens,
      executionProvider,
      worker.decoder,
      worker.gpuAttention,
      worker.fusedProjections,
    );
    return new LvrEngine(
      tokenizer,
      worker,
      new PromptProcessor(tokenizer, manifest, (request) => worker.vision(request)),
      new GenerationConfigResolver(manifest, info.specialTokens, info.vocabSize, latentEndEmb !== undefined),
      latentEndEmb,
      info,
      maxBatchSize,
      maxPrefillPositions,
    );
  }

  /** Renders, tokenizes and preprocesses a request (images decoded and resized, pads expanded, M-RoPE positions). */
  async preparePrompt(request: GenerationRequest): Promise<PreparedPrompt> {
    return this.prompts.prepare(request);
  }

  /**
   * Token count of the rendered prompt, images included, from image headers only (no decoding, no model compute):
   * what context-length checks use.
   */
  async countPromptTokens(request: GenerationRequest): Promise<number> {
    return (await this.prompts.tokenize(request)).ids.length;
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
    const cancel = new AbortController();
    const callerSignal = options.signal;
    const onAbort = () => cancel.abort(callerSignal?.reason);
    if (callerSignal?.aborted) onAbort();
    else callerSignal?.addEventListener('abort', onAbort, { once: true });
    const channel = new Channel<GenerationDelta>();
    const pump = (async () => {
      try {
        for await (const delta of this.generateOne(request, cancel.signal, internals)) channel.push(delta);
        channel.close();
      } catch (error) {
        channel.fail(error);
      } finally {
        callerSignal?.removeEventListener('abort', onAbort);
      }
    })();
    try {
      yield* channel;
    } finally {
      // When the reader stops early this cancels the sequence; either way the iterator closes only once compute for
      // it has stopped (the loop leaves the batch at its next step).
      cancel.abort();
      await pump;
    }
  }

  private async *generateOne(
    request: GenerationRequest,
    signal: AbortSignal,
    internals: GenerateInternals,
  ): AsyncGenerator<GenerationDelta> {
    const startedAt = performance.now();
    const config = this.generationConfig.resolve(request);
    const tokenized = await this.prompts.tokenize(request);
    config.sampling.maxTokens = completionBudget(
      tokenized.ids.length,
      request.sampling?.maxTokens,
      this.info.maxContextTokens,
      config.sampling.maxTokens,
    );
    const prompt = await this.prompts.process(tokenized);
    internals.onPrompt?.(prompt);
    const preparedAt = performance.now();
    // A decode slot is held from prefill until the sequence leaves the batch; requests beyond maxBatchSize wait here.
    const holding = await this.slots.acquire(signal);
    const seq = this.nextSeq++;
    let prefilled = false;
    const slotAt = performance.now();
    let prefillMs = 0;
    let visionMs = 0;
    let tokenSteps = 0;
    let latentSteps = 0;
    let decodeStartedAt = 0;
    const worker = this.worker;
    // Greedy rows without logprobs take their token from the step's top candidates when the worker sends them.
    const needsLogits = !pickableFromTop(config.sampling, config.topLogprobs);
    const stepper: ModelStepper = {
      prefill: async () => {
        const imageFeatures = await this.prompts.imageFeatures(prompt);
        visionMs = performance.now() - slotAt;
        prefilled = true;
        const result = await this.prefills.prefill({
          seq,
          inputIds: BigInt64Array.from(prompt.ids, BigInt),
          imageFeatures,
          imagePadId: this.info.specialTokens.imagePad,
          positions: prompt.positions,
          pick: needsLogits ? undefined : penalties(config.sampling),
        });
        prefillMs = performance.now() - slotAt;
        decodeStartedAt = performance.now();
        this.batcher.join(seq);
        return result;
      },
      step: async (input: StepInput, position: number, next?: Array<StepInput['kind']>) => {
        if (input.kind === 'latent') latentSteps++;
        else tokenSteps++;
        const row =
          input.kind === 'latent'
            ? { tokenId: null, placeholderId: input.placeholder }
            : { tokenId: input.id };
        return this.batcher.step({ seq, ...row, position, needsLogits, next });
      },
      lastLogits: () => worker.lastLogits(seq),
    };
    try {
      yield* this.decodeSequence(stepper, prompt, config, signal, internals, () => ({
        preprocessMs: preparedAt - startedAt,
        prefillMs,
        visionMs,
        decodeMs: decodeStartedAt ? performance.now() - decodeStartedAt : 0,
        tokenSteps,
        latentSteps,
      }));
    } finally {
      this.batcher.leave(seq);
      if (prefilled) void worker.release(seq).catch(() => undefined);
      if (holding) this.slots.release();
    }
  }

  private async *decodeSequence(
    stepper: ModelStepper,
    prompt: PreparedPrompt,
    config: GenerationConfig,
    signal: AbortSignal,
    internals: GenerateInternals,
    timings: () => Timings,
  ): AsyncGenerator<GenerationDelta> {
    const loop = decodeLoop(stepper, {
      promptIds: prompt.ids,
      ropeDelta: prompt.ropeDelta,
      imageTokens: prompt.imageTokens,
      sampling: config.sampling,
      lvr: config.lvr,
      eosIds: this.info.specialTokens.eos,
      latentEndEmb: this.latentEndEmb,
      tokenizer: this.tokenizer,
      signal,
      topLogprobs: config.topLogprobs,
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
