import { Controller, Get, Inject, Param } from '@nestjs/common';
import { ApiOkResponse, ApiParam, ApiProperty } from '@nestjs/swagger';
import { ApiError } from '../errors/api-error';
import { ApiOperationDoc } from '../openapi/openapi';
import { ModelEntry, ModelRegistry, type ModelVersionInfo } from './model-registry';

export class ModelVersionCard implements ModelVersionInfo {
  @ApiProperty() version!: string;
  @ApiProperty({
    description: "what a request's `model` names to address exactly this version: `<id>@<version>`",
  })
  ref!: string;
  @ApiProperty() loaded!: boolean;
  @ApiProperty() current!: boolean;
}

export class LvrDefaultsCard {
  @ApiProperty({ description: "the bundle's default LVR strategy" }) strategy!: string;
  @ApiProperty({ type: 'integer' }) steps!: number;
}

/** OpenAI `Model` object, with vLLM's `max_model_len`, the LVR defaults and the model's versions as extras. */
export class ModelCard {
  @ApiProperty() id!: string;
  @ApiProperty({ enum: ['model'] }) object!: 'model';
  @ApiProperty({ type: 'integer' }) created!: number;
  @ApiProperty() owned_by!: string;
  @ApiProperty() root!: string;
  @ApiProperty({ anyOf: [{ type: 'string' }, { type: 'null' }] }) parent!: string | null;
  @ApiProperty({ type: 'integer' }) max_model_len!: number;
  @ApiProperty({ type: LvrDefaultsCard }) lvr!: LvrDefaultsCard;
  @ApiProperty({
    anyOf: [{ type: 'string' }, { type: 'null' }],
    description: 'the version this card describes (null when the bundle was configured without a label)',
  })
  version!: string | null;
  @ApiProperty({
    type: [ModelVersionCard],
    description: 'every version known for the model: address one with `model: "<id>@<version>"`',
  })
  versions!: ModelVersionInfo[];
}

export class ModelList {
  @ApiProperty({ enum: ['list'] }) object!: 'list';
  @ApiProperty({ type: [ModelCard] }) data!: ModelCard[];
}

export function toModelCard(entry: ModelEntry, versions: ModelVersionInfo[], id = entry.id): ModelCard {
  return {
    id,
    object: 'model',
    created: entry.created,
    owned_by: 'lvr-platform',
    root: entry.id,
    parent: id === entry.id ? null : entry.id,
    max_model_len: entry.info.maxContextTokens,
    lvr: { strategy: entry.info.lvrDefaults.strategy, steps: entry.info.lvrDefaults.steps },
    version: entry.version ?? null,
    versions,
  };
}

@Controller('v1/models')
export class ModelsController {
  constructor(@Inject(ModelRegistry) private readonly registry: ModelRegistry) {}

  @Get()
  @ApiOperationDoc('listModels', [401])
  @ApiOkResponse({ description: 'Loaded models', type: ModelList })
  list(): ModelList {
    return {
      object: 'list',
      data: this.registry.list().map((e) => toModelCard(e, this.registry.versions(e.id))),
    };
  }

  /** Ids may contain `/` (`org/name`), so the rest of the path is the id; `<id>@<version>` names one version. */
  @Get('*id')
  @ApiOperationDoc('retrieveModel', [401, 404])
  @ApiParam({ name: 'id', required: true, schema: { type: 'string', minLength: 1 } })
  @ApiOkResponse({ description: 'The model', type: ModelCard })
  async retrieve(@Param('id') id: string | string[]): Promise<ModelCard> {
    const ref = Array.isArray(id) ? id.join('/') : id;
    const entry = await this.registry.resolve(ref);
    if (!entry) throw ApiError.modelNotFound(ref);
    return toModelCard(entry, this.registry.versions(entry.id), ref);
  }
}
