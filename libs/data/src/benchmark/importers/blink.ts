import fs from 'node:fs';
import path from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import { BENCHMARK_FORMAT, BenchmarkRecord } from '../format';
import { BenchmarkContent } from '../write';
import { ImportError } from './mmvp';

/** The five subtasks the LVR paper reports (TRAINING-EVAL-REFERENCE.md §4.4). */
export const LVR_BLINK_SUBTASKS = [
  'Counting',
  'IQ_Test',
  'Jigsaw',
  'Relative_Reflectance',
  'Spatial_Relation',
];
const LETTERS = 'ABCDEFGHIJ';

interface HfImage {
  bytes?: Uint8Array | null;
  path?: string | null;
}

interface BlinkRow {
  idx: string;
  question: string;
  sub_task?: string;
  choices: string[];
  answer: string;
  image_1?: HfImage | null;
  image_2?: HfImage | null;
  image_3?: HfImage | null;
  image_4?: HfImage | null;
}

function extensionOf(bytes: Uint8Array): string {
  if (bytes[0] === 0x89 && bytes[1] === 0x50) return 'png';
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return 'jpg';
  if (bytes[0] === 0x52 && bytes[1] === 0x49) return 'webp';
  return 'bin';
}

/** Embedded image bytes: un-annotated byte arrays stay binary (`utf8: false`). */
async function readRows(file: string): Promise<BlinkRow[]> {
  const buffer = fs.readFileSync(file);
  const arrayBuffer = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
  return (await parquetReadObjects({ file: arrayBuffer, utf8: false })) as unknown as BlinkRow[];
}

export interface BlinkImportOptions {
  /** Default: the LVR paper's five; `all` takes every subtask folder present. */
  subtasks?: string[] | 'all';
  split?: 'val' | 'test';
}

/**
 * BLINK as published on Hugging Face: `<Subtask>/<split>-NNNNN-of-NNNNN.parquet` with columns idx, question,
 * sub_task, image_1..image_4 (`{bytes, path}` structs, null when unused), choices, answer "(A)". The embedded images
 * are written out; the test split's answers are hidden, so only `val` is importable for scoring.
 */
export async function importBlink(root: string, options: BlinkImportOptions = {}): Promise<BenchmarkContent> {
  const split = options.split ?? 'val';
  const subtasks =
    options.subtasks === 'all'
      ? fs
          .readdirSync(root)
          .filter((d) => fs.statSync(path.join(root, d)).isDirectory())
          .sort()
      : (options.subtasks ?? LVR_BLINK_SUBTASKS);
  const images = new Map<string, Buffer>();
  const records: BenchmarkRecord[] = [];
  for (const subtask of subtasks) {
    const dir = path.join(root, subtask);
    const files = fs.existsSync(dir)
      ? fs
          .readdirSync(dir)
          .filter((f) => f.startsWith(`${split}-`) && f.endsWith('.parquet'))
          .sort()
      : [];
    if (files.length === 0) throw new ImportError(`no ${split}-*.parquet under ${dir}`);
    for (const file of files)
      for (const row of await readRows(path.join(dir, file))) {
        const where = `${subtask}/${file} row ${row.idx}`;
        const answer = /^\(?([A-J])\)?$/.exec(String(row.answer).trim())?.[1];
        if (!answer)
          throw new ImportError(
            `${where}: answer "${row.answer}" is not a letter (hidden test answers cannot be scored)`,
          );
        const refs: string[] = [];
        [row.image_1, row.image_2, row.image_3, row.image_4].forEach((image, k) => {
          if (!image?.bytes) return;
          const ref = `images/${subtask}/${row.idx}_${k + 1}.${extensionOf(image.bytes)}`;
          images.set(ref, Buffer.from(image.bytes));
          refs.push(ref);
        });
        if (refs.length === 0) throw new ImportError(`${where}: no embedded image`);
        records.push({
          id: String(row.idx),
          question: row.question,
          options: row.choices.map((text, i) => ({ letter: LETTERS[i], text: String(text) })),
          answer,
          image: refs.length === 1 ? refs[0] : refs,
          category: subtask,
          subtask: row.sub_task ?? subtask,
        });
      }
  }
  return {
    manifest: {
      format: BENCHMARK_FORMAT,
      name: 'blink',
      version: `1-${split}`,
      description: `BLINK (Fu et al. 2024), ${split} split: ${subtasks.join(', ')}`,
      protocols: ['blink-subtask'],
      splits: [split],
      categories: [...subtasks],
    },
    splits: { [split]: records },
    images,
  };
}
