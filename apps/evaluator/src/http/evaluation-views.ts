import { ApiProperty, ApiPropertyOptional, getSchemaPath } from '@nestjs/swagger';
import { EVALUATION_TRIGGERS, type EvaluationRequest } from '@lvr/contracts';
import type { EvaluationIndexEntry, EvaluationResults, EvaluationState } from '../results/types';
import { PROTOCOLS, type ProtocolId, type ScoreEntry } from '../scoring/protocols';

// The read API's response shapes, generated into the OpenAPI document by @nestjs/swagger. Each class implements the
// stored type it shows, so the document cannot lose a field the evaluator keeps.

const STATES: EvaluationState[] = ['running', 'succeeded', 'failed'];

export class ScoreEntryView implements ScoreEntry {
  @ApiProperty() benchmark!: string;
  @ApiProperty({ description: "the decoding configuration's label" }) config!: string;
  @ApiProperty({ enum: Object.keys(PROTOCOLS) }) protocol!: ProtocolId;
  @ApiProperty({ description: '`overall`, `category:<name>` or `subtask:<name>`' }) group!: string;
  @ApiProperty({ enum: ['question', 'pair'] }) unit!: 'question' | 'pair';
  @ApiProperty({ type: 'integer' }) correct!: number;
  @ApiProperty({ type: 'integer' }) total!: number;
  @ApiProperty({ minimum: 0, maximum: 1 }) accuracy!: number;
  @ApiProperty({ description: '95% Wilson interval, low end' }) ciLow!: number;
  @ApiProperty({ description: '95% Wilson interval, high end' }) ciHigh!: number;
  @ApiProperty({ type: 'integer' }) unparseable!: number;
  @ApiProperty({ type: 'integer' }) failed!: number;
}

/** One evaluation in listings: state, model, trigger, headline scores. */
export class EvaluationSummary implements Omit<EvaluationIndexEntry, 'request' | 'owner'> {
  @ApiProperty() evalId!: string;
  @ApiProperty({ enum: STATES }) state!: EvaluationState;
  @ApiProperty() modelId!: string;
  @ApiPropertyOptional() modelVersion?: string;
  @ApiPropertyOptional({ description: 'the schedule that started it' }) schedule?: string;
  @ApiProperty({ enum: EVALUATION_TRIGGERS }) trigger!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;
  @ApiPropertyOptional({ format: 'date-time' }) finishedAt?: string;
  @ApiPropertyOptional({ format: 'date-time' }) heartbeatAt?: string;
  @ApiPropertyOptional() reason?: string;
  @ApiPropertyOptional({
    type: [ScoreEntryView],
    description: 'overall scores per benchmark, protocol and config',
  })
  headline?: ScoreEntry[];
  @ApiPropertyOptional() regressed?: boolean;
  @ApiPropertyOptional({ type: 'integer' }) samplesDone?: number;
  @ApiPropertyOptional({ type: 'integer' }) samplesTotal?: number;
}

export class EvaluationList {
  @ApiProperty({ enum: ['list'] }) object!: 'list';
  @ApiProperty({ type: [EvaluationSummary] }) data!: EvaluationSummary[];
}

export class EvaluationDetail extends EvaluationSummary {
  @ApiProperty({
    allOf: [{ $ref: getSchemaPath('EvaluationRequest') }],
    description: 'the lvr.evaluation.requests message it runs',
  })
  request!: EvaluationRequest;
  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    description: 'results.json (format lvr-evaluation-results/v1), once it succeeded',
  })
  results?: EvaluationResults;
}

export function evaluationSummary(entry: EvaluationIndexEntry): EvaluationSummary {
  const { request: _request, owner: _owner, ...rest } = entry;
  return rest;
}
