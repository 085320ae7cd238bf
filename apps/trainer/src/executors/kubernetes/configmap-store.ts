import * as k8s from '@kubernetes/client-node';
import type { TrainingRequest } from '@lvr/contracts';
import {
  Components,
  Labels,
  MANAGED_SELECTOR,
  RUN_SPEC_KEY,
  buildRunConfigMap,
  isConflict,
  isNotFound,
  runObjectName,
} from '@lvr/k8s';
import type { CreateOutcome, RunStore } from '../executor';
import { type RunRecord, type RunStatus, emptyStatus } from '../../runs/run-record';

export const Annotations = {
  specHash: 'lvr.dev/spec-hash',
  createdAt: 'lvr.dev/created-at',
  status: 'lvr.dev/status',
  gpus: 'lvr.dev/gpus',
  priority: 'lvr.dev/priority',
} as const;

const RECORD_SELECTOR = `${MANAGED_SELECTOR},${Labels.component}=${Components.record}`;
const MERGE_PATCH = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

/**
 * Run records as ConfigMaps named after the run id: `run.json` is the validated spec the pods mount, annotations hold
 * the reported status. Creating the ConfigMap is the idempotency check (AlreadyExists = the run exists). The leader
 * is the only writer, so its in-memory copy is authoritative; other replicas read through to the API.
 */
export class ConfigMapRunStore implements RunStore {
  private readonly core: k8s.CoreV1Api;
  private readonly records = new Map<string, { record: RunRecord; configMap: k8s.V1ConfigMap }>();
  private loaded = false;

  constructor(
    kc: k8s.KubeConfig,
    private readonly namespace: string,
  ) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
  }

  /** Lists every record once, so `get` and `list` answer from memory afterwards (leader only). */
  async load(): Promise<void> {
    const list = await this.core.listNamespacedConfigMap({
      namespace: this.namespace,
      labelSelector: RECORD_SELECTOR,
    });
    for (const configMap of list.items) {
      const record = toRecord(configMap);
      if (record && !this.records.has(record.runId)) this.records.set(record.runId, { record, configMap });
    }
    this.loaded = true;
  }

  configMapOf(runId: string): k8s.V1ConfigMap | undefined {
    return this.records.get(runId)?.configMap;
  }

  async create(request: TrainingRequest, specHash: string): Promise<CreateOutcome> {
    const createdAt = new Date().toISOString();
    const body = buildRunConfigMap(
      {
        runId: request.runId,
        stage: request.stage,
        gpusPerNode: request.resources.gpusPerNode,
        nodes: request.resources.nodes ?? 1,
      },
      this.namespace,
      {
        specJson: JSON.stringify(request),
        specHash,
        annotations: {
          [Annotations.specHash]: specHash,
          [Annotations.createdAt]: createdAt,
          [Annotations.status]: JSON.stringify(emptyStatus()),
        },
      },
    );
    try {
      const configMap = await this.core.createNamespacedConfigMap({ namespace: this.namespace, body });
      const record = toRecord(configMap)!;
      this.records.set(record.runId, { record, configMap });
      return { created: true, record };
    } catch (error) {
      if (!isConflict(error)) throw error;
      this.records.delete(request.runId);
      const record = await this.get(request.runId);
      if (!record) throw error;
      return { created: false, record };
    }
  }

  async get(runId: string): Promise<RunRecord | undefined> {
    const cached = this.records.get(runId);
    if (cached) return cached.record;
    try {
      const configMap = await this.core.readNamespacedConfigMap({
        name: runObjectName(runId),
        namespace: this.namespace,
      });
      const record = toRecord(configMap);
      if (record && this.loaded) this.records.set(runId, { record, configMap });
      return record;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async list(): Promise<RunRecord[]> {
    if (!this.loaded) {
      const list = await this.core.listNamespacedConfigMap({
        namespace: this.namespace,
        labelSelector: RECORD_SELECTOR,
      });
      return list.items.map(toRecord).filter((r): r is RunRecord => Boolean(r));
    }
    return [...this.records.values()].map((r) => r.record);
  }

  async saveStatus(runId: string, status: RunStatus): Promise<void> {
    try {
      await this.core.patchNamespacedConfigMap(
        {
          name: runObjectName(runId),
          namespace: this.namespace,
          body: { metadata: { annotations: { [Annotations.status]: JSON.stringify(status) } } },
        },
        MERGE_PATCH,
      );
    } catch (error) {
      if (isNotFound(error)) {
        this.records.delete(runId);
        return;
      }
      throw error;
    }
  }
}

function toRecord(configMap: k8s.V1ConfigMap): RunRecord | undefined {
  const annotations = configMap.metadata?.annotations ?? {};
  const runId = configMap.metadata?.labels?.[Labels.runId];
  const spec = configMap.data?.[RUN_SPEC_KEY];
  if (!runId || !spec) return undefined;
  let status: RunStatus;
  try {
    status = {
      ...emptyStatus(),
      ...(JSON.parse(annotations[Annotations.status] ?? '{}') as Partial<RunStatus>),
    };
  } catch {
    status = emptyStatus();
  }
  const request = JSON.parse(spec) as TrainingRequest;
  return {
    runId,
    stage: request.stage,
    request,
    specHash: annotations[Annotations.specHash] ?? '',
    createdAt:
      annotations[Annotations.createdAt] ??
      new Date(configMap.metadata?.creationTimestamp ?? 0).toISOString(),
    status,
  };
}
