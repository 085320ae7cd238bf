import { applyDecorators, Injectable, type INestApplication } from '@nestjs/common';
import { ApiOperation, type OpenAPIObject } from '@nestjs/swagger';
import {
  ApiErrorResponses,
  buildServiceDocument,
  validatorSchemas,
  type SchemaObject,
} from '@lvr/service-kit';
import type { ApiConfig } from '../config/api-config';
import {
  ChatCompletionRequestDto,
  ChatMessageDto,
  ImagePartDto,
  ImageUrlDto,
  LvrOptionsDto,
  ResponseFormatDto,
  StreamOptionsDto,
  TextPartDto,
} from '../protocol/chat-completion.request';

type Schema = SchemaObject & Record<string, unknown>;

/** The request DTOs whose validation decorators become the document's request schemas. */
const REQUEST_DTOS = [
  ChatCompletionRequestDto,
  ChatMessageDto,
  TextPartDto,
  ImagePartDto,
  ImageUrlDto,
  StreamOptionsDto,
  ResponseFormatDto,
  LvrOptionsDto,
];

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request (`param` names the field)',
  401: 'Missing or wrong API key',
  404: 'Unknown model',
  413: 'Request body too large',
  415: 'Unsupported content encoding or charset',
  429: 'Overloaded; see Retry-After',
  500: 'Internal error; the message names the request id',
  503: 'Shutting down',
};

/** An operation's id and the OpenAI error objects it may answer with. */
export function ApiOperationDoc(operationId: string, errorStatuses: number[] = []): MethodDecorator {
  return applyDecorators(
    ApiOperation({ operationId }),
    ApiErrorResponses(
      Object.fromEntries(errorStatuses.map((status) => [status, ERROR_DESCRIPTIONS[status]])),
    ),
  );
}

/**
 * JSON Schemas of the request DTOs, read from their class-validator decorators, named without the `Dto` suffix
 * (`ChatCompletionRequest`): the document speaks protocol, not classes.
 */
function requestSchemas(): Record<string, Schema> {
  const schemas = validatorSchemas(REQUEST_DTOS.map((dto) => dto.name));
  const renamed = Object.fromEntries(
    Object.entries(schemas).map(([name, schema]) => [schemaName(name), schema]),
  );
  return JSON.parse(
    JSON.stringify(renamed).replace(/"#\/components\/schemas\/(\w+)Dto"/g, '"#/components/schemas/$1"'),
  ) as Record<string, Schema>;
}

const schemaName = (className: string): string => className.replace(/Dto$/, '');

/**
 * The OpenAPI document: operations from the controllers (`@nestjs/swagger`), request schemas from the DTOs, and the
 * limits this running server was configured with, so the fuzz tests generate exactly what it promises to accept.
 */
export function buildOpenApiDocument(app: INestApplication, config: ApiConfig): OpenAPIObject {
  const schemas = requestSchemas();
  const request = schemas.ChatCompletionRequest as { properties: Record<string, Schema> } & Schema;
  // Any other top-level field (tools, tool_choice, …) is refused with 400 unsupported_parameter, never ignored.
  request.additionalProperties = false;
  request.properties.n.maximum = config.maxN;
  request.properties.max_tokens.maximum = config.maxCompletionTokens;
  request.properties.max_completion_tokens.maximum = config.maxCompletionTokens;
  request.properties.top_logprobs.maximum = config.maxTopLogprobs;
  return buildServiceDocument(app, {
    title: 'LVR Platform reasoning API',
    description:
      'OpenAI-compatible chat completions for Latent Visual Reasoning (Qwen2.5-VL) models. Extra vLLM sampling ' +
      'fields and an `lvr` object control latent decoding; responses report latent steps per choice and in usage.',
    bearerAuth: config.apiKeys.length > 0,
    schemas,
  });
}

/** Holds the document built at startup; each read names the models served right now. */
@Injectable()
export class OpenApiDocument {
  private document: OpenAPIObject | undefined;

  set(document: OpenAPIObject): void {
    this.document = document;
  }

  /** The served ids are the only valid `model` values (anything else is a 404), so the document says so. */
  withModels(modelIds: string[]): OpenAPIObject {
    if (!this.document) throw new Error('the OpenAPI document is built when the app is created');
    const copy = structuredClone(this.document);
    if (modelIds.length > 0) {
      const request = copy.components!.schemas!.ChatCompletionRequest as {
        properties: Record<string, Schema>;
      };
      request.properties.model.enum = modelIds;
      for (const operation of Object.values(copy.paths).flatMap((item) => Object.values(item))) {
        for (const parameter of (operation as { parameters?: Schema[] }).parameters ?? []) {
          if (parameter.in === 'path') (parameter.schema as Schema).examples = modelIds;
        }
      }
    }
    return copy;
  }
}
