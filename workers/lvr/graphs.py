"""torch modules that become the bundle's ONNX graphs (docs/bundle-format.md).

They reuse the weights and leaf modules (linear layers, RMSNorm, MLP, patch embed, merger) of the transformers model
but spell out attention, rotary embeddings and the KV cache with plain tensor ops, so the graphs have no Python
control flow that depends on data: everything derived from `grid_thw` is an input, and the KV cache is explicit
tensors. The exporter checks every graph against transformers' own forward.
"""

from __future__ import annotations

import torch
from torch import nn


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def mrope_angles(position_ids: torch.Tensor, inv_freq: torch.Tensor, sections: list[int]) -> torch.Tensor:
    """M-RoPE rotation angles [B, S, D] (float32) from positions [3, B, S] (LVR-SPEC Appendix A): frequency band j
    takes its angle from axis j % 3, band sizes `sections` (summing to D / 2); both halves carry the same angles."""
    freqs = position_ids[..., None].float() * inv_freq.float()  # [3,B,S,D/2]
    half = torch.cat([band[j % 3] for j, band in enumerate(freqs.split(sections, dim=-1))], dim=-1)
    return torch.cat((half, half), dim=-1)


def _attend(q, k, v, bias, scale):
    """softmax(q k^T * scale + bias) v with the softmax in float32 (as transformers' eager attention)."""
    w = torch.matmul(q, k.transpose(-1, -2)) * scale
    if bias is not None:
        w = w + bias
    w = torch.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(w, v)


class EmbedGraph(nn.Module):
    """input_ids [B,S] -> inputs_embeds [B,S,H]."""

    def __init__(self, model):
        super().__init__()
        self.embed = model.model.language_model.embed_tokens

    def forward(self, input_ids):
        return self.embed(input_ids)


class DecoderGraph(nn.Module):
    """inputs_embeds, attention_mask, position_ids [3,B,S], past k/v per layer -> logits, last_hidden_state, presents."""

    def __init__(self, model):
        super().__init__()
        tm = model.model.language_model
        cfg = model.config.text_config
        self.layers = tm.layers
        self.norm = tm.norm
        self.lm_head = model.lm_head
        self.register_buffer("inv_freq", tm.rotary_emb.inv_freq.detach().clone().float(), persistent=False)
        self.attention_scaling = float(getattr(tm.rotary_emb, "attention_scaling", 1.0))
        self.mrope_section = list(tm.rotary_emb.mrope_section)
        self.num_heads = cfg.num_attention_heads
        self.num_kv = cfg.num_key_value_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.scale = self.head_dim ** -0.5

    def _rope(self, position_ids, dtype):
        emb = mrope_angles(position_ids, self.inv_freq, self.mrope_section)
        return (emb.cos() * self.attention_scaling).to(dtype), (emb.sin() * self.attention_scaling).to(dtype)

    def forward(self, inputs_embeds, attention_mask, position_ids, *past):
        x = inputs_embeds
        dtype = x.dtype
        b, s = x.shape[0], x.shape[1]
        p = past[0].shape[2]
        total = attention_mask.shape[1]
        cos, sin = self._rope(position_ids, dtype)
        cos, sin = cos[:, None], sin[:, None]
        q_idx = torch.arange(s, device=x.device)[:, None] + p
        k_idx = torch.arange(total, device=x.device)[None, :]
        allowed = (k_idx <= q_idx)[None, None] & (attention_mask[:, None, None, :] > 0)
        bias = torch.where(allowed, torch.zeros((), dtype=dtype), torch.full((), torch.finfo(dtype).min, dtype=dtype))
        presents = []
        rep = self.num_heads // self.num_kv
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(h).view(b, s, self.num_kv, self.head_dim).transpose(1, 2)
            v = attn.v_proj(h).view(b, s, self.num_kv, self.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            k = torch.cat([past[2 * i], k], dim=2)
            v = torch.cat([past[2 * i + 1], v], dim=2)
            presents += [k, v]
            kk = k.repeat_interleave(rep, dim=1) if rep > 1 else k
            vv = v.repeat_interleave(rep, dim=1) if rep > 1 else v
            o = _attend(q, kk, vv, bias, self.scale).transpose(1, 2).reshape(b, s, -1)
            x = x + attn.o_proj(o)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        last = self.norm(x)[:, -1, :]
        logits = self.lm_head(last).float()
        return (logits, last, *presents)


class VisionGraph(nn.Module):
    """One image: the resized RGB image's bytes (or its pixel_values) + host-computed layout inputs -> merged visual
    tokens [M, H] in raster order."""

    def __init__(self, model, image_cfg=None, conv_patch_embed: bool = False):
        """`image_cfg` (`lvr.preprocess.ImageConfig`): the graph takes the resized image as uint8 [H, W, 3] and computes
        the processor's pixel_values itself with these constants (`lvr.preprocess.rgb_to_pixel_values`); None: it takes
        the float pixel_values (the graph before `image_bytes`). `conv_patch_embed`: trace the patch embedding as the
        model's Conv3d (the graph before it became a MatMul). `npm run bench -- vision` times both older forms."""
        super().__init__()
        self.takes_image = image_cfg is not None
        if self.takes_image:
            self.patch, self.merge = int(image_cfg.patch_size), int(image_cfg.merge_size)
            self.temporal = int(image_cfg.temporal_patch_size)
            self.register_buffer("rescale", torch.tensor(image_cfg.rescale_factor, dtype=torch.float32),
                                 persistent=False)
            self.register_buffer("mean", torch.tensor(image_cfg.image_mean, dtype=torch.float32)[:, None, None],
                                 persistent=False)
            self.register_buffer("std", torch.tensor(image_cfg.image_std, dtype=torch.float32)[:, None, None],
                                 persistent=False)
        vis = model.model.visual
        cfg = model.config.vision_config
        # The patch embedding is a Conv3d whose kernel is its stride and covers a whole row of pixel_values: the same
        # product as a MatMul by its weight flattened in the row's (channel, frame, y, x) order, which ONNX Runtime
        # runs as one GEMM instead of a 3D convolution.
        proj = vis.patch_embed.proj
        if proj.bias is not None or tuple(proj.kernel_size) != tuple(proj.stride):
            raise ValueError("patch embedding: expected a bias-free Conv3d whose kernel is its stride")
        self.patch_embed = vis.patch_embed if conv_patch_embed else None
        self.patch_weight = proj.weight
        self.blocks = vis.blocks
        self.merger = vis.merger
        self.full = set(int(i) for i in cfg.fullatt_block_indexes)
        self.unit = cfg.spatial_merge_size ** 2
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.hidden_size // cfg.num_heads
        self.register_buffer("inv_freq", vis.rotary_pos_emb.inv_freq.detach().clone().float(), persistent=False)
        self.dtype = next(vis.parameters()).dtype

    def pixel_values(self, image):
        """uint8 [H, W, C] -> float32 [N, C*tp*ps*ps]: the bytes laid out in patch order (2x2 merge blocks, row-major
        blocks; each row (c, y, x)), then the processor's float32 operations in its order, each row repeated over the
        temporal frames."""
        ps, m, c = self.patch, self.merge, image.shape[2]
        blocks_wide = image.shape[1] // (ps * m)
        x = image.reshape(-1, m, ps, blocks_wide, m, ps, c).permute(0, 3, 1, 4, 6, 2, 5)
        x = x.reshape(-1, c, 1, ps * ps).float() * self.rescale
        x = (x - self.mean) / self.std
        return x.expand(-1, -1, self.temporal, -1).reshape(x.shape[0], -1)

    def forward(self, pixels, rotary_pos_ids, window_index, reverse_window_index, window_slots, patch_slots):
        pixel_values = self.pixel_values(pixels) if self.takes_image else pixels
        if self.patch_embed is not None:
            x = self.patch_embed(pixel_values.to(self.dtype))
        else:
            w = self.patch_weight
            x = pixel_values.to(self.dtype) @ w.reshape(w.shape[0], -1).t()
        n, c = x.shape
        x = x.reshape(-1, self.unit, c)[window_index].reshape(n, c)
        pos = rotary_pos_ids.reshape(-1, self.unit, 2)[window_index].reshape(n, 2)
        freqs = pos[..., None].float() * self.inv_freq  # [N,2,d/4]
        hw = torch.cat([freqs[:, 0], freqs[:, 1]], dim=-1)
        emb = torch.cat([hw, hw], dim=-1)[:, None, :]  # [N,1,d]
        cos, sin = emb.cos(), emb.sin()
        # Window attention as a batch of W windows of S slots; padding slots read row 0 and are masked as keys.
        windows, slots = window_slots.shape
        real = window_slots >= 0
        slot_rows = torch.where(real, window_slots, torch.zeros_like(window_slots)).reshape(-1)
        zero = torch.zeros((), dtype=self.dtype)
        slot_bias = torch.where(real, zero, torch.full((), torch.finfo(self.dtype).min, dtype=self.dtype))
        slot_bias = slot_bias[:, None, None, :]  # [W,1,1,S]

        def windowed(t):  # [N,heads,d] -> [W,heads,S,d]
            return t[slot_rows].reshape(windows, slots, self.num_heads, self.head_dim).transpose(1, 2)

        for i, blk in enumerate(self.blocks):
            attn = blk.attn
            h = blk.norm1(x)
            qkv = attn.qkv(h).reshape(n, 3, self.num_heads, self.head_dim).permute(1, 0, 2, 3)
            q, k, v = qkv[0], qkv[1], qkv[2]
            qf, kf = q.float(), k.float()
            q = (qf * cos + _rotate_half(qf) * sin).to(self.dtype)
            k = (kf * cos + _rotate_half(kf) * sin).to(self.dtype)
            scale = self.head_dim ** -0.5
            if i in self.full:
                o = _attend(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), None, scale).transpose(0, 1)
            else:
                o = _attend(windowed(q), windowed(k), windowed(v), slot_bias, scale)  # [W,heads,S,d]
                o = o.transpose(1, 2).reshape(windows * slots, self.num_heads, self.head_dim)[patch_slots]
            x = x + attn.proj(o.reshape(n, -1))
            x = x + blk.mlp(blk.norm2(x))
        merged = self.merger(x)
        return merged[reverse_window_index]


class HeadGraph(nn.Module):
    """LVR head ablation: hidden_state [B,H] -> head_state [B,H], logits float32 [B,V]."""

    def __init__(self, model):
        super().__init__()
        self.head = model.lvr_head
        self.lm_head = model.lm_head

    def forward(self, hidden_state):
        h = self.head(hidden_state)
        return h, self.lm_head(h).float()
