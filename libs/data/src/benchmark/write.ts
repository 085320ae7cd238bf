import fs from 'node:fs';
import path from 'node:path';
import { BenchmarkManifest, BenchmarkRecord, MANIFEST_FILE, splitFile } from './format';
import { isSafeRelativePath } from './validate';

export interface BenchmarkContent {
  manifest: BenchmarkManifest;
  /** Records per split, written in order. */
  splits: Record<string, BenchmarkRecord[]>;
  /** Image bytes by relative path (`images/...`). */
  images: Map<string, Buffer>;
}

/** Writes a benchmark folder in the shared format; the manifest goes last, so a half-written folder never loads. */
export function writeBenchmarkFolder(dir: string, content: BenchmarkContent): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [relative, bytes] of content.images) {
    if (!isSafeRelativePath(relative)) throw new Error(`image path ${relative} is not inside the benchmark`);
    const target = path.join(dir, relative);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, bytes);
  }
  for (const [split, records] of Object.entries(content.splits))
    fs.writeFileSync(
      path.join(dir, splitFile(split)),
      records.map((r) => JSON.stringify(r)).join('\n') + '\n',
    );
  fs.writeFileSync(path.join(dir, MANIFEST_FILE), JSON.stringify(content.manifest, null, 2) + '\n');
}
