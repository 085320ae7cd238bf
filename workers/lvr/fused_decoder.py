"""The decoder as a fused ONNX graph for GPU serving (issue #14): ONNX Runtime's contrib kernels instead of plain ops.

Per layer: SkipSimplifiedLayerNormalization (residual add + RMSNorm in one kernel), one q/k/v MatMul + bias, two
RotaryEmbedding kernels, GroupQueryAttention over a static KV buffer, the o projection, a second skip-norm, the
gate/up MatMuls with SiLU and the down projection. The graph has no shape arithmetic (every Reshape uses constant
shapes), so ONNX Runtime can keep all of it on the GPU and capture it in a CUDA graph.

KV cache: `past_key_values.{i}.{key,value}` are buffers [B, kv_heads, capacity, head_dim]; bound to the same memory as
`present.{i}.*`, GroupQueryAttention writes each step's new rows in place (past and present share the buffer) and
attends to the first `seqlens_k[b] + 1` positions of row b. M-RoPE: the rotation angles come from `position_ids`
[3, B, S] through `lvr.graphs.mrope_angles`' band rule, one cos/sin row per token; RotaryEmbedding reads row
`b * S + s` of that table (`rope_rows`, computed in the graph without shape ops).

Inputs: inputs_embeds [B,S,H], position_ids int64 [3,B,S], seqlens_k int32 [B] (tokens in the cache after this
step, minus one), total_sequence_length int32 [] (the largest seqlens_k + 1), last_index int64 [B] (the position in S
whose outputs row b returns: S-1, or its last real position when the row is right-padded, as in a batched prefill of
prompts of different lengths), the KV buffers.
Outputs: logits float32 [B,V] and last_hidden_state [B,H] at position last_index[b] of row b,
present.{i}.{key,value}, and the K = FUSED_TOP_K largest logits of each row with their ids, largest first, ties by
lower id (top_logits float32 [B,K], top_ids int64 [B,K]): a server reads those instead of the whole row when they
decide its pick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MS = "com.microsoft"
LVR = "lvr"
FUSED_DECODER_FILE = "decoder_fused.onnx"
FUSED_LVR_FILE = "decoder_fused_lvr.onnx"
#: Candidates per row in `top_logits` / `top_ids`: enough for a greedy pick under penalties without the full row.
FUSED_TOP_K = 64


@dataclass(frozen=True)
class FusedShapes:
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    layers: int
    vocab: int
    eps: float
    mrope_section: tuple[int, ...]

    @classmethod
    def of(cls, model) -> "FusedShapes":
        t = model.config.text_config
        return cls(hidden=t.hidden_size, heads=t.num_attention_heads, kv_heads=t.num_key_value_heads,
                   head_dim=t.hidden_size // t.num_attention_heads, layers=t.num_hidden_layers, vocab=t.vocab_size,
                   eps=float(t.rms_norm_eps), mrope_section=tuple(model.model.language_model.rotary_emb.mrope_section))


class _Graph:
    """Collects nodes and initializers; `op` returns the output names."""

    def __init__(self, np_dtype, weights_nk: bool):
        self.nodes: list = []
        self.inits: list = []
        self.np_dtype = np_dtype
        self.weights_nk = weights_nk
        self._n = 0

    def const(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        # np.ascontiguousarray would turn a 0-d array into 1-d; a scalar Gather index must stay 0-d.
        self.inits.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def weight(self, name: str, tensor) -> str:
        return self.const(name, tensor.detach().float().cpu().numpy().astype(self.np_dtype))

    def linear(self, x: str, name: str, weight) -> str:
        """x . weight^T for a torch weight [N, K]: FusedMatMul over the weight as stored ([N, K], transB) or, without
        `weights_nk`, MatMul over its transpose (the form MatMulNBits quantizes)."""
        if self.weights_nk:
            return self.op("FusedMatMul", [x, self.weight(name, weight)], domain=MS, transB=1)[0]
        return self.op("MatMul", [x, self.weight(name, weight.T)])[0]

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, outputs: list[str] | None = None,
           domain: str = "", **attrs) -> list[str]:
        from onnx import helper

        self._n += 1
        outs = outputs or [f"{op_type.lower()}_{self._n}_{k}" for k in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=f"{op_type}_{self._n}", domain=domain,
                                           **attrs))
        return outs


def _rope_tables(g: _Graph, s: FusedShapes, inv_freq: np.ndarray, scaling: float) -> tuple[str, str, str, str]:
    """cos/sin tables [B*S, D/2] (one row per token, M-RoPE bands), rope_rows [B,S] = b*S + s and the first column of
    rope_rows, [B] = b*S."""
    half = s.head_dim // 2
    band_axis = np.concatenate([np.full(n, j % 3) for j, n in enumerate(s.mrope_section)])
    one_hot = (np.arange(3)[:, None] == band_axis[None, :]).astype(np.float32)  # [3, D/2]
    pos = g.op("Cast", ["position_ids"], to=1)[0]
    pos = g.op("Unsqueeze", [pos, g.const("axis_last", np.array([-1], np.int64))])[0]  # [3,B,S,1]
    freqs = g.op("Mul", [pos, g.const("inv_freq", inv_freq.astype(np.float32).reshape(1, 1, 1, half))])[0]
    picked = g.op("Mul", [freqs, g.const("mrope_bands", one_hot.reshape(3, 1, 1, half))])[0]
    angles = g.op("ReduceSum", [picked, g.const("axis_0", np.array([0], np.int64))], keepdims=0)[0]  # [B,S,D/2]
    flat = g.op("Reshape", [angles, g.const("rows_by_half", np.array([-1, half], np.int64))])[0]
    scale = g.const("rope_scaling", np.array(scaling, np.float32))
    tables = []
    for fn in ("Cos", "Sin"):
        t = g.op("Mul", [g.op(fn, [flat])[0], scale])[0]
        tables.append(g.op("Cast", [t], to=_onnx_type(g.np_dtype))[0])
    # rope_rows[b, s] = b * S + s from ones shaped like one position row: no Shape op (CUDA-graph friendly).
    zero = g.const("zero_i64", np.array(0, np.int64))
    first_axis = g.op("Gather", ["position_ids", zero], axis=0)[0]
    ones = g.op("Add", [g.op("Mul", [first_axis, zero])[0], g.const("one_i64", np.array(1, np.int64))])[0]  # [B,S]
    col = g.op("Sub", [g.op("CumSum", [ones, g.const("axis1_scalar", np.array(1, np.int64))])[0], "one_i64"])[0]
    row = g.op("Sub", [g.op("CumSum", [ones, g.const("axis0_scalar", np.array(0, np.int64))])[0], "one_i64"])[0]
    width = g.op("ReduceSum", [ones, g.const("axis_1", np.array([1], np.int64))], keepdims=1)[0]  # [B,1] = S
    starts = g.op("Mul", [row, width])[0]
    rows = g.op("Add", [starts, col])[0]
    row_starts = g.op("Gather", [starts, zero], axis=1)[0]  # [B]
    return tables[0], tables[1], rows, row_starts


def _onnx_type(np_dtype) -> int:
    from onnx import TensorProto

    return TensorProto.FLOAT16 if np_dtype == np.float16 else TensorProto.FLOAT


def build_fused_decoder(model, np_dtype=np.float32, weights_nk: bool = True):
    """The fused decoder graph of `model` (a Qwen2.5-VL / LVR transformers model) with weights in `np_dtype`;
    `weights_nk`: projection weights as torch stores them ([N, K], FusedMatMul with transB, what `lvr_ops_graph`
    needs), else transposed under plain MatMul (int4 bundles: ONNX Runtime's quantizer rewrites MatMul)."""
    import onnx
    import torch
    from onnx import TensorProto, helper

    s = FusedShapes.of(model)
    tm = model.model.language_model
    g = _Graph(np_dtype, weights_nk)
    T = _onnx_type(np_dtype)
    cos, sin, rows, row_starts = _rope_tables(g, s, tm.rotary_emb.inv_freq.detach().float().cpu().numpy(),
                                  float(getattr(tm.rotary_emb, "attention_scaling", 1.0)))
    qd, kd = s.heads * s.head_dim, s.kv_heads * s.head_dim
    split = g.const("qkv_split", np.array([qd, kd, kd], np.int64))
    x, pending = "inputs_embeds", None
    for i, layer in enumerate(tm.layers):
        a, mlp = layer.self_attn, layer.mlp
        w_in = g.weight(f"layers.{i}.input_norm", layer.input_layernorm.weight)
        if pending is None:
            h = g.op("SimplifiedLayerNormalization", [x, w_in], epsilon=s.eps, axis=-1, stash_type=1)[0]
        else:
            h, _, _, x = g.op("SkipSimplifiedLayerNormalization", [x, pending, w_in], n_out=4, domain=MS,
                              epsilon=s.eps)
        w_qkv = torch.cat([p.weight.detach() for p in (a.q_proj, a.k_proj, a.v_proj)], dim=0)
        b_qkv = np.concatenate([p.bias.detach().float().cpu().numpy() for p in (a.q_proj, a.k_proj, a.v_proj)])
        qkv = g.linear(h, f"layers.{i}.qkv", w_qkv)
        qkv = g.op("Add", [qkv, g.const(f"layers.{i}.qkv_bias", b_qkv.astype(np_dtype))])[0]
        q, k, v = g.op("Split", [qkv, split], n_out=3, axis=-1)
        q = g.op("RotaryEmbedding", [q, rows, cos, sin], domain=MS)[0]
        k = g.op("RotaryEmbedding", [k, rows, cos, sin], domain=MS)[0]
        attn = g.op("GroupQueryAttention", [q, k, v, f"past_key_values.{i}.key", f"past_key_values.{i}.value",
                                            "seqlens_k", "total_sequence_length"],
                    outputs=[f"attn_{i}", f"present.{i}.key", f"present.{i}.value"], domain=MS,
                    num_heads=s.heads, kv_num_heads=s.kv_heads, scale=float(s.head_dim ** -0.5))[0]
        o = g.linear(attn, f"layers.{i}.o", a.o_proj.weight)
        h2, _, _, x = g.op("SkipSimplifiedLayerNormalization",
                           [x, o, g.weight(f"layers.{i}.post_norm", layer.post_attention_layernorm.weight)],
                           n_out=4, domain=MS, epsilon=s.eps)
        gate = g.linear(h2, f"layers.{i}.gate", mlp.gate_proj.weight)
        up = g.linear(h2, f"layers.{i}.up", mlp.up_proj.weight)
        act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])[0]])[0], up])[0]
        pending = g.linear(act, f"layers.{i}.down", mlp.down_proj.weight)
    normed = g.op("SkipSimplifiedLayerNormalization", [x, pending, g.weight("norm", tm.norm.weight)], n_out=4,
                  domain=MS, epsilon=s.eps)[0]
    # Row b's output position is last_index[b] (S - 1 unless the row is right-padded): token b*S + last_index[b].
    flat = g.op("Reshape", [normed, g.const("tokens_by_hidden", np.array([-1, s.hidden], np.int64))])[0]
    picked = g.op("Add", [row_starts, "last_index"])[0]
    g.op("Gather", [flat, picked], outputs=["last_hidden_state"], axis=0)
    head = g.linear("last_hidden_state", "lm_head", model.lm_head.weight)
    g.op("Cast", [head], outputs=["logits"], to=TensorProto.FLOAT)
    k = min(FUSED_TOP_K, s.vocab)
    g.op("TopK", ["logits", g.const("top_k", np.array([k], np.int64))], outputs=["top_logits", "top_ids"], axis=-1,
         largest=1, sorted=1)

    kv_shape = ["batch", s.kv_heads, "capacity", s.head_dim]
    inputs = [helper.make_tensor_value_info("inputs_embeds", T, ["batch", "seq", s.hidden]),
              helper.make_tensor_value_info("position_ids", TensorProto.INT64, [3, "batch", "seq"]),
              helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch"]),
              helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
              helper.make_tensor_value_info("last_index", TensorProto.INT64, ["batch"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", s.vocab]),
               helper.make_tensor_value_info("last_hidden_state", T, ["batch", s.hidden]),
               helper.make_tensor_value_info("top_logits", TensorProto.FLOAT, ["batch", k]),
               helper.make_tensor_value_info("top_ids", TensorProto.INT64, ["batch", k])]
    for i in range(s.layers):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kind}", T, kv_shape))
            outputs.append(helper.make_tensor_value_info(f"present.{i}.{kind}", T, kv_shape))
    graph = helper.make_graph(g.nodes, "lvr_decoder_fused", inputs, outputs, initializer=g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(MS, 1)],
                             ir_version=onnx.IR_VERSION if onnx.IR_VERSION < 10 else 10,
                             producer_name="lvr-platform")


def lvr_ops_graph(fused):
    """The fused decoder with its projections as the engine addon's custom ops (domain `lvr`, libs/engine/native/
    lvr_ops.h): `Linear` for each FusedMatMul (with the q/k/v bias Add folded in) and `SiluMulLinear` for the
    gate/up pair with its SiLU and product. `fused`: a `build_fused_decoder(weights_nk=True)` model, which may hold its
    weights as external data: the result names the same initializers, so both graphs read one data file."""
    import onnx
    from onnx import helper

    graph = fused.graph
    consts = {i.name for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list] = {}
    for n in graph.node:
        for name in n.input:
            readers.setdefault(name, []).append(n)

    def projection(name: str):
        n = producer.get(name)
        ok = n is not None and n.op_type == "FusedMatMul" and n.domain == MS and n.input[1] in consts
        return n if ok else None

    def silu_of(name: str):
        """The gate projection when `name` is Mul(g, Sigmoid(g)) of one."""
        n = producer.get(name)
        if n is None or n.op_type != "Mul" or len(n.input) != 2:
            return None
        g, sig = n.input
        s = producer.get(sig)
        if s is None or s.op_type != "Sigmoid" or s.input[0] != g:
            return None
        return projection(g)

    # node (by its first output) -> its replacement (emitted where the pattern's last node stood) or None (dropped)
    swap: dict[str, object] = {}
    for n in graph.node:
        if n.op_type == "Mul" and len(n.input) == 2:
            gate, up = silu_of(n.input[0]), projection(n.input[1])
            if gate is not None and up is not None and gate.input[0] == up.input[0]:
                sig_mul = producer[n.input[0]]
                for dropped in (gate, up, sig_mul, producer[sig_mul.input[1]]):
                    swap[dropped.output[0]] = None
                swap[n.output[0]] = helper.make_node("SiluMulLinear", [gate.input[0], gate.input[1], up.input[1]],
                                               list(n.output), name=f"lvr_{n.name}", domain=LVR)
        elif n.op_type == "Add" and n.input[1] in consts:
            p = projection(n.input[0])
            if p is not None and len(readers[p.output[0]]) == 1:
                swap[p.output[0]] = None
                swap[n.output[0]] = helper.make_node("Linear", [p.input[0], p.input[1], n.input[1]], list(n.output),
                                               name=f"lvr_{n.name}", domain=LVR)
    for n in graph.node:
        if n.output[0] not in swap and n.op_type == "FusedMatMul" and projection(n.output[0]) is not None:
            swap[n.output[0]] = helper.make_node("Linear", list(n.input[:2]), list(n.output), name=f"lvr_{n.name}",
                                           domain=LVR)
    final = [swap.get(n.output[0], n) for n in graph.node if swap.get(n.output[0], n) is not None]
    lvr = onnx.ModelProto()
    lvr.CopyFrom(fused)
    del lvr.graph.node[:]
    lvr.graph.node.extend(final)
    lvr.graph.name = "lvr_decoder_fused_lvr"
    lvr.opset_import.append(helper.make_opsetid(LVR, 1))
    return lvr
