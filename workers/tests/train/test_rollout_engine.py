"""The batched static-cache rollout engine decodes exactly like the per-row reference decoder and like the previous
per-prompt loop (the dynamic engine): rows in and out of latent blocks, finishing at different steps, prompts of
different lengths in one batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lvr import decoding as D
from lvr import tokens as T
from lvr.backends import TorchBackend
from lvr.data.text import TextCodec
from lvr.lvr_state import LvrRule, LvrStateMachine, steps_transition
from lvr.preprocess import ImageConfig, build_prompt
from lvr.train import rollout as RO

from _train_helpers import load_model

N_STEPS = 3
MAX_NEW = 14
S, E = T.LVR_START_ID, T.IM_END_ID
# per row, forced tokens by completion index (the rest is greedy): latent blocks entered at different steps, one
# entered twice (the second cut by the length cap), a placeholder equal to EOS that must not end its row, and rows
# that stop at different steps or never
SCRIPTS = [{0: S, 6: E}, {2: S, 12: S}, {3: E}, {5: S, 6: E, 10: E}]


def _prompt(tiny_dir, data_dir, question: str):
    from PIL import Image

    codec = TextCodec.from_dir(tiny_dir)
    img = Image.open(data_dir / "a.png").convert("RGB")
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": question}]}]
    return build_prompt(messages, codec.tok, (tiny_dir / "chat_template.jinja").read_text(),
                        ImageConfig(min_pixels=3136, max_pixels=50176))


def _inputs(p) -> RO.PromptInputs:
    return RO.PromptInputs(torch.tensor([p.input_ids]), torch.from_numpy(p.pixel_values[0]),
                           torch.tensor([p.image_grids[0]]))


def _scripted_rollout(monkeypatch, scripts):
    real = RO.sample_next
    step = {"t": 0}

    def scripted(logits, cfg, history, generator, compiled=False):
        tok = real(logits, cfg, history, generator, compiled).clone()
        for row, script in enumerate(scripts):
            if step["t"] in script:
                tok[row] = script[step["t"]]
        step["t"] += 1
        return tok

    monkeypatch.setattr(RO, "sample_next", scripted)
    return step


def _reference(monkeypatch, model, prompt, script):
    real = D.pick_token
    n_prompt = len(prompt.input_ids)

    def scripted(logits, history, params, rng):
        tok = real(logits, history, params, rng)
        return script.get(len(history) - n_prompt, tok)

    monkeypatch.setattr(D, "pick_token", scripted)
    try:
        return D.generate(TorchBackend(model), prompt, D.SamplingParams(
            do_sample=False, repetition_penalty=1.0, max_new_tokens=MAX_NEW, eos_ids=(E,)), D.LVROptions(steps=N_STEPS))
    finally:
        monkeypatch.setattr(D, "pick_token", real)


GREEDY = RO.SamplingConfig(temperature=1.0, top_k=1, max_new_tokens=MAX_NEW, lvr_steps=N_STEPS)


def test_batched_rollout_equals_per_row_reference_decoding(tiny_dir, data_dir, monkeypatch):
    model = load_model(tiny_dir).eval()
    p = _prompt(tiny_dir, data_dir, "Hi?")
    step = _scripted_rollout(monkeypatch, SCRIPTS)
    (ro,) = RO.rollout_groups(model, [_inputs(p)], len(SCRIPTS), GREEDY, torch.Generator().manual_seed(0))
    assert step["t"] > 0
    lengths = []
    for row, script in enumerate(SCRIPTS):
        ref = _reference(monkeypatch, model, p, script)
        n = int(ro.completion_mask[row].sum())
        assert ro.completion_ids[row, :n].tolist() == ref.output_ids, f"row {row}"
        # the rollout's latent inputs are exactly the reference's (its mode after each forward)
        assert ro.latent_mask[row, :n].tolist() == [s.mode_after for s in ref.steps], f"row {row}"
        assert bool(ro.eos_found[row]) == (ref.finish_reason == "stop")
        lengths.append(n)
    blocks = [int(ro.latent_mask[r].sum()) for r in range(len(SCRIPTS))]
    assert blocks == [N_STEPS, N_STEPS + 1, 0, N_STEPS]         # the second block of row 1 is cut by the cap
    assert len(set(lengths)) == len(SCRIPTS) and max(lengths) == MAX_NEW == ro.completion_ids.shape[1]


def _assert_same(a: RO.Rollout, b: RO.Rollout):
    assert a.completion_ids.tolist() == b.completion_ids.tolist()
    assert a.latent_mask.tolist() == b.latent_mask.tolist()
    assert a.completion_mask.tolist() == b.completion_mask.tolist()
    assert a.eos_found.tolist() == b.eos_found.tolist()
    m = a.completion_mask
    assert torch.allclose(a.sample_logps[m], b.sample_logps[m], atol=1e-4)
    assert torch.allclose(a.hidden_in[m].float(), b.hidden_in[m].float(), atol=1e-4)


def test_static_engine_equals_dynamic_engine_across_prompts_of_different_lengths(tiny_dir, data_dir, monkeypatch):
    """Two prompts of different lengths in one static batch (greedy, with a repetition penalty, latent blocks run)
    give each prompt's dynamic-engine rollout."""
    model = load_model(tiny_dir).eval()
    prompts = [_inputs(_prompt(tiny_dir, data_dir, q)) for q in ("Hi?", "What colour is the largest square here?")]
    assert prompts[0].ids.shape[1] != prompts[1].ids.shape[1]
    cfg = RO.SamplingConfig(temperature=1.0, top_k=1, repetition_penalty=1.3, max_new_tokens=MAX_NEW,
                            lvr_steps=N_STEPS, force_first_token=S)
    static = RO.rollout_groups(model, prompts, 2, cfg, torch.Generator().manual_seed(0))
    dynamic = RO.rollout_groups(model, prompts, 2, RO.SamplingConfig(**{**cfg.__dict__, "engine": "dynamic"}),
                                torch.Generator().manual_seed(0))
    for a, b in zip(static, dynamic):
        assert a.latent_mask.any()
        _assert_same(a, b)


def test_static_engine_equals_dynamic_engine_when_sampling(tiny_dir, data_dir):
    """One prompt, sampled (temperature, top-k): the same generator gives the same completions, log-probs and
    recorded latents in both engines."""
    model = load_model(tiny_dir).eval()
    prompt = _inputs(_prompt(tiny_dir, data_dir, "Hi?"))
    cfg = RO.SamplingConfig(temperature=0.9, top_k=50, max_new_tokens=MAX_NEW, lvr_steps=N_STEPS,
                            force_first_token=S)
    (a,) = RO.rollout_groups(model, [prompt], 4, cfg, torch.Generator().manual_seed(3))
    (b,) = RO.rollout_groups(model, [prompt], 4, RO.SamplingConfig(**{**cfg.__dict__, "engine": "dynamic"}),
                             torch.Generator().manual_seed(3))
    assert len({tuple(r) for r in a.completion_ids.tolist()}) > 1     # the rows really were sampled apart
    _assert_same(a, b)


def test_unknown_engine_is_rejected(tiny_dir, data_dir):
    prompt = _inputs(_prompt(tiny_dir, data_dir, "Hi?"))
    with pytest.raises(ValueError, match="unknown rollout engine"):
        RO.rollout_groups(load_model(tiny_dir), [prompt], 2, RO.SamplingConfig(engine="vllm"))


def test_batched_steps_rule_equals_the_state_machine():
    """The tensor form of the `steps` rule used by the batched rollout follows LvrStateMachine row by row."""
    rng = np.random.default_rng(0)
    seqs = [[int(x) for x in rng.choice([S, 7, 8], 40, p=[0.2, 0.4, 0.4])] for _ in range(6)]
    machines = [LvrStateMachine(LvrRule("steps", 4)) for _ in seqs]
    mode = torch.zeros(len(seqs), dtype=torch.bool)
    remaining = torch.full((len(seqs),), 4)
    for t in range(40):
        tok = torch.tensor([s[t] for s in seqs])
        mode, remaining = steps_transition(mode, remaining, tok == S, 4, torch.where)
        assert mode.tolist() == [m.update(s[t]) for m, s in zip(machines, seqs)]


def test_completions_with_vision_tokens_replay_exactly(tiny_dir, data_dir, monkeypatch):
    """A sampled `<|image_pad|>` or `<|vision_start|>` in a completion is text, in the rollout and in the learning
    forward alike: teacher forcing reproduces the rollout's log-probs."""
    from lvr.train.losses import completion_logps

    model = load_model(tiny_dir).eval()
    prompt = _inputs(_prompt(tiny_dir, data_dir, "Hi?"))
    _scripted_rollout(monkeypatch, [{0: S, 5: T.IMAGE_PAD_ID, 6: T.VISION_START_ID}, {1: T.IMAGE_PAD_ID, 2: S}])
    (ro,) = RO.rollout_groups(model, [prompt], 2, GREEDY, torch.Generator().manual_seed(0))
    assert (ro.completion_ids == T.IMAGE_PAD_ID).sum() == 2 and ro.latent_mask.any()
    with torch.no_grad():
        replay = completion_logps(model, prompt.ids, ro.completion_ids, prompt.pixel_values, prompt.grid,
                                  ro.latent_mask, ro.latents(), temperature=1.0)
    m = ro.completion_mask
    assert torch.allclose(replay[m], ro.sample_logps[m], atol=1e-4)


def test_compiled_static_step_decodes_like_the_eager_one(tiny_dir, data_dir):
    """`compile_step` (the worker's default on CUDA) compiles the decoder layer and the per-token bookkeeping; the
    rollout is the eager one's: sampled rows, a latent block, two prompts of different lengths."""
    model = load_model(tiny_dir).eval()
    prompts = [_inputs(_prompt(tiny_dir, data_dir, q)) for q in ("Hi?", "What colour is the largest square here?")]
    cfg = RO.SamplingConfig(temperature=0.9, top_k=50, max_new_tokens=MAX_NEW, lvr_steps=N_STEPS, force_first_token=S)
    eager = RO.rollout_groups(model, prompts, 2, cfg, torch.Generator().manual_seed(5))
    compiled = RO.rollout_groups(model, prompts, 2, RO.SamplingConfig(**{**cfg.__dict__, "compile_step": True}),
                                 torch.Generator().manual_seed(5))
    for a, b in zip(compiled, eager):
        assert a.latent_mask.any()
        _assert_same(a, b)


def test_batched_prefill_equals_each_prompt_alone(tiny_dir, data_dir, monkeypatch):
    """The step's prompts prefilled together (one vision call, one right-padded text forward; split into forwards of
    at most `max_tokens` padded tokens) give each prompt's own batch-1 prefill: hidden state, logits, cache, delta."""
    model = load_model(tiny_dir).eval()
    prompts = [_inputs(_prompt(tiny_dir, data_dir, q)) for q in
               ("Hi?", "What colour is the largest square here?", "Count the shapes, please.")]
    dec = _decoder(model, prompts)
    alone = [RO.prefill_prompts(model, [p], dec)[0] for p in prompts]
    longest = max(int(p.ids.shape[1]) for p in prompts)
    calls = []
    real = RO.visual_features
    monkeypatch.setattr(RO, "visual_features", lambda m, pv, grid: calls.append(len(grid)) or real(m, pv, grid))
    for max_tokens, images in ((10 ** 6, [3]), (2 * longest, [2, 1])):   # one forward; two (2 + 1 prompts)
        calls.clear()
        together = RO.prefill_prompts(model, prompts, dec, max_tokens=max_tokens)
        assert len(together) == 3 and calls == images
        for a, b, p in zip(together, alone, prompts):
            assert a.keys[0].shape[2] == p.ids.shape[1]
            assert torch.allclose(a.h, b.h, atol=1e-5) and torch.allclose(a.logits, b.logits, atol=1e-4)
            assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(a.keys + a.values, b.keys + b.values))
            assert torch.equal(a.delta, b.delta)


def _decoder(model, prompts, compile_layer: bool = False):
    from lvr.train.decode_step import static_decoder

    longest = max(int(p.ids.shape[1]) for p in prompts)
    return static_decoder(model, 2, longest + MAX_NEW, torch.float32, torch.device("cpu"), graph=False,
                          compile_layer=compile_layer)


@pytest.mark.parametrize("compile_layer", [False, True])
def test_decoder_prefill_equals_transformers_forward(tiny_dir, data_dir, compile_layer):
    """The decoder's own prefill (its weight copies, fused projections, M-RoPE from the positions; compiled or not)
    gives transformers' text forward over a DynamicCache: last hidden state, logits and every layer's cache."""
    from transformers import DynamicCache

    from lvr.train.losses import embed_inputs, visual_features

    model = load_model(tiny_dir).eval()
    prompts = [_inputs(_prompt(tiny_dir, data_dir, q)) for q in ("Hi?", "What colour is the largest square here?")]
    dec = _decoder(model, prompts, compile_layer)
    layer_calls = []
    own_layer = dec.prefill_fn
    dec.prefill_fn = lambda *a: layer_calls.append(1) or own_layer(*a)
    together = RO.prefill_prompts(model, prompts, dec)
    dec.prefill_fn = own_layer
    assert len(layer_calls) == model.config.get_text_config().num_hidden_layers   # one batched forward, every layer
    for pre, p in zip(together, prompts):
        with torch.no_grad():
            emb = embed_inputs(model, p.ids, visual_features(model, p.pixel_values, p.grid))
            pos, delta = model.model.get_rope_index(p.ids, mm_token_type_ids=(p.ids == T.IMAGE_PAD_ID).int(),
                                                    image_grid_thw=p.grid)
            cache = DynamicCache(config=model.config.get_text_config())
            out = model.model.language_model(inputs_embeds=emb, position_ids=pos, past_key_values=cache,
                                             use_cache=True)
            h = out.last_hidden_state[:, -1]
            logits = model.lm_head(h)
        assert torch.allclose(pre.h, h, atol=1e-5) and torch.allclose(pre.logits, logits, atol=1e-4)
        assert torch.equal(pre.delta, delta.reshape(1, 1))
        for layer, k, v in zip(cache.layers, pre.keys, pre.values):
            assert k.shape == layer.keys.shape
            assert torch.allclose(k, layer.keys, atol=1e-5) and torch.allclose(v, layer.values, atol=1e-5)
