import { Controller, Inject, Logger } from '@nestjs/common';
import { Ctx, EventPattern, KafkaContext } from '@nestjs/microservices';
import { EVALUATION_API_VERSION, EvaluationRequest, EvaluationResult, Topics } from '@lvr/contracts';
import { MessagePublisher, ValidatedIntake, extractField } from '@lvr/messaging';
import { rawKafkaMessage } from '@lvr/service-kit';
import { EvaluationService } from './evaluation.service';
import { EvaluatorConfig } from './config';
import { EVALUATOR_CONFIG } from './tokens';

/**
 * Intake of `lvr.evaluation.requests`: invalid requests are dead-lettered and answered with a Failed result; valid
 * ones run to completion inside the handler, so the offset is committed only after the result exists (a crash
 * redelivers the request, which resumes from the stored samples).
 */
@Controller()
export class EvaluationRequestsController {
  private readonly logger = new Logger(EvaluationRequestsController.name);
  private readonly intake: ValidatedIntake<EvaluationRequest>;

  constructor(
    private readonly publisher: MessagePublisher,
    private readonly evaluations: EvaluationService,
    @Inject(EVALUATOR_CONFIG) private readonly config: EvaluatorConfig,
  ) {
    this.intake = new ValidatedIntake(EvaluationRequest, publisher, 'evaluator');
  }

  @EventPattern(Topics.evaluationRequests)
  async onEvaluationRequest(@Ctx() context: KafkaContext): Promise<void> {
    const message = rawKafkaMessage(context);
    if (this.config.idPrefix && !extractField(message.value, 'evalId')?.startsWith(this.config.idPrefix))
      return;
    const outcome = await this.intake.accept(message);
    if (outcome.accepted) {
      const heartbeat = context.getHeartbeat();
      await this.evaluations.handle(outcome.value, () => heartbeat());
      return;
    }
    const evalId = extractField(message.value, 'evalId');
    this.logger.warn(`rejected evaluation request at offset ${message.offset}: ${outcome.reason}`);
    if (evalId) {
      await this.publisher.publish<EvaluationResult>(Topics.evaluationResults, evalId, {
        apiVersion: EVALUATION_API_VERSION,
        evalId,
        status: 'Failed',
        reason: `invalid request: ${outcome.reason}`,
      });
    }
  }
}
