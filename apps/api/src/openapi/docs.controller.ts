import { Controller, Get, Inject } from '@nestjs/common';
import { API_CONFIG, type ApiConfig } from '../config/api-config';
import { buildOpenApiDocument } from './openapi-document';

/** The OpenAPI document, at `/docs` and at the conventional `/openapi.json`. */
@Controller()
export class DocsController {
  private readonly document: Record<string, unknown>;

  constructor(@Inject(API_CONFIG) config: ApiConfig) {
    this.document = buildOpenApiDocument(config);
  }

  @Get(['docs', 'docs/openapi.json', 'openapi.json'])
  get(): Record<string, unknown> {
    return this.document;
  }
}
