import type { ApiConfig } from '../config/api-config';
import { LIMITS, LVR_STRATEGIES, ROLES } from '../protocol/chat-completion.request';

type Schema = Record<string, unknown>;

const errorResponse = (description: string): Schema => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorResponse' } } },
});

/**
 * The OpenAPI 3.1 document served at `/docs` (written from the protocol DTOs; limits come from the running config,
 * so the fuzz tests generate exactly what this server promises to accept).
 */
export function buildOpenApiDocument(config: ApiConfig, modelIds: string[] = []): Schema {
  const nullable = (schema: Schema): Schema => ({ anyOf: [schema, { type: 'null' }] });
  return {
    openapi: '3.1.0',
    info: {
      title: 'LVR Platform reasoning API',
      version: '1.0.0',
      description:
        'OpenAI-compatible chat completions for Latent Visual Reasoning (Qwen2.5-VL) models. Extra vLLM sampling ' +
        'fields and an `lvr` object control latent decoding; responses report latent steps per choice and in usage.',
    },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } },
      schemas: {
        ErrorResponse: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['message', 'type', 'param', 'code'],
              properties: {
                message: { type: 'string' },
                type: { type: 'string' },
                param: nullable({ type: 'string' }),
                code: nullable({ type: 'string' }),
              },
            },
          },
        },
        TextPart: {
          type: 'object',
          required: ['type', 'text'],
          properties: { type: { const: 'text' }, text: { type: 'string', maxLength: LIMITS.maxTextChars } },
        },
        ImagePart: {
          type: 'object',
          required: ['type', 'image_url'],
          properties: {
            type: { const: 'image_url' },
            image_url: {
              type: 'object',
              required: ['url'],
              properties: {
                url: {
                  type: 'string',
                  minLength: 1,
                  description:
                    'data:image/...;base64,..., http(s):// (public hosts only) or allow-listed file://',
                },
                detail: { enum: ['auto', 'low', 'high'] },
              },
            },
          },
        },
        Message: {
          type: 'object',
          required: ['role', 'content'],
          properties: {
            role: { enum: [...ROLES] },
            content: {
              anyOf: [
                { type: 'string', maxLength: LIMITS.maxTextChars },
                {
                  type: 'array',
                  minItems: 1,
                  maxItems: LIMITS.maxParts,
                  items: {
                    anyOf: [
                      { $ref: '#/components/schemas/TextPart' },
                      { $ref: '#/components/schemas/ImagePart' },
                    ],
                  },
                },
              ],
            },
            name: { type: 'string', maxLength: 256 },
          },
        },
        ChatCompletionRequest: {
          type: 'object',
          required: ['model', 'messages'],
          // Any other field (tools, tool_choice, …) is refused with 400 unsupported_parameter, never ignored.
          additionalProperties: false,
          properties: {
            model: {
              type: 'string',
              minLength: 1,
              maxLength: LIMITS.maxModelIdChars,
              // The served ids: anything else is a 404, so the document says so.
              ...(modelIds.length > 0 ? { enum: modelIds } : {}),
            },
            messages: {
              type: 'array',
              minItems: 1,
              maxItems: LIMITS.maxMessages,
              items: { $ref: '#/components/schemas/Message' },
            },
            n: { type: 'integer', minimum: 1, maximum: config.maxN },
            max_tokens: { type: 'integer', minimum: 1, maximum: config.maxCompletionTokens },
            max_completion_tokens: { type: 'integer', minimum: 1, maximum: config.maxCompletionTokens },
            temperature: { type: 'number', minimum: 0, maximum: 2 },
            top_p: { type: 'number', minimum: 0, maximum: 1 },
            seed: { type: 'integer', minimum: -(2 ** 53 - 1), maximum: 2 ** 53 - 1 },
            stop: {
              anyOf: [
                { type: 'string', minLength: 1, maxLength: LIMITS.maxStopChars },
                {
                  type: 'array',
                  maxItems: LIMITS.maxStop,
                  items: { type: 'string', minLength: 1, maxLength: LIMITS.maxStopChars },
                },
              ],
            },
            logprobs: {
              type: 'boolean',
              description:
                'log-probabilities of the raw model distribution (before repetition penalty, temperature, top-k/p; ' +
                "vLLM's default); latent placeholders are not in logprobs.content (with lvr.return_trace they are " +
                'in lvr.trace[].logprobs)',
            },
            top_logprobs: { type: 'integer', minimum: 0, maximum: config.maxTopLogprobs },
            stream: { type: 'boolean' },
            stream_options: {
              type: 'object',
              properties: { include_usage: { type: 'boolean' }, continuous_usage_stats: { type: 'boolean' } },
            },
            presence_penalty: {
              type: 'number',
              minimum: -2,
              maximum: 2,
              description: 'subtracted once from the logit of every id generated so far',
            },
            frequency_penalty: {
              type: 'number',
              minimum: -2,
              maximum: 2,
              description: "subtracted from a generated id's logit once per occurrence",
            },
            logit_bias: {
              type: 'object',
              maxProperties: LIMITS.maxLogitBias,
              propertyNames: { pattern: '^[0-9]{1,9}$' },
              additionalProperties: { type: 'number', minimum: -100, maximum: 100 },
              description:
                'token id -> bias added to its logit; e.g. {"151665": 100} forces <|lvr_start|> (a latent block)',
            },
            response_format: {
              type: 'object',
              required: ['type'],
              properties: { type: { enum: ['text'] } },
              description: 'only text: json_object / json_schema are refused (400 unsupported_parameter)',
            },
            user: { type: 'string', maxLength: 256 },
            top_k: { type: 'integer', minimum: -1, description: '-1 or 0 disables top-k' },
            min_p: { type: 'number', minimum: 0, maximum: 1 },
            repetition_penalty: { type: 'number', minimum: 0.01, maximum: 10 },
            stop_token_ids: {
              type: 'array',
              maxItems: LIMITS.maxStopTokenIds,
              items: { type: 'integer', minimum: 0 },
            },
            ignore_eos: { type: 'boolean' },
            skip_special_tokens: { type: 'boolean' },
            add_generation_prompt: { type: 'boolean' },
            continue_final_message: {
              type: 'boolean',
              description:
                'continue the last (assistant, text-only) message, e.g. "<|lvr_start|>" to open a latent block; ' +
                'requires add_generation_prompt: false (as in vLLM)',
            },
            lvr: {
              type: 'object',
              description: "Latent decoding; omitted fields use the model bundle's defaults.",
              properties: {
                strategy: { enum: [...LVR_STRATEGIES] },
                steps: { type: 'integer', minimum: 0, maximum: LIMITS.maxLatentSteps },
                return_trace: {
                  type: 'boolean',
                  description: 'return latent placeholder tokens as choices[].lvr.trace',
                },
              },
            },
          },
        },
        Usage: {
          type: 'object',
          required: ['prompt_tokens', 'completion_tokens', 'total_tokens'],
          properties: {
            prompt_tokens: { type: 'integer' },
            completion_tokens: { type: 'integer', description: 'latent placeholders included' },
            total_tokens: { type: 'integer' },
            prompt_tokens_details: {
              type: 'object',
              properties: { cached_tokens: { type: 'integer' }, image_tokens: { type: 'integer' } },
            },
            completion_tokens_details: {
              type: 'object',
              properties: { reasoning_tokens: { type: 'integer' }, latent_steps: { type: 'integer' } },
            },
          },
        },
        ChatCompletion: {
          type: 'object',
          required: ['id', 'object', 'created', 'model', 'choices', 'usage'],
          properties: {
            id: { type: 'string' },
            object: { const: 'chat.completion' },
            created: { type: 'integer' },
            model: { type: 'string' },
            choices: {
              type: 'array',
              items: {
                type: 'object',
                required: ['index', 'message', 'finish_reason'],
                properties: {
                  index: { type: 'integer' },
                  message: {
                    type: 'object',
                    properties: { role: { const: 'assistant' }, content: { type: 'string' } },
                  },
                  finish_reason: { enum: ['stop', 'length', 'abort'] },
                  logprobs: { anyOf: [{ type: 'object' }, { type: 'null' }] },
                  lvr: {
                    type: 'object',
                    properties: { latent_steps: { type: 'integer' }, trace: { type: 'array' } },
                  },
                },
              },
            },
            usage: { $ref: '#/components/schemas/Usage' },
          },
        },
        Model: {
          type: 'object',
          required: ['id', 'object', 'created', 'owned_by'],
          properties: {
            id: { type: 'string' },
            object: { const: 'model' },
            created: { type: 'integer' },
            owned_by: { type: 'string' },
            max_model_len: { type: 'integer' },
            lvr: { type: 'object' },
          },
        },
      },
    },
    security: config.apiKeys.length > 0 ? [{ bearerAuth: [] }] : [],
    paths: {
      '/v1/chat/completions': {
        post: {
          operationId: 'createChatCompletion',
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: { $ref: '#/components/schemas/ChatCompletionRequest' } },
            },
          },
          responses: {
            '200': {
              description: 'A completion, or server-sent `chat.completion.chunk` events ending with `[DONE]`',
              content: {
                'application/json': { schema: { $ref: '#/components/schemas/ChatCompletion' } },
                'text/event-stream': { schema: { type: 'string' } },
              },
            },
            '400': errorResponse('Invalid request (`param` names the field)'),
            '401': errorResponse('Missing or wrong API key'),
            '404': errorResponse('Unknown model'),
            '413': errorResponse('Request body too large'),
            '415': errorResponse('Unsupported content encoding or charset'),
            '429': errorResponse('Overloaded; see Retry-After'),
            '500': errorResponse('Internal error; the message names the request id'),
            '503': errorResponse('Shutting down'),
          },
        },
      },
      '/v1/models': {
        get: {
          operationId: 'listModels',
          responses: {
            '200': {
              description: 'Loaded models',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: ['object', 'data'],
                    properties: {
                      object: { const: 'list' },
                      data: { type: 'array', items: { $ref: '#/components/schemas/Model' } },
                    },
                  },
                },
              },
            },
            '401': errorResponse('Missing or wrong API key'),
          },
        },
      },
      '/v1/models/{model}': {
        get: {
          operationId: 'retrieveModel',
          parameters: [
            {
              name: 'model',
              in: 'path',
              required: true,
              schema: {
                type: 'string',
                minLength: 1,
                ...(modelIds.length > 0 ? { examples: modelIds } : {}),
              },
            },
          ],
          responses: {
            '200': {
              description: 'The model',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Model' } } },
            },
            '401': errorResponse('Missing or wrong API key'),
            '404': errorResponse('Unknown model'),
          },
        },
      },
      '/health/live': {
        get: {
          operationId: 'live',
          security: [],
          responses: { '200': { description: 'The process answers' } },
        },
      },
      '/health/ready': {
        get: {
          operationId: 'ready',
          security: [],
          responses: {
            '200': { description: 'Models loaded' },
            '503': { description: 'Loading, failed or draining' },
          },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          security: [],
          responses: {
            '200': {
              description: 'Prometheus text format',
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
          },
        },
      },
    },
  };
}
