import fs from 'node:fs';
import { Type, plainToInstance } from 'class-transformer';
import {
  ArrayMinSize,
  IsArray,
  IsNotEmpty,
  IsOptional,
  IsString,
  Matches,
  MaxLength,
  ValidateNested,
  validateSync,
} from 'class-validator';
import { EvaluationBenchmark, EvaluationDecoding } from '@lvr/contracts';
import {
  ConfigError,
  intVar,
  logLevelVar,
  optionalTextVar,
  portVar,
  textVar,
  type Env,
  type LogLevel,
} from '@lvr/service-kit';

/** What one trigger evaluates: models (ids or `id@version`), benchmarks and optional decoding settings. */
export class EvaluationSelection {
  @IsArray() @ArrayMinSize(1) @IsString({ each: true }) @MaxLength(128, { each: true }) models!: string[];
  @IsArray()
  @ArrayMinSize(1)
  @ValidateNested({ each: true })
  @Type(() => EvaluationBenchmark)
  benchmarks!: EvaluationBenchmark[];
  @IsOptional() @ValidateNested() @Type(() => EvaluationDecoding) decoding?: EvaluationDecoding;
}

/** A cron schedule from configuration: which models and benchmarks to evaluate at each tick. */
export class ScheduleConfig extends EvaluationSelection {
  @IsString() @Matches(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/) name!: string;
  /** Five-field cron (minute hour day month weekday), or six with seconds. */
  @IsString() @IsNotEmpty() cron!: string;
  /** IANA time zone the cron fields are read in (default UTC). */
  @IsOptional() @IsString() timezone?: string;
}

/** Models opted in to evaluation on `lvr.models.published` (`*` at the end of an id matches a prefix). */
export class PublishRuleConfig extends EvaluationSelection {}

export interface EvaluatorConfig {
  /** The read API and health probes. */
  host: string;
  port: number;
  groupId: string;
  logLevel: LogLevel;
  /** OpenAI-compatible base URL of the reasoning API, e.g. `http://api:8080/v1`. */
  apiBaseUrl?: string;
  apiKey?: string;
  /** Requests in flight per evaluation. */
  concurrency: number;
  requestTimeoutMs: number;
  maxRetries: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Address `<id>@<version>` when a request names a version. */
  addressVersions: boolean;
  resultsBucket: string;
  /** Results links in events and reports: the evaluator's own URL (`/v1/evaluations/{id}/report`) when set. */
  publicUrl?: string;
  regressionMargin: number;
  /** An evaluation whose owner has not renewed its lease for this long is taken over. */
  leaseMs: number;
  schedulePollMs: number;
  schedules: ScheduleConfig[];
  publishRules: PublishRuleConfig[];
  /**
   * Handle only evaluation ids starting with this (and give triggered evaluations ids with it), so several evaluator
   * deployments, or test runs, can share the topics without running each other's work. Empty: handle all.
   */
  idPrefix: string;
  /** How many wrong answers the report shows with their images. */
  reportWrongAnswers: number;
}

function fraction(env: Env, name: string, fallback: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value > 1)
    throw new ConfigError(`${name} must be a number between 0 and 1, got "${raw}"`);
  return value;
}

/** JSON from `<NAME>` or from the file named by `<NAME>_FILE`, validated as a list of `type`. */
function jsonList<T extends object>(env: Env, name: string, type: new () => T): T[] {
  const file = env[`${name}_FILE`];
  const raw = env[name] ?? (file ? fs.readFileSync(file, 'utf8') : undefined);
  if (!raw?.trim()) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (error) {
    throw new ConfigError(`${name} is not valid JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new ConfigError(`${name} must be a JSON array`);
  return parsed.map((item, i) => {
    const value = plainToInstance(type, item);
    const errors = validateSync(value as object, { forbidUnknownValues: true });
    if (errors.length)
      throw new ConfigError(
        `${name}[${i}] is invalid: ${errors.map((e) => `${e.property}: ${Object.values(e.constraints ?? { nested: 'invalid' }).join(', ')}`).join('; ')}`,
      );
    return value;
  });
}

export function evaluatorConfigFromEnv(env: Env = process.env): EvaluatorConfig {
  const schedules = jsonList(env, 'LVR_EVAL_SCHEDULES', ScheduleConfig);
  const names = new Set<string>();
  for (const schedule of schedules) {
    if (names.has(schedule.name)) throw new ConfigError(`schedule name ${schedule.name} is used twice`);
    names.add(schedule.name);
    if (schedule.timezone && !isTimeZone(schedule.timezone))
      throw new ConfigError(`schedule ${schedule.name}: unknown time zone ${schedule.timezone}`);
  }
  return {
    host: textVar(env, 'EVALUATOR_HOST', '127.0.0.1'),
    port: portVar(env, 'EVALUATOR_PORT', 8082),
    groupId: textVar(env, 'EVALUATOR_GROUP_ID', 'lvr-evaluator'),
    logLevel: logLevelVar(env),
    apiBaseUrl: optionalTextVar(env, 'LVR_EVAL_API_URL'),
    apiKey: optionalTextVar(env, 'LVR_EVAL_API_KEY'),
    concurrency: intVar(env, 'LVR_EVAL_CONCURRENCY', 4, 1),
    requestTimeoutMs: intVar(env, 'LVR_EVAL_TIMEOUT_MS', 120_000, 1),
    maxRetries: intVar(env, 'LVR_EVAL_MAX_RETRIES', 5),
    backoffBaseMs: intVar(env, 'LVR_EVAL_BACKOFF_MS', 500),
    backoffMaxMs: intVar(env, 'LVR_EVAL_BACKOFF_MAX_MS', 20_000),
    addressVersions: !/^(0|false|no)$/i.test(env.LVR_EVAL_ADDRESS_VERSIONS ?? ''),
    resultsBucket: textVar(env, 'LVR_EVAL_BUCKET', 'lvr-evaluations'),
    publicUrl: env.LVR_EVAL_PUBLIC_URL?.trim().replace(/\/+$/, '') || undefined,
    regressionMargin: fraction(env, 'LVR_EVAL_REGRESSION_MARGIN', 0.02),
    leaseMs: intVar(env, 'LVR_EVAL_LEASE_MS', 20_000, 1000),
    schedulePollMs: intVar(env, 'LVR_EVAL_SCHEDULE_POLL_MS', 5_000, 100),
    schedules,
    publishRules: jsonList(env, 'LVR_EVAL_ON_PUBLISH', PublishRuleConfig),
    reportWrongAnswers: intVar(env, 'LVR_EVAL_REPORT_WRONG', 24),
    idPrefix: idPrefix(env.LVR_EVAL_ID_PREFIX?.trim() ?? ''),
  };
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function idPrefix(value: string): string {
  if (value && !/^[a-z0-9][a-z0-9-]{0,23}$/.test(value))
    throw new ConfigError('LVR_EVAL_ID_PREFIX must be 1-24 lowercase letters, digits or dashes');
  return value;
}
