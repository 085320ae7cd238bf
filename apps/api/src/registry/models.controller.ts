import { Controller, Get, Inject, Param } from '@nestjs/common';
import { ApiError } from '../errors/api-error';
import { ModelEntry, ModelRegistry, type ModelVersionInfo } from './model-registry';

/** OpenAI `Model` object, with vLLM's `max_model_len`, the LVR defaults and the model's versions as extras. */
export interface ModelCard {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  root: string;
  parent: string | null;
  max_model_len: number;
  lvr: { strategy: string; steps: number };
  /** The version this card describes (null when the bundle was configured without a label). */
  version: string | null;
  /** Every version known for the model: address one with `model: "<id>@<version>"`. */
  versions: ModelVersionInfo[];
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
  list(): { object: 'list'; data: ModelCard[] } {
    return {
      object: 'list',
      data: this.registry.list().map((e) => toModelCard(e, this.registry.versions(e.id))),
    };
  }

  /** Ids may contain `/` (`org/name`), so the rest of the path is the id; `<id>@<version>` names one version. */
  @Get('*id')
  async retrieve(@Param('id') id: string | string[]): Promise<ModelCard> {
    const ref = Array.isArray(id) ? id.join('/') : id;
    const entry = await this.registry.resolve(ref);
    if (!entry) throw ApiError.modelNotFound(ref);
    return toModelCard(entry, this.registry.versions(entry.id), ref);
  }
}
