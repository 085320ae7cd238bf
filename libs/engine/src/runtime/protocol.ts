import type { VisionHostInputs } from '../vision/host-inputs';
import type { RgbImage } from '../vision/decode';
import type { PatchConfig } from '../vision/patchify';
import type { ExecutionProviderName, ModelInfo, SamplingParams } from '../types';
import type { GpuAttentionChoice, GpuAttentionKernel } from './fused-native';

export type ModelDtype = 'float32' | 'float16';

export interface WorkerInit {
  /** `lvrHead`: the LVR head graph (LVR-SPEC §4.5), run on the output of every forward whose input was a latent. */
  graphs: {
    vision: string;
    embed: string;
    decoder: string;
    lvrHead?: string;
    decoderFused?: string;
    decoderFusedLvr?: string;
  };
  executionProvider: ExecutionProviderName;
  /**
   * Decode through `graphs.decoderFused` with the native addon (`fused-native.ts`) instead of `graphs.decoder` in
   * onnxruntime-node: `slots` KV slots of `capacity` positions each, allocated once in the EP's memory; on the CUDA EP
   * the step is captured in a CUDA graph when `cudaGraph`; up to `runAheadSteps` steps start ahead of the engine (with
   * `addonPicks`, the addon picks and feeds their tokens when their predecessor has not returned yet); with
   * `stepRowBuckets` a step runs only the slots up to the highest it needs, rounded up to a power of two; `attention`
   * picks GroupQueryAttention's decode kernel on the CUDA EP; steps of at least `mixedGemmFrom` slots run through a
   * second session with int4 matmuls through the mixed-input GEMM (0: none); `projections`: run `graphs.decoderFusedLvr`
   * (the addon's own projection kernels; `auto` falls back to `graphs.decoderFused` when they cannot be built; the
   * engine has checked that the bundle and the EP allow them).
   */
  fusedDecoder?: {
    slots: number;
    capacity: number;
    cudaGraph: boolean;
    topK: number;
    runAheadSteps: number;
    addonPicks: boolean;
    stepRowBuckets: boolean;
    attention?: GpuAttentionChoice;
    mixedGemmFrom: number;
    projections: 'lvr' | 'auto' | 'onnx';
  };
  /**
   * KV caches stay in the execution provider's memory between steps and are repacked there by small graphs (default:
   * WebGPU only, where they are GPU buffers). `false` on WebGPU copies them through the host every step (the first
   * GPU path, the benchmark's baseline); `true` on the CPU EP runs the same graph repacks on host memory (tests).
   */
  deviceKv?: boolean;
  threads?: number;
  dtype: ModelDtype;
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  hiddenSize: number;
  vocabSize: number;
}

/** Whether the worker keeps KV caches in the EP's memory and repacks them with graphs (see `WorkerInit.deviceKv`). */
export function deviceKv(init: Pick<WorkerInit, 'executionProvider' | 'deviceKv'>): boolean {
  return init.deviceKv ?? init.executionProvider === 'webgpu';
}

/** Whether device-resident KV tensors are GPU buffers: only the WebGPU EP hands device tensors to Node. */
export function gpuBufferKv(init: Pick<WorkerInit, 'executionProvider' | 'deviceKv'>): boolean {
  return init.executionProvider === 'webgpu' && deviceKv(init);
}

export interface VisionRequest extends VisionHostInputs {
  /** The resized image (`image_bytes`); graphs that take float `pixel_values` get them from it and `patches`. */
  image: RgbImage;
  numPatches: number;
  patches: PatchConfig;
}

export interface PrefillRequest {
  /** Sequence id chosen by the engine; the worker keeps this sequence's KV cache until `release`. */
  seq: number;
  inputIds: BigInt64Array;
  /** Concatenated image features (model dtype bits) scattered, in order, into `imagePadId` slots. */
  imageFeatures?: Float32Array | Uint16Array;
  imagePadId: number;
  positions: BigInt64Array; // [3, S]
  /**
   * Present when the engine picks this sequence's tokens from the top candidates with these penalties: its next step
   * is then foreseeable (the same pick after a token step unless it stops or its LVR mode changes; its own hidden
   * state after a latent one), and the fused decoder runs it ahead while the engine handles the current one.
   */
  pick?: PickRule;
}

/** One row of a batched decode step: the sequence's next input (a token, or `null` = its last hidden state). */
export interface StepRow {
  seq: number;
  tokenId: number | null;
  /** M-RoPE position of the new slot (same on all three axes). */
  position: number;
  /**
   * A latent row's placeholder: the token the engine picked at this sequence's previous step and does not feed. The
   * engine's penalties count it as generated, so pick rules count it as seen.
   */
  placeholderId?: number;
  /**
   * false: the engine picks this row's token from its top candidates (`WorkerReply.top`), so its logits row may be
   * left out (the fused decoder does; `lastLogits` reads it until the next step). Default true.
   */
  needsLogits?: boolean;
  /**
   * The kinds of this sequence's next inputs, first the one after this row's, as far as the engine knows them before
   * picking (`runAhead` guesses the rest: a latent row's next input latent, a token row's a token).
   */
  next?: Array<'token' | 'latent'>;
}

/** The most decode steps a worker may start ahead of the engine (`EngineLoadOptions.runAheadSteps`). */
export const MAX_RUN_AHEAD_STEPS = 2;

/** The penalties of a sequence whose tokens the engine picks from each step's top candidates (`greedyFromTop`). */
export type PickRule = Pick<SamplingParams, 'repetitionPenalty' | 'presencePenalty' | 'frequencyPenalty'>;

export type WorkerRequest =
  | { op: 'init'; init: WorkerInit }
  | { op: 'vision'; req: VisionRequest }
  /** Prompts of new sequences; replies `logits [n, V]` and `hidden [n, H]` in request order (all or none kept). */
  | { op: 'prefill'; reqs: PrefillRequest[] }
  /** One decoder call over `rows` (B = rows.length); replies `logits [B, V]` and `hidden [B, H]` in row order. */
  | { op: 'step'; rows: StepRow[] }
  /** The whole logits row of `seq` from the last step (when its top candidates did not decide its token). */
  | { op: 'lastLogits'; seq: number }
  /** Drops a finished or cancelled sequence's KV cache and hidden state. */
  | { op: 'release'; seq: number }
  | { op: 'close' };

/** K largest logits of each row (`[rows, k]`), largest first, ties by lower id. */
export interface TopCandidates {
  k: number;
  ids: Int32Array;
  values: Float32Array;
}

/**
 * One decoder call's outputs over several rows (a batched step or prefill): `hidden` is `[rows, H]` in row order; row
 * b's logits are row `logitRows[b]` of `logits` (row b when absent, -1 = left out), its top candidates row b of `top`
 * (when sent).
 */
export interface BatchOutputs {
  logits: Float32Array;
  hidden: Float32Array | Uint16Array;
  logitRows?: Int32Array;
  top?: TopCandidates;
}

export type WorkerReply =
  | {
      ok: true;
      logits?: Float32Array;
      hidden?: Float32Array | Uint16Array;
      features?: Float32Array | Uint16Array;
      /** Per step row, the index of its row in `logits`, or -1 when left out; absent: row b is row b. */
      logitRows?: Int32Array;
      /** Per step row, its K largest logits and their ids, largest first (fused decoder). */
      top?: TopCandidates;
      /**
       * The step had already run ahead with exactly these inputs, started this many steps before the engine sent it
       * (1: while the engine picked the previous step's tokens; 2: before that).
       */
      ranAhead?: number;
      /**
       * That step's picks (token inputs, latent placeholders) were made from its predecessor's top candidates by the
       * addon (`FEED_PICK`, `PICK_UNFED`).
       */
      fedAhead?: boolean;
      /** init: the decoder that runs the steps (`ModelInfo.decoder`) and its attention kernel (`ModelInfo.gpuAttention`). */
      decoder?: ModelInfo['decoder'];
      gpuAttention?: GpuAttentionKernel;
      fusedProjections?: ModelInfo['fusedProjections'];
    }
  | { ok: false; error: string };
