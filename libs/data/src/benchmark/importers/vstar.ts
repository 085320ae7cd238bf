import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BENCHMARK_FORMAT, BenchmarkRecord } from '../format';
import { BenchmarkContent } from '../write';
import { ImportError } from './mmvp';

export const VSTAR_CATEGORIES = ['direct_attributes', 'relative_position'];
const LETTERS = 'ABCDEFGH';

interface VstarAnnotation {
  question: string;
  /** The correct option comes first (the official scorer relies on it). */
  options: string[];
  /** `[x, y, w, h]` per target object. */
  bbox?: number[][];
  target_object?: string[];
}

/** Where the correct option goes: a stable function of the image name, so re-imports are identical. */
function correctPosition(name: string, count: number): number {
  return createHash('sha256').update(name).digest()[0] % count;
}

/**
 * V* Bench as published: `<category>/<image>.jpg` beside `<image>.json` (`question`, `options` with the correct one
 * first, `bbox` as [x, y, w, h], `target_object`). Options are rotated to a stable position per image, so that the
 * answer is not always "A" for a generating model; the first target's box becomes the record's bbox.
 */
export function importVstar(root: string): BenchmarkContent {
  const images = new Map<string, Buffer>();
  const records: BenchmarkRecord[] = [];
  for (const category of VSTAR_CATEGORIES) {
    const dir = path.join(root, category);
    if (!fs.existsSync(dir))
      throw new ImportError(`${dir} does not exist (expected ${VSTAR_CATEGORIES.join(', ')})`);
    const files = fs
      .readdirSync(dir)
      .filter((f) => /\.(jpe?g|png)$/i.test(f))
      .sort();
    for (const file of files) {
      const base = file.replace(/\.[^.]+$/, '');
      const annotationPath = path.join(dir, `${base}.json`);
      if (!fs.existsSync(annotationPath)) throw new ImportError(`${category}/${file} has no ${base}.json`);
      const annotation = JSON.parse(fs.readFileSync(annotationPath, 'utf8')) as VstarAnnotation;
      if (
        typeof annotation.question !== 'string' ||
        !Array.isArray(annotation.options) ||
        annotation.options.length < 2
      )
        throw new ImportError(`${category}/${base}.json needs "question" and at least two "options"`);
      const n = annotation.options.length;
      const shift = correctPosition(`${category}/${base}`, n);
      const ordered = annotation.options.map((_, i) => annotation.options[(i - shift + n) % n]);
      const [x, y, w, h] = annotation.bbox?.[0] ?? [];
      const image = `images/${category}/${file}`;
      images.set(image, fs.readFileSync(path.join(dir, file)));
      records.push({
        id: `${category}/${base}`,
        question: annotation.question,
        options: ordered.map((text, i) => ({ letter: LETTERS[i], text })),
        answer: LETTERS[shift],
        image,
        category,
        ...(w > 0 && h > 0 ? { bbox: [x, y, x + w, y + h] as [number, number, number, number] } : {}),
        meta: { targetObject: annotation.target_object ?? [] },
      });
    }
  }
  return {
    manifest: {
      format: BENCHMARK_FORMAT,
      name: 'vstar',
      version: '1',
      description:
        'V* Bench (Wu & Xie 2023): 191 high-resolution questions, direct attributes and relative position',
      protocols: ['vstar-category'],
      splits: ['test'],
      categories: VSTAR_CATEGORIES,
    },
    splits: { test: records },
    images,
  };
}
