import { EventEmitter } from 'node:events';
import type { FinishReason } from '@lvr/engine';

export interface SequenceFinished {
  requestId: string;
  model: string;
  choice: number;
  finishReason: FinishReason;
  /** Ids the engine generated for this choice before it stopped (from its final usage). */
  completionTokens: number;
  /** False when the choice was cancelled while still queued (the engine never ran it). */
  started: boolean;
}

/** In-process notifications about generation (used by logs and by tests that check compute really stopped). */
export class GenerationEvents {
  private readonly emitter = new EventEmitter();

  emitFinished(event: SequenceFinished): void {
    this.emitter.emit('finished', event);
  }

  onFinished(listener: (event: SequenceFinished) => void): () => void {
    this.emitter.on('finished', listener);
    return () => this.emitter.off('finished', listener);
  }
}
