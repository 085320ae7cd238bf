import type { LatentCriterion, LvrStrategy } from '../types';

export interface LvrConfig {
  strategy: LvrStrategy;
  steps: number;
  criterion: LatentCriterion;
  threshold: number;
  upstreamCompat: boolean;
  lvrStartId: number;
  lvrEndId: number;
}

/** Distance between a fed latent and the learned latent-end vector (reference `_criterion`). */
export function latentDistance(name: LatentCriterion, a: Float32Array, b: Float32Array): number {
  let acc = 0;
  if (name === 'cosine') {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let i = 0; i < a.length; i++) {
      ab += a[i] * b[i];
      aa += a[i] * a[i];
      bb += b[i] * b[i];
    }
    return 1 - ab / Math.max(Math.sqrt(aa) * Math.sqrt(bb), 1e-12);
  }
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    acc += name === 'mse' ? d * d : Math.abs(d);
  }
  return acc / a.length;
}

/**
 * The LVR mode update of LVR-SPEC §4.2–4.4, run after each forward with the token that was that forward's input.
 * `mode` says whether the *next* input is the hidden state.
 */
export class LvrStateMachine {
  mode = false;
  private remaining: number;
  private counter = 0;

  /** @param latentEnd the bundle's learned latent-end vector (`latent` strategy only) */
  constructor(
    private readonly cfg: LvrConfig,
    private readonly latentEnd?: Float32Array,
  ) {
    this.remaining = cfg.steps;
  }

  /**
   * Whether a latent fed into a forward is close enough to the latent-end vector to close the block (`latent`
   * strategy; LVR-SPEC §4.3). Without a fed latent, or for other strategies, the block never ends this way.
   */
  reachedLatentEnd(fedLatent: Float32Array | undefined): boolean {
    if (this.cfg.strategy !== 'latent' || fedLatent === undefined || this.latentEnd === undefined)
      return false;
    return latentDistance(this.cfg.criterion, fedLatent, this.latentEnd) < this.cfg.threshold;
  }

  /**
   * The update after a forward, with the latent that was fed into it (the previous forward's hidden state, as
   * float32) so the latent-end check is part of the rule rather than of the loop.
   */
  afterForward(tokIn: number, tok: number, fedLatent: Float32Array | undefined): boolean {
    return this.update(tokIn, tok, this.reachedLatentEnd(fedLatent));
  }

  /**
   * The modes the next `depth` `afterForward` calls will return, the first with input `tokIn` and fed latent
   * `fedLatent`, the later ones with inputs and latents not known yet, as far as no token or latent still to come can
   * change them (a block that a picked `<|lvr_end|>` closes stops the list). Changes no state.
   */
  forecast(tokIn: number, fedLatent: Float32Array | undefined, depth: number): boolean[] {
    const { lvrStartId, lvrEndId, strategy } = this.cfg;
    let states: LvrStateMachine[] = [this];
    const modes: boolean[] = [];
    for (let i = 0; i < depth; i++) {
      // update() only asks whether the input is <|lvr_start|> and the pick <|lvr_end|>: -1 stands for any other.
      const inputs = i === 0 ? [tokIn] : [lvrStartId, -1];
      const ends =
        i === 0 ? [this.reachedLatentEnd(fedLatent)] : strategy === 'latent' ? [false, true] : [false];
      const next: LvrStateMachine[] = [];
      for (const state of states)
        for (const input of inputs)
          for (const end of ends)
            for (const tok of [lvrEndId, -1]) {
              const branch = state.clone();
              branch.update(input, tok, end);
              next.push(branch);
            }
      if (next.some((b) => b.mode !== next[0].mode)) break;
      modes.push(next[0].mode);
      states = next;
    }
    return modes;
  }

  private clone(): LvrStateMachine {
    return Object.assign(Object.create(LvrStateMachine.prototype), this) as LvrStateMachine;
  }

  /**
   * @param tokIn token that was this forward's input (the prompt's last token after prefill)
   * @param tok token picked from this forward's logits
   * @param endReached (`latent`) whether the latent fed into this forward is within threshold of the end vector
   */
  update(tokIn: number, tok: number, endReached = false): boolean {
    const { strategy, steps } = this.cfg;
    const start = tokIn === this.cfg.lvrStartId;
    if (strategy === 'none') {
      this.mode = false;
    } else if (strategy === 'steps') {
      const next = this.mode || start;
      if (!this.mode && next) this.remaining = steps;
      if (this.mode) this.remaining -= 1;
      this.mode = next && this.remaining > 0;
    } else if (strategy === 'latent') {
      this.counter = start ? 0 : this.counter + (this.mode ? 1 : 0);
      this.mode = (this.mode || start) && !endReached && this.counter < steps;
    } else {
      this.counter = start ? 0 : this.counter + (this.mode ? 1 : 0);
      const capped = !this.cfg.upstreamCompat && this.counter >= steps;
      this.mode = (this.mode || start) && tok !== this.cfg.lvrEndId && !capped;
    }
    return this.mode;
  }
}
