import 'reflect-metadata';
import { plainToInstance } from 'class-transformer';
import { validateSync, ValidationError } from 'class-validator';

export interface FieldError {
  /** Dotted path of the offending field, e.g. `hyperparameters.learningRate` or `benchmarks.0.uri`. */
  path: string;
  message: string;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

type Constructor<T> = new () => T;

export interface ParseOptions {
  /** Reject fields the schema does not know (catches typos such as `learningrate`). Default true. */
  forbidUnknown?: boolean;
}

/** Parses raw bytes, text or an object into a validated message, or lists every problem with its field path. */
export function parseMessage<T extends object>(
  type: Constructor<T>,
  raw: Buffer | string | unknown,
  options: ParseOptions = {},
): ParseResult<T> {
  let plain: unknown = raw;
  if (Buffer.isBuffer(raw) || typeof raw === 'string') {
    try {
      plain = JSON.parse(raw.toString());
    } catch (error) {
      return { ok: false, errors: [{ path: '', message: `not valid JSON: ${(error as Error).message}` }] };
    }
  }
  if (plain === null || typeof plain !== 'object' || Array.isArray(plain)) {
    return { ok: false, errors: [{ path: '', message: 'message must be a JSON object' }] };
  }
  const instance = plainToInstance(type, plain);
  const forbid = options.forbidUnknown ?? true;
  const errors = validateSync(instance, { whitelist: forbid, forbidNonWhitelisted: forbid });
  if (errors.length > 0) return { ok: false, errors: flatten(errors) };
  return { ok: true, value: instance };
}

export function describeErrors(errors: FieldError[]): string {
  return errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join('; ');
}

function flatten(errors: ValidationError[], prefix = ''): FieldError[] {
  const out: FieldError[] = [];
  for (const error of errors) {
    const path = prefix ? `${prefix}.${error.property}` : error.property;
    for (const message of Object.values(error.constraints ?? {})) out.push({ path, message });
    if (error.children?.length) out.push(...flatten(error.children, path));
  }
  return out;
}
