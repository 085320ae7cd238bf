/**
 * `npm run data -- COMMAND ...`
 *   synthetic --seed N --out DIR (--split NAME --count N)... [--categories a,b] [--difficulties single,pair,easy]
 *   training-records --benchmark DIR --split NAME --out DIR [--answer aligned|text|letter] [--lookup]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  ANSWER_FORMATS,
  CATEGORIES,
  readSplitRecords,
  SCENE_LEVELS,
  toLookupDrill,
  toStage1,
  toStage2,
  writeSyntheticBenchmark,
  type AnswerFormat,
  type Category,
  type McRecord,
  type SceneLevel,
  type SplitRequest,
} from './synthetic';

function fail(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(2);
}

function list<T extends string>(
  text: string | undefined,
  allowed: readonly T[],
  flag: string,
): T[] | undefined {
  if (text === undefined) return undefined;
  const items = text.split(',').filter(Boolean);
  for (const item of items)
    if (!allowed.includes(item as T)) fail(`${flag}: unknown value ${item}; expected ${allowed.join(', ')}`);
  return items as T[];
}

function integer(text: string | undefined, flag: string): number {
  const n = Number(text);
  if (text === undefined || !Number.isInteger(n) || n < 0) fail(`${flag} needs a non-negative integer`);
  return n;
}

function synthetic(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: {
      seed: { type: 'string' },
      out: { type: 'string' },
      split: { type: 'string', multiple: true },
      count: { type: 'string', multiple: true },
      categories: { type: 'string' },
      difficulties: { type: 'string' },
    },
  });
  if (!values.out) fail('--out DIR is required');
  const splits = values.split ?? [];
  const counts = values.count ?? [];
  if (splits.length === 0 || splits.length !== counts.length)
    fail('give one --count N after each --split NAME');
  const requests: SplitRequest[] = splits.map((split, i) => ({
    split,
    count: integer(counts[i], '--count'),
  }));
  const written = writeSyntheticBenchmark(values.out, requests, {
    seed: integer(values.seed, '--seed'),
    categories: list<Category>(values.categories, CATEGORIES, '--categories'),
    difficulties: list<SceneLevel>(values.difficulties, SCENE_LEVELS, '--difficulties'),
  });
  for (const [split, records] of Object.entries(written))
    process.stdout.write(
      `${split}: ${records.length} records -> ${path.join(values.out, `${split}.jsonl`)}\n`,
    );
}

function trainingRecords(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: {
      benchmark: { type: 'string' },
      split: { type: 'string' },
      out: { type: 'string' },
      answer: { type: 'string' },
      lookup: { type: 'boolean' },
    },
  });
  const [format] = list<AnswerFormat>(values.answer ?? 'aligned', ANSWER_FORMATS, '--answer') ?? ['aligned'];
  if (!values.benchmark || !values.split || !values.out)
    fail('--benchmark DIR --split NAME --out DIR are required');
  const records =
    readSplitRecords<McRecord>(values.benchmark, values.split) ??
    fail(`${path.join(values.benchmark, `${values.split}.jsonl`)} not found`);
  fs.mkdirSync(values.out, { recursive: true });
  const write = (name: string, rows: unknown[]) => {
    fs.writeFileSync(path.join(values.out!, name), rows.map((r) => JSON.stringify(r) + '\n').join(''));
    process.stdout.write(`${name}: ${rows.length} records\n`);
  };
  // with --lookup, each record is followed by its lookup drill (same image, so the pair shares one cached sample)
  const stage1 = (latent: boolean) =>
    records.flatMap((r) =>
      values.lookup ? [toStage1(r, latent, format), toLookupDrill(r, format)] : [toStage1(r, latent, format)],
    );
  write('stage1-lvr.jsonl', stage1(true));
  write('stage1-plain.jsonl', stage1(false));
  write('stage2.jsonl', records.map(toStage2));
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'synthetic') synthetic(rest);
else if (command === 'training-records') trainingRecords(rest);
else fail(`unknown command ${command ?? '(none)'}; expected synthetic or training-records`);
