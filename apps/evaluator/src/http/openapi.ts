const error = {
  description: 'Error',
  content: {
    'application/json': {
      schema: {
        type: 'object',
        required: ['error'],
        properties: {
          error: {
            type: 'object',
            required: ['message', 'type', 'code'],
            properties: { message: { type: 'string' }, type: { type: 'string' }, code: { type: 'string' } },
          },
        },
      },
    },
  },
};

const idParam = {
  name: 'id',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' },
};

const summary = {
  type: 'object',
  required: ['evalId', 'state', 'modelId', 'trigger', 'createdAt', 'updatedAt'],
  properties: {
    evalId: { type: 'string' },
    state: { type: 'string', enum: ['running', 'succeeded', 'failed'] },
    modelId: { type: 'string' },
    modelVersion: { type: 'string' },
    schedule: { type: 'string' },
    trigger: { type: 'string', enum: ['request', 'schedule', 'published'] },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
    finishedAt: { type: 'string', format: 'date-time' },
    heartbeatAt: { type: 'string', format: 'date-time' },
    reason: { type: 'string' },
    regressed: { type: 'boolean' },
    samplesDone: { type: 'integer' },
    samplesTotal: { type: 'integer' },
    headline: {
      type: 'array',
      items: { type: 'object', description: 'overall ScoreEntry (see results.json)' },
    },
  },
};

/** OpenAPI 3.1 description of the evaluator's read API. */
export function openApiDocument(): object {
  return {
    openapi: '3.1.0',
    info: {
      title: 'LVR evaluator read API',
      version: '1.0.0',
      description:
        'Evaluations started by lvr.evaluation.requests, schedules or lvr.models.published; results, samples and reports are kept in MinIO.',
    },
    paths: {
      '/v1/evaluations': {
        get: {
          operationId: 'listEvaluations',
          summary: 'Evaluations, newest first',
          parameters: [
            {
              name: 'state',
              in: 'query',
              schema: { type: 'string', enum: ['running', 'succeeded', 'failed'] },
            },
            { name: 'schedule', in: 'query', schema: { type: 'string' } },
            { name: 'model', in: 'query', schema: { type: 'string' } },
            {
              name: 'limit',
              in: 'query',
              schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
            },
          ],
          responses: {
            '200': {
              description: 'List',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: {
                      object: { const: 'list' },
                      data: { type: 'array', items: { $ref: '#/components/schemas/EvaluationSummary' } },
                    },
                  },
                },
              },
            },
            '400': error,
          },
        },
      },
      '/v1/evaluations/{id}': {
        get: {
          operationId: 'getEvaluation',
          summary: 'One evaluation: status, the request, and results.json once it succeeded',
          parameters: [idParam],
          responses: {
            '200': {
              description: 'Evaluation',
              content: {
                'application/json': {
                  schema: {
                    allOf: [
                      { $ref: '#/components/schemas/EvaluationSummary' },
                      {
                        type: 'object',
                        properties: {
                          request: { $ref: '#/components/schemas/EvaluationRequest' },
                          results: {
                            type: 'object',
                            description: 'results.json (format lvr-evaluation-results/v1)',
                          },
                        },
                      },
                    ],
                  },
                },
              },
            },
            '400': error,
            '404': error,
          },
        },
      },
      '/v1/evaluations/{id}/report': {
        get: {
          operationId: 'getEvaluationReport',
          summary: 'The self-contained HTML report',
          parameters: [idParam],
          responses: {
            '200': { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } },
            '400': error,
            '404': error,
          },
        },
      },
      '/v1/evaluations/{id}/samples': {
        get: {
          operationId: 'getEvaluationSamples',
          summary: 'samples.jsonl: one record per sample and decoding configuration',
          parameters: [idParam],
          responses: {
            '200': {
              description: 'JSON lines',
              content: { 'application/x-ndjson': { schema: { type: 'string' } } },
            },
            '400': error,
            '404': error,
          },
        },
      },
    },
    components: {
      schemas: {
        EvaluationSummary: summary,
        EvaluationRequest: {
          type: 'object',
          description:
            'The lvr.evaluation.requests message (JSON Schema: libs/contracts/schema/evaluation-request.schema.json)',
        },
      },
    },
  };
}
