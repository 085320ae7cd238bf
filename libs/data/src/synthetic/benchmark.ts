/**
 * The synthetic grounding benchmark in the shared `lvr-benchmark/v1` layout: `benchmark.json`, `<split>.jsonl` and
 * `images/<split>-<index>.png`. Every image is a function of (seed, split, index) alone, so any subset regenerates
 * identically. Small levels (one object on a small image) can draw the same picture twice; a held-out split's item
 * whose pixels a training split of the folder already holds is redrawn (`heldOutItem`), so splits never share an image.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { encodePng } from './png';
import { makeQuestion } from './question';
import { Rng, hashSeed } from './random';
import {
  CATEGORIES,
  DIFFICULTIES,
  isDifficulty,
  makeScene,
  renderScene,
  type Category,
  type Difficulty,
  type SceneLevel,
} from './scene';

export const BENCHMARK_NAME = 'synthetic-grounding';
export const BENCHMARK_VERSION = '1';
export const PROTOCOLS = ['lvr'];

export interface SyntheticRecord {
  id: string;
  question: string;
  options: Array<{ letter: string; text: string }>;
  answer: string;
  image: string;
  category: Category;
  subtask: string;
  bbox: [number, number, number, number];
  /** The shared format's easy/medium/hard; absent for the curriculum levels (`meta.level` names every level). */
  difficulty?: Difficulty;
  meta: {
    seed: number;
    level: SceneLevel;
    width: number;
    height: number;
    objects: number;
    answerText: string;
    target: { shape: string; colour: string; mark: string };
    /** sha256 of the RGB pixels: equal images have equal digests (used to prove splits are disjoint). */
    pixelsSha256: string;
  };
}

export interface SyntheticItem {
  record: SyntheticRecord;
  png: Buffer;
  rgb: Uint8Array;
}

export interface GenerateOptions {
  seed: number;
  categories?: readonly Category[];
  /** Levels drawn from (uniformly per item); default easy, medium and hard. */
  difficulties?: readonly SceneLevel[];
}

/** Item `index` of `split`: the scene, its question and the encoded image (`redraw` > 0: the redrawn one). */
export function generateItem(split: string, index: number, opts: GenerateOptions, redraw = 0): SyntheticItem {
  const seed = hashSeed(`${opts.seed}:${split}:${index}` + (redraw > 0 ? `:redraw-${redraw}` : ''));
  const rng = new Rng(seed);
  const category = rng.pick(opts.categories ?? CATEGORIES);
  const level = rng.pick(opts.difficulties ?? DIFFICULTIES);
  const scene = makeScene(rng, category, level);
  const img = renderScene(scene);
  const q = makeQuestion(rng, scene);
  const t = scene.objects[scene.target];
  const mark =
    t.mark.kind === 'glyph' ? t.mark.glyph : t.mark.kind === 'dots' ? `${t.mark.count} dots` : 'none';
  const id = `${split}-${String(index).padStart(5, '0')}`;
  return {
    record: {
      id,
      question: q.text,
      options: q.options,
      answer: q.answer,
      image: `images/${id}.png`,
      category,
      subtask: `${category}/${level}`,
      bbox: [t.box.x0, t.box.y0, t.box.x1, t.box.y1],
      ...(isDifficulty(level) ? { difficulty: level } : {}),
      meta: {
        seed,
        level,
        width: scene.width,
        height: scene.height,
        objects: scene.objects.length,
        answerText: q.answerText,
        target: { shape: t.shape, colour: t.colour, mark },
        pixelsSha256: createHash('sha256').update(img.data).digest('hex'),
      },
    },
    png: encodePng(img.width, img.height, img.data),
    rgb: img.data,
  };
}

const MAX_REDRAWS = 100;

/** Training splits are the ones named `train` or `train-…`; every other split is held out from them. */
export function isTrainingSplit(split: string): boolean {
  return split === 'train' || split.startsWith('train-');
}

/** Item `index` of a held-out split, redrawn (deterministically) while its pixels are among `trainingPixels`. */
export function heldOutItem(
  split: string,
  index: number,
  opts: GenerateOptions,
  trainingPixels: ReadonlySet<string>,
): SyntheticItem {
  for (let redraw = 0; redraw <= MAX_REDRAWS; redraw++) {
    const item = generateItem(split, index, opts, redraw);
    if (!trainingPixels.has(item.record.meta.pixelsSha256)) return item;
  }
  throw new Error(
    `${split}-${index}: every redraw repeats a training image (too few distinct scenes at this level)`,
  );
}

/** The records of `<dir>/<split>.jsonl`, unvalidated (files this module wrote); undefined when there is none. */
export function readSplitRecords<T = SyntheticRecord>(dir: string, split: string): T[] | undefined {
  const file = path.join(dir, `${split}.jsonl`);
  if (!fs.existsSync(file)) return undefined;
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as T);
}

function pixelsOfSplit(out: string, split: string): string[] {
  return (readSplitRecords(out, split) ?? []).map((r) => r.meta.pixelsSha256);
}

export interface SplitRequest {
  split: string;
  count: number;
}

/** Write (or extend with more splits) a benchmark folder; returns the records written per split. */
export function writeSyntheticBenchmark(
  out: string,
  splits: readonly SplitRequest[],
  opts: GenerateOptions,
): Record<string, SyntheticRecord[]> {
  fs.mkdirSync(path.join(out, 'images'), { recursive: true });
  const manifestPath = path.join(out, 'benchmark.json');
  const previous = fs.existsSync(manifestPath)
    ? (JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as { splits?: string[] })
    : {};
  const requested = new Set(splits.map((s) => s.split));
  const trainingPixels = new Set(
    (previous.splits ?? [])
      .filter((split) => isTrainingSplit(split) && !requested.has(split))
      .flatMap((split) => pixelsOfSplit(out, split)),
  );
  const ordered = [...splits].sort(
    (a, b) => Number(isTrainingSplit(b.split)) - Number(isTrainingSplit(a.split)),
  );
  const written: Record<string, SyntheticRecord[]> = {};
  for (const { split, count } of ordered) {
    if (!/^[a-z][a-z0-9_-]*$/.test(split))
      throw new Error(`split name ${JSON.stringify(split)}: use [a-z0-9_-]`);
    const training = isTrainingSplit(split);
    const records: SyntheticRecord[] = [];
    for (let i = 0; i < count; i++) {
      const item = training ? generateItem(split, i, opts) : heldOutItem(split, i, opts, trainingPixels);
      if (training) trainingPixels.add(item.record.meta.pixelsSha256);
      fs.writeFileSync(path.join(out, item.record.image), item.png);
      records.push(item.record);
    }
    fs.writeFileSync(path.join(out, `${split}.jsonl`), records.map((r) => JSON.stringify(r) + '\n').join(''));
    written[split] = records;
  }
  const allSplits = [...new Set([...(previous.splits ?? []), ...splits.map((s) => s.split)])];
  const manifest = {
    format: 'lvr-benchmark/v1',
    name: BENCHMARK_NAME,
    version: BENCHMARK_VERSION,
    description:
      `Synthetic grounding (seed ${opts.seed}): many objects on a larger image; the question names one by an ` +
      'attribute no other object has and asks its colour, shape, the letter on it or its number of dots.',
    protocols: PROTOCOLS,
    splits: allSplits,
    categories: [...(opts.categories ?? CATEGORIES)],
    seed: opts.seed,
  };
  fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
  return written;
}
