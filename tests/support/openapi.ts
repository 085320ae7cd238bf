import assert from 'node:assert/strict';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';

// Reading a service's generated OpenAPI document in tests (the trainer's and evaluator's `GET /openapi.json`).

/* eslint-disable @typescript-eslint/no-explicit-any -- an OpenAPI document is read field by field */
export type OpenApiDoc = Record<string, any>;

/** The document at `/openapi.json`, checked to be OpenAPI 3.1 with exactly these `/v1/` paths. */
export async function fetchOpenApi(app: INestApplication, v1Paths: string[]): Promise<OpenApiDoc> {
  const { body: doc } = await request(app.getHttpServer()).get('/openapi.json').expect(200);
  assert.equal(doc.openapi, '3.1.0');
  const paths = Object.keys(doc.paths as object).filter((p) => p.startsWith('/v1/'));
  assert.deepEqual(paths.sort(), [...v1Paths].sort());
  return doc as OpenApiDoc;
}

/** A named parameter of an operation. */
export function parameter(operation: OpenApiDoc, name: string): OpenApiDoc {
  const found = (operation.parameters as OpenApiDoc[]).find((p) => p.name === name);
  assert.ok(found, `the operation has a parameter ${name}`);
  return found;
}

/** The component a JSON response refers to (`RunList` for `#/components/schemas/RunList`). */
export function responseSchemaName(operation: OpenApiDoc, status: string): string {
  return String(operation.responses[status].content['application/json'].schema.$ref).split('/').pop()!;
}
