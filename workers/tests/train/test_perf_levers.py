"""Stage-1 throughput levers keep the training math: chunked LM-head CE, FSDP2 mixed precision at world size 1,
layer-selective checkpointing, regional compilation, the varlen segment cache, and the flags that select them."""

from __future__ import annotations

import pytest
import torch

from lvr.data.packing import collate
from lvr.data.records import validate_sft_record
from lvr.data.sft import build_sft_sample
from lvr.train import runtime as R
from lvr.train.losses import SftObjective, linear_cross_entropy
from lvr.train.train_config import TrainConfig, check

from _train_helpers import load_model, sft_record, tiny_opts


@pytest.fixture(scope="module")
def batch(codec, data_dir):
    recs = [validate_sft_record(sft_record(i, img), "sft.json", i, str(data_dir))
            for i, img in ((1, "a.png"), (4, "b.png"), (2, "a.png"))]
    return collate([build_sft_sample(r, codec, str(data_dir), tiny_opts()) for r in recs], "flat")


def cfg_(**kw) -> TrainConfig:
    return TrainConfig(run_id="t", stage="sft", model_uri="-", data_uri="-", checkpoint_uri="-", bundle_uri="-",
                       max_steps=10, **kw).resolved()


CPU = R.Env(0, 1, 0, torch.device("cpu"))


def test_chunked_linear_cross_entropy_equals_plain_value_and_gradients():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=False)
    h = torch.randn(37, 16, requires_grad=True)
    y = torch.randint(0, 50, (37,))
    ref = torch.nn.functional.cross_entropy(head(h).float(), y)
    g_ref = torch.autograd.grad(ref, [h, head.weight])
    for chunk in (8, 36, 37, 0):
        out = linear_cross_entropy(head, h, y, chunk)
        g = torch.autograd.grad(out, [h, head.weight])
        assert float(out) == pytest.approx(float(ref), rel=1e-6, abs=1e-6)
        for a, b in zip(g, g_ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert float(linear_cross_entropy(head, h[:0], y[:0], 8)) == 0.0


def test_chunked_ce_in_sft_loss_gives_the_same_loss(tiny_dir, batch):
    model = load_model(tiny_dir).eval()
    with torch.no_grad():
        a = SftObjective(model, ce_chunk_rows=0)(batch)
        b = SftObjective(model, ce_chunk_rows=3)(batch)
    assert a["n_ce"] > 3
    assert float(b["loss_ce"]) == pytest.approx(float(a["loss_ce"]), rel=1e-6)


def train_losses(tiny_dir, batch, cfg: TrainConfig, steps: int = 3, probe: list | None = None) -> list[float]:
    """A few real optimizer steps through runtime's wrap / autocast / optimizer, as run_sft does."""
    model = load_model(tiny_dir)
    model.train()
    dtype = R.compute_dtype(cfg, CPU)
    objective = R.wrap(SftObjective(model), model, cfg, CPU, dtype)
    optimizer = R.build_optimizer(model, cfg, CPU, no_decay_norm_bias=False)
    autocast = R.autocast_factory(cfg, CPU, dtype)
    if probe is not None:
        lin = model.model.language_model.layers[0].mlp.down_proj
        lin.register_forward_pre_hook(lambda m, a: probe.append((m.weight.dtype, a[0].dtype)))
    out = []
    for _ in range(steps):
        with autocast():
            parts = objective(batch)
        parts["loss"].backward()
        R.clip_grad(objective, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        out.append(float(parts["loss"]))
    return out, objective, optimizer


def test_fsdp_at_world_size_one_keeps_the_loss_sequence(tiny_dir, batch):
    # fp32: the FSDP2 wrapping alone changes nothing
    plain, _, _ = train_losses(tiny_dir, batch, cfg_(learning_rate=1e-3, precision="fp32", mixed_precision="autocast"))
    fsdp, obj, opt = train_losses(tiny_dir, batch, cfg_(learning_rate=1e-3, precision="fp32", mixed_precision="fsdp"))
    assert plain[-1] < plain[0]
    assert fsdp == pytest.approx(plain, rel=1e-5)
    from torch.distributed.fsdp import FSDPModule

    assert isinstance(obj, FSDPModule)
    msd, osd = R.full_state(obj, opt, CPU)           # checkpoints keep the plain HF keys and full tensors
    ref = load_model(tiny_dir).state_dict()
    assert set(msd) == set(ref) and all(msd[k].shape == ref[k].shape for k in ref)
    assert set(osd["state"]) <= set(ref)

    # bf16: bf16 compute params (fp32 masters) vs autocast over fp32 weights, within bf16 noise
    seen_fsdp, seen_ac = [], []
    ac, _, _ = train_losses(tiny_dir, batch, cfg_(learning_rate=1e-3, precision="bf16", mixed_precision="autocast"),
                            probe=seen_ac)
    mp, obj, _ = train_losses(tiny_dir, batch, cfg_(learning_rate=1e-3, precision="bf16", mixed_precision="fsdp"),
                              probe=seen_fsdp)
    assert seen_ac[0][0] == torch.float32                               # autocast casts at the matmul
    assert seen_fsdp[0] == (torch.bfloat16, torch.bfloat16)             # weights arrive in bf16 already
    assert mp == pytest.approx(ac, rel=2e-2)
    assert mp == pytest.approx(plain, rel=5e-2)
    master = next(p for p in obj.parameters() if p.requires_grad)
    assert master.dtype == torch.float32                                # optimizer master weights stay fp32


def test_flags_select_the_paths():
    gpu = R.Env(0, 1, 0, torch.device("cuda", 0))
    two = R.Env(0, 2, 0, torch.device("cuda", 0))
    bf16, fp32 = torch.bfloat16, torch.float32
    assert R.use_fsdp(cfg_(), gpu, bf16) is True                         # default on one GPU
    assert R.use_fsdp(cfg_(mixed_precision="autocast"), gpu, bf16) is False
    assert R.use_fsdp(cfg_(), CPU, fp32) is False                        # CPU default unchanged
    assert R.use_fsdp(cfg_(mixed_precision="fsdp"), CPU, fp32) is True
    assert R.use_fsdp(cfg_(mixed_precision="autocast"), two, bf16) is True   # world > 1: strategy decides
    assert R.use_fsdp(cfg_(strategy="ddp"), two, bf16) is False
    grpo = TrainConfig(run_id="t", stage="grpo", model_uri="-", data_uri="-", checkpoint_uri="-", bundle_uri="-")
    assert R.use_fsdp(grpo, gpu, bf16) is False
    assert R.autocast_factory(cfg_(), gpu, bf16)().__class__.__name__ == "nullcontext"
    assert R.autocast_factory(cfg_(mixed_precision="autocast"), gpu, bf16)().__class__.__name__ == "autocast"

    assert R.attn_choice(cfg_(), CPU) == "sdpa"                          # varlen kernels need CUDA
    assert R.attn_choice(cfg_(attn_implementation="flash_varlen_torch"), CPU) == "flash_varlen_torch"
    from lvr.train import attention

    if attention.available():   # pragma: no cover - CUDA machines
        assert R.attn_choice(cfg_(), gpu) == attention.NAME
    assert R.attn_choice(cfg_(packing_mode="pad"), gpu) == "sdpa"
    assert R.attn_choice(grpo, gpu) == "sdpa"
    # the vision tower's windows are never padded: varlen on CUDA in every stage, sdpa on CPU; explicit = text's
    assert R.vision_attn_choice(grpo, CPU) == "sdpa"
    if attention.available():   # pragma: no cover - CUDA machines
        assert R.vision_attn_choice(grpo, gpu) == R.vision_attn_choice(cfg_(packing_mode="pad"), gpu) == attention.NAME
    assert R.vision_attn_choice(cfg_(attn_implementation="sdpa"), gpu) == "sdpa"

    assert R.checkpointed_layers(36, 1.0) == list(range(36))
    assert R.checkpointed_layers(36, 0.5) == list(range(1, 36, 2))
    assert len(R.checkpointed_layers(36, 0.25)) == 9 and R.checkpointed_layers(36, 0.0) == []
    from lvr.train.errors import ConfigError

    for bad in ({"mixed_precision": "amp"}, {"checkpoint_ratio": 1.5}, {"attn_implementation": "flash"}):
        with pytest.raises(ConfigError):
            check(cfg_(**bad))


def test_partial_checkpointing_marks_layers_and_keeps_gradients(tiny_dir, batch):
    ref = load_model(tiny_dir).train()
    ref_loss = SftObjective(ref)(batch)["loss"]
    ref_loss.backward()
    model = load_model(tiny_dir).train()
    on = R.enable_checkpointing(model, cfg_(gradient_checkpointing=True, checkpoint_ratio=0.5), CPU)
    layers = model.model.language_model.layers
    assert on == R.checkpointed_layers(len(layers), 0.5) and 0 < len(on) < len(layers)
    assert [bool(layer.gradient_checkpointing) for layer in layers] == [i in on for i in range(len(layers))]
    loss = SftObjective(model)(batch)["loss"]
    loss.backward()
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-6)
    for (n, p), q in zip(model.named_parameters(), ref.parameters()):
        if p.requires_grad:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, msg=n)
    assert R.enable_checkpointing(load_model(tiny_dir), cfg_(), CPU) == []    # CPU default: off


def test_regional_compile_wraps_the_pieces_and_keeps_the_loss(tiny_dir, batch):
    model = load_model(tiny_dir).eval()
    with torch.no_grad():
        ref = SftObjective(model)(batch)
    n = R.compile_regions(model, backend="eager")    # dynamo capture without a C++ toolchain
    layers, blocks = model.model.language_model.layers, model.model.visual.blocks
    assert n == 3 * len(layers) + 1 + 3 * len(blocks)
    assert layers[0].mlp._compiled_call_impl is not None
    with torch.no_grad():
        out = SftObjective(model)(batch)
    assert float(out["loss"]) == pytest.approx(float(ref["loss"]), rel=1e-6)


def test_varlen_segments_are_computed_once_per_source_tensor():
    from lvr.train import attention as A

    pos = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])
    before = A._SEGMENTS.misses
    cu, n = A._segments(1, 9, pos.device, position_ids=pos)
    assert cu.tolist() == [0, 3, 5, 9] and n == 4
    for _ in range(5):
        assert A._segments(1, 9, pos.device, position_ids=pos)[0] is cu
    assert A._SEGMENTS.misses == before + 1
    pos[0, 3] = 3                                   # an in-place change is never served from the cache
    assert A._segments(1, 9, pos.device, position_ids=pos)[0].tolist() == [0, 5, 9]
    other = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3]])
    assert A._segments(1, 9, other.device, position_ids=other)[0].tolist() == [0, 5, 9]
    assert A._SEGMENTS.misses == before + 3


def test_set_varlen_attention_switches_what_the_choices_name(tiny_dir):
    from lvr.train.attention import NAME

    def backends(model):
        return model.config.get_text_config()._attn_implementation, model.model.visual.config._attn_implementation

    model = load_model(tiny_dir)
    assert R.set_varlen_attention(model, cfg_(), CPU) == ("sdpa", "sdpa") and backends(model) == ("sdpa", "sdpa")
    explicit = cfg_(attn_implementation=NAME)
    assert R.set_varlen_attention(model, explicit, CPU) == (NAME, NAME) and backends(model) == (NAME, NAME)
