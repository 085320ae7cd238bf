import fs from 'node:fs';
import path from 'node:path';
import type { BundleSource } from './source';

/** A bundle in a local directory. */
export class LocalDirSource implements BundleSource {
  readonly uri: string;

  constructor(dir: string) {
    this.uri = path.resolve(dir);
  }

  async exists(relPath: string): Promise<boolean> {
    return fs.existsSync(this.resolve(relPath));
  }

  async readFile(relPath: string): Promise<Buffer> {
    return fs.promises.readFile(this.resolve(relPath));
  }

  async localPath(relPath: string): Promise<string> {
    return this.resolve(relPath);
  }

  private resolve(relPath: string): string {
    const full = path.resolve(this.uri, relPath);
    if (!full.startsWith(this.uri + path.sep))
      throw new Error(`path ${relPath} escapes the bundle directory`);
    return full;
  }
}
