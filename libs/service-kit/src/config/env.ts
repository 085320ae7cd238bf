import fs from 'node:fs';
import type { LogLevel } from '../logging/json-logger';

/** The environment a service reads its settings from (process.env, or a plain object in tests). */
export type Env = Record<string, string | undefined>;

/** A setting a service cannot start with: `runService` prints it and exits 2. */
export class ConfigError extends Error {}

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

/** A whole number of at least `min`; `fallback` when unset or blank. */
export function intVar(env: Env, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  if (!/^\d+$/.test(raw.trim()))
    throw new ConfigError(`${name} must be a non-negative integer, got "${raw}"`);
  const value = Number(raw.trim());
  if (!Number.isSafeInteger(value) || value < min)
    throw new ConfigError(`${name} must be an integer >= ${min}`);
  return value;
}

/** The trimmed value; `fallback` when unset or blank. */
export function textVar(env: Env, name: string, fallback: string): string {
  return env[name]?.trim() || fallback;
}

/** The trimmed value, or undefined when unset or blank. */
export function optionalTextVar(env: Env, name: string): string | undefined {
  return env[name]?.trim() || undefined;
}

/** Comma- or space-separated values. */
export function listVar(env: Env, name: string): string[] {
  return (env[name] ?? '')
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** On only for `1`, `true` or `yes`. */
export function flagVar(env: Env, name: string): boolean {
  return /^(1|true|yes)$/i.test(env[name] ?? '');
}

/** A TCP port (0 picks a free one). */
export function portVar(env: Env, name: string, fallback: number): number {
  const port = intVar(env, name, fallback);
  if (port > 65535) throw new ConfigError(`${name} must be a port (0-65535), got "${env[name]}"`);
  return port;
}

/** `LVR_LOG_LEVEL`: debug|info|warn|error|silent (default info). */
export function logLevelVar(env: Env): LogLevel {
  const level = (env.LVR_LOG_LEVEL?.trim() || 'info') as LogLevel;
  if (!LOG_LEVELS.includes(level)) throw new ConfigError(`LVR_LOG_LEVEL must be ${LOG_LEVELS.join('|')}`);
  return level;
}

/** API keys from `LVR_API_KEYS` (comma/space separated) and `LVR_API_KEYS_FILE` (one key per line, `#` comments). */
export function readApiKeys(env: Env): string[] {
  const keys = listVar(env, 'LVR_API_KEYS');
  const file = env.LVR_API_KEYS_FILE;
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError(
        `LVR_API_KEYS_FILE cannot be read: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
    for (const line of text.split(/\r?\n/)) {
      const key = line.trim();
      if (key && !key.startsWith('#')) keys.push(key);
    }
  }
  return [...new Set(keys)];
}
