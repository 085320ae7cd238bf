import os from 'node:os';
import path from 'node:path';

/** A benchmark known by name: where its folder lives (local path or `s3://`). */
export interface RegisteredBenchmark {
  name: string;
  uri: string;
  description: string;
}

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
      description: 'seeded synthetic grounding questions (libs/data/src/synthetic), generated, no download',
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
}
