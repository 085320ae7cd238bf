import { AddedToken, AddedTokenMatcher } from './added-tokens';
import { BpeModel } from './bpe';
import { toByteLevel, tokenBytes } from './byte-level';
import { splitIsolated, translatePattern } from './pattern';
import { nfcCompat } from './unicode';

/** The subset of HF tokenizer.json this engine understands (Qwen2 family: NFC + regex split + byte-level BPE). */
interface TokenizerJson {
  added_tokens?: Array<{
    id: number;
    content: string;
    special?: boolean;
    normalized?: boolean;
    lstrip?: boolean;
    rstrip?: boolean;
    single_word?: boolean;
  }>;
  normalizer?: { type: string } | null;
  pre_tokenizer?: { type: string; pretokenizers?: Array<Record<string, unknown>> } | null;
  model: {
    type: string;
    vocab: Record<string, number>;
    merges: Array<string | [string, string]>;
    dropout?: number | null;
    byte_fallback?: boolean;
    continuing_subword_prefix?: string | null;
    end_of_word_suffix?: string | null;
    ignore_merges?: boolean;
  };
}

export class TokenizerConfigError extends Error {}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

/**
 * Hugging Face `tokenizer.json` tokenizer for byte-level BPE models. Encode and decode are identical to Python
 * `tokenizers` (verified against it in tests). Input strings with lone UTF-16 surrogates are made well-formed
 * first (each lone surrogate becomes U+FFFD), which is what any UTF-8 transport of the string does.
 */
export class Tokenizer {
  private readonly model: BpeModel;
  private readonly splitRe: RegExp;
  private readonly rawAdded: AddedTokenMatcher;
  private readonly normalizedAdded: AddedTokenMatcher;
  private readonly nfc: boolean;
  private readonly idToToken: string[] = [];
  private readonly addedById = new Map<number, AddedToken>();
  private readonly tokenToId = new Map<string, number>();

  constructor(json: TokenizerJson) {
    const m = json.model;
    if (m?.type !== 'BPE') throw new TokenizerConfigError(`model.type must be BPE, got ${m?.type}`);
    if (m.dropout) throw new TokenizerConfigError('BPE dropout is not supported');
    if (m.byte_fallback) throw new TokenizerConfigError('byte_fallback is not supported');
    if (m.continuing_subword_prefix || m.end_of_word_suffix) {
      throw new TokenizerConfigError('continuing_subword_prefix / end_of_word_suffix are not supported');
    }
    if (m.ignore_merges) throw new TokenizerConfigError('ignore_merges is not supported');
    const normType = json.normalizer?.type;
    if (normType !== undefined && normType !== 'NFC') {
      throw new TokenizerConfigError(`normalizer ${normType} is not supported (only NFC or none)`);
    }
    this.nfc = normType === 'NFC';
    this.splitRe = parsePreTokenizer(json.pre_tokenizer);

    const vocab = new Map<string, number>();
    for (const [tok, id] of Object.entries(m.vocab)) {
      vocab.set(tok, id);
      this.idToToken[id] = tok;
      this.tokenToId.set(tok, id);
    }
    this.model = new BpeModel(vocab, m.merges);

    const added: AddedToken[] = (json.added_tokens ?? []).map((t) => ({
      id: t.id,
      content: t.content,
      special: t.special ?? false,
      normalized: t.normalized ?? !(t.special ?? false),
      lstrip: t.lstrip ?? false,
      rstrip: t.rstrip ?? false,
      singleWord: t.single_word ?? false,
    }));
    for (const t of added) {
      this.addedById.set(t.id, t);
      this.idToToken[t.id] = t.content;
      this.tokenToId.set(t.content, t.id);
    }
    this.rawAdded = new AddedTokenMatcher(added.filter((t) => !t.normalized));
    this.normalizedAdded = new AddedTokenMatcher(added.filter((t) => t.normalized));
  }

  static fromJSON(text: string): Tokenizer {
    return new Tokenizer(JSON.parse(text) as TokenizerJson);
  }

  /** Highest id + 1 over vocabulary and added tokens. */
  get size(): number {
    return this.idToToken.length;
  }

  tokenId(token: string): number | undefined {
    return this.tokenToId.get(token);
  }

  idToTokenString(id: number): string | undefined {
    return this.idToToken[id];
  }

  isSpecial(id: number): boolean {
    return this.addedById.get(id)?.special ?? false;
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    for (const seg of this.rawAdded.split(toWellFormed(text))) {
      if ('id' in seg) {
        ids.push(seg.id);
        continue;
      }
      const normalized = this.nfc ? nfcCompat(seg.text) : seg.text;
      for (const inner of this.normalizedAdded.split(normalized)) {
        if ('id' in inner) ids.push(inner.id);
        else
          for (const piece of splitIsolated(inner.text, this.splitRe))
            ids.push(...this.model.encodeWord(toByteLevel(piece)));
      }
    }
    return ids;
  }

  /** Bytes a token contributes to decoded text (empty when skipped). */
  tokenBytes(id: number, options: DecodeOptions = {}): Uint8Array {
    const added = this.addedById.get(id);
    if (added?.special && (options.skipSpecialTokens ?? false)) return new Uint8Array(0);
    const token = this.idToToken[id];
    if (token === undefined) return new Uint8Array(0); // HF skips ids it does not know
    return tokenBytes(token);
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const parts = ids.map((id) => this.tokenBytes(id, options));
    const total = parts.reduce((n, p) => n + p.length, 0);
    const all = new Uint8Array(total);
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    return new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(all);
  }
}

/** Replaces lone UTF-16 surrogates with U+FFFD (String.prototype.toWellFormed, typed for ES2023). */
export function toWellFormed(text: string): string {
  return (text as string & { toWellFormed(): string }).toWellFormed();
}

function parsePreTokenizer(pre: TokenizerJson['pre_tokenizer']): RegExp {
  if (!pre || pre.type !== 'Sequence' || !pre.pretokenizers || pre.pretokenizers.length !== 2) {
    throw new TokenizerConfigError('pre_tokenizer must be Sequence[Split, ByteLevel(use_regex=false)]');
  }
  const [split, byteLevel] = pre.pretokenizers;
  const pattern = (split.pattern as { Regex?: string } | undefined)?.Regex;
  if (
    split.type !== 'Split' ||
    split.behavior !== 'Isolated' ||
    split.invert ||
    typeof pattern !== 'string'
  ) {
    throw new TokenizerConfigError('pre_tokenizer[0] must be Split(Regex, Isolated, invert=false)');
  }
  if (byteLevel.type !== 'ByteLevel' || byteLevel.use_regex || byteLevel.add_prefix_space) {
    throw new TokenizerConfigError(
      'pre_tokenizer[1] must be ByteLevel(add_prefix_space=false, use_regex=false)',
    );
  }
  return translatePattern(pattern);
}

/**
 * Streams decoded text token by token. Concatenating every `push` plus the final `flush` equals
 * `decode(allIds)`: incomplete UTF-8 sequences are held back until the next bytes arrive.
 */
export class StreamDecoder {
  private readonly decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly options: DecodeOptions = {},
  ) {}

  push(id: number): string {
    return this.decoder.decode(this.tokenizer.tokenBytes(id, this.options), { stream: true });
  }

  flush(): string {
    return this.decoder.decode();
  }
}
