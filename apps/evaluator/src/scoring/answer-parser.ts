import type { BenchmarkOption } from '@lvr/data';

/**
 * The upstream LVR extraction (`evaluation.accuracy_reward`, LVR-SPEC.md §6), reproduced exactly: text after the
 * last `<answer>`, before the first `</answer`, stripped; first whitespace-delimited word; its first character.
 * Without `<answer>` the whole response goes through the same steps (and usually scores as wrong).
 */
export function upstreamLvrAnswer(raw: string): string {
  const start = raw.lastIndexOf('<answer>');
  let text = start >= 0 ? raw.slice(start + '<answer>'.length) : raw;
  const end = text.indexOf('</answer');
  if (end >= 0) text = text.slice(0, end);
  text = text.trim();
  if (text.includes(' ')) text = text.split(' ')[0];
  return text.length > 1 ? text[0] : text;
}

export function hasAnswerTag(raw: string): boolean {
  return raw.includes('<answer>');
}

export type ParseMethod = 'answer-tag' | 'letter' | 'option-text' | 'open-text' | 'none';

export interface ParsedAnswer {
  /** The chosen option letter (or the normalised open answer); null when nothing could be read. */
  answer: string | null;
  method: ParseMethod;
}

const LETTER_PATTERNS = [
  // "A", "A.", "(A)", "A)", "[A]", "A: red" at the start; not the article in "A cat sits..."
  /^\s*[([]?([A-Z])(?:[)\].:]|$|\s+(?![a-z]))/,
  // "Answer: A", "The answer is (B)", "answer is: C."
  /\b[Aa]nswer(?:\s+is)?\s*[:：]?\s*[([]?([A-Z])(?:[)\].,:]|\s|$)/,
  // "Option B", "choice (C)"
  /\b(?:[Oo]ption|[Cc]hoice)\s*[([]?([A-Z])(?:[)\].,:]|\s|$)/,
];

function normalise(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

function readLetter(text: string, letters: string[]): string | null {
  for (const pattern of LETTER_PATTERNS) {
    const match = pattern.exec(text);
    if (match && letters.includes(match[1])) return match[1];
  }
  return null;
}

/** The one option whose text the answer states exactly (after normalising case and punctuation), if exactly one. */
function readOptionText(text: string, options: BenchmarkOption[]): string | null {
  const said = normalise(text);
  if (!said) return null;
  const exact = options.filter((o) => normalise(o.text) === said);
  if (exact.length === 1) return exact[0].letter;
  const contained = options.filter((o) => {
    const option = normalise(o.text);
    return option.length > 0 && ` ${said} `.includes(` ${option} `);
  });
  return contained.length === 1 ? contained[0].letter : null;
}

/**
 * Robust reading of a multiple-choice answer: the `<answer>` tag content when present, else the whole text; a
 * letter (A, (A), A., "the answer is A"), else the text of exactly one option. Anything else is unparseable and is
 * counted as such, never guessed.
 */
export function parseAnswer(raw: string, options: BenchmarkOption[]): ParsedAnswer {
  const tagged = hasAnswerTag(raw);
  const start = raw.lastIndexOf('<answer>');
  let text = tagged ? raw.slice(start + '<answer>'.length) : raw;
  const end = text.indexOf('</answer');
  if (end >= 0) text = text.slice(0, end);
  text = text.trim();
  if (options.length === 0) {
    const open = normalise(text);
    return open
      ? { answer: open, method: tagged ? 'answer-tag' : 'open-text' }
      : { answer: null, method: 'none' };
  }
  const letters = options.map((o) => o.letter);
  const letter = readLetter(text, letters);
  if (letter) return { answer: letter, method: tagged ? 'answer-tag' : 'letter' };
  const byText = readOptionText(text, options);
  if (byText) return { answer: byText, method: tagged ? 'answer-tag' : 'option-text' };
  return { answer: null, method: 'none' };
}

/** Correctness under the robust reading: letters compare exactly, open answers after normalising. */
export function isCorrect(parsed: ParsedAnswer, expected: string, options: BenchmarkOption[]): boolean {
  if (parsed.answer === null) return false;
  return options.length > 0 ? parsed.answer === expected : parsed.answer === normalise(expected);
}
