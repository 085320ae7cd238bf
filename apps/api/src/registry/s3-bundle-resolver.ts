import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isS3Uri, ObjectStore, parseS3Uri, joinKey, type ObjectStoreConfig } from '@lvr/storage';
import type { BundleResolver } from './bundle-resolver';

/**
 * `s3://bucket/prefix` bundles from MinIO: refuses a prefix without `_COMPLETE`, downloads it into a local cache
 * folder (onnxruntime needs file paths) and hands the folder to the engine, which verifies every checksum.
 * Local paths pass through.
 */
export class S3BundleResolver implements BundleResolver {
  private readonly store: ObjectStore;

  constructor(
    config: ObjectStoreConfig,
    private readonly cacheDir = path.join(os.homedir(), '.cache', 'lvr-platform', 'api-bundles'),
  ) {
    this.store = new ObjectStore(config);
  }

  async resolve(uri: string): Promise<string> {
    if (!isS3Uri(uri)) {
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri) && !uri.startsWith('file://'))
        throw new Error(`unsupported bundle URI ${uri}`);
      return uri.startsWith('file://') ? new URL(uri).pathname : uri;
    }
    const { bucket, key } = parseS3Uri(uri);
    const prefix = key.replace(/\/+$/, '');
    if (!(await this.store.exists(bucket, joinKey(prefix, '_COMPLETE')))) {
      throw new Error(`bundle ${uri} is incomplete (no _COMPLETE marker)`);
    }
    const marker = (await this.store.get(bucket, joinKey(prefix, '_COMPLETE'))).toString('utf8');
    const digest = /"manifest_sha256"\s*:\s*"([0-9a-f]{8,64})"/.exec(marker)?.[1] ?? 'unknown';
    const target = path.join(
      this.cacheDir,
      bucket,
      prefix.replace(/[^A-Za-z0-9._/-]/g, '_'),
      digest.slice(0, 16),
    );
    if (fs.existsSync(path.join(target, '_COMPLETE'))) return target;
    const staging = `${target}.partial-${process.pid}-${Date.now()}`;
    fs.mkdirSync(staging, { recursive: true });
    try {
      await this.store.downloadDirectory(bucket, prefix, staging);
      fs.rmSync(target, { recursive: true, force: true });
      fs.renameSync(staging, target);
    } catch (error) {
      fs.rmSync(staging, { recursive: true, force: true });
      throw error;
    }
    return target;
  }
}
