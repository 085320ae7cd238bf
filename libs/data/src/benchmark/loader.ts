import { BenchmarkManifest, BenchmarkRecord, MANIFEST_FILE, recordImages, splitFile } from './format';
import { BenchmarkSource } from './source';
import { BenchmarkIssue, BenchmarkValidationError, validateManifest, validateRecord } from './validate';

export interface LoadedBenchmark {
  uri: string;
  manifest: BenchmarkManifest;
  split: string;
  records: BenchmarkRecord[];
  source: BenchmarkSource;
}

export interface LoadOptions {
  /** Default: `test` when the benchmark has it, else its first split. */
  split?: string;
  /** Keep only the first N records (after validating all of them). */
  limit?: number;
}

/**
 * Reads and validates a benchmark completely before anything runs: the manifest, every record of the split, id
 * uniqueness and that every referenced image exists. All problems are reported at once, each naming record and field.
 */
export async function loadBenchmark(
  source: BenchmarkSource,
  options: LoadOptions = {},
): Promise<LoadedBenchmark> {
  const manifestBytes = await source.read(MANIFEST_FILE);
  if (!manifestBytes)
    throw new BenchmarkValidationError(source.uri, [
      { file: MANIFEST_FILE, field: '(file)', message: 'is missing' },
    ]);
  let manifestJson: unknown;
  try {
    manifestJson = JSON.parse(manifestBytes.toString('utf8'));
  } catch (error) {
    throw new BenchmarkValidationError(source.uri, [
      { file: MANIFEST_FILE, field: '(json)', message: `is not valid JSON: ${(error as Error).message}` },
    ]);
  }
  const manifestIssues = validateManifest(manifestJson);
  if (manifestIssues.length) throw new BenchmarkValidationError(source.uri, manifestIssues);
  const manifest = manifestJson as BenchmarkManifest;

  const split = options.split ?? (manifest.splits.includes('test') ? 'test' : manifest.splits[0]);
  if (!manifest.splits.includes(split))
    throw new BenchmarkValidationError(source.uri, [
      { file: MANIFEST_FILE, field: 'splits', message: `does not list the requested split "${split}"` },
    ]);
  const file = splitFile(split);
  const body = await source.read(file);
  if (!body)
    throw new BenchmarkValidationError(source.uri, [{ file, field: '(file)', message: 'is missing' }]);

  const issues: BenchmarkIssue[] = [];
  const records: BenchmarkRecord[] = [];
  const seenIds = new Map<string, number>();
  body
    .toString('utf8')
    .split('\n')
    .forEach((text, index) => {
      const line = index + 1;
      if (!text.trim()) return;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        issues.push({
          file,
          line,
          field: '(json)',
          message: `is not valid JSON: ${(error as Error).message}`,
        });
        return;
      }
      const recordIssues = validateRecord(value, { split, line }, manifest);
      issues.push(...recordIssues);
      if (recordIssues.length) return;
      const record = value as BenchmarkRecord;
      const first = seenIds.get(record.id);
      if (first !== undefined)
        issues.push({ file, line, recordId: record.id, field: 'id', message: `duplicates line ${first}` });
      else seenIds.set(record.id, line);
      records.push(record);
    });
  if (records.length === 0 && issues.length === 0)
    issues.push({ file, field: '(file)', message: 'has no records' });

  const files = await source.list();
  for (const record of records)
    recordImages(record).forEach((image, i) => {
      if (!files.has(image))
        issues.push({
          file,
          line: seenIds.get(record.id),
          recordId: record.id,
          field: Array.isArray(record.image) ? `image[${i}]` : 'image',
          message: `names ${image}, which does not exist`,
        });
    });
  if (issues.length) throw new BenchmarkValidationError(source.uri, issues);

  const limited = options.limit !== undefined ? records.slice(0, options.limit) : records;
  return { uri: source.uri, manifest, split, records: limited, source };
}
