/**
 * Translates a Hugging Face `Split` regex (Oniguruma syntax) into an equivalent JavaScript regex.
 *
 * Two semantic gaps matter for Qwen's pattern:
 * - `\s` in Oniguruma is the Unicode White_Space property (includes U+0085, excludes U+FEFF); JavaScript's `\s`
 *   is the reverse on both counts. We substitute an explicit class.
 * - `(?i:...)` inline groups are not supported by Node 20. We expand letters into case classes, including the
 *   Unicode simple case folds that are not plain ASCII (s/ſ, k/K-sign).
 * - `\p{L}` / `\p{N}` use Node's (newer) Unicode data; they are narrowed to Oniguruma's (unicode-compat.ts).
 * Anything else outside a small known subset is rejected, so a new pattern fails loudly instead of silently.
 */
import { PROPERTY_CLASSES } from './unicode';

const WHITE_SPACE = '\\t-\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';
const EXTRA_FOLDS: Record<string, string> = { s: '\u017f', k: '\u212a' };

function caseClass(ch: string): string {
  const lower = ch.toLowerCase();
  const upper = ch.toUpperCase();
  if (lower === upper) return escapeLiteral(ch);
  return `[${lower}${upper}${EXTRA_FOLDS[lower] ?? ''}]`;
}

function escapeLiteral(ch: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(ch) ? `\\${ch}` : ch;
}

export function translatePattern(onig: string): RegExp {
  let out = '';
  let inClass = false;
  let ignoreCaseDepth = -1; // group depth at which an (?i: group opened
  let depth = 0;
  for (let i = 0; i < onig.length; i++) {
    const ch = onig[i];
    if (ch === '\\') {
      const next = onig[i + 1];
      i++;
      if (next === 's') out += inClass ? WHITE_SPACE : `[${WHITE_SPACE}]`;
      else if (next === 'S') {
        if (inClass) throw new Error(`unsupported \\S inside a character class in ${onig}`);
        out += `[^${WHITE_SPACE}]`;
      } else if (next === 'p') {
        const end = onig.indexOf('}', i);
        const prop = onig.slice(i - 1, end + 1);
        const cls = PROPERTY_CLASSES[prop];
        if (!cls) throw new Error(`unsupported property ${prop} in ${onig}`);
        out += cls;
        i = end;
      } else if ('rntfv'.includes(next) || /[\\^$.*+?()[\]{}|/-]/.test(next)) out += `\\${next}`;
      else throw new Error(`unsupported escape \\${next} in ${onig}`);
      continue;
    }
    if (inClass) {
      if (ch === ']') inClass = false;
      out += ch;
      continue;
    }
    if (ch === '[') {
      inClass = true;
      out += ch;
      if (onig[i + 1] === '^') {
        out += '^';
        i++;
      }
      continue;
    }
    if (ch === '(') {
      depth++;
      if (onig.startsWith('(?i:', i)) {
        if (ignoreCaseDepth >= 0) throw new Error(`nested (?i: in ${onig}`);
        ignoreCaseDepth = depth;
        out += '(?:';
        i += 3;
        continue;
      }
      if (onig.startsWith('(?!', i) || onig.startsWith('(?=', i) || onig.startsWith('(?:', i)) {
        out += onig.slice(i, i + 3);
        i += 2;
        continue;
      }
      if (onig[i + 1] === '?') throw new Error(`unsupported group syntax at ${i} in ${onig}`);
      out += '(?:'; // capture groups are irrelevant for splitting
      continue;
    }
    if (ch === ')') {
      if (depth === ignoreCaseDepth) ignoreCaseDepth = -1;
      depth--;
      out += ch;
      continue;
    }
    if (ignoreCaseDepth >= 0 && /\p{L}/u.test(ch)) {
      out += caseClass(ch);
      continue;
    }
    out += ch;
  }
  return new RegExp(out, 'gv');
}

/** Splits like HF `Split(behavior="Isolated")`: matches and the gaps between them become separate pieces. */
export function splitIsolated(text: string, re: RegExp): string[] {
  const pieces: string[] = [];
  let last = 0;
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m[0].length === 0) {
      re.lastIndex++;
      continue;
    }
    if (m.index > last) pieces.push(text.slice(last, m.index));
    pieces.push(m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) pieces.push(text.slice(last));
  return pieces;
}
