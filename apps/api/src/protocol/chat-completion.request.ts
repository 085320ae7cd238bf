import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsDefined,
  IsIn,
  IsInt,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
  MinLength,
  ValidateBy,
  ValidateNested,
  type ValidationOptions,
} from 'class-validator';

/**
 * `POST /v1/chat/completions` request (OpenAI schema plus vLLM and LVR extras). Protocol only: no serving logic.
 * Every field declared here is honoured; any other top-level field (`tools`, `tool_choice`, `functions`, `audio`, …)
 * is refused with 400 `unsupported_parameter` rather than silently ignored (see `validate.ts`).
 */

export const LIMITS = {
  maxMessages: 256,
  maxParts: 64,
  maxTextChars: 1_000_000,
  maxUrlChars: 30_000_000,
  maxStop: 16,
  maxStopChars: 256,
  maxStopTokenIds: 64,
  maxModelIdChars: 256,
  maxLatentSteps: 256,
  maxTopLogprobs: 20,
  maxN: 128,
  maxLogitBias: 300,
  maxAbsLogitBias: 100,
};

export const ROLES = ['system', 'user', 'assistant', 'developer'] as const;
export type Role = (typeof ROLES)[number];
export const LVR_STRATEGIES = ['steps', 'latent', 'end_token', 'none'] as const;

const finiteNumber = { allowNaN: false, allowInfinity: false };

function IsStringOrStringArray(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isStringOrStringArray',
      validator: {
        validate: (value: unknown) =>
          typeof value === 'string'
            ? value.length > 0 && value.length <= LIMITS.maxStopChars
            : Array.isArray(value) &&
              value.length <= LIMITS.maxStop &&
              value.every((s) => typeof s === 'string' && s.length > 0 && s.length <= LIMITS.maxStopChars),
        defaultMessage: () =>
          `stop must be a non-empty string or an array of at most ${LIMITS.maxStop} non-empty strings ` +
          `(each at most ${LIMITS.maxStopChars} characters)`,
      },
    },
    options,
  );
}

/** OpenAI `logit_bias`: at most `maxLogitBias` entries, token-id keys, finite biases in -100..100. */
function IsLogitBias(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isLogitBias',
      validator: {
        validate: (value: unknown) =>
          value !== null &&
          typeof value === 'object' &&
          !Array.isArray(value) &&
          Object.keys(value).length <= LIMITS.maxLogitBias &&
          Object.entries(value).every(
            ([k, v]) =>
              /^\d{1,9}$/.test(k) &&
              typeof v === 'number' &&
              Number.isFinite(v) &&
              Math.abs(v) <= LIMITS.maxAbsLogitBias,
          ),
        defaultMessage: () =>
          `logit_bias must map at most ${LIMITS.maxLogitBias} token ids (as strings) to numbers in ` +
          `-${LIMITS.maxAbsLogitBias}..${LIMITS.maxAbsLogitBias}`,
      },
    },
    options,
  );
}

/** `content`: a string or a non-empty array of parts (the parts are validated one by one afterwards). */
function IsMessageContent(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isMessageContent',
      validator: {
        validate: (value: unknown) =>
          (typeof value === 'string' && value.length <= LIMITS.maxTextChars) ||
          (Array.isArray(value) && value.length >= 1 && value.length <= LIMITS.maxParts),
        defaultMessage: () => `content must be a string or an array of 1 to ${LIMITS.maxParts} content parts`,
      },
    },
    options,
  );
}

export class ImageUrlDto {
  @IsString()
  @MinLength(1)
  @MaxLength(LIMITS.maxUrlChars)
  url!: string;

  /** Accepted for compatibility and ignored (like vLLM). */
  @IsOptional()
  @IsIn(['auto', 'low', 'high'])
  detail?: 'auto' | 'low' | 'high';
}

export class TextPartDto {
  @IsIn(['text'])
  type!: 'text';

  @IsString()
  @MaxLength(LIMITS.maxTextChars)
  text!: string;
}

export class ImagePartDto {
  @IsIn(['image_url'])
  type!: 'image_url';

  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => ImageUrlDto)
  image_url!: ImageUrlDto;
}

export type ContentPartDto = TextPartDto | ImagePartDto;
export const CONTENT_PART_TYPES = ['text', 'image_url'] as const;

export class ChatMessageDto {
  @IsIn(ROLES)
  role!: Role;

  @IsMessageContent()
  content!: string | unknown[];

  @IsOptional()
  @IsString()
  @MaxLength(256)
  name?: string;
}

export class StreamOptionsDto {
  @IsOptional()
  @IsBoolean()
  include_usage?: boolean;

  @IsOptional()
  @IsBoolean()
  continuous_usage_stats?: boolean;
}

/** Only `text` (the default) is honoured; json_object / json_schema would need constrained decoding. */
export const RESPONSE_FORMATS = ['text', 'json_object', 'json_schema'] as const;

export class ResponseFormatDto {
  @IsIn(RESPONSE_FORMATS)
  type!: (typeof RESPONSE_FORMATS)[number];
}

export class LvrOptionsDto {
  @IsOptional()
  @IsIn(LVR_STRATEGIES)
  strategy?: (typeof LVR_STRATEGIES)[number];

  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(LIMITS.maxLatentSteps)
  steps?: number;

  /** Return the latent placeholder tokens (normally removed from the visible text) as `lvr.trace`. */
  @IsOptional()
  @IsBoolean()
  return_trace?: boolean;
}

export class ChatCompletionRequestDto {
  @IsString()
  @MinLength(1)
  @MaxLength(LIMITS.maxModelIdChars)
  model!: string;

  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(LIMITS.maxMessages)
  @ValidateNested({ each: true })
  @Type(() => ChatMessageDto)
  messages!: ChatMessageDto[];

  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(LIMITS.maxN)
  n?: number;

  @IsOptional()
  @IsInt()
  @Min(1)
  max_tokens?: number;

  @IsOptional()
  @IsInt()
  @Min(1)
  max_completion_tokens?: number;

  @IsOptional()
  @IsNumber(finiteNumber)
  @Min(0)
  @Max(2)
  temperature?: number;

  @IsOptional()
  @IsNumber(finiteNumber)
  @Min(0)
  @Max(1)
  top_p?: number;

  @IsOptional()
  @IsInt()
  @Min(-(2 ** 53 - 1))
  @Max(2 ** 53 - 1)
  seed?: number;

  @IsOptional()
  @IsStringOrStringArray()
  stop?: string | string[];

  @IsOptional()
  @IsBoolean()
  logprobs?: boolean;

  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(LIMITS.maxTopLogprobs)
  top_logprobs?: number;

  @IsOptional()
  @IsBoolean()
  stream?: boolean;

  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => StreamOptionsDto)
  stream_options?: StreamOptionsDto;

  @IsOptional()
  @IsNumber(finiteNumber)
  @Min(-2)
  @Max(2)
  presence_penalty?: number;

  @IsOptional()
  @IsNumber(finiteNumber)
  @Min(-2)
  @Max(2)
  frequency_penalty?: number;

  /** Token id → bias added to its logit (OpenAI); on the LVR ids it steers latent blocks. */
  @IsOptional()
  @IsLogitBias()
  logit_bias?: Record<string, number>;

  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => ResponseFormatDto)
  response_format?: ResponseFormatDto;

  /** End-user id (OpenAI): logged with the request, never used for generation. */
  @IsOptional()
  @IsString()
  @MaxLength(256)
  user?: string;

  // vLLM-style extra sampling parameters
  @IsOptional()
  @IsInt()
  @Min(-1)
  top_k?: number;

  @IsOptional()
  @IsNumber(finiteNumber)
  @Min(0)
  @Max(1)
  min_p?: number;

  @IsOptional()
  @IsNumber(finiteNumber)
  @Min(0.01)
  @Max(10)
  repetition_penalty?: number;

  @IsOptional()
  @IsArray()
  @ArrayMaxSize(LIMITS.maxStopTokenIds)
  @IsInt({ each: true })
  @Min(0, { each: true })
  stop_token_ids?: number[];

  @IsOptional()
  @IsBoolean()
  ignore_eos?: boolean;

  @IsOptional()
  @IsBoolean()
  skip_special_tokens?: boolean;

  // vLLM-style prompt controls
  /** Append `<|im_start|>assistant\n` after the messages (default true; must be false with continue_final_message). */
  @IsOptional()
  @IsBoolean()
  add_generation_prompt?: boolean;

  /**
   * Continue the final assistant message instead of starting a new one (e.g. to prefill `<|lvr_start|>`); as in vLLM
   * and HF `apply_chat_template`, only together with `add_generation_prompt: false`.
   */
  @IsOptional()
  @IsBoolean()
  continue_final_message?: boolean;

  // LVR extras
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => LvrOptionsDto)
  lvr?: LvrOptionsDto;
}
