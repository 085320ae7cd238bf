import { ApiProperty, ApiPropertyOptional, getSchemaPath } from '@nestjs/swagger';

/**
 * `POST /v1/chat/completions` responses (OpenAI schema plus LVR extras). Protocol only: the decorators put these
 * shapes into the OpenAPI document (@nestjs/swagger).
 */

export type FinishReasonOut = 'stop' | 'length' | 'abort';

const FINISH_REASONS: FinishReasonOut[] = ['stop', 'length', 'abort'];
const NULLABLE_STRING = { anyOf: [{ type: 'string' }, { type: 'null' }] };
/** A reference to another response class, or null (the classes are registered with `RESPONSE_MODELS`). */
const nullableRef = (name: string) => ({ anyOf: [{ $ref: getSchemaPath(name) }, { type: 'null' }] });
const STOP_REASON = {
  anyOf: [{ type: 'string' }, { type: 'integer' }, { type: 'null' }],
  description: 'the stop string or token id that ended the choice',
};

export class TopLogprobOut {
  @ApiProperty() token!: string;
  @ApiProperty() logprob!: number;
  @ApiProperty({ anyOf: [{ type: 'array', items: { type: 'integer' } }, { type: 'null' }] }) bytes!:
    number[] | null;
}

export class TokenLogprobOut extends TopLogprobOut {
  @ApiProperty({ type: [TopLogprobOut] }) top_logprobs!: TopLogprobOut[];
}

export class ChoiceLogprobsOut {
  @ApiProperty({ type: [TokenLogprobOut] }) content!: TokenLogprobOut[];
}

/** One latent placeholder (an id the model sampled while its next input was a fed-back hidden state). */
export class LatentTraceEntry {
  @ApiProperty({ type: 'integer', description: "index among this choice's completion tokens" })
  index!: number;
  @ApiProperty({ type: 'array', items: { type: 'integer' } }) token_ids!: number[];
  @ApiProperty() text!: string;
  @ApiPropertyOptional({
    type: [TokenLogprobOut],
    description:
      "only with `logprobs: true`: the placeholders' log-probabilities (never in `logprobs.content`)",
  })
  logprobs?: TokenLogprobOut[];
}

/** Per-choice LVR report: how many latent steps ran, and the placeholders when `lvr.return_trace` was set. */
export class ChoiceLvrOut {
  @ApiProperty({ type: 'integer' }) latent_steps!: number;
  @ApiPropertyOptional({ type: [LatentTraceEntry] }) trace?: LatentTraceEntry[];
}

export class PromptTokensDetailsOut {
  @ApiProperty({ type: 'integer' }) cached_tokens!: number;
  @ApiProperty({ type: 'integer' }) image_tokens!: number;
}

export class CompletionTokensDetailsOut {
  @ApiProperty({ type: 'integer', description: 'the latent steps again, under OpenAI’s name' })
  reasoning_tokens!: number;
  @ApiProperty({ type: 'integer', description: 'forwards whose input was a fed-back hidden state' })
  latent_steps!: number;
}

export class UsageOut {
  @ApiProperty({ type: 'integer' }) prompt_tokens!: number;
  @ApiProperty({ type: 'integer', description: 'every generated id, latent placeholders included' })
  completion_tokens!: number;
  @ApiProperty({ type: 'integer' }) total_tokens!: number;
  @ApiProperty({ type: PromptTokensDetailsOut }) prompt_tokens_details!: PromptTokensDetailsOut;
  @ApiProperty({ type: CompletionTokensDetailsOut }) completion_tokens_details!: CompletionTokensDetailsOut;
}

export class AssistantMessageOut {
  @ApiProperty({ enum: ['assistant'] }) role!: 'assistant';
  @ApiProperty() content!: string;
  @ApiProperty({ type: 'null' }) refusal!: null;
}

export class ChatCompletionChoiceOut {
  @ApiProperty({ type: 'integer' }) index!: number;
  @ApiProperty({ type: AssistantMessageOut }) message!: AssistantMessageOut;
  @ApiProperty(nullableRef('ChoiceLogprobsOut')) logprobs!: ChoiceLogprobsOut | null;
  @ApiProperty({ enum: FINISH_REASONS }) finish_reason!: FinishReasonOut;
  @ApiProperty(STOP_REASON) stop_reason!: string | number | null;
  @ApiProperty({ type: ChoiceLvrOut }) lvr!: ChoiceLvrOut;
}

export class ChatCompletionOut {
  @ApiProperty() id!: string;
  @ApiProperty({ enum: ['chat.completion'] }) object!: 'chat.completion';
  @ApiProperty({ type: 'integer', description: 'Unix seconds' }) created!: number;
  @ApiProperty() model!: string;
  @ApiProperty(NULLABLE_STRING) system_fingerprint!: string | null;
  @ApiProperty({ type: [ChatCompletionChoiceOut] }) choices!: ChatCompletionChoiceOut[];
  @ApiProperty({ type: UsageOut }) usage!: UsageOut;
}

export class DeltaOut {
  @ApiPropertyOptional({ enum: ['assistant'] }) role?: 'assistant';
  @ApiPropertyOptional() content?: string;
}

export class ChunkChoiceOut {
  @ApiProperty({ type: 'integer' }) index!: number;
  @ApiProperty({ type: DeltaOut }) delta!: DeltaOut;
  @ApiProperty(nullableRef('ChoiceLogprobsOut')) logprobs!: ChoiceLogprobsOut | null;
  @ApiProperty({ anyOf: [{ enum: FINISH_REASONS }, { type: 'null' }] })
  finish_reason!: FinishReasonOut | null;
  @ApiPropertyOptional(STOP_REASON) stop_reason?: string | number | null;
  @ApiPropertyOptional({ type: ChoiceLvrOut }) lvr?: ChoiceLvrOut;
}

/** One `data:` frame of a stream. */
export class ChatCompletionChunkOut {
  @ApiProperty() id!: string;
  @ApiProperty({ enum: ['chat.completion.chunk'] }) object!: 'chat.completion.chunk';
  @ApiProperty({ type: 'integer' }) created!: number;
  @ApiProperty() model!: string;
  @ApiProperty(NULLABLE_STRING) system_fingerprint!: string | null;
  @ApiProperty({ type: [ChunkChoiceOut] }) choices!: ChunkChoiceOut[];
  @ApiPropertyOptional({
    ...nullableRef('UsageOut'),
    description: 'only in the usage chunk (stream_options.include_usage)',
  })
  usage?: UsageOut | null;
}

/** Classes the document defines though no `type:` names them: referenced by name, or only sent as stream frames. */
export const RESPONSE_MODELS = [ChatCompletionOut, ChoiceLogprobsOut, UsageOut, ChatCompletionChunkOut];
