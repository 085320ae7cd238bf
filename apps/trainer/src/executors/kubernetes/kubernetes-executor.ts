import { Logger } from '@nestjs/common';
import * as k8s from '@kubernetes/client-node';
import type { TrainingRequest } from '@lvr/contracts';
import {
  Components,
  Labels,
  MANAGED_SELECTOR,
  type PodSettings,
  type RunWorkload,
  type WatchedCache,
  type WorkloadStatus,
  buildRendezvousService,
  buildRunJob,
  describeK8sError,
  isConflict,
  isNotFound,
  runObjectName,
  watchNamespaced,
  workloadStatus,
} from '@lvr/k8s';
import type { Executor, WorkloadListener } from '../executor';
import type { RunRecord } from '../../runs/run-record';
import { Annotations, ConfigMapRunStore } from './configmap-store';

const WORKLOAD_SELECTOR = `${MANAGED_SELECTOR},${Labels.component}=${Components.training}`;
const MERGE_PATCH = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

export interface KubernetesExecutorOptions {
  pod: PodSettings;
  gpuBudget: number;
  resyncMs: number;
}

function workloadOf(request: TrainingRequest): RunWorkload {
  return {
    runId: request.runId,
    stage: request.stage,
    gpusPerNode: request.resources.gpusPerNode,
    nodes: request.resources.nodes ?? 1,
    priorityClassName: request.resources.priorityClassName,
  };
}

function isFinished(job: k8s.V1Job): boolean {
  return Boolean(
    job.status?.conditions?.some(
      (c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True',
    ),
  );
}

/**
 * Runs each training run as a Job (an Indexed Job plus a headless Service when it spans nodes) owned by its run
 * record, and derives workload status from Job and Pod informers. With a GPU budget, Jobs are created suspended
 * and admitted in priority, then arrival order.
 */
export class KubernetesExecutor implements Executor {
  readonly kind = 'kubernetes' as const;
  readonly store: ConfigMapRunStore;
  private readonly logger = new Logger(KubernetesExecutor.name);
  private readonly core: k8s.CoreV1Api;
  private readonly batch: k8s.BatchV1Api;
  private readonly scheduling: k8s.SchedulingV1Api;
  private jobs?: WatchedCache<k8s.V1Job>;
  private pods?: WatchedCache<k8s.V1Pod>;
  private resync?: NodeJS.Timeout;
  private admitting: Promise<void> = Promise.resolve();
  private readonly namespace: string;

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly options: KubernetesExecutorOptions,
  ) {
    this.namespace = options.pod.namespace;
    this.store = new ConfigMapRunStore(kc, this.namespace);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.batch = kc.makeApiClient(k8s.BatchV1Api);
    this.scheduling = kc.makeApiClient(k8s.SchedulingV1Api);
  }

  async infeasible(request: TrainingRequest): Promise<string | undefined> {
    const workload = workloadOf(request);
    const gpus = workload.gpusPerNode * workload.nodes;
    if (this.options.gpuBudget > 0 && gpus > this.options.gpuBudget)
      return `the run needs ${gpus} GPUs, more than the trainer's GPU budget of ${this.options.gpuBudget}`;
    const priorityClass = workload.priorityClassName ?? this.options.pod.defaultPriorityClassName;
    if (priorityClass) {
      try {
        await this.scheduling.readPriorityClass({ name: priorityClass });
      } catch (error) {
        if (isNotFound(error)) return `unknown priority class "${priorityClass}"`;
        throw error;
      }
    }
    return undefined;
  }

  private async priorityValue(name: string | undefined): Promise<number> {
    if (!name) return 0;
    try {
      return (await this.scheduling.readPriorityClass({ name })).value ?? 0;
    } catch {
      return 0;
    }
  }

  async start(record: RunRecord): Promise<void> {
    const workload = workloadOf(record.request);
    const configMap = this.store.configMapOf(record.runId) ?? (await this.readRecordConfigMap(record.runId));
    if (workload.nodes > 1) {
      await this.createIfAbsent(() =>
        this.core.createNamespacedService({
          namespace: this.namespace,
          body: buildRendezvousService(workload, configMap, this.namespace),
        }),
      );
    }
    const job = buildRunJob(workload, configMap, this.options.pod, { suspend: this.options.gpuBudget > 0 });
    job.metadata!.annotations = {
      [Annotations.gpus]: String(workload.gpusPerNode * workload.nodes),
      [Annotations.priority]: String(
        await this.priorityValue(workload.priorityClassName ?? this.options.pod.defaultPriorityClassName),
      ),
      [Annotations.createdAt]: record.createdAt,
    };
    await this.createIfAbsent(() => this.batch.createNamespacedJob({ namespace: this.namespace, body: job }));
  }

  private async readRecordConfigMap(runId: string): Promise<k8s.V1ConfigMap> {
    return this.core.readNamespacedConfigMap({ name: runObjectName(runId), namespace: this.namespace });
  }

  /** Creation is the idempotency check: an object that already exists is the one a previous attempt created. */
  private async createIfAbsent(create: () => Promise<unknown>): Promise<void> {
    try {
      await create();
    } catch (error) {
      if (!isConflict(error)) throw new Error(describeK8sError(error));
    }
  }

  async stop(runId: string): Promise<void> {
    const name = runObjectName(runId);
    for (const remove of [
      () =>
        this.batch.deleteNamespacedJob({ name, namespace: this.namespace, propagationPolicy: 'Background' }),
      () => this.core.deleteNamespacedService({ name, namespace: this.namespace }),
    ]) {
      try {
        await remove();
      } catch (error) {
        if (!isNotFound(error)) throw new Error(describeK8sError(error));
      }
    }
  }

  async watch(listener: WorkloadListener): Promise<void> {
    await this.store.load();
    const changed = (object: k8s.KubernetesObject) => {
      const runId = object.metadata?.labels?.[Labels.runId];
      if (runId) listener(runId, this.workload(runId));
    };
    const onError = (error: unknown) =>
      this.logger.warn(`watch error, relisting: ${describeK8sError(error)}`);
    this.jobs = await watchNamespaced<k8s.V1Job>(
      this.kc,
      `/apis/batch/v1/namespaces/${this.namespace}/jobs`,
      () => this.batch.listNamespacedJob({ namespace: this.namespace, labelSelector: WORKLOAD_SELECTOR }),
      WORKLOAD_SELECTOR,
      changed,
      onError,
    );
    this.pods = await watchNamespaced<k8s.V1Pod>(
      this.kc,
      `/api/v1/namespaces/${this.namespace}/pods`,
      () => this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: WORKLOAD_SELECTOR }),
      WORKLOAD_SELECTOR,
      changed,
      onError,
    );
    const resyncAll = async () => {
      for (const record of await this.store.list())
        if (!record.status.terminal) listener(record.runId, this.workload(record.runId));
      await this.admit().catch((error: Error) => this.logger.warn(`admission failed: ${error.message}`));
    };
    await resyncAll();
    this.resync = setInterval(() => void resyncAll(), this.options.resyncMs);
  }

  workload(runId: string): WorkloadStatus | undefined {
    const job = this.jobs?.get(runObjectName(runId));
    if (!job || job.metadata?.deletionTimestamp) return undefined;
    const pods = (this.pods?.list() ?? []).filter((p) => p.metadata?.labels?.[Labels.runId] === runId);
    return workloadStatus(job, pods, job.spec?.completions ?? 1);
  }

  async logs(runId: string, tailLines: number): Promise<string> {
    const pods = (this.pods?.list() ?? [])
      .filter((p) => p.metadata?.labels?.[Labels.runId] === runId)
      .sort(
        (a, b) =>
          new Date(a.metadata?.creationTimestamp ?? 0).getTime() -
          new Date(b.metadata?.creationTimestamp ?? 0).getTime(),
      );
    const newest = pods.at(-1);
    if (!newest) return '';
    return this.core.readNamespacedPodLog({
      name: newest.metadata!.name!,
      namespace: this.namespace,
      container: 'trainer',
      tailLines,
    });
  }

  /**
   * Unsuspends queued Jobs while the GPUs of admitted, unfinished Jobs stay within the budget: highest priority
   * first, then oldest request; the head of the queue is never overtaken by a smaller run behind it.
   */
  admit(): Promise<void> {
    if (this.options.gpuBudget <= 0) return Promise.resolve();
    const next = this.admitting.then(() => this.admitOnce());
    this.admitting = next.catch(() => undefined);
    return next;
  }

  private async admitOnce(): Promise<void> {
    const jobs = (
      await this.batch.listNamespacedJob({ namespace: this.namespace, labelSelector: WORKLOAD_SELECTOR })
    ).items.filter((j) => !isFinished(j) && !j.metadata?.deletionTimestamp);
    const gpusOf = (j: k8s.V1Job) => Number(j.metadata?.annotations?.[Annotations.gpus] ?? 0);
    let used = jobs.filter((j) => !j.spec?.suspend).reduce((sum, j) => sum + gpusOf(j), 0);
    const queue = jobs
      .filter((j) => j.spec?.suspend)
      .sort((a, b) => {
        const pa = Number(a.metadata?.annotations?.[Annotations.priority] ?? 0);
        const pb = Number(b.metadata?.annotations?.[Annotations.priority] ?? 0);
        if (pa !== pb) return pb - pa;
        const ta = a.metadata?.annotations?.[Annotations.createdAt] ?? '';
        const tb = b.metadata?.annotations?.[Annotations.createdAt] ?? '';
        return ta < tb ? -1 : ta > tb ? 1 : (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '');
      });
    for (const job of queue) {
      if (used + gpusOf(job) > this.options.gpuBudget) break;
      await this.batch.patchNamespacedJob(
        { name: job.metadata!.name!, namespace: this.namespace, body: { spec: { suspend: false } } },
        MERGE_PATCH,
      );
      used += gpusOf(job);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.resync);
    await this.jobs?.stop();
    await this.pods?.stop();
  }
}
