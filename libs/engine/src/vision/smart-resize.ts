import { RequestError } from '../errors';

/** Python 3 `round`: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Qwen2-VL `smart_resize` with Python's rounding (LVR-SPEC §2.2): [height, width], both multiples of `factor`,
 * pixel count within [minPixels, maxPixels].
 */
export function smartResize(
  height: number,
  width: number,
  factor: number,
  minPixels: number,
  maxPixels: number,
): [number, number] {
  if (height <= 0 || width <= 0) throw new RequestError(`image has no pixels (${width}x${height})`, 'image');
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (ratio > 200)
    throw new RequestError(`absolute aspect ratio must be smaller than 200, got ${ratio}`, 'image');
  let h = Math.max(factor, roundHalfEven(height / factor) * factor);
  let w = Math.max(factor, roundHalfEven(width / factor) * factor);
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.max(factor, Math.floor(height / beta / factor) * factor);
    w = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return [h, w];
}
