import { Controller, Get, Inject, Param } from '@nestjs/common';
import { ApiError } from '../errors/api-error';
import { ModelEntry, ModelRegistry } from './model-registry';

/** OpenAI `Model` object, with vLLM's `max_model_len` and the LVR defaults as extras. */
export interface ModelCard {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  root: string;
  parent: string | null;
  max_model_len: number;
  lvr: { strategy: string; steps: number };
}

export function toModelCard(entry: ModelEntry): ModelCard {
  return {
    id: entry.id,
    object: 'model',
    created: entry.created,
    owned_by: 'lvr-platform',
    root: entry.id,
    parent: null,
    max_model_len: entry.info.maxContextTokens,
    lvr: { strategy: entry.info.lvrDefaults.strategy, steps: entry.info.lvrDefaults.steps },
  };
}

@Controller('v1/models')
export class ModelsController {
  constructor(@Inject(ModelRegistry) private readonly registry: ModelRegistry) {}

  @Get()
  list(): { object: 'list'; data: ModelCard[] } {
    return { object: 'list', data: this.registry.list().map(toModelCard) };
  }

  /** Ids may contain `/` (`org/name`), so the rest of the path is the id. */
  @Get('*id')
  retrieve(@Param('id') id: string | string[]): ModelCard {
    const modelId = Array.isArray(id) ? id.join('/') : id;
    const entry = this.registry.get(modelId);
    if (!entry) throw ApiError.modelNotFound(modelId);
    return toModelCard(entry);
  }
}
