import { Controller, Inject, Logger } from '@nestjs/common';
import { Ctx, EventPattern, KafkaContext } from '@nestjs/microservices';
import {
  EVALUATION_API_VERSION,
  EvaluationRequest,
  ModelPublished,
  Topics,
  describeErrors,
  parseMessage,
} from '@lvr/contracts';
import { MessagePublisher } from '@lvr/messaging';
import { EVALUATOR_CONFIG } from '../tokens';
import { EvaluatorConfig } from '../config';
import { matchesModel, publishedEvalId } from './trigger-ids';

/** `lvr.models.published`: models that opted in (configuration) get an evaluation of the exact published version. */
@Controller()
export class ModelsPublishedController {
  private readonly logger = new Logger(ModelsPublishedController.name);
  constructor(
    private readonly publisher: MessagePublisher,
    @Inject(EVALUATOR_CONFIG) private readonly config: EvaluatorConfig,
  ) {}

  @EventPattern(Topics.modelsPublished)
  async onModelPublished(@Ctx() context: KafkaContext): Promise<void> {
    if (this.config.publishRules.length === 0) return;
    // The API consumes this topic too and dead-letters invalid events; here they are only skipped.
    const value = context.getMessage().value;
    const parsed = parseMessage(ModelPublished, Buffer.isBuffer(value) ? value : Buffer.from(value ?? ''));
    if (!parsed.ok) {
      this.logger.warn(`skipping invalid ${Topics.modelsPublished} event: ${describeErrors(parsed.errors)}`);
      return;
    }
    const model = parsed.value;
    for (const [index, rule] of this.config.publishRules.entries()) {
      if (!matchesModel(rule.models, model.modelId)) continue;
      const evalId = publishedEvalId(this.config.idPrefix, model.modelId, model.version, index);
      await this.publisher.publish<EvaluationRequest>(Topics.evaluationRequests, evalId, {
        apiVersion: EVALUATION_API_VERSION,
        evalId,
        modelId: model.modelId,
        modelVersion: model.version,
        benchmarks: rule.benchmarks,
        decoding: rule.decoding,
        trigger: 'published',
      });
      this.logger.log(`model ${model.modelId}@${model.version} published: requested ${evalId}`);
    }
  }
}
