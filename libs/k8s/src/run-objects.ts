import type * as k8s from '@kubernetes/client-node';
import { Components, runLabels, runObjectName } from './names';

/** Exit code the worker uses for an invalid spec, model or data: retrying cannot help (docs/training.md). */
export const EXIT_INVALID = 78;
export const TRAINER_CONTAINER = 'trainer';
export const RUN_SPEC_KEY = 'run.json';
export const RUN_SPEC_DIR = '/etc/lvr';
export const RENDEZVOUS_PORT = 29500;

/** What a run asks for; the rest of the pod comes from the trainer's configuration. */
export interface RunWorkload {
  runId: string;
  stage: string;
  gpusPerNode: number;
  nodes: number;
  priorityClassName?: string;
}

/** Where a credential lives: the pod reads it from a Secret, the trainer never sees it. */
export interface SecretEnv {
  name: string;
  secretName: string;
  key: string;
}

/** Cluster-side settings of training pods (the trainer's configuration, see apps/trainer/src/config.ts). */
export interface PodSettings {
  namespace: string;
  image: string;
  imagePullPolicy?: string;
  serviceAccountName?: string;
  gpuResource: string;
  gpuNodeSelector: Record<string, string>;
  gpuTolerations: k8s.V1Toleration[];
  cpuRequest: string;
  cpuLimit?: string;
  memoryRequest: string;
  memoryLimit: string;
  shmSizeLimit: string;
  backoffLimit: number;
  activeDeadlineSeconds?: number;
  ttlSecondsAfterFinished: number;
  terminationGracePeriodSeconds: number;
  defaultPriorityClassName?: string;
  runAsUser: number;
  /** Plain settings of the worker (Kafka brokers, event topic, S3 endpoint). */
  env: Record<string, string>;
  secretEnv: SecretEnv[];
}

export interface RunRecordContent {
  /** The validated request, as the worker reads it from `/etc/lvr/run.json`. */
  specJson: string;
  specHash: string;
  annotations: Record<string, string>;
}

/** The run record: the validated spec the pods mount, plus the run's reported status in annotations. */
export function buildRunConfigMap(
  run: RunWorkload,
  namespace: string,
  content: RunRecordContent,
): k8s.V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: runObjectName(run.runId),
      namespace,
      labels: runLabels(run.runId, run.stage, Components.record),
      annotations: content.annotations,
    },
    data: { [RUN_SPEC_KEY]: content.specJson },
  };
}

/** Owned by the run record, so deleting the record removes the workload; the record outlives the Job's TTL. */
function ownedBy(record: k8s.V1ConfigMap): k8s.V1OwnerReference[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      name: record.metadata!.name!,
      uid: record.metadata!.uid!,
      blockOwnerDeletion: false,
    },
  ];
}

/** Headless Service giving each pod of a multi-node run a stable DNS name (`<job>-<index>.<service>`). */
export function buildRendezvousService(
  run: RunWorkload,
  record: k8s.V1ConfigMap,
  namespace: string,
): k8s.V1Service {
  const name = runObjectName(run.runId);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace,
      labels: runLabels(run.runId, run.stage, Components.training),
      ownerReferences: ownedBy(record),
    },
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: { 'batch.kubernetes.io/job-name': name },
      ports: [{ name: 'rendezvous', port: RENDEZVOUS_PORT, targetPort: RENDEZVOUS_PORT }],
    },
  };
}

/** DNS name of rank 0 of a multi-node run: hostname `<job>-0` under the headless Service. */
export function rendezvousEndpoint(runId: string, namespace: string): string {
  const name = runObjectName(runId);
  return `${name}-0.${name}.${namespace}.svc:${RENDEZVOUS_PORT}`;
}

function workerCommand(run: RunWorkload, namespace: string): string[] {
  const worker = ['-m', 'lvr', run.stage, '--spec', `${RUN_SPEC_DIR}/${RUN_SPEC_KEY}`];
  if (run.nodes <= 1 && run.gpusPerNode <= 1) return ['python', ...worker];
  return [
    'torchrun',
    `--nnodes=${run.nodes}`,
    `--nproc-per-node=${Math.max(1, run.gpusPerNode)}`,
    '--node-rank=$(PET_NODE_RANK)',
    '--rdzv-backend=c10d',
    `--rdzv-endpoint=${run.nodes > 1 ? rendezvousEndpoint(run.runId, namespace) : `localhost:${RENDEZVOUS_PORT}`}`,
    `--rdzv-id=${run.runId}`,
    ...worker,
  ];
}

function workerEnv(run: RunWorkload, settings: PodSettings): k8s.V1EnvVar[] {
  const env: k8s.V1EnvVar[] = Object.entries(settings.env).map(([name, value]) => ({ name, value }));
  env.push({ name: 'LVR_RUN_ID', value: run.runId });
  env.push({ name: 'PET_NNODES', value: String(run.nodes) });
  env.push({ name: 'PET_NPROC_PER_NODE', value: String(Math.max(1, run.gpusPerNode)) });
  env.push(
    run.nodes > 1
      ? {
          name: 'PET_NODE_RANK',
          valueFrom: {
            fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" },
          },
        }
      : { name: 'PET_NODE_RANK', value: '0' },
  );
  env.push({ name: 'TORCH_NCCL_ASYNC_ERROR_HANDLING', value: '1' });
  env.push({ name: 'PYTORCH_CUDA_ALLOC_CONF', value: 'expandable_segments:True' });
  for (const secret of settings.secretEnv)
    env.push({
      name: secret.name,
      valueFrom: { secretKeyRef: { name: secret.secretName, key: secret.key } },
    });
  return env;
}

function resources(run: RunWorkload, settings: PodSettings): k8s.V1ResourceRequirements {
  const gpus = run.gpusPerNode > 0 ? { [settings.gpuResource]: String(run.gpusPerNode) } : {};
  return {
    requests: { cpu: settings.cpuRequest, memory: settings.memoryRequest, ...gpus },
    limits: {
      ...(settings.cpuLimit ? { cpu: settings.cpuLimit } : {}),
      memory: settings.memoryLimit,
      ...gpus,
    },
  };
}

/**
 * The training Job: one pod per node (an Indexed Job when `nodes > 1`), retried by the Job controller under a
 * podFailurePolicy that ignores disruptions (eviction, preemption), fails at once on the worker's exit 78 and counts
 * any other failure against `backoffLimit`. The worker resumes from its newest checkpoint on every retry.
 */
export function buildRunJob(
  run: RunWorkload,
  record: k8s.V1ConfigMap,
  settings: PodSettings,
  options: { suspend: boolean },
): k8s.V1Job {
  const name = runObjectName(run.runId);
  const labels = runLabels(run.runId, run.stage, Components.training);
  const multiNode = run.nodes > 1;
  const gpuPlacement = run.gpusPerNode > 0;
  const priorityClassName = run.priorityClassName ?? settings.defaultPriorityClassName;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: settings.namespace, labels, ownerReferences: ownedBy(record) },
    spec: {
      suspend: options.suspend,
      completions: run.nodes,
      parallelism: run.nodes,
      ...(multiNode ? { completionMode: 'Indexed' } : {}),
      backoffLimit: settings.backoffLimit,
      podReplacementPolicy: 'Failed',
      ...(settings.activeDeadlineSeconds ? { activeDeadlineSeconds: settings.activeDeadlineSeconds } : {}),
      ttlSecondsAfterFinished: settings.ttlSecondsAfterFinished,
      podFailurePolicy: {
        rules: [
          { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
          {
            action: 'FailJob',
            onExitCodes: { containerName: TRAINER_CONTAINER, operator: 'In', values: [EXIT_INVALID] },
          },
          {
            action: 'Count',
            onExitCodes: { containerName: TRAINER_CONTAINER, operator: 'NotIn', values: [0, EXIT_INVALID] },
          },
        ],
      },
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          ...(multiNode ? { subdomain: name } : {}),
          ...(priorityClassName ? { priorityClassName } : {}),
          ...(settings.serviceAccountName ? { serviceAccountName: settings.serviceAccountName } : {}),
          terminationGracePeriodSeconds: settings.terminationGracePeriodSeconds,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: settings.runAsUser,
            runAsGroup: settings.runAsUser,
            fsGroup: settings.runAsUser,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          ...(gpuPlacement && Object.keys(settings.gpuNodeSelector).length
            ? { nodeSelector: settings.gpuNodeSelector }
            : {}),
          ...(gpuPlacement ? { tolerations: settings.gpuTolerations } : {}),
          volumes: [
            {
              name: 'run-spec',
              configMap: { name: record.metadata!.name!, items: [{ key: RUN_SPEC_KEY, path: RUN_SPEC_KEY }] },
            },
            { name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: settings.shmSizeLimit } },
          ],
          containers: [
            {
              name: TRAINER_CONTAINER,
              image: settings.image,
              ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
              command: workerCommand(run, settings.namespace),
              env: workerEnv(run, settings),
              resources: resources(run, settings),
              volumeMounts: [
                { name: 'run-spec', mountPath: RUN_SPEC_DIR, readOnly: true },
                { name: 'dshm', mountPath: '/dev/shm' },
              ],
              securityContext: {
                allowPrivilegeEscalation: false,
                capabilities: { drop: ['ALL'] },
              },
              ...(multiNode ? { ports: [{ name: 'rendezvous', containerPort: RENDEZVOUS_PORT }] } : {}),
            },
          ],
        },
      },
    },
  };
}
