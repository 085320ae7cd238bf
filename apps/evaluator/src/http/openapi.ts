import type { INestApplication } from '@nestjs/common';
import type { OpenAPIObject } from '@nestjs/swagger';
import { buildServiceDocument, validatorSchemas } from '@lvr/service-kit';

/**
 * The read API's OpenAPI 3.1 document: operations and responses from the controller and `evaluation-views`
 * (@nestjs/swagger), the evaluation request from the contract DTO's validation rules (libs/contracts).
 */
export function evaluatorOpenApiDocument(app: INestApplication): OpenAPIObject {
  return buildServiceDocument(app, {
    title: 'LVR evaluator read API',
    description:
      'Evaluations started by lvr.evaluation.requests, schedules or lvr.models.published; results, samples and ' +
      'reports are kept in MinIO.',
    bearerAuth: false,
    schemas: validatorSchemas(['EvaluationRequest']),
  });
}
