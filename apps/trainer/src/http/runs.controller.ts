import { Controller, Get, Header, HttpCode, HttpException, Inject, Param, Post, Query } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiProduces,
  ApiQuery,
  ApiTags,
} from '@nestjs/swagger';
import {
  ID_PATTERN,
  RUN_PHASES,
  type RunPhase,
  TRAINING_API_VERSION,
  type TrainingCommand,
} from '@lvr/contracts';
import { MessagePublisher } from '@lvr/messaging';
import { ApiErrorResponses } from '@lvr/service-kit';
import { TrainerRuntime } from '../runtime';
import { currentPhase } from '../runs/run-record';
import { CancelResult, RunList, RunView, TrainerInfo, runView } from './run-view';

function apiError(status: number, message: string, code: string): HttpException {
  const type = status === 404 ? 'not_found_error' : 'invalid_request_error';
  return new HttpException({ error: { message, type, param: null, code } }, status);
}

const RunIdParam = ApiParam({ name: 'id', schema: { type: 'string', pattern: ID_PATTERN.source } });

/** The operator API on the trainer's HTTP port: list and read runs, cancel one, tail its worker logs. */
@ApiTags('runs')
@Controller()
export class RunsController {
  constructor(
    @Inject(TrainerRuntime) private readonly runtime: TrainerRuntime,
    @Inject(MessagePublisher) private readonly publisher: MessagePublisher,
  ) {}

  @Get('v1/trainer')
  @ApiOperation({ operationId: 'getTrainer', summary: "Executor kind and this replica's role" })
  @ApiOkResponse({ type: TrainerInfo })
  @ApiErrorResponses({ 401: 'Missing or wrong API key' })
  trainer(): TrainerInfo {
    return { executor: this.runtime.executor.kind, role: this.runtime.role };
  }

  @Get('v1/runs')
  @ApiOperation({ operationId: 'listRuns', summary: 'List runs, newest first' })
  @ApiQuery({ name: 'phase', required: false, enum: RUN_PHASES })
  @ApiOkResponse({ type: RunList })
  @ApiErrorResponses({ 400: 'Unknown phase', 401: 'Missing or wrong API key' })
  async list(@Query('phase') phase?: string): Promise<RunList> {
    if (phase !== undefined && !RUN_PHASES.includes(phase as RunPhase))
      throw apiError(400, `phase must be one of ${RUN_PHASES.join(', ')}`, 'invalid_phase');
    const records = await this.runtime.executor.store.list();
    const data = records
      .filter((r) => !phase || currentPhase(r.status) === phase)
      .sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1))
      .map((r) =>
        runView(r, this.runtime.executor.workload(r.runId), this.runtime.lifecycle.progressOf(r.runId)),
      );
    return { object: 'list', data };
  }

  @Get('v1/runs/:id')
  @ApiOperation({
    operationId: 'getRun',
    summary: 'One run: phase, conditions with reasons and times, progress, checkpoints, bundle',
  })
  @RunIdParam
  @ApiOkResponse({ type: RunView })
  @ApiErrorResponses({ 400: 'Not a run id', 401: 'Missing or wrong API key', 404: 'No such run' })
  async get(@Param('id') id: string): Promise<RunView> {
    const record = await this.find(id);
    return runView(record, this.runtime.executor.workload(id), this.runtime.lifecycle.progressOf(id));
  }

  @Get('v1/runs/:id/logs')
  @Header('Content-Type', 'text/plain; charset=utf-8')
  @ApiOperation({ operationId: 'getRunLogs', summary: 'Last lines of the worker log of the newest attempt' })
  @RunIdParam
  @ApiQuery({
    name: 'tail',
    required: false,
    schema: { type: 'integer', minimum: 1, maximum: 10000, default: 100 },
  })
  @ApiProduces('text/plain')
  @ApiOkResponse({ description: 'Log lines', schema: { type: 'string' } })
  @ApiErrorResponses({ 400: 'Bad tail or run id', 401: 'Missing or wrong API key', 404: 'No such run' })
  async logs(@Param('id') id: string, @Query('tail') tail?: string): Promise<string> {
    await this.find(id);
    const lines = tail === undefined ? 100 : Number(tail);
    if (!Number.isInteger(lines) || lines < 1 || lines > 10000)
      throw apiError(400, 'tail must be an integer between 1 and 10000', 'invalid_tail');
    return this.runtime.executor.logs(id, lines).catch(() => '');
  }

  /** Publishes a cancel command, so whichever replica leads carries it out. */
  @Post('v1/runs/:id/cancel')
  @HttpCode(202)
  @ApiOperation({
    operationId: 'cancelRun',
    summary: 'Cancel a run (publishes a cancel command on lvr.training.commands)',
  })
  @RunIdParam
  @ApiAcceptedResponse({
    type: CancelResult,
    description: 'Cancellation requested (or the run had already ended: status is its final phase)',
  })
  @ApiErrorResponses({ 400: 'Not a run id', 401: 'Missing or wrong API key', 404: 'No such run' })
  async cancel(@Param('id') id: string): Promise<CancelResult> {
    const record = await this.find(id);
    if (record.status.terminal) return { runId: id, status: record.status.terminal.phase };
    const command = await this.publisher.publish<TrainingCommand>(this.runtime.topics.commands, id, {
      apiVersion: TRAINING_API_VERSION,
      runId: id,
      command: 'cancel',
      reason: 'cancelled through the operator API',
    });
    return { runId: id, status: 'cancelling', commandId: command.id };
  }

  private async find(id: string) {
    if (!ID_PATTERN.test(id)) throw apiError(400, 'run id must be a lowercase DNS label', 'invalid_run_id');
    const record = await this.runtime.executor.store.get(id);
    if (!record) throw apiError(404, `no run with id ${id}`, 'run_not_found');
    return record;
  }
}
