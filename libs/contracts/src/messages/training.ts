import { Type } from 'class-transformer';
import {
  Equals,
  IsBoolean,
  IsIn,
  IsInt,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Max,
  Min,
  ValidateNested,
  IsNotEmpty,
  MaxLength,
  IsArray,
  ArrayMaxSize,
} from 'class-validator';
import { MessageEnvelope, idDecorator } from './envelope';

export const TRAINING_API_VERSION = 'lvr.training/v1';
export const TRAINING_STAGES = ['sft', 'grpo'] as const;
export type TrainingStage = (typeof TRAINING_STAGES)[number];

/** A model or dataset location: `s3://bucket/prefix`, or a local path inside the worker image. */
const URI_MAX = 1024;

export class ModelSource {
  @IsString()
  @IsNotEmpty()
  @MaxLength(URI_MAX)
  uri!: string;
}

export class DataSpec {
  /** Stage-1 LLaVA records, a meta-JSON of several datasets, or stage-2 records (LVR-SPEC §2.1, §2.8). */
  @IsString()
  @IsNotEmpty()
  @MaxLength(URI_MAX)
  uri!: string;

  /** Where relative image paths of the records resolve. */
  @IsOptional()
  @IsString()
  @MaxLength(URI_MAX)
  imagesUri?: string;
}

/**
 * Hyper-parameters; anything left out takes the LVR-SPEC §7 default of the stage. Every field here is mapped by the
 * Python worker (`workers/lvr/train/spec.py`); a test there fails when the two drift apart.
 */
export class TrainingHyperparameters {
  @IsOptional() @IsNumber() @Min(0) learningRate?: number;
  @IsOptional() @IsInt() @Min(1) maxSteps?: number;
  @IsOptional() @IsNumber() @Min(0) numEpochs?: number;
  @IsOptional() @IsInt() @Min(1) perDeviceBatchSize?: number;
  @IsOptional() @IsInt() @Min(1) gradientAccumulationSteps?: number;
  @IsOptional() @IsNumber() @Min(0) @Max(1) warmupRatio?: number;
  @IsOptional() @IsNumber() @Min(0) weightDecay?: number;
  @IsOptional() @IsNumber() @Min(0) maxGradNorm?: number;
  @IsOptional() @IsInt() @Min(0) seed?: number;
  /** Runtime: sequence packing, attention kernel, data-parallel strategy, activation checkpointing. */
  @IsOptional() @IsIn(['flat', 'pad']) packingMode?: 'flat' | 'pad';
  @IsOptional() @IsIn(['sdpa', 'eager', 'flash_varlen_torch']) attnImplementation?: string;
  @IsOptional() @IsIn(['auto', 'ddp', 'fsdp']) strategy?: 'auto' | 'ddp' | 'fsdp';
  @IsOptional() @IsBoolean() gradientCheckpointing?: boolean;
  /** Image resolution bounds in pixels (LVR-SPEC §2.2). */
  @IsOptional() @IsInt() @Min(1) minPixels?: number;
  @IsOptional() @IsInt() @Min(1) maxPixels?: number;
  /** Stage 1: λ of the latent reconstruction loss, its distance, token budget, `<|lvr_latent_end|>` insertion. */
  @IsOptional() @IsNumber() @Min(0) lossLvrLambda?: number;
  @IsOptional() @IsIn(['mse', 'mae', 'cosine']) lvrLossFct?: 'mse' | 'mae' | 'cosine';
  @IsOptional() @IsInt() @Min(1) maxPackedTokens?: number;
  @IsOptional() @IsBoolean() insertLatentEnd?: boolean;
  /** Stage 2 (GRPO): group size, prompts per step, KL β, clipping ε, loss type, latent steps, sampling, rewards. */
  @IsOptional() @IsInt() @Min(2) numGenerations?: number;
  @IsOptional() @IsInt() @Min(1) promptsPerStep?: number;
  @IsOptional() @IsNumber() @Min(0) beta?: number;
  @IsOptional() @IsNumber() @Min(0) @Max(1) epsilon?: number;
  /** TRL's μ: policy updates per generated batch (old log-probs from generation time, so `epsilon` clips). */
  @IsOptional() @IsInt() @Min(1) @Max(16) numIterations?: number;
  @IsOptional() @IsIn(['bnpo', 'grpo', 'dr_grpo']) lossType?: 'bnpo' | 'grpo' | 'dr_grpo';
  @IsOptional() @IsInt() @Min(0) @Max(64) decodingSteps?: number;
  @IsOptional() @IsNumber() @Min(0) temperature?: number;
  @IsOptional() @IsNumber() @Min(0) @Max(1) topP?: number;
  @IsOptional() @IsInt() @Min(0) topK?: number;
  @IsOptional() @IsInt() @Min(1) maxCompletionLength?: number;
  @IsOptional() @IsArray() @ArrayMaxSize(16) @IsString({ each: true }) rewardFuncs?: string[];
  @IsOptional() @IsArray() @ArrayMaxSize(16) @IsNumber({}, { each: true }) rewardWeights?: number[];
  /** Reproduce the upstream objective/decoding defects instead of the fixed defaults (LVR-SPEC §5.4, §8). */
  @IsOptional() @IsBoolean() upstreamCompat?: boolean;
  /**
   * The system message of every training prompt (SFT samples, GRPO rollouts), and the exported bundle's default
   * system prompt (used when a chat request sends none). Default: "You are a helpful assistant."
   */
  @IsOptional() @IsString() @IsNotEmpty() @MaxLength(8192) systemPrompt?: string;
}

export class ResourceSpec {
  @IsInt() @Min(0) @Max(64) gpusPerNode!: number;
  @IsOptional() @IsInt() @Min(1) @Max(128) nodes?: number;
  @IsOptional() @IsString() @MaxLength(63) priorityClassName?: string;
}

export class CheckpointSpec {
  /** Prefix under which `step-N/` folders are written; resume takes the newest complete one. */
  @IsString() @IsNotEmpty() @MaxLength(URI_MAX) uri!: string;
  @IsInt() @Min(1) everySteps!: number;
  @IsOptional() @IsInt() @Min(1) keepLast?: number;
}

export class OutputSpec {
  /** Where the final model bundle is exported; its publication is announced on lvr.models.published. */
  @IsString() @IsNotEmpty() @MaxLength(URI_MAX) bundleUri!: string;
  @IsOptional() @IsString() @MaxLength(128) modelId?: string;
}

/** `lvr.training.requests`: one training run. The key is the run id. */
export class TrainingRequest extends MessageEnvelope {
  @Equals(TRAINING_API_VERSION)
  apiVersion: string = TRAINING_API_VERSION;

  @idDecorator()
  runId!: string;

  @IsIn(TRAINING_STAGES)
  stage!: TrainingStage;

  @ValidateNested()
  @Type(() => ModelSource)
  @IsObject()
  model!: ModelSource;

  @ValidateNested()
  @Type(() => DataSpec)
  @IsObject()
  data!: DataSpec;

  @IsOptional()
  @ValidateNested()
  @Type(() => TrainingHyperparameters)
  @IsObject()
  hyperparameters?: TrainingHyperparameters;

  @ValidateNested()
  @Type(() => ResourceSpec)
  @IsObject()
  resources!: ResourceSpec;

  @ValidateNested()
  @Type(() => CheckpointSpec)
  @IsObject()
  checkpoint!: CheckpointSpec;

  @ValidateNested()
  @Type(() => OutputSpec)
  @IsObject()
  output!: OutputSpec;
}

export const RUN_PHASES = [
  'Accepted',
  'Scheduled',
  'Running',
  'Retrying',
  'Succeeded',
  'Failed',
  'Cancelled',
] as const;
export type RunPhase = (typeof RUN_PHASES)[number];
export const TRAINING_EVENT_TYPES = [...RUN_PHASES, 'Progress', 'CheckpointSaved', 'Rejected'] as const;
export type TrainingEventType = (typeof TRAINING_EVENT_TYPES)[number];

/** `lvr.training.events`: lifecycle transitions and progress of a run. */
export class TrainingEvent extends MessageEnvelope {
  @Equals(TRAINING_API_VERSION)
  apiVersion: string = TRAINING_API_VERSION;

  @idDecorator()
  runId!: string;

  @IsIn(TRAINING_EVENT_TYPES)
  type!: TrainingEventType;

  @IsOptional()
  @IsString()
  @MaxLength(4096)
  reason?: string;

  /** Progress fields (step, totalSteps, loss parts, lr, tokensPerSecond, etaSeconds) or checkpoint location. */
  @IsOptional()
  @IsObject()
  data?: Record<string, unknown>;
}

export const TRAINING_COMMANDS = ['cancel'] as const;

/** `lvr.training.commands`: operator actions on a run. */
export class TrainingCommand extends MessageEnvelope {
  @Equals(TRAINING_API_VERSION)
  apiVersion: string = TRAINING_API_VERSION;

  @idDecorator()
  runId!: string;

  @IsIn(TRAINING_COMMANDS)
  command!: (typeof TRAINING_COMMANDS)[number];

  /** Why, for the run's Cancelled event and status. */
  @IsOptional()
  @IsString()
  @MaxLength(1024)
  reason?: string;
}
