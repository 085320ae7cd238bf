"""The fused decoder graph (`lvr.fused_decoder`): GroupQueryAttention over a static KV buffer shared by past and
present, against `lvr.graphs.DecoderGraph` (fp32, growing past; batch 2 with rows of different lengths), the
exporter's `fused_decoder=True` round trip, and `FusedOrtBackend`'s capacity check."""

import numpy as np
import pytest
import torch

from _lvr_helpers import image_message
from lvr.backends import FusedOrtBackend, OrtBackend
from lvr.bundle import verify_bundle
from lvr.decoding import LVROptions, SamplingParams, generate
from lvr.export import export_bundle
from lvr.fused_decoder import FUSED_DECODER_FILE, FUSED_LVR_FILE, FUSED_TOP_K, build_fused_decoder, lvr_ops_graph
from lvr.graphs import DecoderGraph
from lvr.preprocess import build_prompt
from lvr.tiny import TINY_IMAGE_CONFIG

CAP = 32  # KV buffer positions in the graph-level tests


def _rel(ref: np.ndarray, got: np.ndarray) -> float:
    return float(np.abs(ref - got).max() / max(float(np.abs(ref).max()), 1e-6))


@pytest.fixture(scope="module")
def fused_session(tiny_model, tmp_path_factory):
    import onnx
    import onnxruntime as ort

    path = tmp_path_factory.mktemp("fused") / FUSED_DECODER_FILE
    onnx.save(build_fused_decoder(tiny_model, np.float32), str(path))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def dims(tiny_model):
    t = tiny_model.config.text_config
    return t.num_hidden_layers, t.num_key_value_heads, t.hidden_size // t.num_attention_heads, t.hidden_size


def _run_fused(sess, kv: list, x: np.ndarray, pos: np.ndarray, seqlens_k, total_len: int, last_index=None):
    """One fused step; `kv` holds OrtValues bound as both past_key_values.{i}.* and present.{i}.*. Rows return
    position `last_index[b]` (default S - 1)."""
    if last_index is None:
        last_index = np.full(x.shape[0], x.shape[1] - 1)
    io = sess.io_binding()
    io.bind_cpu_input("last_index", np.asarray(last_index, dtype=np.int64))
    io.bind_cpu_input("inputs_embeds", np.ascontiguousarray(x, dtype=np.float32))
    io.bind_cpu_input("position_ids", np.ascontiguousarray(pos, dtype=np.int64))
    io.bind_cpu_input("seqlens_k", np.asarray(seqlens_k, dtype=np.int32))
    io.bind_cpu_input("total_sequence_length", np.array(total_len, np.int32))
    io.bind_output("logits")
    io.bind_output("last_hidden_state")
    for i in range(len(kv) // 2):
        for j, kind in enumerate(("key", "value")):
            io.bind_ortvalue_input(f"past_key_values.{i}.{kind}", kv[2 * i + j])
            io.bind_ortvalue_output(f"present.{i}.{kind}", kv[2 * i + j])
    sess.run_with_iobinding(io)
    logits, hidden = (o.numpy() for o in io.get_outputs()[:2])
    return logits, hidden


class _Reference:
    """DecoderGraph in torch for one row, keeping its growing past (the presents of the previous step)."""

    def __init__(self, model, layers: int, kv_heads: int, head_dim: int):
        self.graph = DecoderGraph(model)
        self.past = [torch.zeros(1, kv_heads, 0, head_dim) for _ in range(2 * layers)]

    @torch.no_grad()
    def step(self, x: np.ndarray, pos: np.ndarray):
        total = self.past[0].shape[2] + x.shape[1]
        out = self.graph(torch.from_numpy(x), torch.ones(1, total, dtype=torch.int64), torch.from_numpy(pos),
                         *self.past)
        self.past = list(out[2:])
        return out[0].numpy(), out[1].numpy()


def _prompt_positions(s: int, shift: int = 0) -> np.ndarray:
    """[3, 1, S] M-RoPE positions whose three rows differ (as an image span makes them)."""
    t = np.arange(s) + shift
    return np.stack([t, (2 * t) % 5, t % 3])[:, None, :].astype(np.int64)


def test_fp32_fused_graph_matches_decoder_graph_with_growing_past(tiny_model, fused_session, dims):
    import onnxruntime as ort

    L, kvh, D, H = dims
    rng = np.random.default_rng(0)
    ref = _Reference(tiny_model, L, kvh, D)
    kv = [ort.OrtValue.ortvalue_from_numpy(np.zeros((1, kvh, CAP, D), np.float32)) for _ in range(2 * L)]
    x = rng.standard_normal((1, 7, H)).astype(np.float32)
    pos = _prompt_positions(7)
    assert len({tuple(r) for r in pos[:, 0, :]}) == 3
    embed = tiny_model.model.language_model.embed_tokens
    length, kinds = 0, []
    for step in range(4):  # prefill, latent, token, latent
        total = length + x.shape[1]
        rl, rh = ref.step(x, pos)
        ol, oh = _run_fused(fused_session, kv, x, pos, [total - 1], total)
        assert ol.shape == rl.shape == (1, tiny_model.config.text_config.vocab_size) and oh.shape == (1, H)
        assert _rel(rl, ol) < 1e-4, (step, _rel(rl, ol))
        assert _rel(rh, oh) < 1e-4, (step, _rel(rh, oh))
        for i in range(2 * L):
            buf = kv[i].numpy()
            np.testing.assert_allclose(buf[:, :, :total], ref.past[i].numpy(), rtol=1e-4, atol=1e-5)
            assert not buf[:, :, total:].any()  # nothing written past the sequence
        length = total
        if step % 2 == 0:  # latent step: the returned hidden state is the next input
            x, kinds = rh.reshape(1, 1, H), kinds + ["latent"]
        else:
            with torch.no_grad():
                x = embed(torch.tensor([[int(np.argmax(rl))]])).numpy()
            kinds.append("token")
        pos = np.full((3, 1, 1), total + 2, np.int64)
    assert kinds[:2] == ["latent", "token"] and length == 10


def test_top_outputs_are_the_largest_logits_largest_first_ties_by_lower_id(fused_session, dims):
    layers, kvh, hd, hidden = dims
    kv = [np.zeros((2, kvh, 16, hd), np.float32) for _ in range(2 * layers)]
    x = np.random.default_rng(3).standard_normal((2, 1, hidden)).astype(np.float32)
    names = ["logits", "top_logits", "top_ids"]
    feeds = {"inputs_embeds": x, "position_ids": np.zeros((3, 2, 1), np.int64),
             "seqlens_k": np.zeros(2, np.int32), "total_sequence_length": np.array(1, np.int32),
             "last_index": np.zeros(2, np.int64)}
    feeds.update({f"past_key_values.{i}.{k}": kv[2 * i + j] for i in range(layers)
                  for j, k in enumerate(("key", "value"))})
    logits, values, ids = fused_session.run(names, feeds)
    assert values.shape == ids.shape == (2, FUSED_TOP_K)
    for b in range(2):
        want = sorted(range(logits.shape[1]), key=lambda i: (-logits[b, i], i))[:FUSED_TOP_K]
        assert ids[b].tolist() == want
        np.testing.assert_array_equal(values[b], logits[b, want])


def test_batch2_decode_over_rows_prefilled_separately_matches_each_row_alone(tiny_model, fused_session, dims):
    """Continuous batching: rows prefilled one at a time into their slice of a batch buffer, then decoded together
    with per-row seqlens_k and positions."""
    import onnxruntime as ort

    L, kvh, D, H = dims
    rng = np.random.default_rng(1)
    lengths = (7, 4)
    batch = [np.zeros((2, kvh, CAP, D), np.float32) for _ in range(2 * L)]
    refs, decode_x, decode_pos, alone = [], [], [], []
    for row, s in enumerate(lengths):
        x = rng.standard_normal((1, s, H)).astype(np.float32)
        pos = _prompt_positions(s, shift=row)
        views = [b[row:row + 1] for b in batch]
        assert all(v.flags.c_contiguous and np.shares_memory(v, b) for v, b in zip(views, batch))
        kv_row = [ort.OrtValue.ortvalue_from_numpy(v) for v in views]
        ref = _Reference(tiny_model, L, kvh, D)
        rl, rh = ref.step(x, pos)
        ol, _ = _run_fused(fused_session, kv_row, x, pos, [s - 1], s)
        assert _rel(rl, ol) < 1e-4
        for i in range(2 * L):  # the call wrote into the batch array: the OrtValues alias the row views
            np.testing.assert_allclose(batch[i][row, :, :s], ref.past[i][0].numpy(), rtol=1e-4, atol=1e-5)
            assert not batch[i][row, :, s:].any()
        refs.append(ref)
        decode_x.append(rh.reshape(1, 1, H))  # a latent step for both rows
        decode_pos.append(np.full((3, 1, 1), s + 3 * row + 1, np.int64))
    assert not batch[0][1, :, lengths[1]:].any()  # row 0's longer prefill did not spill into row 1
    for row in range(2):
        alone.append(refs[row].step(decode_x[row], decode_pos[row]))

    kv = [ort.OrtValue.ortvalue_from_numpy(b) for b in batch]
    x = np.concatenate(decode_x, axis=0)
    pos = np.concatenate(decode_pos, axis=1)
    ol, oh = _run_fused(fused_session, kv, x, pos, [lengths[0], lengths[1]], lengths[0] + 1)
    for row, (rl, rh) in enumerate(alone):
        assert _rel(rl[0], ol[row]) < 1e-4, (row, _rel(rl[0], ol[row]))
        assert _rel(rh[0], oh[row]) < 1e-4, (row, _rel(rh[0], oh[row]))
        total = lengths[row] + 1
        for i in range(2 * L):
            np.testing.assert_allclose(batch[i][row, :, :total], refs[row].past[i][0].numpy(), rtol=1e-4, atol=1e-5)
            assert not batch[i][row, :, total:].any()
    # the rows differ (a mix-up of rows would not pass by accident)
    assert _rel(ol[0], ol[1]) > 1e-2


def test_batched_prefill_of_right_padded_prompts_matches_each_prompt_alone(tiny_model, fused_session, dims):
    """Prompts of 7 and 4 positions prefilled in one call (the shorter right-padded, its output at last_index 3), then
    one step of both: each row's logits, hidden state and valid KV positions equal the row run alone."""
    import onnxruntime as ort

    L, kvh, D, H = dims
    rng = np.random.default_rng(5)
    lengths, S = (7, 4), 7
    batch = [np.zeros((2, kvh, CAP, D), np.float32) for _ in range(2 * L)]
    x = np.zeros((2, S, H), np.float32)
    pos = np.zeros((3, 2, S), np.int64)
    refs, prefill_ref = [], []
    for row, s in enumerate(lengths):
        x[row, :s] = rng.standard_normal((s, H))
        x[row, s:] = rng.standard_normal((S - s, H))  # padding: any values, never attended by real positions
        pos[:, row, :s] = _prompt_positions(s, shift=row)[:, 0]
        refs.append(_Reference(tiny_model, L, kvh, D))
        prefill_ref.append(refs[row].step(x[row:row + 1, :s], pos[:, row:row + 1, :s]))
    kv = [ort.OrtValue.ortvalue_from_numpy(b) for b in batch]
    ol, oh = _run_fused(fused_session, kv, x, pos, [s - 1 for s in lengths], S, last_index=[s - 1 for s in lengths])
    for row, (rl, rh) in enumerate(prefill_ref):
        assert _rel(rl[0], ol[row]) < 1e-4, (row, _rel(rl[0], ol[row]))
        assert _rel(rh[0], oh[row]) < 1e-4, (row, _rel(rh[0], oh[row]))
        for i in range(2 * L):
            np.testing.assert_allclose(batch[i][row, :, :lengths[row]], refs[row].past[i][0].numpy(), rtol=1e-4,
                                       atol=1e-5)
    # A token step of both rows writes right after each row's real prompt, over the padding's keys/values.
    step_x = rng.standard_normal((2, 1, H)).astype(np.float32)
    step_pos = np.stack([np.full((3, 1), s + 2) for s in lengths], axis=1).astype(np.int64)
    ol, oh = _run_fused(fused_session, kv, step_x, step_pos, list(lengths), max(lengths) + 1)
    for row in range(2):
        rl, rh = refs[row].step(step_x[row:row + 1], step_pos[:, row:row + 1])
        assert _rel(rl[0], ol[row]) < 1e-4, (row, _rel(rl[0], ol[row]))
        assert _rel(rh[0], oh[row]) < 1e-4, (row, _rel(rh[0], oh[row]))
    assert _rel(ol[0], ol[1]) > 1e-2


def test_weights_as_stored_and_transposed_give_the_same_outputs(tiny_model, fused_session, dims, tmp_path):
    """FusedMatMul over [N, K] weights (the default, what the lvr ops read) against MatMul over [K, N] ones (the form
    int4 bundles quantize)."""
    import onnx
    import onnxruntime as ort

    ops = {n.op_type for n in build_fused_decoder(tiny_model, np.float32).graph.node}
    assert "FusedMatMul" in ops and "MatMul" not in ops
    path = tmp_path / "matmul.onnx"
    model = build_fused_decoder(tiny_model, np.float32, weights_nk=False)
    assert "FusedMatMul" not in {n.op_type for n in model.graph.node}
    onnx.save(model, str(path))
    other = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    layers, kvh, hd, H = dims
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 5, H)).astype(np.float32)
    pos = np.tile(np.arange(5, dtype=np.int64), (3, 1, 1))
    outs = []
    for sess in (fused_session, other):
        kv = [ort.OrtValue.ortvalue_from_numpy(np.zeros((1, kvh, CAP, hd), np.float32)) for _ in range(2 * layers)]
        outs.append(_run_fused(sess, kv, x, pos, [4], 5))
    assert _rel(outs[0][0], outs[1][0]) < 1e-5 and _rel(outs[0][1], outs[1][1]) < 1e-5


def test_lvr_ops_graph_replaces_every_projection_and_keeps_the_rest(tiny_model):
    fused = build_fused_decoder(tiny_model, np.float32)
    lvr = lvr_ops_graph(fused)
    layers = tiny_model.config.text_config.num_hidden_layers
    kinds = [(n.domain, n.op_type) for n in lvr.graph.node]
    assert kinds.count(("lvr", "Linear")) == 3 * layers + 1  # q/k/v (bias folded in), o, down; the lm head
    assert kinds.count(("lvr", "SiluMulLinear")) == layers
    assert not {"FusedMatMul", "MatMul", "Sigmoid"} & {op for _, op in kinds}
    qkv = [n for n in lvr.graph.node if n.op_type == "Linear" and len(n.input) == 3]
    assert len(qkv) == layers and all(n.input[2].endswith("qkv_bias") for n in qkv)
    gate_up = [n for n in lvr.graph.node if n.op_type == "SiluMulLinear"]
    assert all(n.input[1].endswith(".gate") and n.input[2].endswith(".up") for n in gate_up)
    # every other node, the initializers and the graph's inputs and outputs are the fused graph's
    rest = [(n.op_type, list(n.input), list(n.output)) for n in lvr.graph.node if n.domain != "lvr"]
    kept = [(n.op_type, list(n.input), list(n.output)) for n in fused.graph.node]
    assert all(r in kept for r in rest)
    assert [i.name for i in lvr.graph.initializer] == [i.name for i in fused.graph.initializer]
    assert [i.name for i in lvr.graph.output] == [i.name for i in fused.graph.output]
    assert ("lvr", 1) in {(o.domain, o.version) for o in lvr.opset_import}
    # the lvr graph's outputs still come from somewhere: each node input is produced or given
    given = {i.name for i in lvr.graph.input} | {i.name for i in lvr.graph.initializer} | {""}
    for n in lvr.graph.node:
        assert set(n.input) <= given, n.name
        given |= set(n.output)


@pytest.fixture(scope="module")
def fused_bundles(tiny_ckpt, tmp_path_factory):
    """precision -> (folder, manifest) of a tiny bundle exported with fused_decoder=True (each exported once)."""
    cache: dict = {}

    def make(precision: str):
        if precision not in cache:
            dest = tmp_path_factory.mktemp(f"fused-{precision}")
            cache[precision] = dest, export_bundle(str(tiny_ckpt), str(dest), precision=precision,
                                                   fused_decoder=True, log=lambda s: None)
        return cache[precision]

    return make


def test_fp32_export_with_fused_decoder_verifies_and_decodes_like_the_decoder(fused_bundles, tokenizer):
    folder, m = fused_bundles("fp32")
    assert m["graphs"]["decoder_fused"] == FUSED_DECODER_FILE and m["graphs"]["decoder"] == "decoder.onnx"
    files = {f["path"] for f in m["files"]}
    assert {FUSED_DECODER_FILE, FUSED_DECODER_FILE + ".data"} <= files
    assert verify_bundle(folder)["graphs"]["decoder_fused"] == FUSED_DECODER_FILE
    out = m["verification"]["outputs"]
    assert m["verification"]["passed"] is True
    assert {"fused.logits", "fused.last_hidden_state"} <= set(out)
    assert "fused.image_features" not in out  # only the decoder's outputs are re-checked
    assert out["fused.logits"]["max_rel"] < 1e-4 and out["fused.last_hidden_state"]["max_rel"] < 1e-4

    prompt = build_prompt(image_message(100, 70, seed=1), tokenizer, image_cfg=TINY_IMAGE_CONFIG,
                          assistant_prefix="<|lvr_start|>")
    params = SamplingParams(max_new_tokens=10)
    lvr = LVROptions(steps=4)
    ref = generate(OrtBackend(folder, m), prompt, params, lvr)
    fused = FusedOrtBackend(folder, m, capacity=len(prompt.input_ids) + 16)
    got = generate(fused, prompt, params, lvr)
    assert ref.latent_steps == 4 and len(got.output_ids) == 10
    assert got.output_ids == ref.output_ids
    assert [s.input_kind for s in got.steps] == [s.input_kind for s in ref.steps]
    for a, b in zip(got.steps, ref.steps):
        assert abs(a.hidden["l2"] - b.hidden["l2"]) <= 1e-4 * b.hidden["l2"]
    assert fused.length == len(prompt.input_ids) + 9  # prefill + one forward per token after the first
    again = generate(fused, prompt, params, lvr)  # reset() rewinds the static buffer
    assert again.output_ids == ref.output_ids


def test_fused_export_writes_the_lvr_ops_graph_over_the_same_data_file(fused_bundles):
    import onnx

    folder, m = fused_bundles("fp16")
    assert m["graphs"]["decoder_fused_lvr"] == FUSED_LVR_FILE
    assert FUSED_LVR_FILE in {f["path"] for f in m["files"]}
    lvr = onnx.load(str(folder / FUSED_LVR_FILE), load_external_data=False)
    external = [i for i in lvr.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL]
    assert external and all({e.key: e.value for e in i.external_data}["location"] == FUSED_DECODER_FILE + ".data"
                            for i in external)
    # the graph file holds no weights of its own
    assert (folder / FUSED_LVR_FILE).stat().st_size < 0.05 * (folder / (FUSED_DECODER_FILE + ".data")).stat().st_size
    assert not (folder / (FUSED_LVR_FILE + ".data")).exists()


def test_fp16_export_with_fused_decoder_verifies(fused_bundles):
    folder, m = fused_bundles("fp16")
    ver = m["verification"]
    assert ver["passed"] is True and m["graphs"]["decoder_fused"] == FUSED_DECODER_FILE
    assert 0 < ver["outputs"]["fused.logits"]["max_rel"] < 2e-2
    assert ver["outputs"]["fused.last_hidden_state"]["max_rel"] < 2e-2
    fused_data = (folder / (FUSED_DECODER_FILE + ".data")).stat().st_size
    assert fused_data < 0.6 * (fused_bundles("fp32")[0] / (FUSED_DECODER_FILE + ".data")).stat().st_size


def test_int4_fp16_export_quantizes_the_fused_decoder_over_float16_activations(fused_bundles):
    """The CUDA EP's int4 flavour: GroupQueryAttention runs only in float16 there, so int4 weights sit on fp16
    activations (the plain int4 precision keeps float32 ones for the CPU)."""
    import onnx

    folder, m = fused_bundles("int4-fp16")
    assert m["verification"]["passed"] is True and m["io_dtypes"]["embeds"] == "float16"
    graph = onnx.load(str(folder / FUSED_DECODER_FILE), load_external_data=False).graph
    ops = [n.op_type for n in graph.node]
    assert "MatMulNBits" in ops and "MatMul" not in ops
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert "decoder_fused_lvr" not in m["graphs"]  # the lvr ops take float weights


def test_fused_backend_refuses_a_sequence_beyond_its_capacity(fused_bundles):
    folder, m = fused_bundles("fp32")
    H = m["architecture"]["hidden_size"]
    b = FusedOrtBackend(folder, m, capacity=8)
    pos = np.tile(np.arange(9, dtype=np.int64), (3, 1, 1))
    with pytest.raises(ValueError, match="9 positions exceeds the KV capacity 8"):
        b.forward(np.zeros((1, 9, H), np.float32), np.ones((1, 9), np.int64), pos)
    assert b.length == 0
    # growing past the capacity fails on the step that would overflow, and leaves the state as it was
    b.forward(np.zeros((1, 7, H), np.float32), np.ones((1, 7), np.int64), pos[:, :, :7])
    b.forward(np.zeros((1, 1, H), np.float32), np.ones((1, 8), np.int64), pos[:, :, 7:8])
    with pytest.raises(ValueError, match="exceeds the KV capacity 8"):
        b.forward(np.zeros((1, 1, H), np.float32), np.ones((1, 9), np.int64), pos[:, :, 8:9])
    assert b.length == 8
