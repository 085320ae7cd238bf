import { Module } from '@nestjs/common';
import { DocsController } from './docs.controller';
import { OpenApiDocument } from './openapi';

/** The OpenAPI document, built from the other modules' controllers once the app exists. */
@Module({ providers: [OpenApiDocument], controllers: [DocsController], exports: [OpenApiDocument] })
export class DocsModule {}
