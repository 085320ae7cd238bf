import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { BenchmarkContent, LocalBenchmarkSource, loadBenchmark, writeBenchmarkFolder } from '@lvr/data';
import { importBlink } from '../../libs/data/src/benchmark/importers/blink';
import { ImportError, importMmvp, parseMmvpOptions } from '../../libs/data/src/benchmark/importers/mmvp';
import { importVstar } from '../../libs/data/src/benchmark/importers/vstar';
import { parseCsv } from '../../libs/data/src/benchmark/importers/csv';
import { tempDir } from './support/fixtures';

const BLINK_FIXTURE = path.join(__dirname, 'fixtures', 'blink');

async function jpeg(seed: number): Promise<Buffer> {
  return sharp({
    create: { width: 32, height: 24, channels: 3, background: { r: seed * 40, g: 120, b: 60 } },
  })
    .jpeg()
    .toBuffer();
}

/** Writes, then loads through the validating loader: an importer's output must be a valid benchmark. */
async function roundTrip(content: BenchmarkContent) {
  const dir = tempDir('imported');
  writeBenchmarkFolder(dir, content);
  return loadBenchmark(new LocalBenchmarkSource(dir));
}

describe('benchmark importers (fixtures in the published layouts)', () => {
  test('CSV: quoted commas, doubled quotes and MMVP-style bare inner quotes', () => {
    assert.deepEqual(parseCsv('a,b\n1,"x, y"\n2,"say ""hi"""\n3,"the key "Z" here",z\r\n'), [
      ['a', 'b'],
      ['1', 'x, y'],
      ['2', 'say "hi"'],
      ['3', 'the key "Z" here', 'z'],
    ]);
    assert.deepEqual(parseMmvpOptions('(a) Open (b) Closed'), [
      { letter: 'A', text: 'Open' },
      { letter: 'B', text: 'Closed' },
    ]);
  });

  test('MMVP: Questions.csv + "MMVP Images/<Index>.jpg" become pairs with letters; corrected labels swap 99/100', async () => {
    const root = tempDir('mmvp-src');
    fs.mkdirSync(path.join(root, 'MMVP Images'));
    for (const index of [1, 2, 99, 100])
      fs.writeFileSync(path.join(root, 'MMVP Images', `${index}.jpg`), await jpeg(index % 5));
    fs.writeFileSync(
      path.join(root, 'Questions.csv'),
      [
        'Index,Question,Options,Correct Answer',
        `1,"Are the butterfly's wings closer to being open or closed?",(a) Open (b) Closed,(a)`,
        `2,"Are the butterfly's wings closer to being open or closed?",(a) Open (b) Closed,(b)`,
        `99,"Can you see the key "Z" in the image?",(a) Long (b) Short,(a)`,
        `100,"Can you see the key "Z" in the image?",(a) Long (b) Short,(b)`,
      ].join('\n') + '\n',
    );
    const loaded = await roundTrip(importMmvp(root));
    assert.equal(loaded.records.length, 4);
    const [first, second, third] = loaded.records;
    assert.deepEqual(first.options, [
      { letter: 'A', text: 'Open' },
      { letter: 'B', text: 'Closed' },
    ]);
    assert.deepEqual([first.answer, second.answer], ['A', 'B']);
    assert.equal(first.pairId, second.pairId);
    assert.notEqual(second.pairId, third.pairId);
    assert.equal(third.question, 'Can you see the key "Z" in the image?');
    assert.deepEqual(loaded.manifest.protocols, ['mmvp-pair', 'mmvp-question']);
    assert.equal(fs.existsSync(path.join(loaded.uri, 'images', '1.jpg')), true);

    const corrected = await roundTrip(importMmvp(root, { correctedLabels: true }));
    assert.deepEqual(
      corrected.records.map((r) => r.answer),
      ['A', 'B', 'B', 'A'],
    );
    assert.equal(corrected.manifest.version, '1-corrected');

    fs.rmSync(path.join(root, 'MMVP Images', '2.jpg'));
    assert.throws(
      () => importMmvp(root),
      (e: Error) => e instanceof ImportError && /line 3: image 2\.jpg is missing/.test(e.message),
    );
  });

  test('V* Bench: <category>/<image>.jpg + <image>.json; the correct (first) option keeps its text, bbox becomes x0,y0,x1,y1', async () => {
    const root = tempDir('vstar-src');
    const items = [
      [
        'direct_attributes',
        'sa_4690',
        'What is the material of the glove?',
        ['rubber', 'cotton', 'leather', 'wool'],
      ],
      [
        'direct_attributes',
        'sa_17',
        'What is the colour of the umbrella?',
        ['red', 'blue', 'green', 'black'],
      ],
      ['relative_position', 'sa_301', 'Is the cup on the left or right of the dog?', ['left', 'right']],
    ] as const;
    for (const [category, base, question, options] of items) {
      fs.mkdirSync(path.join(root, category), { recursive: true });
      fs.writeFileSync(path.join(root, category, `${base}.jpg`), await jpeg(3));
      fs.writeFileSync(
        path.join(root, category, `${base}.json`),
        JSON.stringify({ target_object: ['thing'], bbox: [[10, 20, 30, 40]], question, options }),
      );
    }
    const loaded = await roundTrip(importVstar(root));
    assert.equal(loaded.records.length, 3);
    for (const record of loaded.records) {
      const [category, base] = record.id.split('/');
      const source = items.find((i) => i[0] === category && i[1] === base)!;
      const right = record.options.find((o) => o.letter === record.answer)!;
      assert.equal(
        right.text,
        source[3][0],
        `${record.id}: the answer letter points at the originally first option`,
      );
      assert.deepEqual(record.options.map((o) => o.text).sort(), [...source[3]].sort());
      assert.deepEqual(record.bbox, [10, 20, 40, 60]);
      assert.equal(record.category, category);
    }
    assert.deepEqual(loaded.manifest.protocols, ['vstar-category']);
  });

  test('BLINK: HF parquet with embedded images (pyarrow-written fixture), multi-image rows, (A) answers', async () => {
    const loaded = await roundTrip(await importBlink(BLINK_FIXTURE, { subtasks: ['Counting', 'Jigsaw'] }));
    assert.equal(loaded.split, 'val');
    assert.deepEqual(
      loaded.records.map((r) => [r.id, r.answer, r.subtask, Array.isArray(r.image) ? r.image.length : 1]),
      [
        ['val_Counting_1', 'C', 'Counting', 1],
        ['val_Counting_2', 'A', 'Counting', 1],
        ['val_Jigsaw_1', 'B', 'Jigsaw', 3],
      ],
    );
    assert.deepEqual(
      loaded.records[0].options.map((o) => `${o.letter}=${o.text}`),
      ['A=0', 'B=3', 'C=2', 'D=1'],
    );
    const jigsaw = loaded.records[2].image as string[];
    const meta = await sharp(fs.readFileSync(path.join(loaded.uri, jigsaw[2]))).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 8, 8]);
    await assert.rejects(importBlink(BLINK_FIXTURE), /no val-\*\.parquet under .*IQ_Test/);
  });
});
