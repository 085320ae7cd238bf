/** An entry of tokenizer.json `added_tokens`. */
export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  normalized: boolean;
  lstrip: boolean;
  rstrip: boolean;
  singleWord: boolean;
}

/** A piece of input: either an added token (by id) or plain text still to be normalised and BPE-encoded. */
export type Segment = { id: number } | { text: string };

const WHITE_SPACE = /[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]/u;

/**
 * Leftmost-longest matcher for added tokens (what HF's Aho-Corasick `LeftmostLongest` trie does), with the
 * lstrip/rstrip whitespace absorption of `AddedToken`.
 */
export class AddedTokenMatcher {
  private readonly byFirstChar = new Map<string, AddedToken[]>();

  constructor(tokens: readonly AddedToken[]) {
    for (const token of tokens) {
      if (token.content.length === 0) continue;
      if (token.singleWord) throw new Error(`added token ${token.content}: single_word is not supported`);
      const first = token.content[0];
      const list = this.byFirstChar.get(first) ?? [];
      list.push(token);
      list.sort((a, b) => b.content.length - a.content.length);
      this.byFirstChar.set(first, list);
    }
  }

  get empty(): boolean {
    return this.byFirstChar.size === 0;
  }

  split(text: string): Segment[] {
    if (this.empty) return text.length ? [{ text }] : [];
    const out: Segment[] = [];
    let plainStart = 0;
    let i = 0;
    while (i < text.length) {
      const match = this.matchAt(text, i);
      if (!match) {
        i++;
        continue;
      }
      let start = i;
      let end = i + match.content.length;
      if (match.lstrip) while (start > plainStart && WHITE_SPACE.test(text[start - 1])) start--;
      if (match.rstrip) while (end < text.length && WHITE_SPACE.test(text[end])) end++;
      if (start > plainStart) out.push({ text: text.slice(plainStart, start) });
      out.push({ id: match.id });
      plainStart = end;
      i = end;
    }
    if (plainStart < text.length) out.push({ text: text.slice(plainStart) });
    return out;
  }

  private matchAt(text: string, i: number): AddedToken | undefined {
    const candidates = this.byFirstChar.get(text[i]);
    if (!candidates) return undefined;
    return candidates.find((t) => text.startsWith(t.content, i));
  }
}
