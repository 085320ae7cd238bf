import fs from 'node:fs';
import path from 'node:path';
import { BENCHMARK_FORMAT, BenchmarkOption, BenchmarkRecord } from '../format';
import { BenchmarkContent } from '../write';
import { csvRecords } from './csv';

/** The nine visual patterns, by the codes some copies of Questions.csv carry in a Category column. */
const PATTERNS: Record<string, string> = {
  od: 'orientation-and-direction',
  pf: 'presence-of-specific-features',
  sc: 'state-and-condition',
  qc: 'quantity-and-count',
  pr: 'positional-and-relational-context',
  ca: 'color-and-appearance',
  sh: 'structural-characteristics',
  tx: 'texts',
  vp: 'viewpoint-and-perspective',
};

/** Pairs whose answers the original release has swapped (lmms-eval #1018, tsb0601/MMVP #30). */
const CORRECTED_PAIRS = [
  [99, 100],
  [279, 280],
];

export interface MmvpImportOptions {
  /** Apply the known ground-truth corrections; default false (the labels LVR and the paper used). */
  correctedLabels?: boolean;
}

export class ImportError extends Error {}

/** `(a) Open (b) Closed` → [{A, Open}, {B, Closed}] */
export function parseMmvpOptions(text: string): BenchmarkOption[] {
  const parts = text.split(/\(([a-z])\)\s*/i).slice(1);
  const options: BenchmarkOption[] = [];
  for (let i = 0; i < parts.length; i += 2)
    options.push({ letter: parts[i].toUpperCase(), text: parts[i + 1].trim() });
  return options;
}

function imagesDir(root: string): string {
  const found = ['MMVP Images', 'MMVP_Images', 'images']
    .map((d) => path.join(root, d))
    .find((d) => fs.existsSync(d));
  if (!found) throw new ImportError(`no image folder ("MMVP Images") under ${root}`);
  return found;
}

/**
 * MMVP as published: `Questions.csv` (Index, [Category,] Question, Options "(a) … (b) …", Correct Answer "(a)") and
 * `MMVP Images/<Index>.jpg`. Consecutive indices (1-2, 3-4, …) are the CLIP-blind pairs.
 */
export function importMmvp(root: string, options: MmvpImportOptions = {}): BenchmarkContent {
  const csvPath = path.join(root, 'Questions.csv');
  if (!fs.existsSync(csvPath)) throw new ImportError(`${csvPath} does not exist`);
  const rows = csvRecords(fs.readFileSync(csvPath, 'utf8'));
  const dir = imagesDir(root);
  const images = new Map<string, Buffer>();
  const records: BenchmarkRecord[] = rows.map((row, i) => {
    const line = i + 2;
    const index = Number(row.index ?? row.lndex);
    if (!Number.isInteger(index) || index < 1) throw new ImportError(`Questions.csv line ${line}: bad Index`);
    const opts = parseMmvpOptions(row.options ?? '');
    if (opts.length < 2)
      throw new ImportError(`Questions.csv line ${line}: Options must look like "(a) … (b) …"`);
    const answer = /\(([a-z])\)/i.exec(row['correct answer'] ?? '')?.[1]?.toUpperCase();
    if (!answer) throw new ImportError(`Questions.csv line ${line}: Correct Answer must look like "(a)"`);
    const file = ['jpg', 'jpeg', 'png']
      .map((ext) => `${index}.${ext}`)
      .find((f) => fs.existsSync(path.join(dir, f)));
    if (!file) throw new ImportError(`Questions.csv line ${line}: image ${index}.jpg is missing in ${dir}`);
    images.set(`images/${file}`, fs.readFileSync(path.join(dir, file)));
    const code = (row.category ?? '').toLowerCase();
    return {
      id: `mmvp-${index}`,
      question: row.question,
      options: opts,
      answer,
      image: `images/${file}`,
      category: PATTERNS[code] ?? (code || 'mmvp'),
      pairId: `pair-${Math.ceil(index / 2)}`,
      meta: { index },
    };
  });
  if (options.correctedLabels)
    for (const [a, b] of CORRECTED_PAIRS) {
      const ra = records.find((r) => r.meta?.index === a);
      const rb = records.find((r) => r.meta?.index === b);
      if (ra && rb) [ra.answer, rb.answer] = [rb.answer, ra.answer];
    }
  return {
    manifest: {
      format: BENCHMARK_FORMAT,
      name: 'mmvp',
      version: options.correctedLabels ? '1-corrected' : '1',
      description: 'MMVP (Tong et al. 2024): 150 CLIP-blind image pairs, 300 two-option questions',
      protocols: ['mmvp-pair', 'mmvp-question'],
      splits: ['test'],
      categories: [...new Set(records.map((r) => r.category))].sort(),
    },
    splits: { test: records },
    images,
  };
}
