import { EvaluationDecoding, EvaluationLvrStrategy } from '@lvr/contracts';

/** One decoding configuration of an evaluation; `label` names it in samples, scores and the report. */
export interface DecodingConfig {
  label: string;
  strategy?: EvaluationLvrStrategy;
  steps?: number;
  temperature: number;
  maxTokens: number;
}

export const DEFAULT_MAX_TOKENS = 512;

/**
 * Expands the request's sweep: one configuration per `steps` value (or one with the model's defaults). Steps 0 is
 * the no-latent baseline, sent as strategy `none` (the API takes `steps` >= 1).
 */
export function expandDecoding(decoding: EvaluationDecoding | undefined): DecodingConfig[] {
  const temperature = decoding?.temperature ?? 0;
  const maxTokens = decoding?.maxTokens ?? DEFAULT_MAX_TOKENS;
  const strategy = decoding?.strategy;
  const steps = decoding?.steps ? [...new Set(decoding.steps)] : [undefined];
  return steps.map((s) => {
    const label = [strategy ?? (s !== undefined ? 'steps' : 'default'), s !== undefined ? String(s) : '']
      .filter(Boolean)
      .join('=');
    if (s === 0) return { label, strategy: 'none', steps: 0, temperature, maxTokens };
    return {
      label,
      strategy: strategy ?? (s !== undefined ? 'steps' : undefined),
      steps: s,
      temperature,
      maxTokens,
    };
  });
}
