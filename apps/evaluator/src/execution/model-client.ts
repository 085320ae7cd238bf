import OpenAI from 'openai';
import type {
  ChatCompletionContentPart,
  ChatCompletionCreateParamsNonStreaming,
} from 'openai/resources/chat/completions';
import { RetryPolicy, withRetries } from './retry';
import { DecodingConfig } from './decoding';

export interface Completion {
  content: string;
  latentSteps: number;
  promptTokens: number;
  completionTokens: number;
  attempts: number;
  latencyMs: number;
}

export class UnknownModelError extends Error {}

export interface ModelClientOptions {
  baseURL: string;
  apiKey?: string;
  timeoutMs: number;
  retry: RetryPolicy;
}

/** The reasoning API through the official OpenAI SDK; retries are ours (counted and bounded), not the SDK's. */
export class ModelClient {
  private readonly client: OpenAI;

  constructor(private readonly options: ModelClientOptions) {
    this.client = new OpenAI({
      baseURL: options.baseURL,
      // The SDK insists on a key; the API ignores it when it runs without keys.
      apiKey: options.apiKey ?? 'no-key',
      timeout: options.timeoutMs,
      maxRetries: 0,
    });
  }

  /** Fails with UnknownModelError before any sample runs when the API does not serve `model`. */
  async checkModel(model: string, signal?: AbortSignal): Promise<void> {
    try {
      await withRetries(() => this.client.models.retrieve(model, { signal }), this.options.retry, signal);
    } catch (error) {
      if (error instanceof OpenAI.NotFoundError)
        throw new UnknownModelError(`the API at ${this.options.baseURL} does not serve model "${model}"`);
      throw error;
    }
  }

  async complete(
    model: string,
    content: ChatCompletionContentPart[],
    decoding: DecodingConfig,
    signal?: AbortSignal,
  ): Promise<Completion> {
    const body: ChatCompletionCreateParamsNonStreaming & { lvr?: object } = {
      model,
      messages: [{ role: 'user', content }],
      temperature: decoding.temperature,
      max_tokens: decoding.maxTokens,
      ...(decoding.strategy !== undefined || decoding.steps !== undefined
        ? {
            lvr: {
              strategy: decoding.strategy,
              steps: decoding.strategy === 'none' ? undefined : decoding.steps,
            },
          }
        : {}),
    };
    const started = performance.now();
    const { value, attempts } = await withRetries(
      () => this.client.chat.completions.create(body, { signal }),
      this.options.retry,
      signal,
    ).catch((error: unknown) => {
      if (error instanceof OpenAI.NotFoundError) throw new UnknownModelError(error.message);
      throw error;
    });
    const choice = value.choices[0] as (typeof value.choices)[number] & { lvr?: { latent_steps?: number } };
    return {
      content: choice?.message?.content ?? '',
      latentSteps: choice?.lvr?.latent_steps ?? 0,
      promptTokens: value.usage?.prompt_tokens ?? 0,
      completionTokens: value.usage?.completion_tokens ?? 0,
      attempts,
      latencyMs: performance.now() - started,
    };
  }
}
