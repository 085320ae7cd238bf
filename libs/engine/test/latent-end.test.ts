import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { readLatentEndEmb } from '../src/bundle/latent-end';
import type { LoadedBundle } from '../src/bundle/loader';
import type { BundleManifest } from '../src/bundle/manifest';
import { BundleError } from '../src/errors';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-latent-end-'));

function bundle(
  latentEnd: boolean,
  bytes?: Buffer,
  name = 'lvr_latent_end_emb.bin',
  listed = name,
): LoadedBundle {
  const paths = new Map<string, string>();
  if (bytes) {
    fs.writeFileSync(path.join(dir, name), bytes);
    paths.set(listed, path.join(dir, name));
  }
  const manifest = {
    architecture: { hidden_size: 3 },
    lvr: { latent_end_token: latentEnd },
    lvr_files: bytes ? { latent_end_emb: name } : {},
  } as unknown as BundleManifest;
  return { source: { uri: dir } as LoadedBundle['source'], manifest, paths };
}

function le(values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b;
}

describe('latent-end vector of a bundle', () => {
  it('reads little-endian float32 [hidden] from the file named in lvr_files', () => {
    const v = readLatentEndEmb(bundle(true, le([1.5, -2, 0.25]), 'end.bin'));
    assert.deepEqual(Array.from(v!), [1.5, -2, 0.25]);
  });

  it('is undefined when the model has no latent-end token', () => {
    assert.equal(readLatentEndEmb(bundle(false, le([1, 2, 3]))), undefined);
  });

  it('refuses a bundle that promises the vector but lacks it or has the wrong size', () => {
    assert.throws(
      () => readLatentEndEmb(bundle(true)),
      (e: unknown) => e instanceof BundleError && /not in manifest.files/.test(e.message),
    );
    assert.throws(
      () => readLatentEndEmb(bundle(true, le([1, 2]))),
      (e: unknown) => e instanceof BundleError && /8 bytes, expected 12/.test(e.message),
    );
  });
});
