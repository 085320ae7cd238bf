import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PodSettings, SecretEnv } from '@lvr/k8s';
import { Topics } from '@lvr/contracts';
import {
  ConfigError,
  intVar,
  logLevelVar,
  optionalTextVar,
  portVar,
  readApiKeys,
  textVar,
  type Env,
  type LogLevel,
} from '@lvr/service-kit';

/** The contract topics by default; overridable so that test suites sharing one broker stay apart. */
export interface TrainerTopics {
  requests: string;
  commands: string;
  events: string;
  /** Where the worker publishes its own events; the trainer merges them into `events`. */
  workerEvents: string;
}

/** Every setting of the trainer, read once from the environment (README "Trainer configuration"). */
export interface TrainerConfig {
  executor: 'kubernetes' | 'local';
  host: string;
  port: number;
  logLevel: LogLevel;
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

/** `key=value,key=value` */
function mapVar(env: Env, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of (env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new ConfigError(`${name} entries must be key=value, got "${entry}"`);
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
  const executor = textVar(env, 'LVR_TRAINER_EXECUTOR', 'local');
  if (executor !== 'kubernetes' && executor !== 'local')
    throw new ConfigError(`LVR_TRAINER_EXECUTOR must be kubernetes or local, got "${executor}"`);
  const topics: TrainerTopics = {
    requests: textVar(env, 'LVR_TRAINER_REQUESTS_TOPIC', Topics.trainingRequests),
    commands: textVar(env, 'LVR_TRAINER_COMMANDS_TOPIC', Topics.trainingCommands),
    events: textVar(env, 'LVR_TRAINER_EVENTS_TOPIC', Topics.trainingEvents),
    workerEvents: textVar(env, 'LVR_TRAINER_WORKER_EVENTS_TOPIC', 'lvr.training.worker-events'),
  };
  if (topics.workerEvents === topics.events)
    throw new ConfigError('LVR_TRAINER_WORKER_EVENTS_TOPIC must differ from the training events topic');
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
  const gpuResource = textVar(env, 'LVR_TRAINER_GPU_RESOURCE', 'nvidia.com/gpu');
  const ttl = intVar(env, 'LVR_TRAINER_TTL_SECONDS', 7 * 24 * 3600);
  const deadline = intVar(env, 'LVR_TRAINER_ACTIVE_DEADLINE_SECONDS', 0);
  return {
    executor,
    host: textVar(env, 'TRAINER_HOST', '127.0.0.1'),
    port: portVar(env, 'TRAINER_PORT', 8081),
    logLevel: logLevelVar(env),
    groupId: textVar(env, 'TRAINER_GROUP_ID', 'lvr-trainer'),
    apiKeys: readApiKeys(env),
    topics,
    backoffLimit: intVar(env, 'LVR_TRAINER_BACKOFF_LIMIT', 3),
    unschedulableGraceMs: intVar(env, 'LVR_TRAINER_UNSCHEDULABLE_GRACE_SECONDS', 300) * 1000,
    resyncMs: intVar(env, 'LVR_TRAINER_RESYNC_SECONDS', 30, 1) * 1000,
    gpuBudget: intVar(env, 'LVR_TRAINER_GPU_BUDGET', 0),
    kubernetes: {
      kubeconfig: optionalTextVar(env, 'KUBECONFIG'),
      leaseName: textVar(env, 'LVR_TRAINER_LEASE_NAME', 'lvr-trainer-leader'),
      leaseDurationSeconds: intVar(env, 'LVR_TRAINER_LEASE_SECONDS', 15, 3),
      identity: textVar(env, 'POD_NAME', `${os.hostname()}-${process.pid}`),
      pod: {
        namespace: textVar(env, 'LVR_TRAINER_NAMESPACE', inClusterNamespace() ?? 'default'),
        image: textVar(env, 'LVR_TRAINER_IMAGE', 'ghcr.io/lvr-platform/worker:latest'),
        imagePullPolicy: optionalTextVar(env, 'LVR_TRAINER_IMAGE_PULL_POLICY'),
        serviceAccountName: optionalTextVar(env, 'LVR_TRAINER_POD_SERVICE_ACCOUNT'),
        gpuResource,
        gpuNodeSelector: mapVar(env, 'LVR_TRAINER_GPU_NODE_SELECTOR'),
        gpuTolerations: [{ key: gpuResource, operator: 'Exists', effect: 'NoSchedule' }],
        cpuRequest: textVar(env, 'LVR_TRAINER_CPU_REQUEST', '4'),
        cpuLimit: optionalTextVar(env, 'LVR_TRAINER_CPU_LIMIT'),
        memoryRequest: textVar(env, 'LVR_TRAINER_MEMORY_REQUEST', '32Gi'),
        memoryLimit: textVar(env, 'LVR_TRAINER_MEMORY_LIMIT', '64Gi'),
        shmSizeLimit: textVar(env, 'LVR_TRAINER_SHM_SIZE', '16Gi'),
        backoffLimit: intVar(env, 'LVR_TRAINER_BACKOFF_LIMIT', 3),
        activeDeadlineSeconds: deadline || undefined,
        ttlSecondsAfterFinished: ttl,
        terminationGracePeriodSeconds: intVar(env, 'LVR_TRAINER_TERMINATION_GRACE_SECONDS', 600),
        defaultPriorityClassName: optionalTextVar(env, 'LVR_TRAINER_PRIORITY_CLASS'),
        runAsUser: intVar(env, 'LVR_TRAINER_RUN_AS_USER', 1000, 1),
        env: workerEnv,
        secretEnv: secretEnv(env),
      },
    },
    local: {
      stateDir: path.resolve(
        textVar(env, 'LVR_TRAINER_STATE_DIR', path.join(os.homedir(), '.cache/lvr-platform/trainer')),
      ),
      python: textVar(env, 'LVR_PYTHON', 'python3'),
      pythonPath: textVar(env, 'LVR_TRAINER_PYTHONPATH', path.resolve(__dirname, '../../../workers')),
      workerArgs: (env.LVR_TRAINER_WORKER_ARGS ?? '').split(/\s+/).filter(Boolean),
    },
  };
}
