import fs from 'node:fs';
import path from 'node:path';
import { ObjectNotFoundError, ObjectStore, isS3Uri, joinKey, parseS3Uri } from '@lvr/storage';

/** Read access to one benchmark folder, local or in an object store, by paths relative to the folder. */
export interface BenchmarkSource {
  readonly uri: string;
  /** Undefined when the file does not exist. */
  read(relative: string): Promise<Buffer | undefined>;
  /** Every file below the folder, as relative paths. */
  list(): Promise<Set<string>>;
}

export class LocalBenchmarkSource implements BenchmarkSource {
  readonly uri: string;

  constructor(dir: string) {
    this.uri = path.resolve(dir);
  }

  async read(relative: string): Promise<Buffer | undefined> {
    try {
      return await fs.promises.readFile(this.resolve(relative));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async list(): Promise<Set<string>> {
    const found = new Set<string>();
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await fs.promises.readdir(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (entry.isFile()) found.add(path.relative(this.uri, full).split(path.sep).join('/'));
      }
    };
    await walk(this.uri);
    return found;
  }

  private resolve(relative: string): string {
    const full = path.resolve(this.uri, relative);
    if (!full.startsWith(this.uri + path.sep))
      throw new Error(`path escapes the benchmark folder: ${relative}`);
    return full;
  }
}

export class S3BenchmarkSource implements BenchmarkSource {
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(
    readonly uri: string,
    private readonly store: ObjectStore,
  ) {
    const location = parseS3Uri(uri);
    this.bucket = location.bucket;
    this.prefix = location.key.replace(/\/+$/, '');
  }

  async read(relative: string): Promise<Buffer | undefined> {
    try {
      return await this.store.get(this.bucket, joinKey(this.prefix, relative));
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return undefined;
      throw error;
    }
  }

  async list(): Promise<Set<string>> {
    const base = this.prefix ? `${this.prefix}/` : '';
    const objects = await this.store.list(this.bucket, base);
    return new Set(objects.map((o) => o.key.slice(base.length)));
  }
}

/** `s3://bucket/prefix/` needs a store; anything else is a local folder. */
export function openBenchmarkSource(uri: string, store?: ObjectStore): BenchmarkSource {
  if (isS3Uri(uri)) {
    if (!store) throw new Error(`benchmark ${uri} is in an object store, but none is configured`);
    return new S3BenchmarkSource(uri, store);
  }
  return new LocalBenchmarkSource(uri);
}
