import { CodePointRanges, LETTERS_ONLY_ICU, NFC_INERT, NUMBERS_ONLY_ICU } from './unicode-compat';

function hex(cp: number): string {
  return `\\u{${cp.toString(16)}}`;
}

/** A v-mode class body listing `ranges`. */
function classBody(ranges: CodePointRanges): string {
  return ranges.map((r) => (typeof r === 'number' ? hex(r) : `${hex(r[0])}-${hex(r[1])}`)).join('');
}

/** `\p{L}` / `\p{N}` restricted to what Python `tokenizers` (Oniguruma) considers letters / numbers. */
export const PROPERTY_CLASSES: Record<string, string> = {
  '\\p{L}': `[\\p{L}--[${classBody(LETTERS_ONLY_ICU)}]]`,
  '\\p{N}': `[\\p{N}--[${classBody(NUMBERS_ONLY_ICU)}]]`,
};

function toSet(ranges: CodePointRanges): Set<number> {
  const set = new Set<number>();
  for (const r of ranges) {
    if (typeof r === 'number') set.add(r);
    else for (let cp = r[0]; cp <= r[1]; cp++) set.add(cp);
  }
  return set;
}

const INERT = toSet(NFC_INERT);
const INERT_RE = new RegExp(`[${classBody(NFC_INERT)}]`, 'v');

/**
 * NFC as the Rust normalizer in `tokenizers` computes it: code points that only newer Unicode data treats as
 * combining or decomposable are inert starters there, so they are kept verbatim and nothing reorders or composes
 * across them.
 */
export function nfcCompat(text: string): string {
  if (!INERT_RE.test(text)) return text.normalize('NFC');
  let out = '';
  let run = '';
  for (const ch of text) {
    if (INERT.has(ch.codePointAt(0)!)) {
      out += run.normalize('NFC') + ch;
      run = '';
    } else run += ch;
  }
  return out + run.normalize('NFC');
}
