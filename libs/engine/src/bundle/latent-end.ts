import fs from 'node:fs';
import { BundleError } from '../errors';
import type { LoadedBundle } from './loader';

/** Default file name of the latent-end vector (docs/bundle-format.md). */
export const LATENT_END_FILE = 'lvr_latent_end_emb.bin';

/**
 * The learned latent-end vector (LVR-SPEC §1.4) of a bundle with `lvr.latent_end_token`: raw little-endian float32
 * `[hidden_size]` in the file named by `lvr_files.latent_end_emb`. Undefined when the model has none.
 */
export function readLatentEndEmb(bundle: LoadedBundle): Float32Array | undefined {
  const m = bundle.manifest;
  if (!m.lvr.latent_end_token) return undefined;
  const file = m.lvr_files?.latent_end_emb ?? LATENT_END_FILE;
  const local = bundle.paths.get(file);
  if (!local) {
    throw new BundleError(
      `bundle ${bundle.source.uri}: lvr.latent_end_token is true but ${file} is not in manifest.files`,
      'manifest.json',
      'lvr_files.latent_end_emb',
    );
  }
  const bytes = fs.readFileSync(local);
  const hidden = m.architecture.hidden_size;
  if (bytes.length !== hidden * 4) {
    throw new BundleError(
      `bundle ${bundle.source.uri}: ${file} has ${bytes.length} bytes, expected ${hidden * 4} (float32 [${hidden}])`,
      file,
      'size',
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Float32Array.from({ length: hidden }, (_, i) => view.getFloat32(i * 4, true));
}
