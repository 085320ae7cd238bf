import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { BundleError } from '../errors';
import { BundleManifest, parseManifest } from './manifest';
import type { BundleSource } from './source';

export const COMPLETE_MARKER = '_COMPLETE';

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface LoadedBundle {
  source: BundleSource;
  manifest: BundleManifest;
  /** Local path of every file named in the manifest. */
  paths: Map<string, string>;
}

/**
 * Opens a bundle: refuses it without the completion marker, checks the marker against manifest.json, then the size
 * and sha256 of every listed file (unless `verifyChecksums` is false), and that the graphs and tokenizer are listed.
 */
export async function openBundle(source: BundleSource, verifyChecksums = true): Promise<LoadedBundle> {
  if (!(await source.exists(COMPLETE_MARKER))) {
    throw new BundleError(
      `bundle ${source.uri} is incomplete: ${COMPLETE_MARKER} marker missing`,
      COMPLETE_MARKER,
    );
  }
  if (!(await source.exists('manifest.json')))
    throw new BundleError(`bundle ${source.uri}: manifest.json missing`, 'manifest.json');
  const manifestBytes = await source.readFile('manifest.json');
  let marker: { manifest_sha256?: string };
  try {
    marker = JSON.parse((await source.readFile(COMPLETE_MARKER)).toString('utf8'));
  } catch {
    throw new BundleError(`bundle ${source.uri}: ${COMPLETE_MARKER} is not valid JSON`, COMPLETE_MARKER);
  }
  const manifestSha = createHash('sha256').update(manifestBytes).digest('hex');
  if (marker.manifest_sha256 !== manifestSha) {
    throw new BundleError(
      `bundle ${source.uri}: manifest.json sha256 does not match ${COMPLETE_MARKER}`,
      'manifest.json',
      'manifest_sha256',
    );
  }
  const manifest = parseManifest(manifestBytes.toString('utf8'));
  const paths = new Map<string, string>();
  for (const f of manifest.files) {
    const local = await source.localPath(f.path);
    const stat = await fs.promises.stat(local).catch(() => undefined);
    if (!stat) throw new BundleError(`bundle ${source.uri}: file ${f.path} is missing`, f.path);
    if (stat.size !== f.size)
      throw new BundleError(
        `bundle ${source.uri}: file ${f.path} has ${stat.size} bytes, manifest says ${f.size}`,
        f.path,
        'size',
      );
    if (verifyChecksums && (await sha256File(local)) !== f.sha256) {
      throw new BundleError(`bundle ${source.uri}: sha256 mismatch for ${f.path}`, f.path, 'sha256');
    }
    paths.set(f.path, local);
  }
  for (const [field, file] of [
    ['graphs.vision', manifest.graphs.vision],
    ['graphs.embed_tokens', manifest.graphs.embed_tokens],
    ['graphs.decoder', manifest.graphs.decoder],
    ['tokenizer', manifest.tokenizer],
    ...(manifest.graphs.lvr_head ? [['graphs.lvr_head', manifest.graphs.lvr_head] as const] : []),
    // Optional GPU serving flavour of the decoder (EngineLoadOptions.fusedDecoder): checked like the others.
    ...(manifest.graphs.decoder_fused !== undefined
      ? [['graphs.decoder_fused', manifest.graphs.decoder_fused] as const]
      : []),
    ...(manifest.graphs.decoder_fused_lvr !== undefined
      ? [['graphs.decoder_fused_lvr', manifest.graphs.decoder_fused_lvr] as const]
      : []),
  ] as const) {
    if (!paths.has(file))
      throw new BundleError(
        `bundle ${source.uri}: ${field} names ${file}, which is not in manifest.files`,
        'manifest.json',
        field,
      );
  }
  return { source, manifest, paths };
}
