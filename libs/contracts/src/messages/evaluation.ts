import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  Equals,
  IsArray,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';
import { MessageEnvelope, idDecorator } from './envelope';

export const EVALUATION_API_VERSION = 'lvr.evaluation/v1';

export class EvaluationBenchmark {
  @IsString() @IsNotEmpty() @MaxLength(64) name!: string;
  @IsString() @IsNotEmpty() @MaxLength(1024) uri!: string;
  @IsOptional() @IsInt() @Min(1) limit?: number;
}

/** `lvr.evaluation.requests`: evaluate one model (or checkpoint bundle) on benchmarks. Key: evalId. */
export class EvaluationRequest extends MessageEnvelope {
  @Equals(EVALUATION_API_VERSION)
  apiVersion: string = EVALUATION_API_VERSION;

  @idDecorator()
  evalId!: string;

  @IsString()
  @IsNotEmpty()
  @MaxLength(128)
  modelId!: string;

  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(32)
  @ValidateNested({ each: true })
  @Type(() => EvaluationBenchmark)
  benchmarks!: EvaluationBenchmark[];

  @IsOptional()
  @IsObject()
  decoding?: Record<string, unknown>;
}

export class BenchmarkScore {
  @IsString() name!: string;
  @IsNumber() accuracy!: number;
  @IsInt() @Min(0) samples!: number;
}

/** `lvr.evaluation.results`: the outcome of an evaluation. */
export class EvaluationResult extends MessageEnvelope {
  @Equals(EVALUATION_API_VERSION)
  apiVersion: string = EVALUATION_API_VERSION;

  @idDecorator()
  evalId!: string;

  @IsIn(['Succeeded', 'Failed'])
  status!: 'Succeeded' | 'Failed';

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
  @MaxLength(4096)
  reason?: string;
}
