import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { RUN_PHASES, type RunPhase } from '@lvr/contracts';
import type { WorkloadStatus } from '@lvr/k8s';
import type { RunProgress } from '../runs/lifecycle';
import {
  type BundleRef,
  type CheckpointRef,
  type RunCondition,
  type RunRecord,
  currentPhase,
} from '../runs/run-record';

// The operator API's response shapes. Each class implements the record type it shows, so the document (generated
// from these decorators by @nestjs/swagger) cannot lose a field the trainer keeps.

export class RunConditionView implements RunCondition {
  @ApiProperty({ enum: [...RUN_PHASES, 'Queued'] }) type!: RunPhase | 'Queued';
  @ApiPropertyOptional() reason?: string;
  @ApiPropertyOptional() message?: string;
  @ApiProperty({ format: 'date-time' }) time!: string;
  @ApiPropertyOptional({ type: 'integer' }) attempt?: number;
}

export class RunProgressView implements RunProgress {
  @ApiPropertyOptional({ type: 'integer' }) step?: number;
  @ApiPropertyOptional({ type: 'integer' }) totalSteps?: number;
  @ApiPropertyOptional() loss?: number;
  @ApiPropertyOptional() etaSeconds?: number;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;
  @ApiProperty({ type: 'object', additionalProperties: true, description: 'the worker Progress event data' })
  data!: Record<string, unknown>;
}

export class CheckpointView implements CheckpointRef {
  @ApiProperty({ type: 'integer' }) step!: number;
  @ApiProperty() uri!: string;
  @ApiPropertyOptional({ enum: ['periodic', 'sigterm'] }) trigger?: string;
  @ApiProperty({ format: 'date-time' }) at!: string;
}

export class BundleView implements BundleRef {
  @ApiProperty() uri!: string;
  @ApiPropertyOptional() modelId?: string;
  @ApiPropertyOptional() version?: string;
}

export class RunResourcesView {
  @ApiProperty({ type: 'integer' }) gpusPerNode!: number;
  @ApiProperty({ type: 'integer' }) nodes!: number;
  @ApiPropertyOptional() priorityClassName?: string;
}

/** A run as operators see it (`GET /v1/runs/{id}`). */
export class RunView {
  @ApiProperty({ enum: ['training.run'] }) object!: 'training.run';
  @ApiProperty() runId!: string;
  @ApiProperty({ enum: ['sft', 'grpo'] }) stage!: string;
  @ApiProperty({ enum: RUN_PHASES }) phase!: RunPhase;
  @ApiProperty({ description: 'waiting for GPU budget' }) queued!: boolean;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiPropertyOptional() reason?: string;
  @ApiPropertyOptional({ type: 'integer' }) exitCode?: number;
  @ApiProperty({ type: [RunConditionView] }) conditions!: RunCondition[];
  @ApiPropertyOptional({ type: RunProgressView }) progress?: RunProgress;
  @ApiProperty({ type: [CheckpointView] }) checkpoints!: CheckpointRef[];
  @ApiPropertyOptional({ type: BundleView }) bundle?: BundleRef;
  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    description: 'live status of the Job/pods or the local worker process',
  })
  workload?: WorkloadStatus;
  @ApiProperty({ type: RunResourcesView }) resources!: RunResourcesView;
}

export class RunList {
  @ApiProperty({ enum: ['list'] }) object!: 'list';
  @ApiProperty({ type: [RunView] }) data!: RunView[];
}

export class CancelResult {
  @ApiProperty() runId!: string;
  @ApiProperty({ description: '`cancelling`, or the final phase of a run that had already ended' })
  status!: string;
  @ApiPropertyOptional({ description: 'id of the cancel command on lvr.training.commands' })
  commandId?: string;
}

export class TrainerInfo {
  @ApiProperty({ enum: ['kubernetes', 'local'] }) executor!: string;
  @ApiProperty({ enum: ['starting', 'leader', 'standby'] }) role!: string;
}

export function runView(record: RunRecord, workload?: WorkloadStatus, progress?: RunProgress): RunView {
  const phase = currentPhase(record.status);
  return {
    object: 'training.run',
    runId: record.runId,
    stage: record.stage,
    phase,
    queued: !record.status.terminal && workload?.phase === 'Queued',
    createdAt: record.createdAt,
    ...(record.status.terminal?.reason ? { reason: record.status.terminal.reason } : {}),
    ...(record.status.terminal?.exitCode !== undefined ? { exitCode: record.status.terminal.exitCode } : {}),
    conditions: record.status.conditions,
    ...(progress ? { progress } : {}),
    checkpoints: record.status.checkpoints,
    ...(record.status.bundle ? { bundle: record.status.bundle } : {}),
    ...(workload ? { workload } : {}),
    resources: {
      gpusPerNode: record.request.resources.gpusPerNode,
      nodes: record.request.resources.nodes ?? 1,
      ...(record.request.resources.priorityClassName
        ? { priorityClassName: record.request.resources.priorityClassName }
        : {}),
    },
  };
}
