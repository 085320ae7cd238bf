import type { GenerateOptions, ModelInfo } from '@lvr/engine';
import type {
  BackendDelta,
  BackendRequest,
  InferenceBackend,
  LoadedModel,
} from '../../src/inference/backend';

/**
 * A scripted backend for unit tests of pure HTTP logic (validation, errors, auth, SSE framing, scheduling).
 * It emits `tokens` one per step, optionally waiting `stepMs` between steps, honours the abort signal like the
 * engine does, and records every call so tests can assert on what the API asked for and whether compute stopped.
 */
export interface FakeScript {
  /** Visible pieces; a piece `{latent: true}` is a latent placeholder. */
  tokens?: Array<string | { text: string; latent: true }>;
  stepMs?: number;
  promptTokens?: number;
  /** Throw this from generate() before the first delta. */
  fail?: Error;
}

export interface FakeCall {
  request: BackendRequest;
  steps: number;
  finishReason?: string;
  aborted: boolean;
  done: boolean;
}

export function fakeModelInfo(id: string): ModelInfo {
  return {
    id,
    maxContextTokens: 4096,
    vocabSize: 1000,
    hiddenSize: 16,
    specialTokens: {
      imagePad: 1,
      visionStart: 2,
      visionEnd: 3,
      lvrStart: 4,
      lvr: 5,
      lvrLatentEnd: 6,
      lvrEnd: 7,
      eos: [8],
      pad: 8,
    },
    lvrDefaults: { strategy: 'steps', steps: 4 },
    executionProvider: 'cpu',
    decoder: 'plain',
  };
}

export class FakeBackend implements InferenceBackend {
  readonly calls: FakeCall[] = [];
  readonly loaded: string[] = [];
  script: FakeScript = { tokens: ['Hello', ' world'] };

  constructor(private readonly idFor: (source: string) => string = (s) => s.split('/').pop() ?? s) {}

  async load(source: unknown): Promise<LoadedModel> {
    const uri = typeof source === 'string' ? source : (source as { uri: string }).uri;
    if (uri.includes('broken')) throw new Error('bundle is broken');
    this.loaded.push(uri);
    const info = fakeModelInfo(this.idFor(uri));
    return {
      info,
      capabilities: { logprobs: true },
      countPromptTokens: async () => this.script.promptTokens ?? 7,
      generate: (request, options) => this.run(request, options),
      close: async () => undefined,
    };
  }

  private async *run(request: BackendRequest, options: GenerateOptions): AsyncIterable<BackendDelta> {
    const call: FakeCall = { request, steps: 0, aborted: false, done: false };
    this.calls.push(call);
    const script = this.script;
    if (script.fail) throw script.fail;
    const tokens = script.tokens ?? [];
    const max = request.sampling?.maxTokens ?? Infinity;
    let latentSteps = 0;
    let finish: 'stop' | 'length' | 'abort' = 'stop';
    const promptTokens = script.promptTokens ?? 7;
    try {
      for (let i = 0; i < tokens.length; i++) {
        if (script.stepMs) await new Promise((r) => setTimeout(r, script.stepMs));
        if (options.signal?.aborted) {
          finish = 'abort';
          call.aborted = true;
          break;
        }
        if (call.steps >= max) {
          finish = 'length';
          break;
        }
        const t = tokens[i];
        const latent = typeof t !== 'string';
        if (latent) latentSteps++;
        call.steps++;
        const text = typeof t === 'string' ? t : t.text;
        yield {
          text,
          tokenIds: [100 + i],
          latent,
          finishReason: null,
          logprobs:
            request.topLogprobs !== undefined
              ? [
                  {
                    token: text,
                    logprob: -0.5,
                    bytes: [...Buffer.from(text)],
                    topLogprobs: Array.from({ length: request.topLogprobs }, (_, k) => ({
                      token: `alt${k}`,
                      logprob: -1 - k,
                      bytes: null,
                    })),
                  },
                ]
              : undefined,
        };
      }
      call.finishReason = finish;
      yield {
        text: '',
        tokenIds: [],
        latent: false,
        finishReason: finish,
        usage: {
          promptTokens,
          completionTokens: call.steps,
          totalTokens: promptTokens + call.steps,
          latentSteps,
          imageTokens: 0,
        },
      };
    } finally {
      call.done = true;
    }
  }
}
