import type { ExecutionProviderName } from '../types';

export type ModelDtype = 'float32' | 'float16';

export interface WorkerInit {
  /** `lvrHead`: the LVR head graph (LVR-SPEC §4.5), run on the output of every forward whose input was a latent. */
  graphs: { vision: string; embed: string; decoder: string; lvrHead?: string };
  executionProvider: ExecutionProviderName;
  /**
   * Keep KV caches in device buffers between steps (WebGPU only; default true there). `false` brings them to the
   * host after every step, the engine's first GPU path, kept as the benchmark's in-run baseline.
   */
  deviceKv?: boolean;
  threads?: number;
  dtype: ModelDtype;
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  hiddenSize: number;
}

/** Whether the worker keeps KV caches on the device: only the WebGPU EP can hand device tensors to Node. */
export function deviceKv(init: Pick<WorkerInit, 'executionProvider' | 'deviceKv'>): boolean {
  return init.executionProvider === 'webgpu' && init.deviceKv !== false;
}

export interface VisionRequest {
  pixelValues: Float32Array;
  numPatches: number;
  rotaryPosIds: BigInt64Array;
  windowIndex: BigInt64Array;
  reverseWindowIndex: BigInt64Array;
  windowIds: BigInt64Array;
}

export interface PrefillRequest {
  /** Sequence id chosen by the engine; the worker keeps this sequence's KV cache until `release`. */
  seq: number;
  inputIds: BigInt64Array;
  /** Concatenated image features (model dtype bits) scattered, in order, into `imagePadId` slots. */
  imageFeatures?: Float32Array | Uint16Array;
  imagePadId: number;
  positions: BigInt64Array; // [3, S]
}

/** One row of a batched decode step: the sequence's next input (a token, or `null` = its last hidden state). */
export interface StepRow {
  seq: number;
  tokenId: number | null;
  /** M-RoPE position of the new slot (same on all three axes). */
  position: number;
}

export type WorkerRequest =
  | { op: 'init'; init: WorkerInit }
  | { op: 'vision'; req: VisionRequest }
  | { op: 'prefill'; req: PrefillRequest }
  /** One decoder call over `rows` (B = rows.length); replies `logits [B, V]` and `hidden [B, H]` in row order. */
  | { op: 'step'; rows: StepRow[] }
  /** Drops a finished or cancelled sequence's KV cache and hidden state. */
  | { op: 'release'; seq: number }
  | { op: 'close' };

export type WorkerReply =
  | {
      ok: true;
      logits?: Float32Array;
      hidden?: Float32Array | Uint16Array;
      features?: Float32Array | Uint16Array;
    }
  | { ok: false; error: string };
