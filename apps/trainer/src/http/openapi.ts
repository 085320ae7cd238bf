import type { INestApplication } from '@nestjs/common';
import type { OpenAPIObject } from '@nestjs/swagger';
import { buildServiceDocument } from '@lvr/service-kit';

/** The operator API's OpenAPI 3.1 document, generated from the controllers and the response classes (`run-view`). */
export function trainerOpenApiDocument(app: INestApplication): OpenAPIObject {
  return buildServiceDocument(app, {
    title: 'LVR trainer operator API',
    description:
      'Training runs of the trainer service: list, read, cancel, logs. Runs are submitted on Kafka.',
    bearerAuth: true,
  });
}
