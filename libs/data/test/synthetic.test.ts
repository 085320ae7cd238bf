import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { inflateSync } from 'node:zlib';
import {
  COLOURS,
  GLYPHS,
  GLYPH_COLS,
  GLYPH_ROWS,
  LATENT_TOKENS,
  MARK_RGB,
  generateItem,
  heldOutItem,
  multipleChoicePrompt,
  toLookupDrill,
  toStage1,
  toStage2,
  writeSyntheticBenchmark,
  type SceneLevel,
  type SyntheticItem,
} from '../src/synthetic';
import { validateRecord } from '../src/benchmark';

/** LVR-SPEC §6's extraction: the text inside the last `<answer>`, trimmed, its first character. */
const upstreamLetter = (raw: string) =>
  raw
    .slice(raw.lastIndexOf('<answer>') + 8)
    .split('</answer')[0]
    .trim()[0];

const items = (split: string, n: number, seed = 7, difficulties?: readonly SceneLevel[]) =>
  Array.from({ length: n }, (_, i) => generateItem(split, i, { seed, difficulties }));

/** Pixels of an item's bbox as a small view: kind per pixel ('bg' | 'mark' | colour name | 'other'). */
function regionOf(item: SyntheticItem) {
  const { width } = item.record.meta;
  const [x0, y0, x1, y1] = item.record.bbox;
  const named = Object.entries(COLOURS) as Array<[string, readonly number[]]>;
  const kind = (x: number, y: number): string => {
    const i = (y * width + x) * 3;
    const px = [item.rgb[i], item.rgb[i + 1], item.rgb[i + 2]];
    if (px.every((v, k) => v === MARK_RGB[k])) return 'mark';
    const hit = named.find(([, rgb]) => rgb.every((v, k) => v === px[k]));
    return hit ? hit[0] : 'bg';
  };
  return { x0, y0, x1, y1, kind };
}

function decodePng(png: Buffer): { width: number; height: number; rgb: Uint8Array } {
  let off = 8;
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  while (off < png.length) {
    const len = png.readUInt32BE(off);
    const type = png.toString('latin1', off + 4, off + 8);
    const data = png.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') [width, height] = [data.readUInt32BE(0), data.readUInt32BE(4)];
    if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * 3;
  const rgb = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    assert.equal(raw[y * (stride + 1)], 1, 'every row uses the Sub filter');
    for (let x = 0; x < stride; x++)
      rgb[y * stride + x] = (raw[y * (stride + 1) + 1 + x] + (x >= 3 ? rgb[y * stride + x - 3] : 0)) & 0xff;
  }
  return { width, height, rgb };
}

/** Shape read from the target's pixels by simple geometry (independent of the renderer's inside tests). */
function classifyShape(item: SyntheticItem): string {
  const { x0, y0, x1, y1, kind } = regionOf(item);
  const w = x1 - x0;
  const h = y1 - y0;
  const on = (x: number, y: number) => kind(x, y) !== 'bg';
  let area = 0;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (on(x, y)) area++;
  const rowFill = (y: number) => {
    let n = 0;
    for (let x = x0; x < x1; x++) if (on(x, y)) n++;
    return n / w;
  };
  const fill = area / (w * h);
  const top = rowFill(y0);
  const bottom = rowFill(y1 - 1);
  const middle = rowFill(Math.floor((y0 + y1) / 2));
  let bottomRuns = 0;
  for (let x = x0; x < x1; x++) if (on(x, y1 - 1) && !(x > x0 && on(x - 1, y1 - 1))) bottomRuns++;
  if (fill > 0.93) return 'square';
  if (bottomRuns === 2) return 'star'; // two feet
  if (bottom > 0.7 && top < 0.35) return 'triangle';
  if (fill < 0.45) return 'star';
  if (middle > 0.9 && top > 0.2 && top < 0.5 && fill < 0.68) return 'cross';
  if (fill > 0.68 && fill < 0.88) return 'circle';
  if (top < 0.25 && bottom < 0.25 && fill < 0.62) return 'diamond';
  return `unclassified(fill=${fill.toFixed(2)}, top=${top.toFixed(2)}, bottom=${bottom.toFixed(2)})`;
}

function countBlobs(item: SyntheticItem): number {
  const { x0, y0, x1, y1, kind } = regionOf(item);
  const seen = new Set<number>();
  let blobs = 0;
  for (let y = y0; y < y1; y++)
    for (let x = x0; x < x1; x++) {
      if (kind(x, y) !== 'mark' || seen.has(y * 10000 + x)) continue;
      blobs++;
      const stack = [[x, y]];
      seen.add(y * 10000 + x);
      while (stack.length) {
        const [cx, cy] = stack.pop()!;
        for (const [dx, dy] of [
          [1, 0],
          [-1, 0],
          [0, 1],
          [0, -1],
        ]) {
          const nx = cx + dx;
          const ny = cy + dy;
          if (nx < x0 || ny < y0 || nx >= x1 || ny >= y1 || seen.has(ny * 10000 + nx)) continue;
          if (kind(nx, ny) !== 'mark') continue;
          seen.add(ny * 10000 + nx);
          stack.push([nx, ny]);
        }
      }
    }
  return blobs;
}

/** Letter read from the ink: the ink's box is cut into a 5x7 grid and compared with each bitmap. */
function readGlyph(item: SyntheticItem): string[] {
  const { x0, y0, x1, y1, kind } = regionOf(item);
  const ink: Array<[number, number]> = [];
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (kind(x, y) === 'mark') ink.push([x, y]);
  const gx0 = Math.min(...ink.map((p) => p[0]));
  const gy0 = Math.min(...ink.map((p) => p[1]));
  const gy1 = Math.max(...ink.map((p) => p[1])) + 1;
  const scale = (gy1 - gy0) / GLYPH_ROWS; // every letter has ink in its first and last row
  const cells = new Set(
    ink.map(([x, y]) => `${Math.floor((x - gx0) / scale)},${Math.floor((y - gy0) / scale)}`),
  );
  return Object.entries(GLYPHS)
    .filter(([, rows]) => {
      // letters without ink in the first column (none here) would shift; all eight start in column 0
      for (let r = 0; r < GLYPH_ROWS; r++)
        for (let c = 0; c < GLYPH_COLS; c++)
          if ((rows[r][c] === '#') !== cells.has(`${c},${r}`)) return false;
      return true;
    })
    .map(([letter]) => letter);
}

const LEVEL_SETS: Array<{ name: string; levels?: readonly SceneLevel[]; subtasks: number }> = [
  { name: 'easy, medium, hard (default)', subtasks: 12 },
  { name: 'curriculum levels single and pair', levels: ['single', 'pair'], subtasks: 8 },
];

for (const { name, levels, subtasks } of LEVEL_SETS)
  describe(`synthetic grounding benchmark: ${name}`, () => {
    const sample = items('test', 240, 7, levels);

    it('is deterministic: the same seed, split and index give the same record and PNG bytes', () => {
      const again = items('test', 240, 7, levels);
      sample.forEach((item, i) => {
        assert.deepEqual(again[i].record, item.record);
        assert.ok(again[i].png.equals(item.png));
      });
      const otherSeed = items('test', 20, 8, levels);
      assert.ok(otherSeed.every((o, i) => o.record.meta.pixelsSha256 !== sample[i].record.meta.pixelsSha256));
    });

    it('mixes every category and difficulty', () => {
      const seen = new Set(sample.map((s) => s.record.subtask));
      assert.equal(seen.size, subtasks, `subtasks seen: ${[...seen].join(', ')}`);
    });

    it('never shares an image between splits', () => {
      const digests = (split: string, n: number) =>
        new Set(items(split, n, 7, levels).map((s) => s.record.meta.pixelsSha256));
      const train = digests('train', 600);
      const validation = digests('validation', 200);
      const test = new Set(sample.map((s) => s.record.meta.pixelsSha256));
      for (const d of test)
        assert.ok(!train.has(d) && !validation.has(d), 'test image also in another split');
      for (const d of validation) assert.ok(!train.has(d), 'validation image also in train');
      assert.ok(train.size > 590, 'images within a split are (almost always) distinct');
    });

    it('writes PNGs that decode to the rendered pixels', () => {
      for (const item of sample.slice(0, 12)) {
        const png = decodePng(item.png);
        assert.equal(png.width, item.record.meta.width);
        assert.equal(png.height, item.record.meta.height);
        assert.deepEqual(png.rgb, item.rgb);
      }
    });

    it('records the tight bbox of the target, with nothing else inside it', () => {
      for (const item of sample) {
        const { x0, y0, x1, y1, kind } = regionOf(item);
        const colour = item.record.meta.target.colour;
        const kinds = new Set<string>();
        const [ix, iy, ax, ay] = [Infinity, Infinity, -Infinity, -Infinity];
        let box = [ix, iy, ax, ay];
        for (let y = y0; y < y1; y++)
          for (let x = x0; x < x1; x++) {
            const k = kind(x, y);
            kinds.add(k);
            if (k === 'bg') continue;
            box = [
              Math.min(box[0], x),
              Math.min(box[1], y),
              Math.max(box[2], x + 1),
              Math.max(box[3], y + 1),
            ];
          }
        assert.deepEqual(box, item.record.bbox, `${item.record.id}: bbox is not tight`);
        for (const k of kinds)
          assert.ok(['bg', 'mark', colour].includes(k), `${item.record.id}: ${k} in bbox`);
      }
    });

    it('has an answer letter that matches what the pixels show', () => {
      for (const { record, ...item } of sample) {
        const full = { record, ...item };
        const answerText = record.options.find((o) => o.letter === record.answer)?.text;
        assert.equal(answerText, record.meta.answerText, record.id);
        assert.equal(new Set(record.options.map((o) => o.text)).size, 4, `${record.id}: 4 distinct options`);
        const { x0, y0, x1, y1, kind } = regionOf(full);
        if (record.category === 'colour') {
          const counts = new Map<string, number>();
          for (let y = y0; y < y1; y++)
            for (let x = x0; x < x1; x++) counts.set(kind(x, y), (counts.get(kind(x, y)) ?? 0) + 1);
          counts.delete('bg');
          const top = [...counts].sort((a, b) => b[1] - a[1])[0][0];
          assert.equal(top, answerText, `${record.id}: colour`);
        } else if (record.category === 'shape') {
          assert.equal(classifyShape(full), answerText, `${record.id}: shape`);
        } else if (record.category === 'count') {
          assert.equal(String(countBlobs(full)), answerText, `${record.id}: dots`);
        } else {
          assert.deepEqual(readGlyph(full), [answerText], `${record.id}: glyph`);
        }
      }
    });

    it('converts records to stage-1 (with and without <lvr>) and stage-2 training records', () => {
      const r = sample[0].record;
      const prompt = multipleChoicePrompt(r.question, r.options);
      assert.match(prompt, /\nOptions:\nA\. .+\nB\. .+\nC\. .+\nD\. .+\nAnswer with the option's letter/);
      const latent = toStage1(r, true);
      assert.equal(latent.conversations[0].value, `<image>\n${prompt}`);
      assert.equal(
        latent.conversations[1].value,
        `<lvr>\nIt is ${r.meta.answerText} (${r.answer})\n<answer>\n${r.answer}\n</answer>`,
      );
      assert.equal(
        toStage1(r, true, 'text').conversations[1].value,
        `<lvr>\n${r.meta.answerText}\n<answer>${r.answer}</answer>`,
      );
      for (const { record } of sample) {
        // the latent window: 2x2 merged tokens (the worker's bbox -> token rule, LVR-SPEC §2.5) around the target
        const [bx0, by0, bx1, by1] = toStage1(record, true).bboxes[0];
        const gw = record.meta.width / 14;
        const gh = record.meta.height / 14;
        const tx = [Math.floor(Math.floor(bx0 * gw) / 2), Math.floor((Math.ceil(bx1 * gw) + 1) / 2)];
        const ty = [Math.floor(Math.floor(by0 * gh) / 2), Math.floor((Math.ceil(by1 * gh) + 1) / 2)];
        assert.equal((tx[1] - tx[0]) * (ty[1] - ty[0]), LATENT_TOKENS, `${record.id}: latent token count`);
        const [cx, cy] = [
          (record.bbox[0] + record.bbox[2]) / 2 / 28,
          (record.bbox[1] + record.bbox[3]) / 2 / 28,
        ];
        assert.ok(
          cx >= tx[0] && cx <= tx[1] && cy >= ty[0] && cy <= ty[1],
          `${record.id}: window holds the target`,
        );
      }
      const plain = toStage1(r, false, 'text');
      assert.equal(plain.conversations[1].value, `${r.meta.answerText}\n<answer>${r.answer}</answer>`);
      assert.deepEqual(plain.bboxes, []);
      assert.deepEqual(toStage2(r).conversations[1], { from: 'gpt', value: `<answer>${r.answer}</answer>` });
    });

    it('writes the shared benchmark layout', () => {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'synthetic-'));
      try {
        writeSyntheticBenchmark(out, [{ split: 'test', count: 5 }], { seed: 3 });
        writeSyntheticBenchmark(out, [{ split: 'validation', count: 3 }], { seed: 3 });
        const manifest = JSON.parse(fs.readFileSync(path.join(out, 'benchmark.json'), 'utf8'));
        assert.equal(manifest.format, 'lvr-benchmark/v1');
        assert.deepEqual(manifest.splits, ['test', 'validation']);
        const lines = fs.readFileSync(path.join(out, 'test.jsonl'), 'utf8').trim().split('\n');
        assert.equal(lines.length, 5);
        for (const line of lines) assert.ok(fs.existsSync(path.join(out, JSON.parse(line).image)));
        assert.throws(
          () => writeSyntheticBenchmark(out, [{ split: '../x', count: 1 }], { seed: 3 }),
          /split name/,
        );
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    });
  });

describe('held-out splits against training images', () => {
  it('redraws a held-out item whose pixels a training split has, deterministically', () => {
    const opts = { seed: 11, difficulties: ['single'] as const };
    const first = generateItem('test-single', 0, opts);
    const taken = new Set([first.record.meta.pixelsSha256]);
    const redrawn = heldOutItem('test-single', 0, opts, taken);
    assert.notEqual(redrawn.record.meta.pixelsSha256, first.record.meta.pixelsSha256);
    assert.equal(redrawn.record.id, first.record.id);
    assert.deepEqual(heldOutItem('test-single', 0, opts, taken).record, redrawn.record);
    assert.deepEqual(heldOutItem('test-single', 0, opts, new Set()).record, first.record);
  });

  it("writes a held-out split without any image of the folder's training splits", () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'synthetic-'));
    try {
      const opts = { seed: 4, difficulties: ['single'] as const };
      writeSyntheticBenchmark(out, [{ split: 'train-single', count: 3 }], opts);
      // a training split that happens to hold the picture validation item 1 would draw
      const clash = generateItem('validation-single', 1, opts).record.meta.pixelsSha256;
      const trainFile = path.join(out, 'train-single.jsonl');
      const train = fs
        .readFileSync(trainFile, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      train[2].meta.pixelsSha256 = clash;
      fs.writeFileSync(trainFile, train.map((r) => JSON.stringify(r) + '\n').join(''));
      const written = writeSyntheticBenchmark(out, [{ split: 'validation-single', count: 3 }], opts);
      const digests = written['validation-single'].map((r) => r.meta.pixelsSha256);
      assert.ok(!digests.includes(clash), 'the clashing item was redrawn');
      assert.equal(digests[0], generateItem('validation-single', 0, opts).record.meta.pixelsSha256);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('synthetic curriculum levels', () => {
  const single = items('train', 120, 5, ['single']);
  const pair = items('train', 200, 5, ['pair']);

  it('draws only easy, medium and hard unless a curriculum level is asked for', () => {
    const levels = new Set(items('train', 200, 5).map((s) => s.record.meta.level));
    assert.deepEqual([...levels].sort(), ['easy', 'hard', 'medium']);
  });

  it('single: one object, asked about as "the object"', () => {
    for (const { record } of single) {
      assert.equal(record.meta.objects, 1, record.id);
      assert.match(record.question, / the object\?$/, record.id);
      assert.equal(record.subtask, `${record.category}/single`);
    }
  });

  it('pair: the other object differs in the naming words and in the attribute asked about', () => {
    for (const { record, rgb } of pair) {
      assert.equal(record.meta.objects, 2, record.id);
      const { colour, shape } = record.meta.target;
      // the other object's pixels: everything outside the target's bbox that is not background
      const present = new Set<string>();
      const named = Object.entries(COLOURS) as Array<[string, readonly number[]]>;
      const [x0, y0, x1, y1] = record.bbox;
      for (let y = 0; y < record.meta.height; y++)
        for (let x = 0; x < record.meta.width; x++) {
          if (x >= x0 && x < x1 && y >= y0 && y < y1) continue;
          const i = (y * record.meta.width + x) * 3;
          const hit = named.find(([, c]) => c.every((v, k) => v === rgb[i + k]));
          if (hit) present.add(hit[0]);
        }
      assert.equal(present.size, 1, `${record.id}: one other object of one colour`);
      assert.ok(!present.has(colour), `${record.id}: the other object has another colour`);
      if (record.category === 'colour') {
        assert.match(record.question, new RegExp(`the ${shape}\\?$`), record.id);
        const [other] = present;
        assert.ok(
          record.options.some((o) => o.text === other),
          `${record.id}: the other object's colour is an option`,
        );
      }
    }
    assert.deepEqual(new Set(pair.map((p) => p.record.category)).size, 4, 'every category appears');
  });

  it('writes records the shared benchmark format accepts (no difficulty, level in meta)', () => {
    for (const { record } of [...single, ...pair]) {
      assert.equal(record.difficulty, undefined);
      assert.deepEqual(
        validateRecord(record, { split: 'train', line: 1 }, { categories: [record.category] }),
        [],
        record.id,
      );
    }
  });

  it('writes a lookup drill beside a record: same image and options, the question names the answer text', () => {
    for (const { record } of single.slice(0, 20)) {
      const drill = toLookupDrill(record);
      const visual = toStage1(record, false);
      assert.equal(drill.image, record.image);
      assert.deepEqual(drill.bboxes, []);
      assert.equal(drill.conversations[1].value, visual.conversations[1].value);
      assert.equal(
        drill.conversations[0].value,
        `<image>\n${multipleChoicePrompt(`Which option is ${record.meta.answerText}?`, record.options)}`,
      );
      // the protocol reads the same letter from the aligned answer as from the record
      assert.equal(upstreamLetter(drill.conversations[1].value), record.answer);
    }
  });

  it('writes letter-only stage-1 answers on request', () => {
    const r = single[0].record;
    assert.equal(toStage1(r, false, 'letter').conversations[1].value, `<answer>${r.answer}</answer>`);
    assert.equal(toStage1(r, true, 'letter').conversations[1].value, `<lvr>\n<answer>${r.answer}</answer>`);
  });
});
