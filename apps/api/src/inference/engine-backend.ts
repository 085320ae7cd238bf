import { LvrEngine, type BundleSource, type EngineLoadOptions } from '@lvr/engine';
import type { BackendRequest, InferenceBackend, LoadedModel } from './backend';

/** Adapter from the API's backend interface to libs/engine's `LvrEngine` (onnxruntime-node). */
export class EngineBackend implements InferenceBackend {
  constructor(private readonly options: EngineLoadOptions = {}) {}

  async load(source: string | BundleSource): Promise<LoadedModel> {
    const engine = await LvrEngine.load(source, this.options);
    return {
      info: engine.info,
      capabilities: { logprobs: true },
      countPromptTokens: (request: BackendRequest) => engine.countPromptTokens(request),
      generate: (request, options) => engine.generate(request, options),
      close: () => engine.close(),
    };
  }
}
