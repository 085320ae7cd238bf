"""The LVR decoding state machines (LVR-SPEC §4) on a scripted backend, plus the §8 defect choices."""

import numpy as np
import pytest

from lvr import tokens as T
from lvr.decoding import (LVROptions, NonTerminatingDecode, SamplingParams, apply_repetition_penalty, generate,
                          pick_token)
from lvr.preprocess import Prompt

H = 4
V = 151700
GREEDY = SamplingParams(max_new_tokens=64, do_sample=False, repetition_penalty=1.0)
S, E, LE, EOS = T.LVR_START_ID, T.LVR_END_ID, T.LVR_LATENT_END_ID, T.IM_END_ID


class ScriptedBackend:
    """Emits script[i] at forward i (one-hot logits); records every forward's inputs. Hidden = unique per forward."""

    def __init__(self, script, latent_end=None, head=False):
        self.script = list(script)
        self.latent_end_emb = latent_end
        self.has_head = head
        self.calls = []
        self.head_calls = 0

    def reset(self):
        self.calls.clear()

    def embed(self, ids):
        out = np.zeros((1, len(ids), H), np.float32)
        out[0, :, 0] = ids
        return out

    def vision(self, rgb, pixel_values=None):
        raise AssertionError("no images in these tests")

    def forward(self, x, mask, pos):
        i = len(self.calls)
        self.calls.append({"x": x.copy(), "mask": mask.copy(), "pos": pos.copy()})
        logits = np.zeros(V, np.float32)
        logits[self.script[min(i, len(self.script) - 1)]] = 10.0
        return logits, np.full((1, H), -(i + 1), np.float32)

    def head(self, h):
        self.head_calls += 1
        logits = np.zeros(V, np.float32)
        logits[self.script[len(self.calls) - 1]] = 10.0
        return h * 2, logits


def _kinds(res):
    return [s.input_kind for s in res.steps]


def test_steps_trace_of_spec_4_2():
    """prompt -> <|lvr_start|> -> N=4 latent forwards fed h(start), h(l1), h(l2), h(l3) -> first real token."""
    a, b, c, d, x = 11, 12, 13, 14, 15
    be = ScriptedBackend([S, a, b, c, d, E, x, EOS])
    res = generate(be, Prompt([1, 2, 3]), GREEDY, LVROptions(strategy="steps", steps=4))
    assert res.output_ids == [S, a, b, c, d, E, x, EOS]
    assert _kinds(res) == ["prefill", "text", "latent", "latent", "latent", "latent", "text", "text"]
    assert res.latent_steps == 4 and res.finish_reason == "stop"
    # the 4 latent inputs are exactly the previous forwards' hidden states, unchanged
    for k in range(2, 6):
        assert np.array_equal(be.calls[k]["x"].reshape(1, H), np.full((1, H), -k, np.float32))
    # placeholders a..d are never embedded; <|lvr_start|> and <|lvr_end|> are
    assert be.calls[1]["x"][0, 0, 0] == S and be.calls[6]["x"][0, 0, 0] == E
    # positions: cache index c + rope_delta (0 for text-only prompts) on all three axes, latents included
    assert [int(cl["pos"][0, 0, 0]) for cl in be.calls[1:]] == [3, 4, 5, 6, 7, 8, 9]
    assert all((cl["pos"] == cl["pos"][0]).all() for cl in be.calls[1:])
    assert [cl["mask"].shape[1] for cl in be.calls] == [3, 4, 5, 6, 7, 8, 9, 10]


def appendix_b(backend, prompt_ids, n, max_new=64):
    """LVR-SPEC Appendix B pseudocode, transcribed independently (greedy, no penalty)."""
    backend.reset()
    logits, h = backend.forward(backend.embed(prompt_ids), np.ones((1, len(prompt_ids)), np.int64),
                                np.tile(np.arange(len(prompt_ids)), (3, 1, 1)))
    tok = int(np.argmax(logits))
    mode, remaining, out = False, n, []
    while len(out) < max_new:
        out.append(tok)
        if not mode and tok in T.EOS_IDS:
            break
        x = h.reshape(1, 1, H) if mode else backend.embed([tok])
        c = len(prompt_ids) + len(out) - 1
        logits, h_new = backend.forward(x, np.ones((1, c + 1), np.int64), np.full((3, 1, 1), c))
        entered = (not mode) and tok == S
        if entered:
            remaining = n
        elif mode:
            remaining -= 1
        mode = (mode or entered) and remaining > 0
        h = h_new
        tok = int(np.argmax(logits))
    return out, [cl["x"] for cl in backend.calls]


@pytest.mark.parametrize("script,n", [
    ([S, 20, 21, LE, E, 30, S, 22, 23, E, 31, EOS], 2),  # re-entry after exit by quota
    ([5, 6, S, S, S, S, S, 7, EOS], 3),  # placeholders equal to <|lvr_start|> do not re-arm the quota
    ([S, EOS, EOS, EOS, 9, EOS], 3),  # EOS sampled as a placeholder does not stop decoding
    ([S, 1, 2, 3, 4, 5, 6, 7, 8, 9, EOS], 1),
])
def test_steps_matches_appendix_b(script, n):
    ours = ScriptedBackend(script)
    res = generate(ours, Prompt([7, 8]), GREEDY, LVROptions(strategy="steps", steps=n))
    ref = ScriptedBackend(script)
    out, xs = appendix_b(ref, [7, 8], n)
    assert res.output_ids == out
    assert len(ours.calls) == len(xs)
    for a, b in zip(ours.calls, xs):
        assert np.array_equal(a["x"], b)


def test_placeholder_eos_does_not_stop_but_real_eos_does():
    res = generate(ScriptedBackend([S, EOS, EOS, 9, EOS]), Prompt([1]), GREEDY, LVROptions(steps=2))
    assert res.output_ids == [S, EOS, EOS, 9, EOS]
    assert _kinds(res) == ["prefill", "text", "latent", "latent", "text"]


def test_max_new_tokens_in_latent_mode_fixed_by_default_and_upstream_compat_reproduces():
    script = [S, 1, 2, 3, 4, 5, 6, 7, 8, EOS]
    params = SamplingParams(max_new_tokens=3, do_sample=False, repetition_penalty=1.0)
    fixed = generate(ScriptedBackend(script), Prompt([1]), params, LVROptions(steps=6))
    assert fixed.output_ids == [S, 1, 2] and fixed.finish_reason == "length"
    compat = generate(ScriptedBackend(script), Prompt([1]), params, LVROptions(steps=6, upstream_compat=True))
    # upstream: the length limit is ignored while in LVR mode; it stops at the first check after the block
    assert compat.output_ids == [S, 1, 2, 3, 4, 5, 6, 7] and compat.finish_reason == "length"
    assert compat.latent_steps == 6


def test_end_token_exits_on_sampled_lvr_end_and_is_capped_by_default():
    res = generate(ScriptedBackend([S, 1, 2, E, 9, EOS]), Prompt([1]), GREEDY,
                   LVROptions(strategy="end_token", steps=8))
    assert res.output_ids == [S, 1, 2, E, 9, EOS]
    assert _kinds(res) == ["prefill", "text", "latent", "latent", "text", "text"]  # <|lvr_end|> is fed as text
    never_ends = [S] + [3] * 200 + [EOS]
    capped = generate(ScriptedBackend(never_ends), Prompt([1]), GREEDY, LVROptions(strategy="end_token", steps=5))
    assert capped.latent_steps == 5
    with pytest.raises(NonTerminatingDecode):
        generate(ScriptedBackend(never_ends), Prompt([1]), GREEDY,
                 LVROptions(strategy="end_token", steps=5, upstream_compat=True, safety_limit=100))


def test_latent_strategy_threshold_and_cap():
    end_vec = np.full(H, -3.0, np.float32)  # equals the hidden state of forward 3 (h = -(i+1))
    script = [S, 1, 2, 3, 4, 5, 6, EOS]
    res = generate(ScriptedBackend(script, latent_end=end_vec), Prompt([1]), GREEDY,
                   LVROptions(strategy="latent", steps=10, threshold=0.02))
    # forward i outputs h_i = -(i+1). Forward 1 consumes <|lvr_start|>; forward 2 is fed h_1 = -2; forward 3 is fed
    # h_2 = -3 == end vector -> mode turns off after forward 3, and the token sampled there is fed as text
    assert _kinds(res) == ["prefill", "text", "latent", "latent", "text", "text", "text", "text"]
    capped = generate(ScriptedBackend(script, latent_end=np.full(H, 99.0, np.float32)), Prompt([1]), GREEDY,
                      LVROptions(strategy="latent", steps=2))
    assert capped.latent_steps == 2
    with pytest.raises(ValueError, match="latent_end_token"):
        generate(ScriptedBackend(script), Prompt([1]), GREEDY, LVROptions(strategy="latent"))


def test_head_applied_only_when_mode_was_on_at_input():
    be = ScriptedBackend([S, 1, 2, 9, EOS], head=True)
    res = generate(be, Prompt([1]), GREEDY, LVROptions(steps=2))
    assert be.head_calls == 2  # the two latent forwards, not the <|lvr_start|> forward (LVR-SPEC §4.5)
    assert np.array_equal(be.calls[2]["x"].reshape(1, H), np.full((1, H), -2, np.float32))  # raw h(start)
    assert np.array_equal(be.calls[3]["x"].reshape(1, H), np.full((1, H), -6, np.float32))  # head(h) = 2h
    assert res.output_ids == [S, 1, 2, 9, EOS]


def test_prompt_ending_in_lvr_start_enters_latent_mode_like_upstream():
    res = generate(ScriptedBackend([1, 2, 9, EOS]), Prompt([5, S]), GREEDY, LVROptions(steps=2))
    assert _kinds(res) == ["prefill", "latent", "latent", "text"]


def test_repetition_penalty_history_includes_placeholders():
    logits = np.array([2.0, -2.0, 1.0, 3.0], np.float32)
    pen = apply_repetition_penalty(logits, [0, 1, 1], 2.0)
    assert pen.tolist() == [1.0, -4.0, 1.0, 3.0]
    # a placeholder (id 3) in the history flips the argmax, as upstream
    assert pick_token(logits, [], GREEDY_PEN, None) == 3
    assert pick_token(logits, [3], SamplingParams(do_sample=False, repetition_penalty=2.0), None) == 0


GREEDY_PEN = SamplingParams(do_sample=False, repetition_penalty=2.0)


def test_sampling_is_seeded_and_top_k_restricts():
    logits = np.array([1.0, 1.0, 1.0, -5.0], np.float32)
    p = SamplingParams(do_sample=True, temperature=1.0, top_k=3, top_p=1.0, repetition_penalty=1.0)
    draws = {pick_token(logits, [], p, np.random.default_rng(s)) for s in range(40)}
    assert draws == {0, 1, 2}
    with pytest.raises(ValueError):
        LVROptions(strategy="bogus")
