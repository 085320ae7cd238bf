import {
  applyDecorators,
  Controller,
  Get,
  HttpException,
  HttpStatus,
  Inject,
  Param,
  Query,
  Res,
} from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiParam, ApiProduces, ApiQuery } from '@nestjs/swagger';
import type { Response } from 'express';
import { ID_PATTERN } from '@lvr/contracts';
import { ApiErrorResponses } from '@lvr/service-kit';
import { EvaluationStore } from '../results/evaluation-store';
import { EvaluationDetail, EvaluationList, evaluationSummary } from './evaluation-views';

function notFound(message: string): HttpException {
  return new HttpException(
    { error: { message, type: 'not_found_error', code: 'evaluation_not_found' } },
    HttpStatus.NOT_FOUND,
  );
}

function checkId(id: string): void {
  if (!ID_PATTERN.test(id))
    throw new HttpException(
      {
        error: {
          message: `invalid evaluation id "${id}"`,
          type: 'invalid_request_error',
          code: 'invalid_id',
        },
      },
      HttpStatus.BAD_REQUEST,
    );
}

const IdParam = ApiParam({ name: 'id', schema: { type: 'string', pattern: ID_PATTERN.source } });

/** The documentation of an operation that answers with one stored file of an evaluation. */
const StoredFile = (mediaType: string, description: string, missing: string): MethodDecorator =>
  applyDecorators(
    IdParam,
    ApiProduces(mediaType),
    ApiOkResponse({ description, schema: { type: 'string' } }),
    ApiErrorResponses({ 400: 'Not an evaluation id', 404: missing }),
  );

/** Read API on the evaluator's port (OpenAPI at /openapi.json). */
@Controller()
export class EvaluationsController {
  constructor(@Inject(EvaluationStore) private readonly store: EvaluationStore) {}

  @Get('v1/evaluations')
  @ApiOperation({ operationId: 'listEvaluations', summary: 'Evaluations, newest first' })
  @ApiQuery({ name: 'state', required: false, enum: ['running', 'succeeded', 'failed'] })
  @ApiQuery({ name: 'schedule', required: false, type: String })
  @ApiQuery({ name: 'model', required: false, type: String })
  @ApiQuery({
    name: 'limit',
    required: false,
    schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  })
  @ApiOkResponse({ type: EvaluationList })
  @ApiErrorResponses({ 400: 'Bad limit' })
  async list(
    @Query('state') state?: string,
    @Query('schedule') schedule?: string,
    @Query('model') model?: string,
    @Query('limit') limit?: string,
  ): Promise<EvaluationList> {
    const max = limit === undefined ? 100 : Number(limit);
    if (!Number.isInteger(max) || max < 1 || max > 1000)
      throw new HttpException(
        {
          error: {
            message: 'limit must be an integer from 1 to 1000',
            type: 'invalid_request_error',
            code: 'invalid_limit',
          },
        },
        HttpStatus.BAD_REQUEST,
      );
    const entries = (await this.store.listEntries())
      .filter((e) => (state ? e.state === state : true))
      .filter((e) => (schedule ? e.schedule === schedule : true))
      .filter((e) => (model ? e.modelId === model : true))
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
      .slice(0, max);
    return { object: 'list', data: entries.map(evaluationSummary) };
  }

  @Get('v1/evaluations/:id')
  @ApiOperation({
    operationId: 'getEvaluation',
    summary: 'One evaluation: status, the request, and results.json once it succeeded',
  })
  @IdParam
  @ApiOkResponse({ type: EvaluationDetail })
  @ApiErrorResponses({ 400: 'Not an evaluation id', 404: 'No such evaluation' })
  async get(@Param('id') id: string): Promise<EvaluationDetail> {
    checkId(id);
    const entry = await this.store.getEntry(id);
    if (!entry) throw notFound(`evaluation ${id} does not exist`);
    const results = entry.state === 'succeeded' ? await this.store.getResults(id) : undefined;
    return { ...evaluationSummary(entry), request: entry.request, ...(results ? { results } : {}) };
  }

  @Get('v1/evaluations/:id/report')
  @ApiOperation({ operationId: 'getEvaluationReport', summary: 'The self-contained HTML report' })
  @StoredFile('text/html', 'HTML', 'No report (unknown, running or failed)')
  async report(@Param('id') id: string, @Res() res: Response): Promise<void> {
    await this.sendStored(res, id, this.store.reportKey(id), 'text/html; charset=utf-8', 'report');
  }

  @Get('v1/evaluations/:id/samples')
  @ApiOperation({
    operationId: 'getEvaluationSamples',
    summary: 'samples.jsonl: one record per sample and decoding configuration',
  })
  @StoredFile('application/x-ndjson', 'JSON lines', 'No samples (unknown, running or failed)')
  async samples(@Param('id') id: string, @Res() res: Response): Promise<void> {
    await this.sendStored(res, id, this.store.samplesKey(id), 'application/x-ndjson', 'samples.jsonl');
  }

  /** One stored file of an evaluation, as is; 404 while it does not exist yet (or ever). */
  private async sendStored(
    res: Response,
    id: string,
    key: string,
    type: string,
    what: string,
  ): Promise<void> {
    checkId(id);
    const body = await this.store.getText(key);
    if (body === undefined) throw notFound(`evaluation ${id} has no ${what} (unknown, running or failed)`);
    res.status(200).type(type).send(body);
  }
}
