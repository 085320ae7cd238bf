import sharp from 'sharp';
import { RequestError } from '../errors';

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB bytes, row-major. */
  data: Uint8Array;
}

const FORMATS = new Set(['jpeg', 'png', 'webp', 'gif']);

/**
 * Decodes JPEG, PNG, WebP or GIF (first frame) bytes to 8-bit RGB with EXIF orientation applied. Alpha is dropped
 * without compositing and greyscale/palette images are expanded, as PIL's `convert("RGB")` does.
 */
type Metadata = Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;

async function readMetadata(bytes: Uint8Array): Promise<Metadata> {
  let meta: Metadata;
  try {
    meta = await sharp(bytes).metadata();
  } catch (error) {
    throw new RequestError(`cannot decode image: ${(error as Error).message}`, 'image');
  }
  if (!meta.format || !FORMATS.has(meta.format)) {
    throw new RequestError(
      `unsupported image format ${meta.format ?? 'unknown'} (JPEG, PNG, WebP, GIF)`,
      'image',
    );
  }
  return meta;
}

/** Displayed size (EXIF orientation applied) from the header alone, as `decodeImage` would produce it. */
export async function imageSize(bytes: Uint8Array): Promise<{ width: number; height: number }> {
  const meta = await readMetadata(bytes);
  const width = meta.width;
  const height = meta.pageHeight ?? meta.height; // first frame of an animation
  if (!width || !height) throw new RequestError('cannot decode image: no size in its header', 'image');
  return (meta.orientation ?? 1) >= 5 ? { width: height, height: width } : { width, height };
}

export async function decodeImage(bytes: Uint8Array): Promise<RgbImage> {
  await readMetadata(bytes);
  try {
    const { data, info } = await sharp(bytes, { pages: 1 })
      .rotate()
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels, got ${info.channels}`);
    return {
      width: info.width,
      height: info.height,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    };
  } catch (error) {
    throw new RequestError(`cannot decode image: ${(error as Error).message}`, 'image');
  }
}
