/** The shared benchmark format (`lvr-benchmark/v1`): a folder with `benchmark.json`, `<split>.jsonl` and `images/`. */
export const BENCHMARK_FORMAT = 'lvr-benchmark/v1';
export const MANIFEST_FILE = 'benchmark.json';

export const BENCHMARK_DIFFICULTIES = ['easy', 'medium', 'hard'] as const;
export type BenchmarkDifficulty = (typeof BENCHMARK_DIFFICULTIES)[number];

export interface BenchmarkManifest {
  format: typeof BENCHMARK_FORMAT;
  name: string;
  version: string;
  description: string;
  /** Protocol ids the benchmark is scored with (see the evaluator's protocol list). */
  protocols: string[];
  splits: string[];
  categories: string[];
}

export interface BenchmarkOption {
  letter: string;
  text: string;
}

export interface BenchmarkRecord {
  id: string;
  question: string;
  /** Empty for open answers. */
  options: BenchmarkOption[];
  /** A letter when options exist, the expected text otherwise. */
  answer: string;
  /** Relative path(s) under the benchmark folder; an array for multi-image questions. */
  image: string | string[];
  category: string;
  subtask?: string;
  /** Both records of an MMVP pair share it. */
  pairId?: string;
  /** `[x0, y0, x1, y1]` in pixels of the (first) image: the region that answers the question. */
  bbox?: [number, number, number, number];
  difficulty?: BenchmarkDifficulty;
  meta?: Record<string, unknown>;
}

export function splitFile(split: string): string {
  return `${split}.jsonl`;
}

export function recordImages(record: BenchmarkRecord): string[] {
  return Array.isArray(record.image) ? record.image : [record.image];
}
