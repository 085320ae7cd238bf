import { plainToInstance, type ClassConstructor } from 'class-transformer';
import { getMetadataStorage, validateSync, type ValidationError } from 'class-validator';
import { ApiError } from '../errors/api-error';
import {
  CONTENT_PART_TYPES,
  ChatCompletionRequestDto,
  ImagePartDto,
  TextPartDto,
  type ContentPartDto,
} from './chat-completion.request';

const MAX_DEPTH = 24;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Rejects prototype-pollution keys and absurd nesting before class-transformer copies the body. */
function checkShape(value: unknown, path: string, depth: number): void {
  if (depth > MAX_DEPTH)
    throw ApiError.badRequest(`Request nesting deeper than ${MAX_DEPTH} levels`, path || null);
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkShape(v, `${path}[${i}]`, depth + 1));
  } else if (value !== null && typeof value === 'object') {
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key))
        throw ApiError.badRequest(`Forbidden field name '${key}'`, path ? `${path}.${key}` : key);
      checkShape((value as Record<string, unknown>)[key], path ? `${path}.${key}` : key, depth + 1);
    }
  }
}

function joinPath(prefix: string, property: string): string {
  if (/^\d+$/.test(property)) return `${prefix}[${property}]`;
  return prefix ? `${prefix}.${property}` : property;
}

/** First leaf error → OpenAI `param` path (`messages[0].content[1].image_url.url`) and its message. */
export function firstError(
  errors: ValidationError[],
  prefix = '',
): { param: string; message: string } | undefined {
  for (const error of errors) {
    const path = joinPath(prefix, error.property);
    if (error.constraints && Object.keys(error.constraints).length > 0) {
      const message = Object.values(error.constraints)[0];
      return {
        param: path,
        message: message.replace(new RegExp(`^${escapeRegExp(error.property)}\\b`), path),
      };
    }
    const nested = firstError(error.children ?? [], path);
    if (nested) return nested;
  }
  return undefined;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function validateAs<T extends object>(cls: ClassConstructor<T>, plain: unknown, prefix: string): T {
  const instance = plainToInstance(cls, plain, { enableImplicitConversion: false });
  const errors = validateSync(instance, {
    forbidUnknownValues: false,
    validationError: { target: false, value: false },
  });
  const first = firstError(errors, prefix);
  if (first) throw ApiError.badRequest(first.message, first.param);
  return instance;
}

/** Top-level fields the request DTO declares (and therefore honours). */
const DECLARED_FIELDS = new Set(
  getMetadataStorage()
    .getTargetValidationMetadatas(ChatCompletionRequestDto, '', true, false)
    .map((m) => m.propertyName),
);

/** A field the server would otherwise ignore (tools, tool_choice, functions, audio, …) is refused, never dropped. */
function refuseUndeclaredFields(body: object): void {
  for (const key of Object.keys(body)) {
    if (!DECLARED_FIELDS.has(key))
      throw ApiError.badRequest(`${key} is not supported by this server`, key, 'unsupported_parameter');
  }
}

export interface ValidatedChatRequest {
  dto: ChatCompletionRequestDto;
  /** `messages[i].content` normalised to parts. */
  parts: ContentPartDto[][];
}

/** Schema validation of a chat completion body (400 with `param` on the first problem). */
export function validateChatRequest(body: unknown): ValidatedChatRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw ApiError.badRequest('Request body must be a JSON object', null);
  }
  checkShape(body, '', 0);
  refuseUndeclaredFields(body);
  const dto = validateAs(ChatCompletionRequestDto, body, '');
  const parts = dto.messages.map((message, i) => {
    if (typeof message.content === 'string') {
      const text = new TextPartDto();
      text.type = 'text';
      text.text = message.content;
      return [text] as ContentPartDto[];
    }
    return message.content.map((part, j) => {
      const path = `messages[${i}].content[${j}]`;
      if (part === null || typeof part !== 'object' || Array.isArray(part)) {
        throw ApiError.badRequest(`${path} must be an object`, path);
      }
      const type = (part as { type?: unknown }).type;
      if (!CONTENT_PART_TYPES.includes(type as (typeof CONTENT_PART_TYPES)[number])) {
        throw ApiError.badRequest(
          `${path}.type must be one of: ${CONTENT_PART_TYPES.join(', ')}`,
          `${path}.type`,
        );
      }
      const parsed =
        type === 'text' ? validateAs(TextPartDto, part, path) : validateAs(ImagePartDto, part, path);
      if (parsed.type === 'image_url' && message.role !== 'user') {
        throw ApiError.badRequest(`Images are only accepted in user messages`, `${path}.image_url`);
      }
      return parsed;
    });
  });
  checkCrossFields(dto);
  return { dto, parts };
}

function checkCrossFields(dto: ChatCompletionRequestDto): void {
  if (dto.stream_options !== undefined && dto.stream !== true) {
    throw ApiError.badRequest('stream_options is only allowed when stream is true', 'stream_options');
  }
  if (dto.top_logprobs !== undefined && dto.top_logprobs > 0 && dto.logprobs !== true) {
    throw ApiError.badRequest('top_logprobs requires logprobs to be true', 'top_logprobs');
  }
  if (dto.response_format !== undefined && dto.response_format.type !== 'text') {
    throw ApiError.badRequest(
      `response_format ${dto.response_format.type} is not supported (no constrained decoding); only text`,
      'response_format',
      'unsupported_parameter',
    );
  }
  if (dto.continue_final_message) {
    // vLLM's rule (and HF apply_chat_template's): continuing the final message excludes a new generation prompt.
    if (dto.add_generation_prompt !== false) {
      throw ApiError.badRequest(
        'Cannot set both continue_final_message and add_generation_prompt to true ' +
          '(add_generation_prompt defaults to true: send add_generation_prompt: false)',
        'add_generation_prompt',
      );
    }
    const last = dto.messages[dto.messages.length - 1];
    const textOnly =
      typeof last.content === 'string' ||
      last.content.every(
        (p) => typeof p === 'object' && p !== null && (p as { type?: unknown }).type === 'text',
      );
    if (last.role !== 'assistant' || !textOnly) {
      throw ApiError.badRequest(
        'continue_final_message requires the last message to be an assistant message with text only',
        `messages[${dto.messages.length - 1}]`,
      );
    }
    if (dto.messages.length < 2) {
      throw ApiError.badRequest(
        'continue_final_message needs a message before the assistant prefix',
        'messages',
      );
    }
  }
  if (
    dto.max_tokens !== undefined &&
    dto.max_completion_tokens !== undefined &&
    dto.max_tokens !== dto.max_completion_tokens
  ) {
    throw ApiError.badRequest(
      'max_tokens and max_completion_tokens disagree; send one of them',
      'max_completion_tokens',
    );
  }
}
