import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PodSettings, SecretEnv } from '@lvr/k8s';
import { Topics } from '@lvr/contracts';
import { readApiKeys } from '../../api/src/config/api-config';

type Env = NodeJS.ProcessEnv;

/** The contract topics by default; overridable so that test suites sharing one broker stay apart. */
export interface TrainerTopics {
  requests: string;
  commands: string;
  events: string;
  /** Where the worker publishes its own events; the trainer merges them into `events`. */
  workerEvents: string;
}

export class TrainerConfigError extends Error {}

/** Every setting of the trainer, read once from the environment (README "Trainer configuration"). */
export interface TrainerConfig {
  executor: 'kubernetes' | 'local';
  host: string;
  port: number;
  groupId: string;
  apiKeys: string[];
  topics: TrainerTopics;
  backoffLimit: number;
  unschedulableGraceMs: number;
  resyncMs: number;
  /** GPUs that running workloads may hold at once; 0 = no limit. */
  gpuBudget: number;
  kubernetes: {
    kubeconfig?: string;
    leaseName: string;
    leaseDurationSeconds: number;
    identity: string;
    pod: PodSettings;
  };
  local: {
    stateDir: string;
    python: string;
    pythonPath: string;
    workerArgs: string[];
  };
}

function intVar(env: Env, name: string, fallback: number, min = 0): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw))
    throw new TrainerConfigError(`${name} must be a non-negative integer, got "${raw}"`);
  const value = Number(raw);
  if (value < min) throw new TrainerConfigError(`${name} must be >= ${min}`);
  return value;
}

function str(env: Env, name: string, fallback: string): string {
  return env[name]?.trim() || fallback;
}

/** `key=value,key=value` */
function mapVar(env: Env, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of (env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new TrainerConfigError(`${name} entries must be key=value, got "${entry}"`);
    out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
}

function inClusterNamespace(): string | undefined {
  try {
    return (
      fs.readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || undefined
    );
  } catch {
    return undefined;
  }
}

/** Credentials reach the pods only as Secret references: the trainer never reads or copies them. */
function secretEnv(env: Env): SecretEnv[] {
  const refs: SecretEnv[] = [];
  const s3 = env.LVR_TRAINER_S3_SECRET?.trim();
  if (s3)
    refs.push(
      { name: 'LVR_S3_ACCESS_KEY', secretName: s3, key: 'accessKey' },
      { name: 'LVR_S3_SECRET_KEY', secretName: s3, key: 'secretKey' },
    );
  const kafka = env.LVR_TRAINER_KAFKA_SECRET?.trim();
  if (kafka)
    refs.push(
      { name: 'LVR_KAFKA_USERNAME', secretName: kafka, key: 'username' },
      { name: 'LVR_KAFKA_PASSWORD', secretName: kafka, key: 'password' },
    );
  return refs;
}

export function loadTrainerConfig(env: Env = process.env): TrainerConfig {
  const executor = str(env, 'LVR_TRAINER_EXECUTOR', 'local');
  if (executor !== 'kubernetes' && executor !== 'local')
    throw new TrainerConfigError(`LVR_TRAINER_EXECUTOR must be kubernetes or local, got "${executor}"`);
  const topics: TrainerTopics = {
    requests: str(env, 'LVR_TRAINER_REQUESTS_TOPIC', Topics.trainingRequests),
    commands: str(env, 'LVR_TRAINER_COMMANDS_TOPIC', Topics.trainingCommands),
    events: str(env, 'LVR_TRAINER_EVENTS_TOPIC', Topics.trainingEvents),
    workerEvents: str(env, 'LVR_TRAINER_WORKER_EVENTS_TOPIC', 'lvr.training.worker-events'),
  };
  if (topics.workerEvents === topics.events)
    throw new TrainerConfigError(
      'LVR_TRAINER_WORKER_EVENTS_TOPIC must differ from the training events topic',
    );
  const workerEventsTopic = topics.workerEvents;
  const podBrokers = env.LVR_TRAINER_POD_KAFKA_BROKERS?.trim() || env.LVR_KAFKA_BROKERS?.trim() || '';
  const workerEnv: Record<string, string> = {
    LVR_TOPIC_TRAINING_EVENTS: workerEventsTopic,
    LVR_TOPIC_MODELS_PUBLISHED: Topics.modelsPublished,
    ...(podBrokers ? { LVR_KAFKA_BROKERS: podBrokers } : {}),
    ...(env.LVR_TRAINER_POD_S3_ENDPOINT || env.LVR_S3_ENDPOINT
      ? { LVR_S3_ENDPOINT: (env.LVR_TRAINER_POD_S3_ENDPOINT || env.LVR_S3_ENDPOINT) as string }
      : {}),
    ...(env.LVR_S3_REGION ? { LVR_S3_REGION: env.LVR_S3_REGION } : {}),
  };
  const gpuResource = str(env, 'LVR_TRAINER_GPU_RESOURCE', 'nvidia.com/gpu');
  const ttl = intVar(env, 'LVR_TRAINER_TTL_SECONDS', 7 * 24 * 3600);
  const deadline = intVar(env, 'LVR_TRAINER_ACTIVE_DEADLINE_SECONDS', 0);
  return {
    executor,
    host: str(env, 'TRAINER_HOST', '127.0.0.1'),
    port: intVar(env, 'TRAINER_PORT', 8081),
    groupId: str(env, 'TRAINER_GROUP_ID', 'lvr-trainer'),
    apiKeys: readApiKeys(env),
    topics,
    backoffLimit: intVar(env, 'LVR_TRAINER_BACKOFF_LIMIT', 3),
    unschedulableGraceMs: intVar(env, 'LVR_TRAINER_UNSCHEDULABLE_GRACE_SECONDS', 300) * 1000,
    resyncMs: intVar(env, 'LVR_TRAINER_RESYNC_SECONDS', 30, 1) * 1000,
    gpuBudget: intVar(env, 'LVR_TRAINER_GPU_BUDGET', 0),
    kubernetes: {
      kubeconfig: env.KUBECONFIG?.trim() || undefined,
      leaseName: str(env, 'LVR_TRAINER_LEASE_NAME', 'lvr-trainer-leader'),
      leaseDurationSeconds: intVar(env, 'LVR_TRAINER_LEASE_SECONDS', 15, 3),
      identity: str(env, 'POD_NAME', `${os.hostname()}-${process.pid}`),
      pod: {
        namespace: str(env, 'LVR_TRAINER_NAMESPACE', inClusterNamespace() ?? 'default'),
        image: str(env, 'LVR_TRAINER_IMAGE', 'ghcr.io/lvr-platform/worker:latest'),
        imagePullPolicy: env.LVR_TRAINER_IMAGE_PULL_POLICY?.trim() || undefined,
        serviceAccountName: env.LVR_TRAINER_POD_SERVICE_ACCOUNT?.trim() || undefined,
        gpuResource,
        gpuNodeSelector: mapVar(env, 'LVR_TRAINER_GPU_NODE_SELECTOR'),
        gpuTolerations: [{ key: gpuResource, operator: 'Exists', effect: 'NoSchedule' }],
        cpuRequest: str(env, 'LVR_TRAINER_CPU_REQUEST', '4'),
        cpuLimit: env.LVR_TRAINER_CPU_LIMIT?.trim() || undefined,
        memoryRequest: str(env, 'LVR_TRAINER_MEMORY_REQUEST', '32Gi'),
        memoryLimit: str(env, 'LVR_TRAINER_MEMORY_LIMIT', '64Gi'),
        shmSizeLimit: str(env, 'LVR_TRAINER_SHM_SIZE', '16Gi'),
        backoffLimit: intVar(env, 'LVR_TRAINER_BACKOFF_LIMIT', 3),
        activeDeadlineSeconds: deadline || undefined,
        ttlSecondsAfterFinished: ttl,
        terminationGracePeriodSeconds: intVar(env, 'LVR_TRAINER_TERMINATION_GRACE_SECONDS', 600),
        defaultPriorityClassName: env.LVR_TRAINER_PRIORITY_CLASS?.trim() || undefined,
        runAsUser: intVar(env, 'LVR_TRAINER_RUN_AS_USER', 1000, 1),
        env: workerEnv,
        secretEnv: secretEnv(env),
      },
    },
    local: {
      stateDir: path.resolve(
        str(env, 'LVR_TRAINER_STATE_DIR', path.join(os.homedir(), '.cache/lvr-platform/trainer')),
      ),
      python: str(env, 'LVR_PYTHON', 'python3'),
      pythonPath: str(env, 'LVR_TRAINER_PYTHONPATH', path.resolve(__dirname, '../../../workers')),
      workerArgs: (env.LVR_TRAINER_WORKER_ARGS ?? '').split(/\s+/).filter(Boolean),
    },
  };
}
