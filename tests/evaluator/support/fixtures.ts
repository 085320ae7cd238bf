import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { BENCHMARK_FORMAT, BenchmarkManifest, BenchmarkRecord, writeBenchmarkFolder } from '@lvr/data';

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
}

/** A small solid-colour PNG (distinct per seed) so image handling runs on real bytes. */
export async function png(seed: number, size = 56): Promise<Buffer> {
  const colour = { r: (seed * 67) % 256, g: (seed * 131) % 256, b: (seed * 199) % 256 };
  return sharp({ create: { width: size, height: size, channels: 3, background: colour } })
    .png()
    .toBuffer();
}

export function manifest(overrides: Partial<BenchmarkManifest> = {}): BenchmarkManifest {
  return {
    format: BENCHMARK_FORMAT,
    name: 'fixture',
    version: '1',
    description: 'test fixture',
    protocols: ['mc-letter'],
    splits: ['test'],
    categories: ['colour', 'shape'],
    ...overrides,
  };
}

/** Four two-option questions in two categories, each with its own image. */
export async function colourFixture(
  dir: string,
  count = 4,
  overrides: Partial<BenchmarkManifest> = {},
): Promise<BenchmarkRecord[]> {
  const records: BenchmarkRecord[] = [];
  const images = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    images.set(`images/q${i}.png`, await png(i));
    records.push({
      id: `q${i}`,
      question: `What colour is square ${i}?`,
      options: [
        { letter: 'A', text: 'red' },
        { letter: 'B', text: 'blue' },
      ],
      answer: i % 2 === 0 ? 'A' : 'B',
      image: `images/q${i}.png`,
      category: i < count / 2 ? 'colour' : 'shape',
      pairId: `p${Math.floor(i / 2)}`,
    });
  }
  writeBenchmarkFolder(dir, { manifest: manifest(overrides), splits: { test: records }, images });
  return records;
}
