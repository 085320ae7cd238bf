import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client, S3Error } from 'minio';
import { ObjectStoreConfig } from './config';
import { joinKey } from './uri';

export class ObjectNotFoundError extends Error {
  constructor(
    readonly bucket: string,
    readonly key: string,
  ) {
    super(`object s3://${bucket}/${key} does not exist`);
  }
}

export interface ObjectInfo {
  key: string;
  size: number;
  etag?: string;
  lastModified?: Date;
}

export interface PutResult {
  size: number;
  sha256: string;
}

const MIN_PART_SIZE = 5 * 1024 * 1024;

/** Small, typed facade over the MinIO client: the operations bundles, checkpoints, datasets and results need. */
export class ObjectStore {
  private readonly client: Client;

  constructor(readonly config: ObjectStoreConfig) {
    const url = new URL(config.endpoint);
    this.client = new Client({
      endPoint: url.hostname,
      port: url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80,
      useSSL: url.protocol === 'https:',
      accessKey: config.accessKey,
      secretKey: config.secretKey,
      region: config.region,
      pathStyle: true,
      partSize: Math.max(config.partSize ?? 64 * 1024 * 1024, MIN_PART_SIZE),
    });
  }

  async ensureBucket(bucket: string): Promise<void> {
    if (await this.client.bucketExists(bucket)) return;
    try {
      await this.client.makeBucket(bucket, this.config.region);
    } catch (error) {
      // Another writer may have created it between the check and the call.
      if (!(
        error instanceof S3Error && /BucketAlreadyOwnedByYou|BucketAlreadyExists/.test(String(error.code))
      )) {
        throw error;
      }
    }
  }

  /** Uploads a buffer or stream (multipart above the part size) and returns its size and sha256. */
  async put(
    bucket: string,
    key: string,
    body: Buffer | Readable,
    contentType?: string,
    knownSize?: number,
  ): Promise<PutResult> {
    const hash = createHash('sha256');
    let size = 0;
    const source = Buffer.isBuffer(body) ? Readable.from([body]) : body;
    const counted = source.map((chunk: Buffer) => {
      hash.update(chunk);
      size += chunk.length;
      return chunk;
    });
    const metadata = contentType ? { 'Content-Type': contentType } : {};
    // With a known size the client splits into `partSize` parts; unknown sizes get parts sized for 5 TiB objects.
    const objectSize = Buffer.isBuffer(body) ? body.length : knownSize;
    await this.client.putObject(bucket, key, Readable.from(counted), objectSize, metadata);
    return { size, sha256: hash.digest('hex') };
  }

  async putFile(bucket: string, key: string, file: string): Promise<PutResult> {
    const { size } = await fs.promises.stat(file);
    return this.put(bucket, key, fs.createReadStream(file), undefined, size);
  }

  async get(bucket: string, key: string): Promise<Buffer> {
    const stream = await this.getStream(bucket, key);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async getStream(bucket: string, key: string): Promise<Readable> {
    try {
      return await this.client.getObject(bucket, key);
    } catch (error) {
      throw this.translate(error, bucket, key);
    }
  }

  async getFile(bucket: string, key: string, file: string): Promise<void> {
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    const partial = `${file}.partial`;
    await pipeline(await this.getStream(bucket, key), fs.createWriteStream(partial));
    await fs.promises.rename(partial, file);
  }

  async stat(bucket: string, key: string): Promise<ObjectInfo> {
    try {
      const info = await this.client.statObject(bucket, key);
      return { key, size: info.size, etag: info.etag, lastModified: info.lastModified };
    } catch (error) {
      throw this.translate(error, bucket, key);
    }
  }

  async exists(bucket: string, key: string): Promise<boolean> {
    try {
      await this.stat(bucket, key);
      return true;
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return false;
      throw error;
    }
  }

  /** Every object under `prefix` (recursive), in key order. */
  async list(bucket: string, prefix = ''): Promise<ObjectInfo[]> {
    const objects: ObjectInfo[] = [];
    const stream = this.client.listObjectsV2(bucket, prefix, true);
    for await (const item of stream as AsyncIterable<{
      name?: string;
      size: number;
      etag?: string;
      lastModified?: Date;
    }>) {
      if (item.name)
        objects.push({ key: item.name, size: item.size, etag: item.etag, lastModified: item.lastModified });
    }
    return objects.sort((a, b) => a.key.localeCompare(b.key));
  }

  async remove(bucket: string, key: string): Promise<void> {
    await this.client.removeObject(bucket, key);
  }

  async removePrefix(bucket: string, prefix: string): Promise<number> {
    const keys = (await this.list(bucket, prefix)).map((o) => o.key);
    if (keys.length) await this.client.removeObjects(bucket, keys);
    return keys.length;
  }

  /**
   * Uploads a local folder under `prefix`. Files named in `last` go up after all others, in that order, so a
   * reader that waits for the completion marker never sees a partial folder.
   */
  async uploadDirectory(
    dir: string,
    bucket: string,
    prefix: string,
    last: string[] = [],
  ): Promise<Map<string, PutResult>> {
    const files = listFiles(dir);
    const ordered = [...files.filter((f) => !last.includes(f)), ...last.filter((f) => files.includes(f))];
    const results = new Map<string, PutResult>();
    for (const relative of ordered) {
      results.set(relative, await this.putFile(bucket, joinKey(prefix, relative), path.join(dir, relative)));
    }
    return results;
  }

  /** Downloads every object under `prefix` into `dir`, keeping relative paths. */
  async downloadDirectory(bucket: string, prefix: string, dir: string): Promise<string[]> {
    const base = prefix && !prefix.endsWith('/') ? `${prefix}/` : prefix;
    const written: string[] = [];
    for (const object of await this.list(bucket, base)) {
      const relative = object.key.slice(base.length);
      const target = path.resolve(dir, relative);
      if (!target.startsWith(path.resolve(dir) + path.sep))
        throw new Error(`refusing to write outside ${dir}: ${object.key}`);
      await this.getFile(bucket, object.key, target);
      written.push(relative);
    }
    return written;
  }

  private translate(error: unknown, bucket: string, key: string): Error {
    if (error instanceof S3Error && ['NoSuchKey', 'NotFound', 'NoSuchBucket'].includes(String(error.code))) {
      return new ObjectNotFoundError(bucket, key);
    }
    return error as Error;
  }
}

/** Relative paths (with `/`) of all regular files below `dir`, sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (current: string) => {
    for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) out.push(path.relative(dir, full).split(path.sep).join('/'));
    }
  };
  walk(dir);
  return out.sort();
}
