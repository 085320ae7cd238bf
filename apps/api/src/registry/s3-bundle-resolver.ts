import os from 'node:os';
import path from 'node:path';
import { S3BundleSource, type BundleSource } from '@lvr/engine';
import { isS3Uri, ObjectStore, type ObjectStoreConfig } from '@lvr/storage';
import type { BundleResolver } from './bundle-resolver';

/**
 * `s3://bucket/prefix` bundles from MinIO become the engine's `S3BundleSource` (refuses a bundle without
 * `_COMPLETE`, caches files by manifest sha256, verifies every checksum on load). Local paths pass through.
 */
export class S3BundleResolver implements BundleResolver {
  private readonly store: ObjectStore;

  constructor(
    config: ObjectStoreConfig,
    private readonly cacheDir = path.join(os.homedir(), '.cache', 'lvr-platform', 'api-bundles'),
  ) {
    this.store = new ObjectStore(config);
  }

  async resolve(uri: string): Promise<string | BundleSource> {
    if (isS3Uri(uri)) return new S3BundleSource(uri, { store: this.store, cacheDir: this.cacheDir });
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri) && !uri.startsWith('file://'))
      throw new Error(`unsupported bundle URI ${uri}`);
    return uri.startsWith('file://') ? new URL(uri).pathname : uri;
  }
}
