import { decodeImage, imageSize, RgbImage } from './decode';
import type { PatchConfig } from './patchify';
import { resizeBicubic } from './resample';
import { smartResize } from './smart-resize';

export interface ImageProcessorConfig extends PatchConfig {
  minPixels: number;
  maxPixels: number;
}

export interface ProcessedImage {
  /** The image resized for the model: the vision graph's `image_bytes` [H, W, 3]. */
  image: RgbImage;
  gridThw: [number, number, number];
  /** `<|image_pad|>` tokens this image expands to. */
  tokens: number;
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
  const gridThw: [number, number, number] = [
    1,
    resized.height / cfg.patchSize,
    resized.width / cfg.patchSize,
  ];
  const tokens = (gridThw[1] * gridThw[2]) / (cfg.mergeSize * cfg.mergeSize);
  return { image: resized, gridThw, tokens };
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
