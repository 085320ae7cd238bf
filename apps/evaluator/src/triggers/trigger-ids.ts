import { createHash } from 'node:crypto';

function digest(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex');
}

/**
 * Deterministic evaluation ids: every replica that fires the same schedule tick (or sees the same publish event)
 * produces the same id, so the evaluation runs once however many requests arrive.
 */
export function scheduledEvalId(prefix: string, schedule: string, tick: Date, model: string): string {
  return `${prefix}sch-${schedule}-${Math.floor(tick.getTime() / 1000).toString(36)}-${digest(model).slice(0, 6)}`;
}

export function publishedEvalId(prefix: string, modelId: string, version: string, rule: number): string {
  return `${prefix}pub-${digest(modelId, version, String(rule)).slice(0, 20)}`;
}

/** `id` or `id@version` from configuration. */
export function splitModelRef(ref: string): { modelId: string; modelVersion?: string } {
  const at = ref.lastIndexOf('@');
  return at > 0 ? { modelId: ref.slice(0, at), modelVersion: ref.slice(at + 1) } : { modelId: ref };
}

export function matchesModel(patterns: string[], modelId: string): boolean {
  return patterns.some((p) => (p.endsWith('*') ? modelId.startsWith(p.slice(0, -1)) : p === modelId));
}
