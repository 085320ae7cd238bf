import type { BatchOutputs, PrefillRequest } from '../runtime/protocol';
import { rowResult } from './batch-outputs';
import type { StepResult } from './loop';

/** Prefills `reqs` in one worker call (`BatchOutputs` in request order); all or none kept. */
export type BatchPrefillFn = (reqs: PrefillRequest[]) => Promise<BatchOutputs>;

interface Pending {
  req: PrefillRequest;
  resolve(r: StepResult): void;
  reject(e: unknown): void;
}

/** Default of `PrefillBatcher`'s position budget (`EngineLoadOptions.maxPrefillPositions`). */
export const DEFAULT_MAX_PREFILL_POSITIONS = 16384;

/**
 * Batches prompt prefills: prompts submitted in the same turn of the event loop, or while a prefill call runs, go to
 * the worker together, in arrival order, in chunks of at most `maxPositions` padded positions (prompts × the longest;
 * a longer prompt goes alone). A chunk that fails is retried prompt by prompt, so a bad prompt fails alone and the
 * others still run.
 */
export class PrefillBatcher {
  private pending: Pending[] = [];
  private scheduled = false;
  private running = false;
  /**
   * Prefill calls made, prompts prefilled, the most in one call, and prompts whose logits the worker left out (their
   * top candidates decided the first token) (tests and benchmarks).
   */
  readonly stats = { calls: 0, prompts: 0, maxPrompts: 0, logitsLeftOut: 0 };

  constructor(
    private readonly run: BatchPrefillFn,
    private readonly vocabSize: number,
    private readonly hiddenSize: number,
    private readonly maxPositions: number,
  ) {}

  prefill(req: PrefillRequest): Promise<StepResult> {
    return new Promise<StepResult>((resolve, reject) => {
      this.pending.push({ req, resolve, reject });
      if (this.running || this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        void this.flush();
      });
    });
  }

  private async flush(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.pending.length) await this.runChunk(this.takeChunk());
    } finally {
      this.running = false;
    }
  }

  private takeChunk(): Pending[] {
    let longest = this.pending[0].req.inputIds.length;
    let n = 1;
    for (; n < this.pending.length; n++) {
      const len = Math.max(longest, this.pending[n].req.inputIds.length);
      if ((n + 1) * len > this.maxPositions) break;
      longest = len;
    }
    return this.pending.splice(0, n);
  }

  private async runChunk(chunk: Pending[]): Promise<void> {
    try {
      this.settle(chunk, await this.run(chunk.map((p) => p.req)));
    } catch (error) {
      if (chunk.length === 1) return chunk[0].reject(error);
      for (const p of chunk) {
        try {
          this.settle([p], await this.run([p.req]));
        } catch (e) {
          p.reject(e);
        }
      }
    }
  }

  private settle(chunk: Pending[], out: BatchOutputs): void {
    this.stats.calls++;
    this.stats.prompts += chunk.length;
    this.stats.maxPrompts = Math.max(this.stats.maxPrompts, chunk.length);
    this.stats.logitsLeftOut += out.logitRows?.filter((row) => row < 0).length ?? 0;
    chunk.forEach((p, k) => p.resolve(rowResult(out, k, this.vocabSize, this.hiddenSize)));
  }
}
