import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import sharp from 'sharp';
import { renderChat } from '../src/chat/template';
import type { ChatMessage } from '../src/types';
import { ropeIndex } from '../src/rope/mrope';
import { decodeImage } from '../src/vision/decode';
import { visionHostInputs } from '../src/vision/host-inputs';
import { pixelValues } from '../src/vision/patchify';
import { processRgb, resizeForModel } from '../src/vision/preprocess';
import { roundHalfEven, smartResize } from '../src/vision/smart-resize';
import { Rng } from './helpers/random';
import { runPython, tempDir } from './helpers/python';

const CFG = {
  patchSize: 14,
  temporalPatchSize: 2,
  mergeSize: 2,
  rescaleFactor: 1 / 255,
  imageMean: [0.48145466, 0.4578275, 0.40821073],
  imageStd: [0.26862954, 0.26130258, 0.27577711],
  minPixels: 3136,
  maxPixels: 12845056,
};

const rng = new Rng(7);
// Edge sizes (halves that round differently in JS and Python, tiny, extreme aspect) plus random ones.
const SIZES: Array<[number, number, number, number]> = [
  [70, 70, 3136, 12845056],
  [42, 98, 3136, 12845056],
  [14, 14, 3136, 12845056],
  [28, 5000, 3136, 12845056],
  [500, 375, 100352, 4014080],
  [1080, 1920, 100352, 4014080],
  [4000, 3000, 3136, 12845056],
  [126, 154, 3136, 50176],
];
while (SIZES.length < 160) {
  const big = rng.next() < 0.2;
  const h = rng.int(10, big ? 5000 : 1200);
  const w = Math.max(10, Math.min(Math.round(h * (0.2 + rng.next() * 4)), 6000));
  SIZES.push([h, w, rng.pick([3136, 100352]), rng.pick([12845056, 4014080, 1003520, 50176])]);
}
const PROCESSOR_SIZES = SIZES.filter(([h, w]) => h * w <= 2_500_000).slice(0, 110);

const IMAGES = Array.from({ length: 24 }, (_, i) => ({
  seed: i,
  h: i % 6 === 5 ? 56 * (1 + (i % 4)) : [37, 70, 126, 200, 333, 512, 640, 97][i % 8] + (i >> 3) * 3,
  w: i % 6 === 5 ? 84 : [61, 98, 154, 180, 250, 700, 480, 1001][(i * 3) % 8],
  kind: i % 2 ? 'noise' : 'smooth',
  max_pixels: i % 3 === 0 ? 50176 : 12845056,
}));

describe('image preprocessing parity', () => {
  let oracle: {
    sizes: Array<[number, number]>;
    processor_grids: Array<[number, number, number]>;
    images: Array<{ resized: [number, number]; grid: [number, number, number] }>;
  };
  const dir = tempDir('lvr-img-');

  before(() => {
    oracle = runPython('preprocess.py', {
      sizes: SIZES,
      processor_sizes: PROCESSOR_SIZES,
      images: { dir, items: IMAGES },
    });
  });

  it('rounds halves to even like Python', () => {
    assert.deepEqual([0.5, 1.5, 2.5, 3.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, 4, 2, 3]);
  });

  it(`smart_resize matches transformers on ${SIZES.length} sizes`, () => {
    SIZES.forEach(([h, w, mn, mx], i) =>
      assert.deepEqual(smartResize(h, w, 28, mn, mx), oracle.sizes[i], `${h}x${w}`),
    );
  });

  it(`image-token counts match the Python processor on ${PROCESSOR_SIZES.length} sizes`, () => {
    assert.ok(PROCESSOR_SIZES.length >= 100);
    PROCESSOR_SIZES.forEach(([h, w, mn, mx], i) => {
      const [rh, rw] = smartResize(h, w, 28, mn, mx);
      const [t, gh, gw] = oracle.processor_grids[i];
      assert.deepEqual([1, rh / 14, rw / 14], [t, gh, gw], `${h}x${w}`);
      assert.equal((rh / 28) * (rw / 28), (t * gh * gw) / 4);
    });
  });

  it('resize stays close to PIL bicubic; pixel_values equal the reference exactly when no resize is needed', async (t) => {
    let maxDiff = 0;
    let maxSharpDiff = 0;
    let resizedCount = 0;
    let exactCount = 0;
    for (let i = 0; i < IMAGES.length; i++) {
      const img = await decodeImage(fs.readFileSync(path.join(dir, `${i}.png`)));
      const cfg = { ...CFG, maxPixels: IMAGES[i].max_pixels };
      const resized = resizeForModel(img, cfg);
      const expected = fs.readFileSync(path.join(dir, `${i}.resized.rgb`));
      assert.deepEqual([resized.height, resized.width], oracle.images[i].resized);
      for (let k = 0; k < expected.length; k++)
        maxDiff = Math.max(maxDiff, Math.abs(expected[k] - resized.data[k]));
      const processed = processRgb(img, cfg);
      assert.deepEqual(processed.gridThw, oracle.images[i].grid);
      if (resized !== img) {
        resizedCount++;
        const viaSharp = await sharp(Buffer.from(img.data), {
          raw: { width: img.width, height: img.height, channels: 3 },
        })
          .resize(resized.width, resized.height, { kernel: 'cubic', fit: 'fill' })
          .raw()
          .toBuffer();
        for (let k = 0; k < expected.length; k++)
          maxSharpDiff = Math.max(maxSharpDiff, Math.abs(expected[k] - viaSharp[k]));
        continue;
      }
      exactCount++;
      const pv = fs.readFileSync(path.join(dir, `${i}.pv.f32`));
      const ref = new Float32Array(pv.buffer, pv.byteOffset, pv.length / 4);
      const values = pixelValues(processed.image, cfg);
      assert.equal(values.length, ref.length);
      let pvDiff = 0;
      for (let k = 0; k < ref.length; k++) pvDiff = Math.max(pvDiff, Math.abs(ref[k] - values[k]));
      assert.equal(pvDiff, 0, `image ${i}: pixel_values max diff ${pvDiff}`);
    }
    assert.ok(resizedCount >= 12 && exactCount >= 1, `${resizedCount} resized, ${exactCount} unchanged`);
    // Separable bicubic in the TS port vs Pillow 13 differs only by pass order on some shapes (see resample.ts).
    assert.ok(maxDiff <= 32, `max |TS - PIL| = ${maxDiff}`);
    t.diagnostic(
      `resize vs PIL bicubic over ${resizedCount} images (8-bit levels): TS port max ${maxDiff}; sharp cubic max ${maxSharpDiff}`,
    );
    console.log(
      `[resize] vs PIL bicubic over ${resizedCount} images: TS port max ${maxDiff}, sharp cubic max ${maxSharpDiff}`,
    );
  });
});

describe('decoding', () => {
  it('applies EXIF orientation, takes the first GIF frame, and drops alpha', async () => {
    const base = sharp({ create: { width: 4, height: 2, channels: 3, background: { r: 255, g: 0, b: 0 } } });
    const jpeg = await base.clone().jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const rotated = await decodeImage(jpeg);
    assert.deepEqual([rotated.width, rotated.height], [2, 4]);
    const rgba = await sharp({
      create: { width: 3, height: 3, channels: 4, background: { r: 1, g: 2, b: 3, alpha: 0 } },
    })
      .png()
      .toBuffer();
    const noAlpha = await decodeImage(rgba);
    assert.deepEqual(Array.from(noAlpha.data.slice(0, 3)), [1, 2, 3]);
    const gif = await sharp({ create: { width: 5, height: 7, channels: 3, background: '#00ff00' } })
      .gif()
      .toBuffer();
    const g = await decodeImage(gif);
    assert.deepEqual([g.width, g.height, g.data[1]], [5, 7, 255]);
    const webp = await base.clone().webp({ lossless: true }).toBuffer();
    assert.deepEqual(Array.from((await decodeImage(webp)).data.slice(0, 3)), [255, 0, 0]);
    await assert.rejects(decodeImage(Buffer.from('not an image')), /cannot decode image/);
  });
});

describe('chat template, M-RoPE and vision host inputs parity', () => {
  const img = { type: 'image' as const, image: new Uint8Array() };
  const chats: Array<{ messages: ChatMessage[]; add_generation_prompt: boolean }> = [
    { messages: [{ role: 'user', content: 'Hello' }], add_generation_prompt: true },
    {
      messages: [
        { role: 'system', content: 'Be terse.' },
        { role: 'user', content: [img, { type: 'text', text: 'What is it?' }] },
      ],
      add_generation_prompt: true,
    },
    {
      messages: [
        { role: 'user', content: [img, img, { type: 'text', text: 'Compare\nthese.' }] },
        { role: 'assistant', content: 'They differ.' },
        { role: 'user', content: [{ type: 'text', text: 'And ' }, img, { type: 'text', text: ' this?' }] },
      ],
      add_generation_prompt: true,
    },
    {
      messages: [
        { role: 'user', content: '<|lvr_start|> x ' },
        { role: 'assistant', content: [{ type: 'text', text: 'ok' }] },
      ],
      add_generation_prompt: false,
    },
  ];
  const toPython = (m: ChatMessage) => ({
    role: m.role,
    content:
      typeof m.content === 'string'
        ? m.content
        : m.content.map((p) => (p.type === 'image' ? { type: 'image' } : p)),
  });
  const IMG = 151655;
  const ropeCases = [
    { ids: [1, 2, 3], grids: [] as Array<[number, number, number]> },
    {
      ids: [5, 151652, ...Array(6).fill(IMG), 151653, 9, 9],
      grids: [[1, 4, 6]] as Array<[number, number, number]>,
    },
    {
      ids: [151652, ...Array(4).fill(IMG), 151653, 7, 151652, ...Array(12).fill(IMG), 151653, 8],
      grids: [
        [1, 4, 4],
        [1, 8, 6],
      ] as Array<[number, number, number]>,
    },
  ];
  const visionGrids: Array<[number, number]> = [
    [8, 12],
    [6, 4],
    [16, 16],
    [2, 2],
    [34, 18],
    [20, 42],
  ];
  let oracle: {
    chats: string[];
    rope: Array<{ positions: number[][]; delta: number }>;
    vision: Array<Record<string, number[] | number[][]>>;
  };

  before(() => {
    oracle = runPython('preprocess.py', {
      chats: chats.map((c) => ({
        messages: c.messages.map(toPython),
        add_generation_prompt: c.add_generation_prompt,
      })),
      rope: ropeCases,
      vision: visionGrids,
    });
  });

  it('renders chats identically to the Python processor template', () => {
    chats.forEach((c, i) =>
      assert.equal(renderChat(c.messages, { addGenerationPrompt: c.add_generation_prompt }), oracle.chats[i]),
    );
  });

  it('computes M-RoPE positions and rope deltas identically', () => {
    ropeCases.forEach((c, i) => {
      const r = ropeIndex(c.ids, c.grids, IMG);
      const n = c.ids.length;
      const rows = [0, 1, 2].map((a) => Array.from(r.positions.slice(a * n, (a + 1) * n), Number));
      assert.deepEqual(rows, oracle.rope[i].positions);
      assert.equal(r.ropeDelta, oracle.rope[i].delta);
    });
  });

  it('computes vision host inputs identically', () => {
    const geo = { spatialMergeSize: 2, windowSize: 112, patchSize: 14 };
    visionGrids.forEach(([gh, gw], i) => {
      const v = visionHostInputs(gh, gw, geo);
      const o = oracle.vision[i];
      assert.deepEqual(Array.from(v.rotaryPosIds, Number), (o.rotary_pos_ids as number[][]).flat());
      assert.deepEqual(Array.from(v.windowIndex, Number), o.window_index);
      assert.deepEqual(Array.from(v.reverseWindowIndex, Number), o.reverse_window_index);
      assert.deepEqual(Array.from(v.windowIds, Number), o.window_ids);
      const slots = o.window_slots as number[][];
      assert.equal(v.slotsPerWindow, slots[0].length);
      assert.deepEqual(Array.from(v.windowSlots, Number), slots.flat());
      assert.deepEqual(Array.from(v.patchSlots, Number), o.patch_slots);
    });
  });
});
