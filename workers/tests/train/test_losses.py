"""Loss parts against hand computation (§3.2), pad == flat packing, SFT steps lower the loss, GRPO objective math."""

from __future__ import annotations

import math

import pytest
import torch

from lvr import tokens as T
from lvr.data.packing import collate
from lvr.data.records import validate_sft_record
from lvr.data.sft import IGNORE, build_sft_sample
from lvr.train.losses import _sft_parts, aggregate, group_advantages, grpo_token_loss, sft_loss

from _train_helpers import load_model, sft_record, tiny_opts


@pytest.fixture(scope="module")
def model(tiny_dir):
    return load_model(tiny_dir)


@pytest.fixture(scope="module")
def samples(codec, data_dir):
    recs = [validate_sft_record(sft_record(i, img), "sft.json", i, str(data_dir))
            for i, img in ((1, "a.png"), (4, "b.png"), (2, "a.png"))]
    return [build_sft_sample(r, codec, str(data_dir), tiny_opts()) for r in recs]


def hand_losses(model, samples, self_feed: bool = False, chain: bool = False):
    """Per sample, unbatched: HF top-level forward on hand-built inputs_embeds; sums written out explicitly.
    `self_feed`: CE from a second forward whose latent slots hold the first forward's h one position earlier;
    `chain`: ... whose latent slots hold decoding's latents, built slot by slot (each the h one position earlier
    of a forward whose earlier slots hold the latents built so far)."""
    nll, n_tok, sq, n_lat = 0.0, 0, 0.0, 0
    H = model.config.text_config.hidden_size
    for s in samples:
        ids = torch.tensor([s.input_ids])
        grid = torch.tensor(s.image_grid_thw)
        with torch.no_grad():
            vis = torch.cat(model.model.get_image_features(torch.from_numpy(s.pixel_values), grid,
                                                           return_dict=True).pooler_output)
            emb = model.get_input_embeddings()(ids)[0].clone()
            pads = [p for p, t in enumerate(s.input_ids) if t == T.IMAGE_PAD_ID]
            for k, p in enumerate(pads):
                emb[p] = vis[k]
            lat = [p for p, t in enumerate(s.input_ids) if t == T.LVR_ID]
            for j, p in enumerate(lat):
                emb[p] = vis[s.lvr_index[j]]
            mm = (ids == T.IMAGE_PAD_ID).int()
            pos, _ = model.model.get_rope_index(ids, mm_token_type_ids=mm, image_grid_thw=grid)
            out = model(inputs_embeds=emb[None], position_ids=pos, output_hidden_states=True)
            h = out.hidden_states[-1][0]      # post-norm (the final norm is applied to the last entry)
            logp = out.logits[0].float().log_softmax(-1)
            if self_feed:
                fed = emb.clone()
                for p in lat:
                    fed[p] = h[p - 1]
                if chain:
                    for p in lat:
                        fed[p] = model(inputs_embeds=fed[None], position_ids=pos,
                                       output_hidden_states=True).hidden_states[-1][0, p - 1]
                logp = model(inputs_embeds=fed[None], position_ids=pos).logits[0].float().log_softmax(-1)
        for t in range(1, len(s.input_ids)):
            lab = s.labels[t]
            if lab != IGNORE and lab != T.LVR_ID:
                nll += -float(logp[t - 1, lab])
                n_tok += 1
        for j, p in enumerate(lat):
            sq += float(((h[p - 1] - vis[s.lvr_index[j]]) ** 2).sum())
            n_lat += 1
    return nll / n_tok, sq / (n_lat * H), n_tok, n_lat


def test_loss_parts_equal_hand_computed_values(model, samples):
    model.eval()
    ce_ref, mse_ref, n_tok, n_lat = hand_losses(model, samples)
    for mode in ("pad", "flat"):
        with torch.no_grad():
            parts = sft_loss(model, collate(samples, mode), lvr_lambda=0.1)
        assert parts["n_ce"] == n_tok and parts["n_lvr"] == n_lat
        assert float(parts["loss_ce"]) == pytest.approx(ce_ref, rel=1e-5)
        assert float(parts["loss_lvr"]) == pytest.approx(mse_ref, rel=1e-5)
        assert float(parts["loss"]) == pytest.approx(ce_ref + 0.1 * mse_ref, rel=1e-5)
    with torch.no_grad():
        ce_only = sft_loss(model, collate(samples, "pad"), lvr_lambda=0.0)
    assert float(ce_only["loss"]) == pytest.approx(ce_ref, rel=1e-5)


def test_self_fed_latents_give_the_ce_of_a_pass_on_the_models_own_predictions(model, samples):
    model.eval()
    ce_forced, _, _, _ = hand_losses(model, samples)
    ce_ref, mse_ref, n_tok, n_lat = hand_losses(model, samples, self_feed=True)
    assert n_lat > 0 and ce_ref != pytest.approx(ce_forced, rel=1e-4)
    for mode in ("pad", "flat"):
        with torch.no_grad():
            parts = sft_loss(model, collate(samples, mode), lvr_lambda=0.1, lvr_self_feed=True)
        assert parts["n_ce"] == n_tok and parts["n_lvr"] == n_lat
        assert float(parts["loss_ce"]) == pytest.approx(ce_ref, rel=1e-5)
        assert float(parts["loss_lvr"]) == pytest.approx(mse_ref, rel=1e-5)


def test_one_feed_pass_per_slot_gives_the_ce_on_decodings_latents(model, samples):
    model.eval()
    slots = max(sum(t == T.LVR_ID for t in s.input_ids) for s in samples)
    assert slots > 1
    ce_one_pass, _, _, _ = hand_losses(model, samples, self_feed=True)
    ce_ref, mse_ref, n_tok, n_lat = hand_losses(model, samples, self_feed=True, chain=True)
    assert ce_ref != pytest.approx(ce_one_pass, rel=1e-4)
    for mode in ("pad", "flat"):
        with torch.no_grad():
            parts = sft_loss(model, collate(samples, mode), lvr_lambda=0.1, lvr_self_feed=True,
                             lvr_feed_passes=slots)
        assert parts["n_ce"] == n_tok and parts["n_lvr"] == n_lat
        assert float(parts["loss_ce"]) == pytest.approx(ce_ref, rel=1e-5)
        assert float(parts["loss_lvr"]) == pytest.approx(mse_ref, rel=1e-5)


def test_a_centred_target_is_the_region_tokens_minus_the_batchs_mean_visual_token(model, samples):
    model.eval()
    batch = collate(samples, "flat")
    with torch.no_grad():
        h, _, _, pred, targets, _, vis = _sft_parts(model, batch, False)
        parts = sft_loss(model, batch, lvr_lambda=0.1, lvr_fct="cosine", lvr_center_target=True)
    want = (1 - torch.nn.functional.cosine_similarity(pred, targets - vis.mean(0), dim=-1)).mean()
    assert float(parts["loss_lvr"]) == pytest.approx(float(want), rel=1e-5)
    assert float(parts["loss_lvr"]) != pytest.approx(float(sft_loss(model, batch, lvr_fct="cosine")["loss_lvr"]),
                                                     rel=1e-3)


def test_varlen_backend_gives_the_same_losses(tiny_dir, samples, model):
    """flash_varlen_torch (here through its SDPA-per-segment path) == sdpa with a block-diagonal mask."""
    from lvr.train.attention import use_varlen

    varlen = load_model(tiny_dir).eval()
    use_varlen(varlen)
    assert varlen.model.visual.config._attn_implementation == "flash_varlen_torch"
    with torch.no_grad():
        a = sft_loss(model.eval(), collate(samples, "flat"))
        b = sft_loss(varlen, collate(samples, "flat"))
    assert float(b["loss_ce"]) == pytest.approx(float(a["loss_ce"]), rel=1e-5)
    assert float(b["loss_lvr"]) == pytest.approx(float(a["loss_lvr"]), rel=1e-5)


def test_varlen_vision_alone_keeps_the_text_backend_and_the_features(tiny_dir, samples, model):
    """GRPO on CUDA: varlen in the vision tower only (its window segments through the SDPA-per-segment path here)."""
    from lvr.train.attention import use_varlen
    from lvr.train.losses import visual_features

    varlen = load_model(tiny_dir).eval()
    use_varlen(varlen, text=False, vision=True)
    assert varlen.model.visual.config._attn_implementation == "flash_varlen_torch"
    assert varlen.config.get_text_config()._attn_implementation == "sdpa"
    batch = collate(samples, "pad")
    with torch.no_grad():
        a = visual_features(model.eval(), batch["pixel_values"], batch["image_grid_thw"])
        b = visual_features(varlen, batch["pixel_values"], batch["image_grid_thw"])
        assert torch.allclose(a, b, atol=1e-5)
        pad = sft_loss(varlen, batch)               # padded text rows still run (sdpa)
    assert float(pad["loss_ce"]) == pytest.approx(float(sft_loss(model.eval(), batch)["loss_ce"]), rel=1e-5)


def test_a_few_sft_steps_lower_the_loss(tiny_dir, samples):
    model = load_model(tiny_dir)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.1)
    batch = collate(samples, "flat")
    vis_before = {n: p.clone() for n, p in model.model.visual.named_parameters()}
    losses = []
    for _ in range(5):
        parts = sft_loss(model, batch)
        parts["loss"].backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(parts["loss"].detach()))
    assert losses[-1] < losses[0] * 0.9
    for n, p in model.model.visual.named_parameters():  # vision tower and merger frozen
        assert torch.equal(p, vis_before[n])


def test_group_advantages_by_hand():
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0]), 4)
    std = math.sqrt(4 * 0.25 / 3)                  # unbiased
    assert adv[:4].tolist() == pytest.approx([0.5 / (std + 1e-4), -0.5 / (std + 1e-4)] * 1 +
                                             [-0.5 / (std + 1e-4), 0.5 / (std + 1e-4)], rel=1e-6)
    assert adv[4:].tolist() == [0.0] * 4           # equal rewards carry no signal


def test_grpo_token_loss_clip_and_kl_by_hand():
    logp = torch.tensor([[math.log(0.5), math.log(0.2)]])
    old = torch.tensor([[math.log(0.25), math.log(0.2)]])   # ratios 2.0 and 1.0
    ref = torch.tensor([[math.log(0.4), math.log(0.1)]])
    loss, kl = grpo_token_loss(logp, old, ref, torch.tensor([1.0]), epsilon=0.2, beta=0.04)
    k3 = lambda r, p: math.exp(r - p) - (r - p) - 1
    assert kl[0].tolist() == pytest.approx([k3(math.log(0.4), math.log(0.5)), k3(math.log(0.1), math.log(0.2))])
    assert loss[0, 0].item() == pytest.approx(-1.2 + 0.04 * kl[0, 0].item())  # clipped at 1+ε
    assert loss[0, 1].item() == pytest.approx(-1.0 + 0.04 * kl[0, 1].item())


def test_loss_aggregations_by_hand():
    L = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    m = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert aggregate(L, m, "bnpo").item() == pytest.approx(10 / 4)
    assert aggregate(L, m, "grpo").item() == pytest.approx((2.0 + 4.0) / 2)
    assert aggregate(L, m, "dr_grpo", max_len=5).item() == pytest.approx(10 / (2 * 5))
