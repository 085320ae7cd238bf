import sharp from 'sharp';
import { BenchmarkSource } from '@lvr/data';
import { SampleRecord } from '../results/types';
import { thumbnailKey } from './render';

const SIZE = 192;

/** Small PNG data URLs of the given samples' images, so the report stays one self-contained file. */
export async function thumbnails(
  samples: SampleRecord[],
  sources: Map<string, BenchmarkSource>,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const sample of samples)
    for (const image of sample.images) {
      const key = thumbnailKey(sample.benchmark, image);
      const source = sources.get(sample.benchmark);
      if (out.has(key) || !source) continue;
      const bytes = await source.read(image);
      if (!bytes) continue;
      try {
        const png = await sharp(bytes)
          .resize(SIZE, SIZE, { fit: 'inside', withoutEnlargement: true })
          .png()
          .toBuffer();
        out.set(key, `data:image/png;base64,${png.toString('base64')}`);
      } catch {
        // An image sharp cannot decode is shown without a thumbnail rather than failing the report.
      }
    }
  return out;
}
