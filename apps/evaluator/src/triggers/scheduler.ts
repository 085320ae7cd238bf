import { Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Cron } from 'croner';
import { EVALUATION_API_VERSION, EvaluationRequest, Topics } from '@lvr/contracts';
import { MessagePublisher } from '@lvr/messaging';
import { EvaluatorConfig, ScheduleConfig } from '../config';
import { EvaluationStore } from '../results/evaluation-store';
import { scheduledEvalId, splitModelRef } from './trigger-ids';

/**
 * Fires configured cron schedules by producing evaluation requests. Every replica runs this loop; a tick's
 * evaluation ids are deterministic, so the consumer runs each tick once. The last fired tick is kept in MinIO: after
 * downtime only the latest missed tick fires (once), and a fresh schedule does not fire for ticks before it existed.
 */
export class ScheduleTrigger implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Schedules');
  private timer?: NodeJS.Timeout;
  private readonly crons: { schedule: ScheduleConfig; cron: Cron }[];
  private polling = false;

  constructor(
    private readonly config: EvaluatorConfig,
    private readonly store: EvaluationStore,
    private readonly publisher: MessagePublisher,
  ) {
    this.crons = config.schedules.map((schedule) => ({
      schedule,
      cron: new Cron(schedule.cron, { timezone: schedule.timezone ?? 'UTC', paused: true }),
    }));
  }

  onApplicationBootstrap(): void {
    if (this.crons.length === 0) return;
    void this.poll();
    this.timer = setInterval(() => void this.poll(), this.config.schedulePollMs);
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async poll(now = new Date()): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      for (const { schedule, cron } of this.crons) {
        try {
          await this.check(schedule, cron, now);
        } catch (error) {
          this.logger.warn(`schedule ${schedule.name}: ${(error as Error).message}`);
        }
      }
    } finally {
      this.polling = false;
    }
  }

  private async check(schedule: ScheduleConfig, cron: Cron, now: Date): Promise<void> {
    const latest = cron.previousRuns(1, now)[0];
    if (!latest) return;
    const state = await this.store.getScheduleState(schedule.name);
    if (!state?.lastTick) {
      await this.store.putScheduleState(schedule.name, { lastTick: latest.toISOString() });
      return;
    }
    if (latest.getTime() <= Date.parse(state.lastTick)) return;
    // Requests first, state second: a crash in between fires the tick again, and the deterministic ids dedupe it.
    for (const ref of schedule.models) {
      const { modelId, modelVersion } = splitModelRef(ref);
      const evalId = scheduledEvalId(this.config.idPrefix, schedule.name, latest, ref);
      await this.publisher.publish<EvaluationRequest>(Topics.evaluationRequests, evalId, {
        apiVersion: EVALUATION_API_VERSION,
        evalId,
        modelId,
        modelVersion,
        benchmarks: schedule.benchmarks,
        decoding: schedule.decoding,
        trigger: 'schedule',
        schedule: schedule.name,
      });
      this.logger.log(`schedule ${schedule.name} tick ${latest.toISOString()}: requested ${evalId}`);
    }
    await this.store.putScheduleState(schedule.name, { lastTick: latest.toISOString() });
  }
}
