import type { ExecutionProviderName } from '../types';

export type ModelDtype = 'float32' | 'float16';

export interface WorkerInit {
  graphs: { vision: string; embed: string; decoder: string };
  executionProvider: ExecutionProviderName;
  threads?: number;
  dtype: ModelDtype;
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  hiddenSize: number;
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
  inputIds: BigInt64Array;
  /** Concatenated image features (model dtype bits) scattered, in order, into `imagePadId` slots. */
  imageFeatures?: Float32Array | Uint16Array;
  imagePadId: number;
  positions: BigInt64Array; // [3, S]
}

export type WorkerRequest =
  | { op: 'init'; init: WorkerInit }
  | { op: 'vision'; req: VisionRequest }
  | { op: 'prefill'; req: PrefillRequest }
  | { op: 'step'; tokenId: number | null; position: number }
  | { op: 'close' };

export type WorkerReply =
  | {
      ok: true;
      logits?: Float32Array;
      hidden?: Float32Array | Uint16Array;
      features?: Float32Array | Uint16Array;
    }
  | { ok: false; error: string };
