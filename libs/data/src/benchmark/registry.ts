import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeSyntheticBenchmark } from '../synthetic/benchmark';
import { MANIFEST_FILE } from './format';

/** A benchmark known by name: where its folder lives (local path or `s3://`). */
export interface RegisteredBenchmark {
  name: string;
  uri: string;
  description: string;
  /** Builds the folder when it is missing (generated benchmarks need no download). */
  generate?: (dir: string) => void;
}

export const SYNTHETIC_SEED = 1;
export const SYNTHETIC_TEST_COUNT = 500;

export class UnknownBenchmarkError extends Error {
  constructor(
    readonly benchmark: string,
    known: string[],
  ) {
    super(
      `unknown benchmark "${benchmark}": known benchmarks are ${known.join(', ') || 'none'}; or give its uri`,
    );
  }
}

export function defaultBenchmarksDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.LVR_BENCHMARKS_DIR || path.join(os.homedir(), '.cache', 'lvr-platform', 'benchmarks');
}

/** Benchmarks every installation knows; their folders are generated or imported under the benchmarks dir. */
export function builtInBenchmarks(dir: string): RegisteredBenchmark[] {
  return [
    {
      name: 'synthetic-grounding',
      uri: path.join(dir, 'synthetic-grounding'),
      description: `synthetic grounding questions (libs/data/src/synthetic), seed ${SYNTHETIC_SEED}, held-out test split`,
      generate: (target) =>
        writeSyntheticBenchmark(target, [{ split: 'test', count: SYNTHETIC_TEST_COUNT }], {
          seed: SYNTHETIC_SEED,
        }),
    },
    { name: 'mmvp', uri: path.join(dir, 'mmvp'), description: 'MMVP imported from Questions.csv + images' },
    {
      name: 'vstar',
      uri: path.join(dir, 'vstar'),
      description: 'V* Bench imported from its per-category JSON',
    },
    {
      name: 'blink',
      uri: path.join(dir, 'blink'),
      description: 'BLINK val imported from the HF parquet files',
    },
  ];
}

/**
 * Name → benchmark folder. Configuration (`LVR_BENCHMARKS="name=uri,name=uri"`) adds names or moves built-in ones,
 * e.g. to a versioned prefix in MinIO.
 */
export class BenchmarkRegistry {
  private readonly entries = new Map<string, RegisteredBenchmark>();

  constructor(entries: RegisteredBenchmark[]) {
    for (const entry of entries) this.entries.set(entry.name, entry);
  }

  static fromEnv(env: NodeJS.ProcessEnv = process.env): BenchmarkRegistry {
    const registry = new BenchmarkRegistry(builtInBenchmarks(defaultBenchmarksDir(env)));
    for (const item of (env.LVR_BENCHMARKS ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const eq = item.indexOf('=');
      if (eq <= 0) throw new Error(`LVR_BENCHMARKS entry "${item}" must be name=uri`);
      const name = item.slice(0, eq).trim();
      registry.entries.set(name, { name, uri: item.slice(eq + 1).trim(), description: 'configured' });
    }
    return registry;
  }

  list(): RegisteredBenchmark[] {
    return [...this.entries.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The explicit uri wins; otherwise the name must be registered. */
  resolve(name: string, uri?: string): string {
    if (uri) return uri;
    const entry = this.entries.get(name);
    if (!entry) throw new UnknownBenchmarkError(name, [...this.entries.keys()].sort());
    return entry.uri;
  }

  /**
   * Like `resolve`, and generates a registered generated benchmark whose local folder does not exist yet. It is built
   * beside the target and renamed into place, so concurrent evaluators never read a half-written folder.
   */
  prepare(name: string, uri?: string): string {
    const resolved = this.resolve(name, uri);
    const entry = this.entries.get(name);
    if (uri || !entry?.generate || fs.existsSync(path.join(resolved, MANIFEST_FILE))) return resolved;
    const staging = `${resolved}.partial-${process.pid}-${Date.now()}`;
    entry.generate(staging);
    try {
      fs.renameSync(staging, resolved);
    } catch (error) {
      fs.rmSync(staging, { recursive: true, force: true });
      if (!fs.existsSync(path.join(resolved, MANIFEST_FILE))) throw error;
    }
    return resolved;
  }
}
