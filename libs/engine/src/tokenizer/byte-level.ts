/**
 * GPT-2 byte-level alphabet: every byte maps to a printable code point so BPE works on strings.
 * Printable Latin-1 bytes map to themselves; the rest are shifted to U+0100 and up, in byte order.
 */
function buildByteToChar(): string[] {
  const table: string[] = new Array(256);
  const isPrintable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(isPrintable(b) ? b : next++);
  return table;
}

export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

const encoder = new TextEncoder();

/** UTF-8 bytes of `text` as byte-level characters. */
export function toByteLevel(text: string): string {
  const bytes = encoder.encode(text);
  let out = '';
  for (const b of bytes) out += BYTE_TO_CHAR[b];
  return out;
}

/**
 * Bytes of a token string for decoding. Like the HF ByteLevel decoder, a token containing any character outside the
 * byte alphabet contributes its raw UTF-8 instead.
 */
export function tokenBytes(token: string): Uint8Array {
  const bytes: number[] = [];
  for (const ch of token) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b === undefined) return encoder.encode(token);
    bytes.push(b);
  }
  return Uint8Array.from(bytes);
}
