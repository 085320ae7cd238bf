import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { EngineError } from '../errors';
import type {
  BatchOutputs,
  PrefillRequest,
  StepRow,
  VisionRequest,
  WorkerInit,
  WorkerReply,
  WorkerRequest,
} from './protocol';
import type { ModelInfo } from '../types';

export interface StepReply extends BatchOutputs {
  /** The fused decoder had run this step ahead, started this many steps early (see `WorkerReply`). */
  ranAhead?: number;
  /** Its token inputs were fed by the addon from the step before's top candidates (see `WorkerReply`). */
  fedAhead?: boolean;
}

/** Main-thread handle of the session worker: one request in flight at a time, in order. */
export class ModelWorker {
  private readonly worker: Worker;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** The decoder that runs the steps, as the worker opened it. */
  decoder: ModelInfo['decoder'] = 'plain';
  /** The fused decoder's attention kernel on the CUDA EP (`ModelInfo.gpuAttention`). */
  gpuAttention: ModelInfo['gpuAttention'];
  /** Who runs the fused decoder's projections (`ModelInfo.fusedProjections`). */
  fusedProjections: ModelInfo['fusedProjections'];

  private constructor() {
    const file = path.join(__dirname, `session-worker${path.extname(__filename)}`);
    this.worker = new Worker(file, { execArgv: process.execArgv });
    this.worker.unref();
  }

  static async start(init: WorkerInit): Promise<ModelWorker> {
    const w = new ModelWorker();
    try {
      const reply = await w.call({ op: 'init', init });
      w.decoder = reply.decoder ?? 'plain';
      w.gpuAttention = reply.gpuAttention;
      w.fusedProjections = reply.fusedProjections;
    } catch (e) {
      w.closed = true;
      await w.worker.terminate();
      throw e;
    }
    return w;
  }

  private call(msg: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerReply & { ok: true }> {
    const run = () =>
      new Promise<WorkerReply & { ok: true }>((resolve, reject) => {
        if (this.closed) return reject(new EngineError('engine is closed', 'engine_closed'));
        const onError = (e: Error) => reject(e);
        this.worker.once('error', onError);
        this.worker.once('message', (reply: WorkerReply) => {
          this.worker.off('error', onError);
          if (reply.ok) resolve(reply);
          else reject(new EngineError(`inference failed: ${reply.error}`, 'inference_failed'));
        });
        this.worker.postMessage(msg, transfer);
      });
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** The image's bytes are copied to the worker thread (a few MB; the caller's buffer may not be transferable). */
  async vision(req: VisionRequest): Promise<Float32Array | Uint16Array> {
    return (await this.call({ op: 'vision', req })).features!;
  }

  /**
   * Prompts of new sequences, prefilled together, in request order: `hidden [n, H]`; row k's logits at row
   * `logitRows[k]` of `logits` (row k when absent; -1: left out, its top candidates in `top` decide its first token).
   */
  async prefill(reqs: PrefillRequest[]): Promise<BatchOutputs> {
    const r = await this.call({ op: 'prefill', reqs });
    return { logits: r.logits!, hidden: r.hidden!, logitRows: r.logitRows, top: r.top };
  }

  /**
   * One batched decode step; `hidden` is `[rows, H]` in row order, `logits` holds row b's logits at row
   * `logitRows[b]` (row b when absent; -1: left out, see `StepRow.needsLogits`), `top` each row's top candidates.
   */
  async step(rows: StepRow[]): Promise<StepReply> {
    const r = await this.call({ op: 'step', rows });
    return {
      logits: r.logits!,
      hidden: r.hidden!,
      logitRows: r.logitRows,
      top: r.top,
      ranAhead: r.ranAhead,
      fedAhead: r.fedAhead,
    };
  }

  /** The whole logits row of `seq` from the last step (its top candidates did not decide its token). */
  async lastLogits(seq: number): Promise<Float32Array> {
    return (await this.call({ op: 'lastLogits', seq })).logits!;
  }

  /** Frees a sequence's KV cache in the worker (after its last step, or when it is cancelled). */
  async release(seq: number): Promise<void> {
    await this.call({ op: 'release', seq });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // The worker frees its device tensors and sessions before it is terminated.
    await this.call({ op: 'close' }).catch(() => undefined);
    this.closed = true;
    await this.worker.terminate();
  }
}
