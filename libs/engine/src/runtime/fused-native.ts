/**
 * The native fused-decoder addon (libs/engine/native/ort_fused.c): the bundle's `graphs.decoder_fused` on ONNX
 * Runtime's C API with the KV cache in buffers allocated once ([batch slots, kv heads, capacity, head dim] per layer)
 * and shared by past and present. On the CUDA EP the cache never leaves the GPU and the one-position step of all
 * slots runs as a captured CUDA graph; on the CPU EP the same code runs on host memory (tests).
 */
import fs from 'node:fs';
import path from 'node:path';

/** Width of the fused graph's `top_logits` / `top_ids` (docs/bundle-format.md), at most the vocabulary size. */
export const FUSED_TOP_K = 64;

/** Where the addon finds its libraries; see `nativeLibraries` for the defaults and their environment variables. */
export interface NativeLibraries {
  addon: string;
  onnxruntime: string;
  /** The CUDA runtime (`libcudart.so.13` for onnxruntime-gpu 1.30); only the CUDA EP needs it. */
  cudart?: string;
  /** cuDNN 9, as ONNX Runtime loads it: whether it loads decides the `auto` attention kernel. */
  cudnn: string;
  /** NVRTC, which compiles the lvr ops' CUDA kernels (undefined: the addon tries libnvrtc.so.13, then .12). */
  nvrtc?: string;
}

export interface FusedDecoderOptions {
  /** Path of decoder_fused.onnx, or of decoder_fused_lvr.onnx with `lvrOps`. */
  model: string;
  /**
   * `model` uses the addon's lvr custom ops (graphs.decoder_fused_lvr): register them, with CPU kernels or, on the CUDA
   * EP, kernels NVRTC compiles for the device (`nvrtcLibrary`; default libnvrtc.so.13 / .12).
   */
  lvrOps?: boolean;
  nvrtcLibrary?: string;
  gpu: boolean;
  cudaGraph?: boolean;
  device?: number;
  threads?: number;
  /** KV slots: sequences decoded together by `step`. */
  batch: number;
  /** Positions per slot (prompt + generated). */
  capacity: number;
  layers: number;
  kvHeads: number;
  headDim: number;
  hidden: number;
  vocab: number;
  fp16: boolean;
  /** K of the graph's `top_logits` / `top_ids` outputs; 0 (default) reads neither. */
  topK?: number;
  /**
   * Step sizes, ascending slot counts (default `[batch]`; `batch` is added when missing): a step runs only its first S
   * slots, S the smallest size covering the slots it reads or feeds, each size with its own binding and CUDA graph.
   */
  stepSizes?: number[];
  /**
   * GroupQueryAttention's decode kernel on the CUDA EP: ONNX Runtime's XQA kernel, cuDNN's flash attention, ONNX
   * Runtime's own flash attention, or `auto`: cuDNN's where cuDNN 9 loads, XQA otherwise (`resolveAttentionKernel`;
   * absent: ONNX Runtime's choice, XQA for fp16). The decoder's `options.attention` is the kernel chosen.
   */
  attention?: GpuAttentionChoice;
  /**
   * Steps of at least this many slots run through a second session of the graph whose int4 matmuls (MatMulNBits) use
   * ONNX Runtime's mixed-input GEMM, weights prepacked at load, instead of dequantizing them every step; smaller steps
   * and every forward keep the first session (default 0: no second session). CUDA EP; costs a second copy of the
   * weights.
   */
  mixedGemmFrom?: number;
}

/** GroupQueryAttention's decode kernels the fused decoder can pick on the CUDA EP (`FusedDecoderOptions.attention`). */
export const GPU_ATTENTION_KERNELS = ['cudnn', 'xqa', 'flash'] as const;
export type GpuAttentionKernel = (typeof GPU_ATTENTION_KERNELS)[number];
/** What a caller may ask for: a kernel, or `auto` (`resolveAttentionKernel`). */
export const GPU_ATTENTION_CHOICES = ['auto', ...GPU_ATTENTION_KERNELS] as const;
export type GpuAttentionChoice = (typeof GPU_ATTENTION_CHOICES)[number];

/**
 * The decode kernel a requested choice means here: `auto` is cuDNN's flash attention when cuDNN 9 loads (ONNX Runtime
 * opens it only when a kernel needs it, and would quietly use another kernel without it) and XQA otherwise; `cudnn`
 * without cuDNN is an error rather than a silent fallback.
 */
export function resolveAttentionKernel(
  requested: GpuAttentionChoice,
  cudnnLoads: () => boolean,
  cudnnLibrary: string,
): GpuAttentionKernel {
  if (requested === 'auto') return cudnnLoads() ? 'cudnn' : 'xqa';
  if (requested === 'cudnn' && !cudnnLoads())
    throw new Error(
      `attention kernel cudnn needs cuDNN 9 (${cudnnLibrary}) on the library path; choose xqa or flash, or install it ` +
        '(PyPI nvidia-cudnn-cu13)',
    );
  return requested;
}

/** Logits `[rows, V]` and last hidden states `[rows, H]` (fp16 bits when the model is fp16). */
export interface FusedOutput {
  logits: Float32Array;
  hidden: Float32Array | Uint16Array;
}

/**
 * A step's or prefill's outputs: whole logit rows of its `fullRows` / `full` only; hidden states and the top K (with
 * `topK`) of every row.
 */
export interface FusedStepOutput extends FusedOutput {
  topLogits?: Float32Array;
  topIds?: Int32Array;
  /** With a step's `tokens`: per returned row, the token the addon picked for it (`FEED_PICK`, `PICK_UNFED`), else -1. */
  fedIds?: Int32Array;
}

/** A step's `tokens[b]` for a slot whose input is no token (a latent or an idle slot). */
export const NO_TOKEN = -1;
/** A step's `tokens[b]` for a slot the addon feeds the pick from its previous top K (`FusedNativeDecoder.step`). */
export const FEED_PICK = -2;
/**
 * A step's `tokens[b]` for a latent slot whose placeholder (the token its sequence picks at a latent step, never fed)
 * the addon picks from its previous top K: it only joins the slot's seen tokens.
 */
export const PICK_UNFED = -3;

/** `FusedNativeDecoder.forward`'s arguments. */
type ForwardArgs = [
  row: number,
  embeds: Float32Array | Uint16Array,
  positions: BigInt64Array,
  past: number,
  lengths?: Int32Array,
  full?: Int32Array,
];

/** `FusedNativeDecoder.step`'s arguments. */
type StepArgs = [
  embeds: Float32Array | Uint16Array | null,
  latentRows: Uint8Array | null,
  positions: BigInt64Array,
  seqlens: Int32Array,
  outRows?: Int32Array,
  fullRows?: Int32Array,
  tokens?: Int32Array | null,
];

interface Addon {
  init(onnxruntime: string, cudart?: string): string;
  createDecoder(options: FusedDecoderOptions): unknown;
  forward(handle: unknown, ...args: ForwardArgs): FusedStepOutput;
  step(handle: unknown, ...args: StepArgs): FusedStepOutput;
  stepAsync(handle: unknown, ...args: StepArgs): Promise<FusedStepOutput>;
  lastLogits(handle: unknown, rows: Int32Array, kept?: boolean): Float32Array;
  forwardLogits(handle: unknown, rows: Int32Array): Float32Array;
  libraryLoads(name: string): boolean;
  sessions(handle: unknown): number;
  setEmbeddings(handle: unknown, table: Float32Array | Uint16Array): void;
  setPickRule(handle: unknown, slot: number, repetitionPenalty: number, seen: Int32Array): void;
}

const REPO_ROOT = path.resolve(__dirname, '../../../..');
const DEFAULT_ADDON = path.join(REPO_ROOT, 'libs/engine/native/build/ort_fused.node');

/**
 * Defaults: the addon built by `npm run native:build`; onnxruntime-node's own ONNX Runtime library (for the CUDA EP,
 * put onnxruntime-gpu's `libonnxruntime_providers_shared.so` and `libonnxruntime_providers_cuda.so` of the same
 * version next to it, or point `LVR_ORT_LIBRARY` at onnxruntime-gpu's `libonnxruntime.so.1.*`); `libcudart.so.13`
 * from the library path; cuDNN 9 as ONNX Runtime opens it (`libcudnn.so.9`). Overrides: `LVR_ORT_ADDON`,
 * `LVR_ORT_LIBRARY`, `LVR_CUDART_LIBRARY`, `LVR_CUDNN_LIBRARY`.
 */
export function nativeLibraries(env: NodeJS.ProcessEnv = process.env): NativeLibraries {
  const bundled = () => {
    const ortNode = path.dirname(require.resolve('onnxruntime-node/package.json'));
    return path.join(ortNode, 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime.so.1');
  };
  return {
    addon: env.LVR_ORT_ADDON ?? DEFAULT_ADDON,
    onnxruntime: env.LVR_ORT_LIBRARY ?? bundled(),
    cudart: env.LVR_CUDART_LIBRARY ?? 'libcudart.so.13',
    cudnn: env.LVR_CUDNN_LIBRARY ?? 'libcudnn.so.9',
    nvrtc: env.LVR_NVRTC_LIBRARY,
  };
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function loadAddon(libs: NativeLibraries, gpu: boolean): Addon {
  if (!fs.existsSync(libs.addon)) {
    throw new Error(`native addon ${libs.addon} is missing: build it with \`npm run native:build\``);
  }
  const addon = require(libs.addon) as Addon; // eslint-disable-line @typescript-eslint/no-require-imports
  // The first call opens ONNX Runtime (later calls keep it); a GPU decoder also needs the CUDA runtime.
  addon.init(libs.onnxruntime, gpu ? libs.cudart : undefined);
  return addon;
}

/** One fused decoder: `batch` KV slots of `capacity` positions. */
export class FusedNativeDecoder {
  private constructor(
    private readonly addon: Addon,
    private readonly handle: unknown,
    readonly options: FusedDecoderOptions,
    /** GroupQueryAttention's decode kernel its session was built for (undefined: ONNX Runtime's choice). */
    readonly attention: GpuAttentionKernel | undefined,
    /** Why `open` fell back from the lvr ops' graph to `fallbackModel` (undefined: it did not). */
    readonly lvrOpsUnavailable?: string,
  ) {}

  /** Who runs the projections: the addon's lvr ops or ONNX Runtime's. */
  get projections(): 'lvr' | 'onnx' {
    return this.options.lvrOps ? 'lvr' : 'onnx';
  }

  /**
   * `fallbackModel`: with `lvrOps`, the plain fused graph to open instead when the lvr ops cannot be registered (no
   * NVRTC, a device it cannot compile for); `lvrOpsUnavailable` then says why.
   */
  static open(
    requested: FusedDecoderOptions,
    libs: NativeLibraries = nativeLibraries(),
    fallbackModel?: string,
  ): FusedNativeDecoder {
    const addon = loadAddon(libs, requested.gpu);
    const attention =
      requested.attention &&
      resolveAttentionKernel(requested.attention, () => addon.libraryLoads(libs.cudnn), libs.cudnn);
    const options: FusedDecoderOptions = {
      ...requested,
      attention,
      ...(requested.lvrOps && libs.nvrtc ? { nvrtcLibrary: libs.nvrtc } : {}),
    };
    try {
      return FusedNativeDecoder.create(addon, options, attention);
    } catch (error) {
      if (!options.lvrOps || fallbackModel === undefined || !/^lvr ops:/.test(errorMessage(error)))
        throw error;
      const plain = { ...options, model: fallbackModel, lvrOps: false, nvrtcLibrary: undefined };
      return FusedNativeDecoder.create(addon, plain, attention, errorMessage(error));
    }
  }

  private static create(
    addon: Addon,
    options: FusedDecoderOptions,
    attention: GpuAttentionKernel | undefined,
    lvrOpsUnavailable?: string,
  ): FusedNativeDecoder {
    try {
      return new FusedNativeDecoder(
        addon,
        addon.createDecoder(options),
        options,
        attention,
        lvrOpsUnavailable,
      );
    } catch (error) {
      // onnxruntime refuses graph capture when a node falls back to the CPU EP (the int4 graph today): run the step
      // uncaptured rather than not at all; `options.cudaGraph` then says false.
      if (!options.cudaGraph || !/graph capture/.test(String(error))) throw error;
      const uncaptured = { ...options, cudaGraph: false };
      return new FusedNativeDecoder(
        addon,
        addon.createDecoder(uncaptured),
        uncaptured,
        attention,
        lvrOpsUnavailable,
      );
    }
  }

  /** The token embedding `[vocab, hidden]` in the activation dtype that fed picks are looked up in (kept by reference). */
  setEmbeddings(table: Float32Array | Uint16Array): void {
    this.addon.setEmbeddings(this.handle, table);
  }

  /**
   * How `FEED_PICK` picks slot `slot`'s input: the greedy pick from its top K under `repetitionPenalty` (1: the first
   * candidate), as `greedyFromTop`, with the tokens the slot has `seen` so far (its steps then add their tokens and
   * latent placeholders). A pick the K candidates do not decide fails its step.
   */
  setPickRule(slot: number, repetitionPenalty: number, seen: Int32Array): void {
    this.addon.setPickRule(this.handle, slot, repetitionPenalty, seen);
  }

  /** ONNX Runtime sessions behind this decoder: 2 with a large-step session (`mixedGemmFrom`), otherwise 1. */
  sessions(): number {
    return this.addon.sessions(this.handle);
  }

  /**
   * A prefill of slots `row .. row + n - 1` (n = `lengths.length`, default 1) in one call: `embeds [n, S, H]`,
   * `positions [3, n, S]`; slot `row + b` appends the first `lengths[b]` (default S) of its S positions after its first
   * `past` cached ones and returns its hidden state (and top K, with `topK`) at its last one, and its whole logits row
   * when it is in `full` (indices 0..n-1, default all; `forwardLogits` reads the others until the next forward).
   * Shorter rows are right-padded (only with `past` 0): the padding's keys/values land past the row's length, where
   * its next step overwrites them.
   */
  forward(...args: ForwardArgs): FusedStepOutput {
    return this.addon.forward(this.handle, ...args);
  }

  /**
   * One new position in each of the first S slots, S the smallest `stepSizes` entry that covers `outRows`, `fullRows`
   * and the latent rows (every slot when `outRows` is left out). `seqlens[b]` = positions in slot b's cache after the
   * step - 1 (a slot with no sequence that the step covers still computes; give it its own length so it writes past
   * its valid prefix). `latentRows[b] = 1` feeds slot b its own last hidden state on the device instead of `embeds`
   * row b. Hidden states (and top K) of slots `outRows` come back (default all), whole logit rows of `fullRows` only
   * (default `outRows`). `tokens[b]`: the token added to the slot's seen tokens for its pick rule (the one whose
   * embedding `embeds` row b holds, or a latent slot's placeholder), `NO_TOKEN`, `FEED_PICK`: the addon picks slot b's
   * input from its top K of the step before by its `setPickRule` rule when the step starts and embeds it
   * (`setEmbeddings`), or `PICK_UNFED`: that pick is latent slot b's placeholder; `fedIds` says which. Arrays are over
   * all slots; rows past S are ignored.
   */
  step(...args: StepArgs): FusedStepOutput {
    return this.addon.step(this.handle, ...args);
  }

  /**
   * `step` on the addon's step thread while this thread goes on. More `stepAsync` calls queue behind it and run in
   * order (at most 8 pending), so a step fed picks from its predecessor's top candidates (`FEED_PICK`) starts the
   * moment that one ends, without waiting for this thread; no other call on this decoder until every one settles (the
   * addon throws otherwise).
   */
  stepAsync(...args: StepArgs): Promise<FusedStepOutput> {
    return this.addon.stepAsync(this.handle, ...args);
  }

  /**
   * Whole logit rows of slots `rows` from the last step (valid until the next step); `kept`: from the step before the
   * last `stepAsync` (valid until the next `stepAsync`).
   */
  lastLogits(rows: Int32Array, kept = false): Float32Array {
    return this.addon.lastLogits(this.handle, rows, kept);
  }

  /** Whole logit rows `rows` (0..n-1) of the last `forward`, also those it left out (valid until the next forward). */
  forwardLogits(rows: Int32Array): Float32Array {
    return this.addon.forwardLogits(this.handle, rows);
  }
}
