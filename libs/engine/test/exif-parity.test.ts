import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import sharp from 'sharp';
import { pixelValues } from '../src/vision/patchify';
import { processImage, type ProcessedImage } from '../src/vision/preprocess';
import { runPython, tempDir } from './helpers/python';

// A JPEG stored landscape with EXIF orientation 6 (display = rotate 90° clockwise): the TS engine and the Python
// reference (`lvr.preprocess.load_image`) must both apply it, giving the same grid, token count and pixels.

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

interface OracleImage {
  size: [number, number];
  raw_size: [number, number];
  grid: [number, number, number];
  tokens: number;
}

/** Smooth gradient (JPEG-friendly) of `width`×`height`, stored as JPEG 4:4:4 with EXIF orientation 6. */
async function rotatedJpeg(width: number, height: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      raw[o] = Math.round((255 * x) / (width - 1));
      raw[o + 1] = Math.round((255 * y) / (height - 1));
      raw[o + 2] = (x * 3 + y * 5) % 256;
    }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 95, chromaSubsampling: '4:4:4' })
    .withMetadata({ orientation: 6 })
    .toBuffer();
}

describe('EXIF orientation: TS engine and Python reference agree', () => {
  const dir = tempDir('lvr-exif-');
  // [stored width, stored height]: 84×56 needs no resize (multiples of 28); 150×100 is resized after rotation.
  const SIZES: Array<[number, number]> = [
    [84, 56],
    [150, 100],
  ];
  const files: string[] = [];
  let oracle: OracleImage[];
  let ts: ProcessedImage[];

  before(async () => {
    for (const [i, [w, h]] of SIZES.entries()) {
      files.push(path.join(dir, `${i}.jpg`));
      fs.writeFileSync(files[i], await rotatedJpeg(w, h));
    }
    oracle = runPython<OracleImage[]>('exif.py', { files, out_dir: dir });
    ts = await Promise.all(files.map((f) => processImage(fs.readFileSync(f), CFG)));
  });

  it('both rotate the stored landscape image to portrait: same grid and token count', () => {
    for (const [i, [w, h]] of SIZES.entries()) {
      assert.deepEqual(oracle[i].raw_size, [w, h], 'stored size (EXIF not applied)');
      assert.deepEqual(oracle[i].size, [h, w], 'reference applies orientation 6');
      assert.deepEqual(ts[i].gridThw, oracle[i].grid, `image ${i}: grid`);
      assert.equal(ts[i].tokens, oracle[i].tokens, `image ${i}: tokens`);
      assert.ok(ts[i].gridThw[1] > ts[i].gridThw[2], 'portrait grid: more rows than columns');
    }
  });

  it('gives the same pixel_values when no resize is needed', () => {
    const ref = new Float32Array(new Uint8Array(fs.readFileSync(path.join(dir, '0.pv.f32'))).buffer);
    const got = pixelValues(ts[0].image, CFG);
    assert.equal(got.length, ref.length);
    let worst = 0;
    for (let k = 0; k < ref.length; k++) worst = Math.max(worst, Math.abs(got[k] - ref[k]));
    assert.ok(worst <= 1e-5, `max |TS − Python| pixel_values = ${worst}`);
  });
});
