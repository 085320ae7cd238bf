import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  joinKey,
  ObjectStore,
  objectStoreConfigFromEnv,
  parseS3Uri,
  type ObjectStoreConfig,
} from '@lvr/storage';
import { BundleError } from '../errors';
import type { BundleSource } from './source';

export interface S3SourceOptions {
  /** Object store client; default: one built from `config` or the `LVR_S3_*` environment variables. */
  store?: ObjectStore;
  config?: ObjectStoreConfig;
  /** Cache root; each bundle version lives in `<cacheDir>/<manifest sha256>/` and is reused across loads. */
  cacheDir?: string;
}

export const DEFAULT_BUNDLE_CACHE = path.join(os.homedir(), '.cache', 'lvr-platform', 'bundles');

/**
 * A bundle under `s3://bucket/prefix/` in MinIO. Files are downloaded on first use into a cache folder keyed by the
 * manifest's sha256 (from `_COMPLETE`), atomically (temp file + rename), and reused by later loads of the same
 * version. `openBundle` refuses the bundle without `_COMPLETE` before anything is downloaded and verifies every
 * file's size and sha256 against the manifest.
 */
export class S3BundleSource implements BundleSource {
  readonly uri: string;
  private readonly store: ObjectStore;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly cacheRoot: string;
  private versionDir: Promise<string> | undefined;

  constructor(uri: string, options: S3SourceOptions = {}) {
    const { bucket, key } = parseS3Uri(uri);
    this.bucket = bucket;
    this.prefix = key.replace(/\/+$/, '');
    this.uri = `s3://${bucket}/${this.prefix}${this.prefix ? '/' : ''}`;
    this.store = options.store ?? new ObjectStore(options.config ?? objectStoreConfigFromEnv());
    this.cacheRoot = options.cacheDir ?? DEFAULT_BUNDLE_CACHE;
  }

  async exists(relPath: string): Promise<boolean> {
    return this.store.exists(this.bucket, this.key(relPath));
  }

  async readFile(relPath: string): Promise<Buffer> {
    return this.store.get(this.bucket, this.key(relPath));
  }

  async localPath(relPath: string): Promise<string> {
    const dir = await this.cacheDirOfVersion();
    const target = path.resolve(dir, relPath);
    if (!target.startsWith(dir + path.sep))
      throw new BundleError(`path ${relPath} escapes the bundle`, relPath);
    if (fs.existsSync(target)) return target;
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const partial = `${target}.partial-${process.pid}-${Date.now()}`;
    try {
      await this.store.getFile(this.bucket, this.key(relPath), partial);
      fs.renameSync(partial, target);
    } catch (error) {
      fs.rmSync(partial, { force: true });
      throw error;
    }
    return target;
  }

  /** `<cacheDir>/<manifest sha256>`; the marker must name the manifest digest. */
  cacheDirOfVersion(): Promise<string> {
    this.versionDir ??= (async () => {
      let digest: string | undefined;
      try {
        digest = (
          JSON.parse((await this.readFile('_COMPLETE')).toString('utf8')) as { manifest_sha256?: string }
        ).manifest_sha256;
      } catch {
        digest = undefined;
      }
      if (!digest || !/^[0-9a-f]{64}$/.test(digest)) {
        throw new BundleError(`bundle ${this.uri}: _COMPLETE does not name a manifest sha256`, '_COMPLETE');
      }
      return path.resolve(this.cacheRoot, digest);
    })();
    return this.versionDir;
  }

  private key(relPath: string): string {
    return joinKey(this.prefix, relPath);
  }
}
