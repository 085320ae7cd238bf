"""The one-token decode step of the Qwen2.5-VL text decoder over a static (preallocated) KV cache, for batched
GRPO rollouts (lvr.train.rollout).

The step reads its own copy of the decoder weights in the compute dtype (q/k/v and gate/up fused), refreshed in place
before each rollout, so it runs without autocast or FSDP hooks and every tensor it touches stays at one address: on
CUDA it is captured once into a CUDA graph and replayed per token (one launch instead of hundreds).
Its input is chosen inside the step: the previous step's hidden state for rows in a latent block, the token's
embedding otherwise (LVR-SPEC §4.1 step 2), so latent steps never leave the GPU and latent and text rows share a batch.
Numerics follow transformers under bf16 autocast over fp32 weights: fp32 residual stream, RMSNorm and hidden state
(the fed-back latent), matmuls in the compute dtype, softmax in fp32. At decode every M-RoPE axis has the same
position (c + rope_delta, LVR-SPEC Appendix A), which is plain RoPE. Attention over the cache is
lvr.train.decode_attention's split-K kernels where they run (CUDA), SDPA otherwise; the weight projections are
lvr.train.decode_linear's Triton kernels there for o, gate/up and down (K-sliced partial sums that the next norm's
kernel adds up, SiLU·up inside the gate/up product), cuBLAS otherwise and for q/k/v.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F

from . import decode_attention as DA
from . import decode_linear as DL
from . import prefill_step as PS
from .decode_attention import decode_attention_rope, sdpa_attention
from .decode_linear import rows_linear, swiglu_linear

STREAM = torch.float32  # residual stream, norms, hidden state: as transformers over fp32 weights


def _full(p: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a parameter (an FSDP2 shard is gathered)."""
    full = getattr(p, "full_tensor", None)
    return (full() if full is not None else p).detach()


class DecoderWeights:
    """Persistent copies of the text decoder's weights; `refresh` copies the model's current values in place."""

    def __init__(self, model, dtype: torch.dtype, device: torch.device):
        self.dtype = dtype
        lm = model.model.language_model
        self.layers = []
        for layer in lm.layers:
            a, m = layer.self_attn, layer.mlp
            qkv = (a.q_proj.weight.shape[0] + a.k_proj.weight.shape[0] + a.v_proj.weight.shape[0],
                   a.q_proj.weight.shape[1])
            self.layers.append({
                "ln1": torch.empty(layer.input_layernorm.weight.shape, dtype=STREAM, device=device),
                "qkv_w": torch.empty(qkv, dtype=dtype, device=device),
                "qkv_b": torch.empty(qkv[0], dtype=dtype, device=device),
                "o_w": torch.empty(a.o_proj.weight.shape, dtype=dtype, device=device),
                "ln2": torch.empty(layer.post_attention_layernorm.weight.shape, dtype=STREAM, device=device),
                "gu_w": torch.empty((2 * m.gate_proj.weight.shape[0], m.gate_proj.weight.shape[1]), dtype=dtype,
                                    device=device),
                "down_w": torch.empty(m.down_proj.weight.shape, dtype=dtype, device=device)})
        self.norm = torch.empty(lm.norm.weight.shape, dtype=STREAM, device=device)
        self.embed = torch.empty(lm.embed_tokens.weight.shape, dtype=STREAM, device=device)
        self.head = torch.empty(model.lm_head.weight.shape, dtype=dtype, device=device)
        self.refresh(model)

    @torch.no_grad()
    def refresh(self, model) -> None:
        lm = model.model.language_model
        for w, layer in zip(self.layers, lm.layers):
            a, m = layer.self_attn, layer.mlp
            torch.cat([_full(a.q_proj.weight), _full(a.k_proj.weight), _full(a.v_proj.weight)], out=w["qkv_w"])
            torch.cat([_full(a.q_proj.bias), _full(a.k_proj.bias), _full(a.v_proj.bias)], out=w["qkv_b"])
            w["o_w"].copy_(_full(a.o_proj.weight))
            torch.cat([_full(m.gate_proj.weight), _full(m.up_proj.weight)], out=w["gu_w"])
            w["down_w"].copy_(_full(m.down_proj.weight))
            w["ln1"].copy_(_full(layer.input_layernorm.weight))
            w["ln2"].copy_(_full(layer.post_attention_layernorm.weight))
        self.norm.copy_(_full(lm.norm.weight))
        self.embed.copy_(_full(lm.embed_tokens.weight))
        self.head.copy_(_full(model.lm_head.weight))


def decoder_layer(x: torch.Tensor, delta: torch.Tensor, ln1, qkv_w, qkv_b, o_w, ln2, gu_w, down_w,
                  k_cache: torch.Tensor, v_cache: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                  rows: torch.Tensor, idx: torch.Tensor, eps: float, n_heads: int,
                  attention: str, split: int, projections: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoder layer for one new position per row. Input: the residual stream as `x + delta` ([B, H] fp32; the
    previous layer's MLP output comes in as `delta`, so a compiled layer adds it inside its first norm's kernel).
    Output: (stream after attention, MLP output), to be summed the same way by the next layer or the final norm.
    The row's key and value are written at its cache index `idx` before attending over its first idx + 1
    slots (`attention`: "split_k", lvr.train.decode_attention's kernels, or "sdpa").
    `projections`: "triton" (o, gate/up and down by lvr.train.decode_linear; the MLP output is then the down
    projection's fp32 partial sums [S, B, H]) or "cublas" (F.linear). `cos`, `sin` [B, D]; `sin` carries the sign
    of rotate-half (-sin on the first half), so the rotation is x·cos + roll(x)·sin."""
    B, n_kv, _, D = k_cache.shape
    dt = qkv_w.dtype
    triton = projections == "triton"
    x = x + summed(delta, dt)
    normed = F.rms_norm(x, (x.shape[-1],), ln1, eps).to(dt)
    qkv = F.linear(normed, qkv_w, qkv_b)     # cuBLAS either way: faster than the Triton kernels at 3B q/k/v
    if attention == "split_k":     # rotation, cache write and attention in the kernels
        att = decode_attention_rope(qkv, cos, sin, k_cache, v_cache, idx, n_heads, D ** -0.5, split)
    else:
        qk = qkv[:, :(n_heads + n_kv) * D].view(B, n_heads + n_kv, D)
        qk = torch.addcmul(qk * cos[:, None], qk.roll(D // 2, -1), sin[:, None])
        k_cache[rows, :, idx] = qk[:, n_heads:]
        v_cache[rows, :, idx] = qkv[:, (n_heads + n_kv) * D:].view(B, n_kv, D)
        att = sdpa_attention(qk[:, :n_heads], k_cache, v_cache, idx + 1)
    att = att.reshape(B, n_heads * D)
    x = x + (summed(rows_linear(att, o_w), dt) if triton else F.linear(att, o_w))
    normed = F.rms_norm(x, (x.shape[-1],), ln2, eps).to(dt)
    if triton:
        return x, rows_linear(swiglu_linear(normed, gu_w), down_w)
    gate, up = F.linear(normed, gu_w).chunk(2, -1)
    return x, F.linear(F.silu(gate) * up, down_w)


def summed(delta: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
    """A projection's output from its K-sliced fp32 partial sums [S, B, N] (rounded to the compute dtype, as the
    unsliced product is), or the output itself."""
    return delta.sum(0).to(dt) if delta.dim() == 3 else delta


def decode_projections_kind(device: torch.device, requested: str | None, batch: int, cfg) -> str:
    """"triton" where lvr.train.decode_linear's kernels run (as decode attention's: CUDA, CPU only under Triton's
    interpreter) and tile every projection of this model at this batch, else "cublas"."""
    if requested not in (None, "triton", "cublas"):
        raise ValueError(f"unknown decode projections {requested!r}; expected triton or cublas")
    fits = DA.available(device) and DL.covers(batch, cfg.hidden_size, cfg.intermediate_size)
    if requested == "triton" and not fits:
        raise ValueError(f"Triton decode projections cannot run on {device.type} for batch {batch} here")
    return "triton" if requested != "cublas" and fits else "cublas"


def decode_attention_kind(device: torch.device, requested: str | None = None, head_dim: int = 128) -> str:
    """"split_k" where its kernels run (CUDA; CPU only under Triton's interpreter) for this head size, else "sdpa"."""
    if requested not in (None, "split_k", "sdpa"):
        raise ValueError(f"unknown decode attention {requested!r}; expected split_k or sdpa")
    if requested == "sdpa" or not DA.available(device) or not DA.supports(head_dim):
        if requested == "split_k":
            raise ValueError(f"split_k decode attention cannot run on {device.type} with head size {head_dim} here")
        return "sdpa"
    return "split_k"


class StaticDecoder:
    """Batch `batch` rows, cache `max_len` positions. Feed the step through `tok`, `mode` and `h` (the previous
    hidden state, also the latent input); `idx` is each row's next cache index and `pos` its RoPE position (both
    advance by one per step). `step()` writes the new `h` and fp32 `logits` in place."""

    def __init__(self, model, batch: int, max_len: int, dtype: torch.dtype, device: torch.device, graph: bool,
                 compile_layer: bool = False, attention: str | None = None, split: int | None = None,
                 projections: str | None = None):
        cfg = model.config.get_text_config()
        if getattr(cfg, "use_sliding_window", False):
            raise ValueError("the static decode step has no sliding-window attention")
        self.key = decoder_key(cfg, batch, max_len, dtype, device, graph, compile_layer, attention, split, projections)
        self.attention, self.split, self.projections = self.key[-3:]
        self.compiled = compile_layer
        # one compiled function serves every layer (same shapes): Inductor fuses the norms, rotation and casts;
        # the step's input and output ends become a few kernels instead of ~25 small ones
        def compiled(fn, dynamic: bool = False):
            return torch.compile(fn, fullgraph=True, dynamic=dynamic) if compile_layer else fn

        self.layer_fn = compiled(decoder_layer)
        self.inputs_fn = compiled(step_inputs)
        self.outputs_fn = compiled(step_outputs)
        # the prompts' prefill: compiled for any prompt length and count (one graph for every layer)
        self.prefill_fn = compiled(PS.prefill_layer, dynamic=True)
        self.prefill_out_fn = compiled(PS.prefill_outputs, dynamic=True)
        self.n_heads, self.n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.eps = cfg.rms_norm_eps
        rot = model.model.language_model.rotary_emb
        self.inv_freq = rot.inv_freq.detach().to(device=device, dtype=torch.float32).clone()
        self.rope_scale = float(rot.attention_scaling)
        self.mrope_section = list(rot.mrope_section)
        self.weights = DecoderWeights(model, dtype, device)
        shape = (batch, self.n_kv, max_len, self.head_dim)
        # one tensor per layer (not views of one): the compiled layer sees identical inputs for every layer
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in self.weights.layers]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in self.weights.layers]
        self.rows = torch.arange(batch, device=device)
        self.tok = torch.zeros(batch, dtype=torch.long, device=device)
        self.mode = torch.zeros(batch, dtype=torch.bool, device=device)
        self.h = torch.zeros(batch, cfg.hidden_size, dtype=STREAM, device=device)
        # layer 0's `delta`, shaped as the other layers' (the MLP output, or its partial sums)
        down = DL.plan(cfg.hidden_size, cfg.intermediate_size, batch) if self.projections == "triton" else None
        lead = (down.split,) if down is not None and down.split > 1 else ()
        self.no_delta = torch.zeros(*lead, batch, cfg.hidden_size, dtype=STREAM, device=device)
        self.idx = torch.zeros(batch, dtype=torch.long, device=device)
        self.pos = torch.zeros(batch, dtype=torch.long, device=device)
        self.logits = torch.zeros(batch, self.weights.head.shape[0], dtype=torch.float32, device=device)
        self.graph = self._capture() if graph and device.type == "cuda" else None

    def load_prefix(self, rows: slice, keys: list[torch.Tensor], values: list[torch.Tensor]) -> None:
        """Copy a prefill's cache ([1 or n, kv_heads, P, head_dim] per layer) into `rows`, positions 0..P-1."""
        for layer, (k, v) in enumerate(zip(keys, values)):
            n = k.shape[2]
            self.k[layer][rows, :, :n] = k.to(self.k[layer].dtype)
            self.v[layer][rows, :, :n] = v.to(self.v[layer].dtype)

    @torch.no_grad()
    def prefill(self, emb: torch.Tensor, pos: torch.Tensor, lengths: list[int]
                ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Right-padded prompts through the decoder's weights (lvr.train.prefill_step): input embeddings [K, P, H],
        M-RoPE positions [3, K, P]. Returns each prompt's last hidden state [K, H] and logits [K, V] (fp32) and the
        per-layer keys and values [K, kv_heads, P, D] for `load_prefix`."""
        with torch.autocast(emb.device.type, enabled=False):
            w = self.weights
            cos, sin = PS.mrope_cos_sin(pos, self.inv_freq, self.mrope_section, self.rope_scale)
            x, keys, values = emb.to(STREAM), [], []
            for lw in w.layers:
                x, k, v = self.prefill_fn(x, lw["ln1"], lw["qkv_w"], lw["qkv_b"], lw["o_w"], lw["ln2"], lw["gu_w"],
                                          lw["down_w"], cos, sin, self.eps, self.n_heads, self.n_kv)
                keys.append(k)
                values.append(v)
            last = torch.tensor(lengths, device=emb.device) - 1
            h, logits = self.prefill_out_fn(x, last, w.norm, w.head, self.eps)
        return h, logits, keys, values

    def step(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self._step()

    def _capture(self) -> torch.cuda.CUDAGraph:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):           # warm-up (cuBLAS handles, allocator) before capture
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        return graph

    @torch.no_grad()
    def _step(self) -> None:
        with torch.autocast(self.h.device.type, enabled=False):
            w = self.weights
            x, cos, sin = self.inputs_fn(self.tok, self.mode, self.h, w.embed, self.pos, self.inv_freq,
                                         self.rope_scale, w.dtype)
            delta = self.no_delta
            for layer, lw in enumerate(w.layers):
                x, delta = self.layer_fn(x, delta, lw["ln1"], lw["qkv_w"], lw["qkv_b"], lw["o_w"], lw["ln2"],
                                         lw["gu_w"], lw["down_w"], self.k[layer], self.v[layer], cos, sin,
                                         self.rows, self.idx, self.eps, self.n_heads, self.attention, self.split,
                                         self.projections)
            self.outputs_fn(x, delta, w.norm, w.head, self.eps, self.h, self.logits, self.idx, self.pos)


def step_inputs(tok: torch.Tensor, mode: torch.Tensor, h: torch.Tensor, embed: torch.Tensor, pos: torch.Tensor,
                inv_freq: torch.Tensor, rope_scale: float, dt: torch.dtype
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The step's input per row (the previous hidden state in latent mode, else the token's embedding) and its RoPE
    cos and sin [B, D] in the compute dtype (sin signed for rotate-half)."""
    x = torch.where(mode[:, None], h, F.embedding(tok, embed))
    freqs = pos[:, None].to(torch.float32) * inv_freq
    cos = (torch.cat([freqs, freqs], -1).cos() * rope_scale).to(dt)
    sin = (torch.cat([-freqs, freqs], -1).sin() * rope_scale).to(dt)
    return x, cos, sin


def step_outputs(x: torch.Tensor, delta: torch.Tensor, norm: torch.Tensor, head: torch.Tensor, eps: float,
                 h_out: torch.Tensor, logits_out: torch.Tensor, idx: torch.Tensor, pos: torch.Tensor) -> None:
    """Final norm into `h_out`, fp32 logits into `logits_out`, cache index and position advanced by one."""
    x = x + summed(delta, head.dtype)
    h = F.rms_norm(x, (x.shape[-1],), norm, eps)
    h_out.copy_(h)
    logits_out.copy_(F.linear(h.to(head.dtype), head))
    idx.add_(1)
    pos.add_(1)


_DECODERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def decoder_key(cfg, batch: int, max_len: int, dtype: torch.dtype, device: torch.device, graph: bool,
                compile_layer: bool, attention: str | None, split: int | None, projections: str | None) -> tuple:
    """What a StaticDecoder is built for, every automatic choice resolved; its last three entries are the attention
    kind, the split-K chunk size and the projections kind. A cached decoder is reused only for an equal key."""
    return (batch, max_len, dtype, device, graph and device.type == "cuda", compile_layer,
            decode_attention_kind(device, attention, cfg.hidden_size // cfg.num_attention_heads),
            split or DA.default_split(batch, cfg.num_key_value_heads, max_len),
            decode_projections_kind(device, projections, batch, cfg))


def static_decoder(model, batch: int, max_len: int, dtype: torch.dtype, device: torch.device,
                   graph: bool, compile_layer: bool = False, attention: str | None = None,
                   split: int | None = None, projections: str | None = None) -> StaticDecoder:
    """The model's decoder for this shape, weights refreshed; rebuilt (cache and graph) only when the shape changes.
    The cache length is rounded up to a multiple of 256 so varying prompt lengths reuse one graph (the split-K
    attention skips the unfilled slots, so the padding costs no attention work)."""
    max_len = -(-max_len // 256) * 256
    key = decoder_key(model.config.get_text_config(), batch, max_len, dtype, device, graph, compile_layer, attention,
                      split, projections)
    dec = _DECODERS.get(model)
    if dec is not None and dec.key == key:
        dec.weights.refresh(model)
        return dec
    _DECODERS.pop(model, None)
    del dec
    dec = StaticDecoder(model, batch, max_len, dtype, device, graph, compile_layer, *key[-3:])
    _DECODERS[model] = dec
    return dec


def free_static_decoders() -> None:
    """Drop every cached decoder (caches, weight copies, graphs), e.g. before measuring something else's memory."""
    _DECODERS.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
