import { Controller, Logger } from '@nestjs/common';
import { Ctx, EventPattern, KafkaContext } from '@nestjs/microservices';
import { EVALUATION_API_VERSION, EvaluationRequest, EvaluationResult, Topics } from '@lvr/contracts';
import { MessagePublisher, ValidatedIntake, extractField } from '@lvr/messaging';
import { rawKafkaMessage } from '@lvr/service-kit';

/** Intake of `lvr.evaluation.requests`: invalid requests are dead-lettered and answered with a Failed result. */
@Controller()
export class EvaluationRequestsController {
  private readonly logger = new Logger(EvaluationRequestsController.name);
  private readonly intake: ValidatedIntake<EvaluationRequest>;

  constructor(private readonly publisher: MessagePublisher) {
    this.intake = new ValidatedIntake(EvaluationRequest, publisher, 'evaluator');
  }

  @EventPattern(Topics.evaluationRequests)
  async onEvaluationRequest(@Ctx() context: KafkaContext): Promise<void> {
    const message = rawKafkaMessage(context);
    const outcome = await this.intake.accept(message);
    if (outcome.accepted) {
      // Benchmark execution lands with the evaluation issue; until then requests are validated and logged.
      if (!outcome.duplicate) this.logger.log(`accepted evaluation ${outcome.value.evalId}`);
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
