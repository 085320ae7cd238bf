import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  Equals,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsNumber,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';
import { MessageEnvelope, idDecorator } from './envelope';

export const EVALUATION_API_VERSION = 'lvr.evaluation/v1';

export const EVALUATION_LVR_STRATEGIES = ['steps', 'latent', 'end_token', 'none'] as const;
export type EvaluationLvrStrategy = (typeof EVALUATION_LVR_STRATEGIES)[number];
export const EVALUATION_TRIGGERS = ['request', 'schedule', 'published'] as const;
export type EvaluationTrigger = (typeof EVALUATION_TRIGGERS)[number];

const finite = { allowNaN: false, allowInfinity: false };

export class EvaluationBenchmark {
  /** A registered benchmark name (e.g. `synthetic-grounding`), or any label when `uri` is given. */
  @IsString() @IsNotEmpty() @MaxLength(64) name!: string;
  /** The benchmark folder (local path or `s3://bucket/prefix/`); default: the registry's entry for `name`. */
  @IsOptional() @IsString() @IsNotEmpty() @MaxLength(1024) uri?: string;
  /** Default: `test` when the benchmark has it, else its first split. */
  @IsOptional() @IsString() @Matches(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/) split?: string;
  /** Evaluate only the first N records. */
  @IsOptional() @IsInt() @Min(1) limit?: number;
}

/**
 * Decoding settings of one evaluation. `steps` is a sweep: each value is its own decoding configuration (e.g.
 * `[0, 4, 8, 16]`), all scored and reported side by side. Unset fields use the model's bundle defaults.
 */
export class EvaluationDecoding {
  @IsOptional() @IsIn(EVALUATION_LVR_STRATEGIES) strategy?: EvaluationLvrStrategy;

  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(16)
  @IsInt({ each: true })
  @Min(0, { each: true })
  @Max(256, { each: true })
  steps?: number[];

  /** Default 0 (greedy), the protocol every published number uses. */
  @IsOptional() @IsNumber(finite) @Min(0) @Max(2) temperature?: number;

  @IsOptional() @IsInt() @Min(1) @Max(8192) maxTokens?: number;
}

/** `lvr.evaluation.requests`: evaluate one model version on benchmarks. Key: evalId. */
export class EvaluationRequest extends MessageEnvelope {
  @Equals(EVALUATION_API_VERSION)
  apiVersion: string = EVALUATION_API_VERSION;

  @idDecorator()
  evalId!: string;

  @IsString()
  @IsNotEmpty()
  @MaxLength(128)
  modelId!: string;

  /** The exact version to evaluate; the API is addressed as `<modelId>@<version>`. */
  @IsOptional()
  @IsString()
  @IsNotEmpty()
  @MaxLength(128)
  modelVersion?: string;

  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(32)
  @ValidateNested({ each: true })
  @Type(() => EvaluationBenchmark)
  benchmarks!: EvaluationBenchmark[];

  @IsOptional()
  @ValidateNested()
  @Type(() => EvaluationDecoding)
  decoding?: EvaluationDecoding;

  /** What started it; schedules and publish events fill it in. */
  @IsOptional() @IsIn(EVALUATION_TRIGGERS) trigger?: EvaluationTrigger;

  /** The schedule that fired it: regressions compare against that schedule's previous evaluation. */
  @IsOptional() @IsString() @IsNotEmpty() @MaxLength(64) schedule?: string;
}

/** One number: a protocol's accuracy on a benchmark (overall or one category/subtask) under one decoding config. */
export class BenchmarkScore {
  @IsString() name!: string;
  @IsString() protocol!: string;
  /** `overall`, `category:<name>` or `subtask:<name>`. */
  @IsString() group!: string;
  /** Decoding configuration label, e.g. `steps=8`. */
  @IsString() config!: string;
  @IsIn(['question', 'pair']) unit!: 'question' | 'pair';
  @IsNumber() accuracy!: number;
  @IsNumber() ciLow!: number;
  @IsNumber() ciHigh!: number;
  @IsInt() @Min(0) correct!: number;
  /** Questions (or pairs) scored. */
  @IsInt() @Min(0) samples!: number;
  @IsInt() @Min(0) unparseable!: number;
  @IsInt() @Min(0) failed!: number;
}

export class RegressionFinding {
  @IsString() name!: string;
  @IsString() protocol!: string;
  @IsString() config!: string;
  @IsNumber() previousAccuracy!: number;
  @IsNumber() accuracy!: number;
  /** Previous accuracy minus current accuracy (flagged only when the whole interval lies below, beyond the margin). */
  @IsNumber() drop!: number;
}

export class RegressionCheck {
  @IsBoolean() regressed!: boolean;
  /** The evaluation compared with (the previous one of the same schedule); absent for the first. */
  @IsOptional() @IsString() previousEvalId?: string;
  @IsNumber() margin!: number;
  @IsArray() @ValidateNested({ each: true }) @Type(() => RegressionFinding) findings!: RegressionFinding[];
}

/** `lvr.evaluation.results`: the outcome of an evaluation. Key: evalId. */
export class EvaluationResult extends MessageEnvelope {
  @Equals(EVALUATION_API_VERSION)
  apiVersion: string = EVALUATION_API_VERSION;

  @idDecorator()
  evalId!: string;

  @IsIn(['Succeeded', 'Failed'])
  status!: 'Succeeded' | 'Failed';

  @IsOptional() @IsString() @MaxLength(128) modelId?: string;
  @IsOptional() @IsString() @MaxLength(128) modelVersion?: string;
  @IsOptional() @IsString() @MaxLength(64) schedule?: string;

  @IsOptional()
  @IsArray()
  @ValidateNested({ each: true })
  @Type(() => BenchmarkScore)
  scores?: BenchmarkScore[];

  @IsOptional()
  @IsString()
  @MaxLength(1024)
  reportUri?: string;

  @IsOptional()
  @IsString()
  @MaxLength(1024)
  resultsUri?: string;

  @IsOptional()
  @ValidateNested()
  @Type(() => RegressionCheck)
  regression?: RegressionCheck;

  @IsOptional()
  @IsString()
  @MaxLength(4096)
  reason?: string;
}
