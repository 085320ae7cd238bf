"""GRPO_latent: rollouts record and replay latents exactly; one step raises the rewarded completion's log-prob;
rewards; upstream loss mask."""

from __future__ import annotations

import pytest
import torch

from lvr import tokens as T
from lvr.data.records import validate_grpo_record
from lvr.data.text import TextCodec
from lvr.preprocess import ImageConfig
from lvr.train import rollout as RO
from lvr.train.grpo import decode_completions, make_prompt
from lvr.train.losses import aggregate, completion_logps, group_advantages, grpo_token_loss
from lvr.train.rewards import accuracy_reward, format_reward, resolve

from _train_helpers import load_model

N_STEPS = 3


@pytest.fixture(scope="module")
def setup(tiny_dir, data_dir, monkeypatch_module):
    codec = TextCodec.from_dir(tiny_dir)
    rec = validate_grpo_record({"image": "a.png", "conversations": [
        {"from": "human", "value": "What is 1+1?"}, {"from": "gpt", "value": "<answer>2</answer>"}]},
        "g.json", 0, str(data_dir))
    prompt = make_prompt(rec, codec, tiny_dir, ImageConfig(min_pixels=3136, max_pixels=50176), torch.device("cpu"))
    real = RO.sample_next
    calls = {"n": 0}

    def scripted(logits, cfg, history, generator, compiled=False):  # every completion starts with <|lvr_start|>
        calls["n"] += 1
        tok = real(logits, cfg, history, generator, compiled)
        return torch.full_like(tok, T.LVR_START_ID) if calls["n"] == 1 else tok

    def do_rollout(model, G=4, seed=0):
        calls["n"] = 0
        monkeypatch_module.setattr(RO, "sample_next", scripted)
        cfg = RO.SamplingConfig(temperature=0.9, max_new_tokens=10, lvr_steps=N_STEPS)
        model.eval()
        ro = RO.rollout(model, *prompt[:1], prompt[1], prompt[2], G, cfg, torch.Generator().manual_seed(seed))
        monkeypatch_module.setattr(RO, "sample_next", real)
        return ro

    return codec, prompt, do_rollout


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_rollout_latents_replay_exactly(tiny_dir, setup):
    codec, (ids, pv, grid), do_rollout = setup
    model = load_model(tiny_dir)
    ro = do_rollout(model)
    assert (ro.completion_ids[:, 0] == T.LVR_START_ID).all()
    # steps decoding: exactly N latent inputs right after <|lvr_start|>, then text again
    assert ro.latent_mask[:, 1:1 + N_STEPS].all() and not ro.latent_mask[:, 0].any()
    assert not ro.latent_mask[:, 1 + N_STEPS].any()
    kw = dict(prompt_ids=ids, completion_ids=ro.completion_ids, pixel_values=pv, grid=grid,
              latent_mask=ro.latent_mask, temperature=0.9)
    with torch.no_grad():
        replay = completion_logps(model, latents=ro.latents(), **kw)
        shifted = completion_logps(model, latents=ro.latents(shift=1), **kw)
    m = ro.completion_mask
    # teacher forcing with the recorded latents reproduces the rollout's own log-probs (Eq. 5)
    assert torch.allclose(replay[m], ro.sample_logps[m], atol=1e-4)
    # the upstream one-position-early replay does not (§5.4.1): positions after the first latent differ
    assert (shifted[:, 2:][m[:, 2:]] - ro.sample_logps[:, 2:][m[:, 2:]]).abs().max() > 1e-3


def test_grpo_step_raises_logprob_of_rewarded_completion(tiny_dir, setup):
    codec, (ids, pv, grid), do_rollout = setup
    model = load_model(tiny_dir)
    ref = load_model(tiny_dir).eval()
    ro = do_rollout(model, G=4, seed=1)
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0])           # a fixed reward: completion 0 is the good one
    adv = group_advantages(rewards, 4)
    mask = ro.completion_mask & ~ro.latent_mask
    kw = dict(prompt_ids=ids, completion_ids=ro.completion_ids, pixel_values=pv, grid=grid,
              latent_mask=ro.latent_mask, latents=ro.latents(), temperature=0.9)

    def seq_logp():
        with torch.no_grad():
            return (completion_logps(model, **kw) * mask).sum(1)

    before = seq_logp()
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    logp = completion_logps(model, **kw)
    with torch.no_grad():
        ref_logp = completion_logps(ref, **kw)
    loss, _ = grpo_token_loss(logp, logp.detach(), ref_logp, adv, 0.2, 0.04)
    aggregate(loss, mask, "bnpo").backward()
    opt.step()
    after = seq_logp()
    assert after[0] > before[0]
    assert (after[1:] - before[1:]).mean() < 0


def test_decoded_completions_leave_out_placeholders(tiny_dir, setup):
    codec, _, do_rollout = setup
    ro = do_rollout(load_model(tiny_dir), G=2, seed=2)
    fixed = decode_completions(codec, ro, upstream_compat=False)
    compat = decode_completions(codec, ro, upstream_compat=True)
    for g in range(2):
        real = ro.completion_ids[g][ro.completion_mask[g] & ~ro.latent_mask[g]].tolist()
        assert fixed[g] == codec.decode(real) and fixed[g].startswith("<|lvr_start|>")
        assert len(compat[g]) >= len(fixed[g])


def test_rewards():
    comps = ["<|lvr_start|>zz<|lvr_end|> <answer>4</answer>", "<|lvr_start|>z\nz<|lvr_end|><answer>5</answer>",
             "<answer>$\\frac{1}{2}$</answer>", "no tags"]
    sols = ["<answer>4</answer>", "<answer>4</answer>", "0.5", "<answer>x</answer>"]
    assert accuracy_reward(comps, sols) == [1.0, 0.0, 1.0, 0.0]
    assert format_reward(comps) == [1.0, 1.0, 0.0, 0.0]
    assert format_reward(comps, upstream_compat=True) == [1.0, 0.0, 0.0, 0.0]   # '.' does not cross newlines
    assert accuracy_reward(["<answer>a\nb</answer>"], ["<answer>a\nb</answer>"]) == [1.0]
    assert resolve("format") is format_reward
    assert resolve("lvr.train.rewards:accuracy_reward") is accuracy_reward
    with pytest.raises(ValueError, match="unknown reward"):
        resolve("nope")


def test_upstream_loss_mask():
    S, L, E, X = T.LVR_START_ID, T.LVR_ID, T.LVR_END_ID, 11
    comp = torch.tensor([[X, S, X, X, E, X, T.IM_END_ID, X], [S, X, X, X, X, X, X, X]])
    cm = torch.ones_like(comp, dtype=torch.bool)
    m = RO.upstream_loss_mask(comp, cm)
    assert m[0].tolist() == [True, False, False, False, True, True, True, False]
    assert not m[1].any()    # no <|lvr_end|>: the whole completion gives no text gradient (§8.5)


def test_greedy_rollout_matches_reference_decoding(tiny_dir, data_dir):
    """The batched KV-cache rollout decodes exactly like the reference decoder of lvr.decoding (greedy)."""
    from PIL import Image

    from lvr.backends import TorchBackend
    from lvr.decoding import LVROptions, SamplingParams, generate
    from lvr.preprocess import build_prompt

    model = load_model(tiny_dir).eval()
    codec = TextCodec.from_dir(tiny_dir)
    img = Image.open(data_dir / "a.png").convert("RGB")
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "Hi?"}]}]
    p = build_prompt(messages, codec.tok, (tiny_dir / "chat_template.jinja").read_text(),
                     ImageConfig(min_pixels=3136, max_pixels=50176))
    ref = generate(TorchBackend(model), p, SamplingParams(do_sample=False, repetition_penalty=1.0, max_new_tokens=12,
                                                          eos_ids=(T.IM_END_ID,)), LVROptions(steps=N_STEPS))
    ids = torch.tensor([p.input_ids])
    ro = RO.rollout(model, ids, torch.from_numpy(p.pixel_values[0]), torch.tensor([p.image_grids[0]]), 2,
                    RO.SamplingConfig(temperature=1.0, top_k=1, max_new_tokens=12, lvr_steps=N_STEPS),
                    torch.Generator().manual_seed(0))
    assert len(ref.output_ids) >= 4
    for g in range(2):
        assert ro.completion_ids[g][ro.completion_mask[g]].tolist() == ref.output_ids


# -- the objective over a batch: micro-batch split, numIterations (TRL's μ) ----------------------------------------
def _groups(tiny_dir, setup, G: int, prompts: int):
    from lvr.train.grpo import ScoredGroup

    _, (ids, pv, grid), do_rollout = setup
    model = load_model(tiny_dir)
    out = []
    for k in range(prompts):
        ro = do_rollout(model, G=G, seed=10 + k)
        rewards = torch.arange(G, dtype=torch.float32).roll(k)
        out.append(ScoredGroup(ids, pv, grid, ro, group_advantages(rewards, G), ro.completion_mask & ~ro.latent_mask))
    return model, out


def _cfg(**kw):
    from lvr.train.train_config import TrainConfig

    base = dict(run_id="t", stage="grpo", model_uri="-", data_uri="-", checkpoint_uri="-", bundle_uri="-",
                max_steps=1, max_completion_length=10)
    return TrainConfig(**{**base, **kw}).resolved()


def _grads(model) -> dict:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("loss_type", ["bnpo", "grpo", "dr_grpo"])
def test_loss_and_gradient_do_not_depend_on_the_micro_batch_size(tiny_dir, setup, loss_type):
    """G=6 split into micro-batches of 6, 4 (4 + 2: uneven), 3 or 1, two prompts per step: one loss, one gradient."""
    from contextlib import nullcontext

    from lvr.train.grpo import GrpoPolicy, learn_on_batch

    model, groups = _groups(tiny_dir, setup, G=6, prompts=2)
    ref = load_model(tiny_dir).eval()
    policy = GrpoPolicy(model)
    model.train()
    results = {}
    for mb in (6, 4, 3, 1):
        model.zero_grad(set_to_none=True)
        parts = learn_on_batch(policy, ref, groups, _cfg(micro_batch_size=mb, loss_type=loss_type), nullcontext)
        results[mb] = (parts, _grads(model))
    loss6, grads6 = results[6]
    assert loss6["loss"] != 0.0 and grads6
    for mb in (4, 3, 1):
        parts, grads = results[mb]
        assert parts["loss"] == pytest.approx(loss6["loss"], rel=1e-5, abs=1e-7), mb
        assert parts["kl"] == pytest.approx(loss6["kl"], rel=1e-5, abs=1e-9), mb
        for name, g in grads6.items():
            torch.testing.assert_close(grads[name], g, rtol=1e-4, atol=1e-7, msg=f"{name} mb={mb}")


def test_epsilon_clips_only_with_several_iterations_per_batch(tiny_dir, setup):
    """numIterations=1: the ratio is 1 and epsilon cannot matter. numIterations=2: after the first update the ratio
    against the generation-time log-probs moves, and the clipped gradient differs from the unclipped one."""
    import copy
    from contextlib import nullcontext

    from lvr.train.grpo import GrpoPolicy, keep_generation_logps, learn_on_batch

    model, groups = _groups(tiny_dir, setup, G=4, prompts=1)
    model.train()

    def second_update_grads(eps: float, iterations: int) -> dict:
        m = copy.deepcopy(model)
        policy = GrpoPolicy(m)
        cfg = _cfg(micro_batch_size=4, epsilon=eps, beta=0.0, num_iterations=iterations)
        gs = [copy.copy(g) for g in groups]
        if iterations > 1:
            for g in gs:
                keep_generation_logps(policy, None, g, cfg, nullcontext)
        opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.5)
        learn_on_batch(policy, None, gs, cfg, nullcontext)     # update 1 (ratio 1 either way)
        opt.step()
        opt.zero_grad(set_to_none=True)
        learn_on_batch(policy, None, gs, cfg, nullcontext)     # update 2, on the moved policy
        return _grads(m)

    def differ(a: dict, b: dict) -> float:
        return max(float((a[n] - b[n]).abs().max()) for n in a)

    one_tight, one_loose = second_update_grads(0.01, 1), second_update_grads(10.0, 1)
    assert differ(one_tight, one_loose) == 0.0
    two_tight, two_loose = second_update_grads(0.01, 2), second_update_grads(10.0, 2)
    assert differ(two_tight, two_loose) > 1e-6
    # without clipping the two settings take the same second step only if the ratio stayed 1 (it did not)
    assert differ(two_loose, one_loose) > 1e-6


def test_rollout_step_compiles_by_default_on_cuda_only_and_follows_the_run():
    import torch

    from lvr.train import runtime as R
    from lvr.train.grpo import compile_rollout_step
    from lvr.train.overrides import apply_overrides, parse_sets
    from lvr.train.train_config import TrainConfig

    cfg = TrainConfig(run_id="r", stage="grpo", model_uri="m", data_uri="d", checkpoint_uri="c", bundle_uri="b")
    gpu, cpu = R.Env(0, 1, 0, torch.device("cuda")), R.Env(0, 1, 0, torch.device("cpu"))
    assert compile_rollout_step(cfg, gpu) and not compile_rollout_step(cfg, cpu)
    off = apply_overrides(cfg, parse_sets(["compile_rollout_step=false"]))
    assert not compile_rollout_step(off, gpu)
