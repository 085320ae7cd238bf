import { Logger } from '@nestjs/common';
import * as k8s from '@kubernetes/client-node';
import { LeaderElector } from '@lvr/k8s';
import { type KafkaSettings, MessagePublisher } from '@lvr/messaging';
import type { Readiness } from '@lvr/service-kit';
import type { TrainerConfig } from './config';
import type { Executor } from './executors/executor';
import { KubernetesExecutor } from './executors/kubernetes/kubernetes-executor';
import { LocalExecutor } from './executors/local/local-executor';
import { TrainerIntake } from './kafka-intake';
import { RunLifecycle } from './runs/lifecycle';

export type TrainerRole = 'starting' | 'leader' | 'standby';

export function loadKubeConfig(config: TrainerConfig): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (config.kubernetes.kubeconfig) kc.loadFromFile(config.kubernetes.kubeconfig);
  else kc.loadFromCluster();
  return kc;
}

export function createExecutor(config: TrainerConfig, kc?: k8s.KubeConfig): Executor {
  if (config.executor === 'kubernetes')
    return new KubernetesExecutor(kc ?? loadKubeConfig(config), {
      pod: config.kubernetes.pod,
      gpuBudget: config.gpuBudget,
      resyncMs: config.resyncMs,
    });
  return new LocalExecutor({
    stateDir: config.local.stateDir,
    python: config.local.python,
    pythonPath: config.local.pythonPath,
    workerArgs: config.local.workerArgs,
    workerEnv: config.kubernetes.pod.env,
    backoffLimit: config.backoffLimit,
  });
}

/**
 * What the trainer process does besides HTTP: with the kubernetes executor, only the replica holding the Lease
 * consumes Kafka and watches workloads (the others serve the read API and wait); the local executor always leads.
 */
export class TrainerRuntime {
  private readonly logger = new Logger(TrainerRuntime.name);
  private intake?: TrainerIntake;
  private elector?: LeaderElector;
  role: TrainerRole = 'starting';

  get topics(): TrainerConfig['topics'] {
    return this.config.topics;
  }

  constructor(
    private readonly config: TrainerConfig,
    private readonly kafka: KafkaSettings,
    readonly executor: Executor,
    readonly lifecycle: RunLifecycle,
    private readonly publisher: MessagePublisher,
    private readonly readiness: Readiness,
    private readonly kc?: k8s.KubeConfig,
  ) {}

  async start(): Promise<void> {
    this.readiness.waitFor('runs');
    if (this.config.executor !== 'kubernetes' || !this.kc) {
      await this.lead();
      return;
    }
    this.elector = new LeaderElector(this.kc, {
      namespace: this.config.kubernetes.pod.namespace,
      leaseName: this.config.kubernetes.leaseName,
      identity: this.config.kubernetes.identity,
      leaseDurationSeconds: this.config.kubernetes.leaseDurationSeconds,
    });
    this.role = 'standby';
    // A standby answers reads from the cluster, so it is ready too; only the leader acts.
    this.readiness.markReady('runs');
    this.elector.start(
      () => {
        this.lead().catch((error: Error) => {
          this.logger.error(`could not take the lead: ${error.message}`);
          process.exit(1);
        });
      },
      () => {
        // Another replica may act now; stopping hard is the only way to be sure this one does not.
        this.logger.error('lost the leader lease; exiting');
        process.exit(1);
      },
    );
  }

  private async lead(): Promise<void> {
    this.logger.log(`leading (${this.config.executor} executor)`);
    await this.executor.watch((runId, workload) => {
      this.lifecycle
        .observe(runId, workload)
        .catch((error: Error) =>
          this.logger.warn(`reconcile of ${runId} failed (retried on resync): ${error.message}`),
        );
    });
    this.intake = new TrainerIntake(
      this.kafka,
      this.config.groupId,
      this.config.topics,
      this.publisher,
      this.lifecycle,
    );
    await this.intake.start();
    this.role = 'leader';
    this.readiness.markReady('runs');
  }

  async stop(): Promise<void> {
    await this.intake?.stop().catch(() => undefined);
    await this.elector?.stop();
    await this.executor.close();
  }
}
