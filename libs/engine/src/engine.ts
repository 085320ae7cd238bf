import type { BundleSource } from './bundle/source';
import type {
  ExecutionProviderName,
  GenerateOptions,
  GenerationDelta,
  GenerationRequest,
  ModelInfo,
} from './types';

export interface EngineLoadOptions {
  executionProvider?: ExecutionProviderName;
  /** Verify every file's sha256 against the manifest (default true). */
  verifyChecksums?: boolean;
  /** Intra-op threads per session (default: onnxruntime's choice). */
  threads?: number;
}

/** A loaded LVR bundle ready to generate. One instance serves requests one at a time, in arrival order. */
export class LvrEngine {
  private constructor() {}

  /** Loads a bundle from a local directory path or a BundleSource. */
  static async load(source: string | BundleSource, options: EngineLoadOptions = {}): Promise<LvrEngine> {
    void source;
    void options;
    throw new Error('LvrEngine.load: not implemented yet');
  }

  get info(): ModelInfo {
    throw new Error('not implemented yet');
  }

  /** Token count of the rendered prompt, images included (for context-length checks before generating). */
  async countPromptTokens(request: GenerationRequest): Promise<number> {
    void request;
    throw new Error('not implemented yet');
  }

  generate(request: GenerationRequest, options: GenerateOptions = {}): AsyncIterable<GenerationDelta> {
    void request;
    void options;
    throw new Error('not implemented yet');
  }

  async close(): Promise<void> {}
}
