import { BundleError } from '../errors';

/** The parts of manifest.json (docs/bundle-format.md, format version 1) the engine uses. */
export interface BundleManifest {
  format: 'lvr-bundle';
  format_version: 1;
  precision: 'fp32' | 'fp16' | 'int4' | 'int4-fp16';
  architecture: {
    hidden_size: number;
    num_hidden_layers: number;
    num_key_value_heads: number;
    head_dim: number;
    vocab_size: number;
    /** Context length the model was built for (older bundles do not record it). */
    max_position_embeddings?: number;
    vision: {
      patch_size: number;
      temporal_patch_size: number;
      spatial_merge_size: number;
      window_size: number;
    };
  };
  special_tokens: {
    lvr_start_id: number;
    lvr_id: number;
    lvr_latent_end_id: number;
    lvr_end_id: number;
    vision_start_id: number;
    vision_end_id: number;
    image_pad_id: number;
    pad_id: number;
    eos_ids: number[];
  };
  preprocessing: {
    patch_size: number;
    temporal_patch_size: number;
    merge_size: number;
    min_pixels: number;
    max_pixels: number;
    image_mean: number[];
    image_std: number[];
    rescale_factor: number;
  };
  generation: Record<string, unknown>;
  lvr: {
    lvr_head: boolean;
    lvr_head_type?: string;
    latent_end_token: boolean;
    strategy: 'steps' | 'latent' | 'end_token';
    steps: number;
    latent_criterion: 'mse' | 'mae' | 'cosine';
    latent_threshold: number;
    upstream_compat: boolean;
  };
  graphs: {
    vision: string;
    embed_tokens: string;
    /** The decoder onnxruntime-node runs (CPU and WebGPU execution providers). */
    decoder: string;
    lvr_head?: string;
    /**
     * The GPU serving flavour of the decoder (GroupQueryAttention over a static KV buffer shared by past and present;
     * docs/bundle-format.md), written only by `lvr export --fused-decoder`; run by the native addon when
     * `EngineLoadOptions.fusedDecoder` is on (the default on the cuda execution provider).
     */
    decoder_fused?: string;
    /**
     * The same graph with its projections as the engine addon's `lvr` custom ops (libs/engine/native/lvr_ops.h),
     * reading `decoder_fused`'s data file; written with it for float bundles (`EngineLoadOptions.fusedProjections`).
     */
    decoder_fused_lvr?: string;
  };
  io_dtypes: { embeds: 'float32' | 'float16' };
  tokenizer: string;
  chat_template: string;
  /** The system message of chats that send none (a training run's `systemPrompt`; older bundles lack it). */
  default_system_prompt?: string;
  lvr_files?: Record<string, string>;
  provenance?: {
    source?: string;
    run_id?: string | null;
    /** sha256 of each source weight file, and one digest over all of them ("NAME SHA256\n" per file, sorted). */
    source_weights?: { sha256: string; files: Record<string, string> };
  };
  files: Array<{ path: string; size: number; sha256: string }>;
}

const REQUIRED: Array<[string, string]> = [
  ['format', 'string'],
  ['format_version', 'number'],
  ['precision', 'string'],
  ['architecture.hidden_size', 'number'],
  ['architecture.num_hidden_layers', 'number'],
  ['architecture.num_key_value_heads', 'number'],
  ['architecture.head_dim', 'number'],
  ['architecture.vocab_size', 'number'],
  ['architecture.vision.spatial_merge_size', 'number'],
  ['architecture.vision.window_size', 'number'],
  ['architecture.vision.patch_size', 'number'],
  ['special_tokens.lvr_start_id', 'number'],
  ['special_tokens.lvr_end_id', 'number'],
  ['special_tokens.image_pad_id', 'number'],
  ['special_tokens.eos_ids', 'array'],
  ['preprocessing.min_pixels', 'number'],
  ['preprocessing.max_pixels', 'number'],
  ['preprocessing.image_mean', 'array'],
  ['preprocessing.image_std', 'array'],
  ['lvr.strategy', 'string'],
  ['lvr.steps', 'number'],
  ['graphs.vision', 'string'],
  ['graphs.embed_tokens', 'string'],
  ['graphs.decoder', 'string'],
  ['io_dtypes.embeds', 'string'],
  ['tokenizer', 'string'],
  ['files', 'array'],
];

function get(obj: unknown, dotted: string): unknown {
  return dotted
    .split('.')
    .reduce<unknown>(
      (o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined),
      obj,
    );
}

const GRAPHS = new Set([
  'vision',
  'embed_tokens',
  'decoder',
  'lvr_head',
  'decoder_fused',
  'decoder_fused_lvr',
]);
const HEAD_TYPES = new Set(['simple', 'glu']);
const STRATEGIES = new Set(['steps', 'latent', 'end_token']);
const PRECISIONS = new Set(['fp32', 'fp16', 'int4', 'int4-fp16']);

/**
 * Refuses a bundle that declares something this engine would not run as declared (a graph it does not know, a head
 * without its graph or the reverse, an unknown strategy or precision): never load it and silently ignore a feature.
 */
function assertRunnable(m: BundleManifest): void {
  const refuse = (field: string, why: string): never => {
    throw new BundleError(
      `manifest.json: ${field} ${why}; this engine cannot run the bundle`,
      'manifest.json',
      field,
    );
  };
  for (const name of Object.keys(m.graphs))
    if (!GRAPHS.has(name)) refuse(`graphs.${name}`, 'is an unknown graph');
  for (const name of ['decoder_fused', 'decoder_fused_lvr'] as const)
    if (m.graphs[name] !== undefined && typeof m.graphs[name] !== 'string')
      refuse(`graphs.${name}`, 'must be a file name');
  if (m.graphs.decoder_fused_lvr !== undefined && m.graphs.decoder_fused === undefined)
    refuse('graphs.decoder_fused_lvr', 'needs graphs.decoder_fused, whose data file it reads');
  if (!PRECISIONS.has(m.precision)) refuse('precision', `${m.precision} is not supported`);
  if (!STRATEGIES.has(m.lvr.strategy)) refuse('lvr.strategy', `${m.lvr.strategy} is not a known strategy`);
  if (m.lvr.lvr_head === true) {
    if (typeof m.graphs.lvr_head !== 'string')
      refuse('graphs.lvr_head', 'is missing although lvr.lvr_head is true');
    const type = m.lvr.lvr_head_type ?? 'simple';
    if (!HEAD_TYPES.has(type)) refuse('lvr.lvr_head_type', `${type} is not a known head type`);
  } else if (m.graphs.lvr_head !== undefined)
    refuse('graphs.lvr_head', 'is present but lvr.lvr_head is not true');
}

/** Parses and validates manifest.json; errors name the offending field. */
export function parseManifest(text: string): BundleManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new BundleError(`manifest.json is not valid JSON: ${(e as Error).message}`, 'manifest.json');
  }
  for (const [field, type] of REQUIRED) {
    const v = get(raw, field);
    const ok = type === 'array' ? Array.isArray(v) : typeof v === type;
    if (!ok)
      throw new BundleError(
        `manifest.json: field ${field} must be ${type === 'array' ? 'an array' : `a ${type}`}`,
        'manifest.json',
        field,
      );
  }
  const m = raw as BundleManifest;
  if (m.format !== 'lvr-bundle')
    throw new BundleError(`manifest.json: format must be "lvr-bundle"`, 'manifest.json', 'format');
  if (m.format_version !== 1) {
    throw new BundleError(
      `manifest.json: unsupported format_version ${m.format_version} (expected 1)`,
      'manifest.json',
      'format_version',
    );
  }
  if (!['float32', 'float16'].includes(m.io_dtypes.embeds)) {
    throw new BundleError(
      `manifest.json: io_dtypes.embeds ${m.io_dtypes.embeds} is not supported`,
      'manifest.json',
      'io_dtypes.embeds',
    );
  }
  const maxLen = m.architecture.max_position_embeddings;
  if (maxLen !== undefined && !(Number.isInteger(maxLen) && maxLen > 0)) {
    throw new BundleError(
      'manifest.json: architecture.max_position_embeddings must be a positive integer',
      'manifest.json',
      'architecture.max_position_embeddings',
    );
  }
  if (m.default_system_prompt !== undefined && typeof m.default_system_prompt !== 'string') {
    throw new BundleError(
      'manifest.json: default_system_prompt must be a string',
      'manifest.json',
      'default_system_prompt',
    );
  }
  assertRunnable(m);
  m.files.forEach((f, i) => {
    if (typeof f.path !== 'string' || typeof f.size !== 'number' || !/^[0-9a-f]{64}$/.test(f.sha256 ?? '')) {
      throw new BundleError(
        `manifest.json: files[${i}] needs path, size and a sha256 hex digest`,
        'manifest.json',
        `files[${i}]`,
      );
    }
  });
  return m;
}
