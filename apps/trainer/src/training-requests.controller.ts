import { Controller, Logger } from '@nestjs/common';
import { Ctx, EventPattern, KafkaContext } from '@nestjs/microservices';
import { TRAINING_API_VERSION, Topics, TrainingEvent, TrainingRequest } from '@lvr/contracts';
import { MessagePublisher, ValidatedIntake, extractField } from '@lvr/messaging';
import { rawKafkaMessage } from '@lvr/service-kit';

/**
 * Intake of `lvr.training.requests`: every message is validated against the contract; valid runs are announced as
 * Accepted, invalid ones are dead-lettered with the reason and a Rejected event names the run when it can.
 */
@Controller()
export class TrainingRequestsController {
  private readonly logger = new Logger(TrainingRequestsController.name);
  private readonly intake: ValidatedIntake<TrainingRequest>;

  constructor(private readonly publisher: MessagePublisher) {
    this.intake = new ValidatedIntake(TrainingRequest, publisher, 'trainer');
  }

  @EventPattern(Topics.trainingRequests)
  async onTrainingRequest(@Ctx() context: KafkaContext): Promise<void> {
    const message = rawKafkaMessage(context);
    const outcome = await this.intake.accept(message);
    if (!outcome.accepted) {
      const runId = extractField(message.value, 'runId');
      this.logger.warn(`rejected training request at offset ${message.offset}: ${outcome.reason}`);
      if (runId) await this.emit(runId, 'Rejected', outcome.reason);
      return;
    }
    if (outcome.duplicate) return;
    const request = outcome.value;
    await this.emit(request.runId, 'Accepted', undefined, { stage: request.stage, requestId: request.id });
  }

  private async emit(
    runId: string,
    type: TrainingEvent['type'],
    reason?: string,
    data?: Record<string, unknown>,
  ): Promise<void> {
    await this.publisher.publish<TrainingEvent>(Topics.trainingEvents, runId, {
      apiVersion: TRAINING_API_VERSION,
      runId,
      type,
      reason,
      data,
    });
  }
}
