import type { RgbImage } from './decode';

export interface PatchConfig {
  patchSize: number;
  temporalPatchSize: number;
  mergeSize: number;
  rescaleFactor: number;
  imageMean: readonly number[];
  imageStd: readonly number[];
}

/**
 * Qwen's `pixel_values` [gh*gw, C*tp*ps*ps] of an already-resized image, for vision graphs exported before
 * `image_bytes` (newer graphs compute them on the device): rescale and normalise (float32 arithmetic like the numpy
 * reference), rows grouped by 2x2 merge blocks (row-major blocks), each row channel-major, the still image duplicated
 * over the temporal pair.
 */
export function pixelValues(image: RgbImage, cfg: PatchConfig): Float32Array {
  const { patchSize: ps, temporalPatchSize: tp, mergeSize: m } = cfg;
  const { width: w, height: h, data } = image;
  if (h % (ps * m) || w % (ps * m)) throw new Error(`image ${w}x${h} is not a multiple of ${ps * m}`);
  const gh = h / ps;
  const gw = w / ps;
  const f = Math.fround;
  const scale = f(cfg.rescaleFactor);
  const mean = cfg.imageMean.map(f);
  const std = cfg.imageStd.map(f);
  // Normalised value per (channel, byte value): the float32 result depends only on those two.
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++)
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = f(f(f(v * scale) - mean[c]) / std[c]);
  const rowLen = 3 * tp * ps * ps;
  const out = new Float32Array(gh * gw * rowLen);
  let row = 0;
  for (let bh = 0; bh < gh / m; bh++) {
    for (let bw = 0; bw < gw / m; bw++) {
      for (let mh = 0; mh < m; mh++) {
        for (let mw = 0; mw < m; mw++) {
          const y0 = (bh * m + mh) * ps;
          const x0 = (bw * m + mw) * ps;
          let o = row * rowLen;
          for (let c = 0; c < 3; c++) {
            const frame = o;
            const base = c * 256;
            for (let py = 0; py < ps; py++) {
              let src = ((y0 + py) * w + x0) * 3 + c;
              for (let px = 0; px < ps; px++, src += 3) out[o++] = lut[base + data[src]];
            }
            // The still image's other temporal frames are copies of the first.
            for (let t = 1; t < tp; t++, o += ps * ps) out.copyWithin(o, frame, frame + ps * ps);
          }
          row++;
        }
      }
    }
  }
  return out;
}
