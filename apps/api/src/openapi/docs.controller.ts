import { Controller, Get, Inject } from '@nestjs/common';
import { API_CONFIG, type ApiConfig } from '../config/api-config';
import { ModelRegistry } from '../registry/model-registry';
import { buildOpenApiDocument } from './openapi-document';

/** The OpenAPI document, at `/docs` and at the conventional `/openapi.json`; loaded model ids are its examples. */
@Controller()
export class DocsController {
  constructor(
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    @Inject(ModelRegistry) private readonly registry: ModelRegistry,
  ) {}

  @Get(['docs', 'docs/openapi.json', 'openapi.json'])
  get(): Record<string, unknown> {
    return buildOpenApiDocument(
      this.config,
      this.registry.list().map((e) => e.id),
    );
  }
}
