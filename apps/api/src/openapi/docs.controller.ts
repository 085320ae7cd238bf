import { Controller, Get, Inject } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { ModelRegistry } from '../registry/model-registry';
import { OpenApiDocument } from './openapi';

/** The OpenAPI document, at `/docs` and at the conventional `/openapi.json`; loaded model ids are its examples. */
@ApiExcludeController()
@Controller()
export class DocsController {
  constructor(
    @Inject(OpenApiDocument) private readonly document: OpenApiDocument,
    @Inject(ModelRegistry) private readonly registry: ModelRegistry,
  ) {}

  @Get(['docs', 'docs/openapi.json', 'openapi.json'])
  get(): Record<string, unknown> {
    return this.document.withModels(this.registry.list().map((entry) => entry.id)) as unknown as Record<
      string,
      unknown
    >;
  }
}
