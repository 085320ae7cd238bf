import path from 'node:path';
import { GPU_ATTENTION_CHOICES, MAX_TOP_LOGPROBS, type GpuAttentionChoice } from '@lvr/engine';
import {
  ConfigError,
  flagVar,
  intVar,
  listVar,
  logLevelVar,
  portVar,
  readApiKeys,
  textVar,
  type Env,
  type LogLevel,
} from '@lvr/service-kit';

export { ConfigError };

/** One configured model: an id (optional; the bundle's own id otherwise) and where its bundle lives. */
export interface ModelSourceConfig {
  id?: string;
  /** A local directory or an `s3://bucket/prefix` URI. */
  uri: string;
  /** Version label, so that `<id>@<version>` addresses it. */
  version?: string;
}

/** `LVR_FUSED_PROJECTIONS` values (`EngineLoadOptions.fusedProjections`). */
const FUSED_PROJECTIONS = ['auto', 'lvr', 'onnx'] as const;
type FusedProjectionsChoice = (typeof FUSED_PROJECTIONS)[number];

/** Everything the API reads from the environment, parsed once and validated at startup. */
export interface ApiConfig {
  host: string;
  port: number;
  /** Explicit opt-in to bind a non-loopback host without API keys. */
  allowUnauthenticatedPublic: boolean;
  apiKeys: string[];
  models: ModelSourceConfig[];
  /** Directory scanned for bundles when `models` is empty (default: the repository's `models/`). */
  modelsDir: string;
  maxBodyBytes: number;
  maxConcurrentSequences: number;
  maxQueuedRequests: number;
  /** Seconds suggested to clients in `Retry-After` when overloaded. */
  retryAfterSeconds: number;
  /** Upper bound on `n`. */
  maxN: number;
  /** Upper bound on `max_tokens`; also the default when the request names none. */
  maxCompletionTokens: number;
  maxTopLogprobs: number;
  images: ImageLimitsConfig;
  /** Milliseconds SIGTERM waits for in-flight requests before exiting anyway. */
  drainTimeoutMs: number;
  kafkaBrokers: string[];
  logLevel: LogLevel;
  /** Keep engine threads to this many per session (undefined = onnxruntime's choice). */
  engineThreads?: number;
  /** onnxruntime execution provider of the engine (`LVR_EXECUTION_PROVIDER`, default cpu). */
  executionProvider: 'cpu' | 'webgpu' | 'cuda';
  /** Fused decoder on `cuda`: GroupQueryAttention's decode kernel (`LVR_GPU_ATTENTION`; undefined = the engine's). */
  gpuAttention?: GpuAttentionChoice;
  /**
   * Fused decoder: who runs its projections, the addon's own kernels (`lvr`) or ONNX Runtime's (`onnx`)
   * (`LVR_FUSED_PROJECTIONS`; undefined = the engine's `auto`).
   */
  fusedProjections?: FusedProjectionsChoice;
  /** int4 bundles on `cuda`: steps of at least this many slots use the mixed-input GEMM (`LVR_INT4_MIXED_GEMM_FROM`). */
  int4MixedGemmFromSlots: number;
  /** Context length to serve (prompt + completion), at most each bundle's own (undefined = the bundle's). */
  maxModelLen?: number;
  /** Non-current model versions kept loaded for `<id>@<version>` requests (least recently used evicted). */
  maxPreviousVersions: number;
}

export interface ImageLimitsConfig {
  maxImagesPerRequest: number;
  /** Width × height limit for one decoded image. */
  maxImagePixels: number;
  /** Sum of width × height over all images of one request. */
  maxTotalPixels: number;
  /** Encoded bytes of one image (data URL, download or file). */
  maxImageBytes: number;
  connectTimeoutMs: number;
  readTimeoutMs: number;
  maxRedirects: number;
  /** Hostnames or IP literals that may be fetched even if they resolve to private / loopback addresses. */
  allowedPrivateHosts: string[];
  /** `file://` images are refused unless this is set; then only paths inside it. */
  allowedLocalMediaDir?: string;
  /** Fetch http(s) image URLs at all (off: only data: and allow-listed file: images; no outbound traffic). */
  remoteFetch: boolean;
}

export const API_CONFIG = Symbol('ApiConfig');

const REPO_ROOT = path.resolve(__dirname, '../../../..');

export function defaultConfig(): ApiConfig {
  return {
    host: '127.0.0.1',
    port: 8080,
    allowUnauthenticatedPublic: false,
    apiKeys: [],
    models: [],
    modelsDir: path.join(REPO_ROOT, 'models'),
    maxBodyBytes: 32 * 1024 * 1024,
    maxConcurrentSequences: 4,
    maxQueuedRequests: 64,
    retryAfterSeconds: 1,
    maxN: 8,
    maxCompletionTokens: 512,
    maxTopLogprobs: MAX_TOP_LOGPROBS,
    images: {
      maxImagesPerRequest: 8,
      maxImagePixels: 4096 * 4096,
      maxTotalPixels: 8 * 1024 * 1024 * 4,
      maxImageBytes: 20 * 1024 * 1024,
      connectTimeoutMs: 5000,
      readTimeoutMs: 10000,
      maxRedirects: 3,
      allowedPrivateHosts: [],
      remoteFetch: true,
    },
    drainTimeoutMs: 30000,
    kafkaBrokers: [],
    logLevel: 'info',
    executionProvider: 'cpu',
    int4MixedGemmFromSlots: 0,
    maxPreviousVersions: 1,
  };
}

/** `LVR_MODELS=id=path,other@v3=s3://bucket/prefix,/plain/path` (`id@version=` labels the version). */
export function parseModelList(raw: string | undefined): ModelSourceConfig[] {
  if (!raw) return [];
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const eq = entry.indexOf('=');
      const scheme = entry.indexOf('://');
      if (eq > 0 && (scheme < 0 || eq < scheme)) {
        const id = entry.slice(0, eq).trim();
        const uri = entry.slice(eq + 1).trim();
        if (!id || !uri) throw new ConfigError(`LVR_MODELS entry "${entry}" must be id=uri`);
        const at = id.indexOf('@');
        if (at === 0 || at === id.length - 1)
          throw new ConfigError(`LVR_MODELS entry "${entry}": use id@version=uri`);
        return at > 0 ? { id: id.slice(0, at), version: id.slice(at + 1), uri } : { id, uri };
      }
      return { uri: entry };
    });
}

export function loadConfig(env: Env = process.env): ApiConfig {
  const base = defaultConfig();
  const imageDir = env.LVR_ALLOWED_LOCAL_MEDIA_PATH;
  const threads = env.LVR_ENGINE_THREADS ? intVar(env, 'LVR_ENGINE_THREADS', 0, 1) : undefined;
  const maxModelLen = env.LVR_MAX_MODEL_LEN?.trim() ? intVar(env, 'LVR_MAX_MODEL_LEN', 0, 1) : undefined;
  const executionProvider = textVar(env, 'LVR_EXECUTION_PROVIDER', base.executionProvider);
  // cuda: bundles exported with --fused-decoder decode through the native addon (README: Inference engine → GPU).
  if (executionProvider !== 'cpu' && executionProvider !== 'webgpu' && executionProvider !== 'cuda')
    throw new ConfigError(`LVR_EXECUTION_PROVIDER must be cpu|webgpu|cuda, got "${executionProvider}"`);
  const gpuAttention = env.LVR_GPU_ATTENTION?.trim() || undefined;
  if (gpuAttention !== undefined && !(GPU_ATTENTION_CHOICES as readonly string[]).includes(gpuAttention))
    throw new ConfigError(
      `LVR_GPU_ATTENTION must be ${GPU_ATTENTION_CHOICES.join('|')}, got "${gpuAttention}"`,
    );
  const fusedProjections = env.LVR_FUSED_PROJECTIONS?.trim() || undefined;
  if (
    fusedProjections !== undefined &&
    !FUSED_PROJECTIONS.includes(fusedProjections as FusedProjectionsChoice)
  )
    throw new ConfigError(
      `LVR_FUSED_PROJECTIONS must be ${FUSED_PROJECTIONS.join('|')}, got "${fusedProjections}"`,
    );
  const config: ApiConfig = {
    ...base,
    host: env.HOST?.trim() || base.host,
    port: portVar(env, 'PORT', base.port),
    allowUnauthenticatedPublic: flagVar(env, 'LVR_ALLOW_UNAUTHENTICATED'),
    apiKeys: readApiKeys(env),
    models: parseModelList(env.LVR_MODELS),
    modelsDir: env.LVR_MODELS_DIR ? path.resolve(env.LVR_MODELS_DIR) : base.modelsDir,
    maxBodyBytes: intVar(env, 'LVR_MAX_BODY_BYTES', base.maxBodyBytes, 1024),
    maxConcurrentSequences: intVar(env, 'LVR_MAX_CONCURRENT', base.maxConcurrentSequences, 1),
    maxQueuedRequests: intVar(env, 'LVR_MAX_QUEUE', base.maxQueuedRequests),
    retryAfterSeconds: intVar(env, 'LVR_RETRY_AFTER_S', base.retryAfterSeconds, 1),
    maxN: intVar(env, 'LVR_MAX_N', base.maxN, 1),
    maxCompletionTokens: intVar(env, 'LVR_MAX_COMPLETION_TOKENS', base.maxCompletionTokens, 1),
    images: {
      maxImagesPerRequest: intVar(env, 'LVR_MAX_IMAGES', base.images.maxImagesPerRequest),
      maxImagePixels: intVar(env, 'LVR_MAX_IMAGE_PIXELS', base.images.maxImagePixels, 1),
      maxTotalPixels: intVar(env, 'LVR_MAX_TOTAL_PIXELS', base.images.maxTotalPixels, 1),
      maxImageBytes: intVar(env, 'LVR_MAX_IMAGE_BYTES', base.images.maxImageBytes, 1),
      connectTimeoutMs: intVar(env, 'LVR_IMAGE_CONNECT_TIMEOUT_MS', base.images.connectTimeoutMs, 1),
      readTimeoutMs: intVar(env, 'LVR_IMAGE_READ_TIMEOUT_MS', base.images.readTimeoutMs, 1),
      maxRedirects: intVar(env, 'LVR_IMAGE_MAX_REDIRECTS', base.images.maxRedirects),
      allowedPrivateHosts: listVar(env, 'LVR_IMAGE_ALLOWED_PRIVATE_HOSTS').map((h) => h.toLowerCase()),
      allowedLocalMediaDir: imageDir ? path.resolve(imageDir) : undefined,
      remoteFetch: !/^(0|false|no|off)$/i.test(env.LVR_IMAGE_REMOTE_FETCH ?? ''),
    },
    drainTimeoutMs: intVar(env, 'LVR_DRAIN_TIMEOUT_MS', base.drainTimeoutMs),
    kafkaBrokers: listVar(env, 'LVR_KAFKA_BROKERS'),
    logLevel: logLevelVar(env),
    engineThreads: threads,
    executionProvider,
    gpuAttention: gpuAttention as ApiConfig['gpuAttention'],
    fusedProjections: fusedProjections as ApiConfig['fusedProjections'],
    int4MixedGemmFromSlots: intVar(env, 'LVR_INT4_MIXED_GEMM_FROM', 0),
    maxModelLen,
    maxPreviousVersions: intVar(env, 'LVR_MAX_PREVIOUS_VERSIONS', base.maxPreviousVersions),
  };
  if (config.int4MixedGemmFromSlots > config.maxConcurrentSequences)
    throw new ConfigError(
      `LVR_INT4_MIXED_GEMM_FROM (${config.int4MixedGemmFromSlots}) must be at most LVR_MAX_CONCURRENT (${config.maxConcurrentSequences}): the engine's KV slots`,
    );
  assertSafeBinding(config);
  return config;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** With no API keys the server only binds to loopback, unless LVR_ALLOW_UNAUTHENTICATED=1 says otherwise. */
export function assertSafeBinding(config: ApiConfig): void {
  if (config.apiKeys.length === 0 && !isLoopbackHost(config.host) && !config.allowUnauthenticatedPublic) {
    throw new ConfigError(
      `refusing to listen on ${config.host} without API keys: set LVR_API_KEYS / LVR_API_KEYS_FILE, ` +
        `or LVR_ALLOW_UNAUTHENTICATED=1 to serve without authentication`,
    );
  }
}
