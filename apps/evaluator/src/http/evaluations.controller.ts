import { Controller, Get, HttpException, HttpStatus, Inject, Param, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import { ID_PATTERN } from '@lvr/contracts';
import { EvaluationStore } from '../results/evaluation-store';
import { EvaluationIndexEntry, EvaluationResults } from '../results/types';
import { openApiDocument } from './openapi';

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

/** Summary of one evaluation in listings: state, model, trigger, headline scores. */
export type EvaluationSummary = Omit<EvaluationIndexEntry, 'request' | 'owner'>;

function summary(entry: EvaluationIndexEntry): EvaluationSummary {
  const { request: _request, owner: _owner, ...rest } = entry;
  return rest;
}

/** Read API on the evaluator's port (OpenAPI at /openapi.json). */
@Controller()
export class EvaluationsController {
  constructor(@Inject(EvaluationStore) private readonly store: EvaluationStore) {}

  @Get('openapi.json')
  openApi(): object {
    return openApiDocument();
  }

  @Get('v1/evaluations')
  async list(
    @Query('state') state?: string,
    @Query('schedule') schedule?: string,
    @Query('model') model?: string,
    @Query('limit') limit?: string,
  ): Promise<{ object: 'list'; data: EvaluationSummary[] }> {
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
    return { object: 'list', data: entries.map(summary) };
  }

  @Get('v1/evaluations/:id')
  async get(
    @Param('id') id: string,
  ): Promise<EvaluationSummary & { request: unknown; results?: EvaluationResults }> {
    checkId(id);
    const entry = await this.store.getEntry(id);
    if (!entry) throw notFound(`evaluation ${id} does not exist`);
    const results = entry.state === 'succeeded' ? await this.store.getResults(id) : undefined;
    return { ...summary(entry), request: entry.request, ...(results ? { results } : {}) };
  }

  @Get('v1/evaluations/:id/report')
  async report(@Param('id') id: string, @Res() res: Response): Promise<void> {
    checkId(id);
    const html = await this.store.getText(this.store.reportKey(id));
    if (html === undefined) throw notFound(`evaluation ${id} has no report (unknown, running or failed)`);
    res.status(200).type('text/html; charset=utf-8').send(html);
  }

  @Get('v1/evaluations/:id/samples')
  async samples(@Param('id') id: string, @Res() res: Response): Promise<void> {
    checkId(id);
    const body = await this.store.getText(this.store.samplesKey(id));
    if (body === undefined)
      throw notFound(`evaluation ${id} has no samples.jsonl (unknown, running or failed)`);
    res.status(200).type('application/x-ndjson').send(body);
  }
}
