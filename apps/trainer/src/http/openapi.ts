import { RUN_PHASES } from '@lvr/contracts';

const error = {
  description: 'OpenAI-style error object',
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
};

/** OpenAPI 3.1 description of the trainer's operator API (served at `GET /openapi.json`). */
export function openApiDocument(): Record<string, unknown> {
  const runId = {
    name: 'id',
    in: 'path',
    required: true,
    schema: { type: 'string', pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'LVR trainer operator API',
      version: '1.0.0',
      description:
        'Training runs of the trainer service: list, read, cancel, logs. Runs are submitted on Kafka.',
    },
    security: [{ bearerAuth: [] }],
    paths: {
      '/v1/runs': {
        get: {
          summary: 'List runs, newest first',
          parameters: [{ name: 'phase', in: 'query', schema: { type: 'string', enum: [...RUN_PHASES] } }],
          responses: {
            '200': {
              description: 'Runs',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: {
                      object: { const: 'list' },
                      data: { type: 'array', items: { $ref: '#/components/schemas/Run' } },
                    },
                  },
                },
              },
            },
            '400': error,
            '401': error,
          },
        },
      },
      '/v1/runs/{id}': {
        get: {
          summary: 'One run: phase, conditions with reasons and times, progress, checkpoints, bundle',
          parameters: [runId],
          responses: {
            '200': {
              description: 'The run',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Run' } } },
            },
            '401': error,
            '404': error,
          },
        },
      },
      '/v1/runs/{id}/cancel': {
        post: {
          summary: 'Cancel a run (publishes a cancel command on lvr.training.commands)',
          parameters: [runId],
          responses: {
            '202': {
              description: 'Cancellation requested (or the run had already ended: status is its final phase)',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: {
                      runId: { type: 'string' },
                      status: { type: 'string' },
                      commandId: { type: 'string' },
                    },
                  },
                },
              },
            },
            '401': error,
            '404': error,
          },
        },
      },
      '/v1/runs/{id}/logs': {
        get: {
          summary: 'Last lines of the worker log of the newest attempt',
          parameters: [
            runId,
            {
              name: 'tail',
              in: 'query',
              schema: { type: 'integer', minimum: 1, maximum: 10000, default: 100 },
            },
          ],
          responses: {
            '200': { description: 'Log lines', content: { 'text/plain': { schema: { type: 'string' } } } },
            '401': error,
            '404': error,
          },
        },
      },
    },
    components: {
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', description: 'A key from LVR_API_KEYS' },
      },
      schemas: {
        Error: {
          type: 'object',
          properties: {
            error: {
              type: 'object',
              properties: {
                message: { type: 'string' },
                type: { type: 'string' },
                param: {},
                code: { type: 'string' },
              },
            },
          },
        },
        Condition: {
          type: 'object',
          properties: {
            type: { type: 'string', enum: [...RUN_PHASES, 'Queued'] },
            reason: { type: 'string' },
            attempt: { type: 'integer' },
            time: { type: 'string', format: 'date-time' },
          },
        },
        Run: {
          type: 'object',
          required: ['runId', 'stage', 'phase', 'conditions', 'checkpoints'],
          properties: {
            object: { const: 'training.run' },
            runId: { type: 'string' },
            stage: { type: 'string', enum: ['sft', 'grpo'] },
            phase: { type: 'string', enum: [...RUN_PHASES] },
            queued: { type: 'boolean', description: 'waiting for GPU budget' },
            createdAt: { type: 'string', format: 'date-time' },
            reason: { type: 'string' },
            exitCode: { type: 'integer' },
            conditions: { type: 'array', items: { $ref: '#/components/schemas/Condition' } },
            progress: {
              type: 'object',
              properties: {
                step: { type: 'integer' },
                totalSteps: { type: 'integer' },
                loss: { type: 'number' },
                etaSeconds: { type: 'number' },
                updatedAt: { type: 'string' },
                data: { type: 'object' },
              },
            },
            checkpoints: {
              type: 'array',
              items: {
                type: 'object',
                properties: { step: { type: 'integer' }, uri: { type: 'string' }, at: { type: 'string' } },
              },
            },
            bundle: {
              type: 'object',
              properties: {
                uri: { type: 'string' },
                modelId: { type: 'string' },
                version: { type: 'string' },
              },
            },
            workload: {
              type: 'object',
              description: 'live status of the Job/pods or the local worker process',
            },
            resources: { type: 'object' },
          },
        },
      },
    },
  };
}
