import { decodeImage, imageSize, RgbImage } from './decode';
import { patchify, PatchConfig } from './patchify';
import { resizeBicubic } from './resample';
import { smartResize } from './smart-resize';

export interface ImageProcessorConfig extends PatchConfig {
  minPixels: number;
  maxPixels: number;
}

export interface ProcessedImage {
  pixelValues: Float32Array;
  gridThw: [number, number, number];
  /** `<|image_pad|>` tokens this image expands to. */
  tokens: number;
  resized: { width: number; height: number };
}

/** smart_resize target, then Pillow-exact bicubic (skipped when the size is unchanged, like the reference). */
export function resizeForModel(image: RgbImage, cfg: ImageProcessorConfig): RgbImage {
  const factor = cfg.patchSize * cfg.mergeSize;
  const [h, w] = smartResize(image.height, image.width, factor, cfg.minPixels, cfg.maxPixels);
  if (h === image.height && w === image.width) return image;
  return { width: w, height: h, data: resizeBicubic(image.data, image.width, image.height, w, h) };
}

export function processRgb(image: RgbImage, cfg: ImageProcessorConfig): ProcessedImage {
  const resized = resizeForModel(image, cfg);
  const { pixelValues, gridThw } = patchify(resized, cfg);
  const tokens = (gridThw[0] * gridThw[1] * gridThw[2]) / (cfg.mergeSize * cfg.mergeSize);
  return { pixelValues, gridThw, tokens, resized: { width: resized.width, height: resized.height } };
}

export async function processImage(bytes: Uint8Array, cfg: ImageProcessorConfig): Promise<ProcessedImage> {
  return processRgb(await decodeImage(bytes), cfg);
}

/**
 * `<|image_pad|>` tokens an image expands to, from its header only (size and EXIF orientation; no pixel decoding):
 * what context-length checks need before any compute. Equals `processImage(...).tokens`.
 */
export async function imageTokenCount(bytes: Uint8Array, cfg: ImageProcessorConfig): Promise<number> {
  const { width, height } = await imageSize(bytes);
  const factor = cfg.patchSize * cfg.mergeSize;
  const [h, w] = smartResize(height, width, factor, cfg.minPixels, cfg.maxPixels);
  return (h / factor) * (w / factor);
}
