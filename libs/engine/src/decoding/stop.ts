/**
 * Stop-string detection over streamed text: text that could still become a stop string is held back, so the
 * caller never streams characters that a later match removes.
 */
export class StopStringMatcher {
  private text = '';
  private emitted = 0;
  private readonly holdBack: number;

  constructor(private readonly stops: readonly string[]) {
    this.holdBack = stops.reduce((m, s) => Math.max(m, s.length - 1), 0);
  }

  /** Adds decoded text; returns the text safe to emit and the matched stop string, if any. */
  push(piece: string): { text: string; stop?: string } {
    this.text += piece;
    let best = -1;
    let matched: string | undefined;
    for (const s of this.stops) {
      if (!s) continue;
      const at = this.text.indexOf(s, Math.max(0, this.emitted - s.length));
      if (at >= 0 && (best < 0 || at < best)) {
        best = at;
        matched = s;
      }
    }
    if (matched !== undefined) {
      const out = this.text.slice(this.emitted, Math.max(best, this.emitted));
      this.emitted = this.text.length;
      return { text: out, stop: matched };
    }
    const safe = Math.max(this.emitted, this.text.length - this.holdBack);
    const out = this.text.slice(this.emitted, safe);
    this.emitted = safe;
    return { text: out };
  }

  /** Remaining held-back text at the end of generation. */
  flush(): string {
    const out = this.text.slice(this.emitted);
    this.emitted = this.text.length;
    return out;
  }
}
