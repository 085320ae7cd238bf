import {
  BENCHMARK_FORMAT,
  BenchmarkManifest,
  BENCHMARK_DIFFICULTIES,
  MANIFEST_FILE,
  splitFile,
} from './format';

/** One problem in a benchmark: where (file, line, record id), which field, what is wrong. */
export interface BenchmarkIssue {
  file: string;
  line?: number;
  recordId?: string;
  field: string;
  message: string;
}

export function describeIssue(issue: BenchmarkIssue): string {
  const at = [issue.file, issue.line !== undefined ? `line ${issue.line}` : undefined]
    .filter(Boolean)
    .join(' ');
  const record = issue.recordId !== undefined ? ` record '${issue.recordId}'` : '';
  return `${at}${record}: field '${issue.field}' ${issue.message}`;
}

const SHOWN_ISSUES = 10;

export class BenchmarkValidationError extends Error {
  constructor(
    readonly benchmark: string,
    readonly issues: BenchmarkIssue[],
  ) {
    const shown = issues.slice(0, SHOWN_ISSUES).map(describeIssue);
    const more = issues.length > SHOWN_ISSUES ? `; and ${issues.length - SHOWN_ISSUES} more` : '';
    super(`invalid benchmark ${benchmark}: ${shown.join('; ')}${more}`);
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const LETTER = /^[A-Z]$/;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.trim().length > 0;
}

/** A relative path inside the benchmark folder: no absolute paths, no `..`, no URLs. */
export function isSafeRelativePath(value: unknown): value is string {
  if (!nonEmptyString(value)) return false;
  if (value.startsWith('/') || value.includes('\\') || /^[a-z][a-z0-9+.-]*:/i.test(value)) return false;
  return value.split('/').every((segment) => segment !== '..' && segment !== '' && segment !== '.');
}

export function validateManifest(value: unknown): BenchmarkIssue[] {
  const issue = (field: string, message: string): BenchmarkIssue => ({ file: MANIFEST_FILE, field, message });
  if (!isObject(value)) return [issue('(root)', 'must be a JSON object')];
  const issues: BenchmarkIssue[] = [];
  if (value.format !== BENCHMARK_FORMAT)
    issues.push(issue('format', `must be "${BENCHMARK_FORMAT}", got ${JSON.stringify(value.format)}`));
  if (!nonEmptyString(value.name) || !NAME.test(value.name))
    issues.push(issue('name', 'must be 1-64 letters, digits, dots, dashes or underscores'));
  if (!nonEmptyString(value.version)) issues.push(issue('version', 'must be a non-empty string'));
  if (typeof value.description !== 'string') issues.push(issue('description', 'must be a string'));
  for (const field of ['protocols', 'splits', 'categories'] as const) {
    const list = value[field];
    if (!Array.isArray(list) || !list.every(nonEmptyString))
      issues.push(issue(field, 'must be an array of non-empty strings'));
  }
  if (Array.isArray(value.splits)) {
    if (value.splits.length === 0) issues.push(issue('splits', 'must name at least one split'));
    for (const [i, split] of value.splits.entries())
      if (nonEmptyString(split) && !NAME.test(split))
        issues.push(issue(`splits[${i}]`, 'must be letters, digits, dots, dashes or underscores'));
  }
  return issues;
}

/** Validates one parsed `<split>.jsonl` line; `categories` (from the manifest) constrains `category`. */
export function validateRecord(
  value: unknown,
  where: { split: string; line: number },
  manifest: Pick<BenchmarkManifest, 'categories'>,
): BenchmarkIssue[] {
  const file = splitFile(where.split);
  const recordId = isObject(value) && typeof value.id === 'string' ? value.id : undefined;
  const issues: BenchmarkIssue[] = [];
  const issue = (field: string, message: string): void => {
    issues.push({ file, line: where.line, recordId, field, message });
  };
  if (!isObject(value)) {
    issue('(record)', 'must be a JSON object');
    return issues;
  }
  if (!nonEmptyString(value.id)) issue('id', 'must be a non-empty string');
  if (!nonEmptyString(value.question)) issue('question', 'must be a non-empty string');

  const letters: string[] = [];
  if (!Array.isArray(value.options)) issue('options', 'must be an array (empty for open answers)');
  else
    value.options.forEach((option, i) => {
      if (!isObject(option)) return issue(`options[${i}]`, 'must be an object { letter, text }');
      if (typeof option.letter !== 'string' || !LETTER.test(option.letter))
        issue(`options[${i}].letter`, 'must be one capital letter A-Z');
      else if (letters.includes(option.letter))
        issue(`options[${i}].letter`, `repeats letter ${option.letter}`);
      else letters.push(option.letter);
      if (!nonEmptyString(option.text)) issue(`options[${i}].text`, 'must be a non-empty string');
    });

  if (!nonEmptyString(value.answer)) issue('answer', 'must be a non-empty string');
  else if (letters.length > 0 && !letters.includes(value.answer))
    issue('answer', `must be one of the option letters ${letters.join(', ')}, got "${value.answer}"`);

  const images = Array.isArray(value.image) ? value.image : [value.image];
  if (Array.isArray(value.image) && value.image.length === 0) issue('image', 'must name at least one image');
  images.forEach((image, i) => {
    if (!isSafeRelativePath(image))
      issue(
        Array.isArray(value.image) ? `image[${i}]` : 'image',
        'must be a relative path inside the benchmark',
      );
  });

  if (!nonEmptyString(value.category)) issue('category', 'must be a non-empty string');
  else if (manifest.categories.length > 0 && !manifest.categories.includes(value.category))
    issue('category', `"${value.category}" is not listed in benchmark.json categories`);
  for (const field of ['subtask', 'pairId'] as const)
    if (value[field] !== undefined && !nonEmptyString(value[field]))
      issue(field, 'must be a non-empty string');
  if (value.bbox !== undefined) {
    const box = value.bbox;
    if (
      !Array.isArray(box) ||
      box.length !== 4 ||
      !box.every((n) => typeof n === 'number' && Number.isFinite(n) && n >= 0)
    )
      issue('bbox', 'must be [x0, y0, x1, y1] with non-negative numbers');
    else if (!(box[2] > box[0] && box[3] > box[1])) issue('bbox', 'must have x1 > x0 and y1 > y0');
  }
  if (value.difficulty !== undefined && !BENCHMARK_DIFFICULTIES.includes(value.difficulty as never))
    issue('difficulty', `must be one of ${BENCHMARK_DIFFICULTIES.join(', ')}`);
  if (value.meta !== undefined && !isObject(value.meta)) issue('meta', 'must be an object');
  return issues;
}
