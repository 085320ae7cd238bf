"""Decode attention for the static rollout step (lvr.train.decode_step): one new query per row over a preallocated
KV cache, of which each row has filled only its first `lengths[b]` slots.

Why not SDPA: with 8 rows and 2 key/value heads a flash kernel gets one block per (row, kv head), 16 blocks on a
132-SM GPU, each walking the whole padded cache (1,024 slots at 3B rollout shapes): ~24 µs a layer, 20% of a decode
step. Here (split-K "flash decoding") each program takes one (row, kv head, chunk of `split` slots), skips chunks past
the row's filled length, and attends with all query heads of its group at once (GQA: keys are read once per group,
never repeated); a second small kernel merges the chunks by their log-sum-exp. In the decode step the first kernel
also applies RoPE to the new query and key and writes the new key and value into the cache (the program whose chunk
holds the new slot), so the layer launches no separate kernels for those.

Triton kernels behind a torch custom op (`lvr::decode_attention_rope`) so that a `torch.compile`d decoder layer and a
CUDA graph capture them. Under TRITON_INTERPRET=1 the same kernels run on CPU tensors, which is how the tests check them
against SDPA.
"""

import torch
import torch.nn.functional as F

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton ships with CUDA builds of torch
    triton = None

BLOCK_N = 64   # cache slots per inner tile
MIN_SPLIT = BLOCK_N


def available(device: torch.device) -> bool:
    """Whether the split-K kernels can run for tensors on `device` (CUDA, or CPU under Triton's interpreter)."""
    if triton is None:
        return False
    if device.type == "cuda":
        return True
    import os

    return os.environ.get("TRITON_INTERPRET") == "1"


def supports(head_dim: int) -> bool:
    """The kernels tile the head dimension whole: a power of two of at least 16 (128 in every Qwen2.5-VL size)."""
    return head_dim >= 16 and head_dim & (head_dim - 1) == 0


def default_split(batch: int, kv_heads: int, max_len: int, programs: int = 264) -> int:
    """Slots per program: enough programs to cover the GPU about twice over a full cache (power of two, ≥ BLOCK_N)."""
    want = max(1, batch * kv_heads * max_len // programs)
    return max(MIN_SPLIT, 1 << (want - 1).bit_length())


def sdpa_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, lengths: torch.Tensor,
                   scale: float | None = None) -> torch.Tensor:
    """The reference: q [B, Hq, D] over k/v [B, Hkv, S, D] where slot s of row b is visible iff s < lengths[b]
    -> [B, Hq, D]. The query heads sharing one key/value head attend as a group (their queries as rows)."""
    B, Hq, D = q.shape
    Hkv, S = k_cache.shape[1], k_cache.shape[2]
    mask = (torch.arange(S, device=q.device)[None, :] < lengths[:, None])[:, None, None, :]
    out = F.scaled_dot_product_attention(q.reshape(B, Hkv, Hq // Hkv, D), k_cache, v_cache, attn_mask=mask,
                                         scale=scale)
    return out.reshape(B, Hq, D)


if triton is not None:
    @triton.jit
    def _attend_chunk(q_ptr, k_ptr, v_ptr, len_ptr, o_ptr, lse_ptr, cos_ptr, sin_ptr,
                      sq_b, sq_h, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, so_b, so_h, so_s, sl_b, sl_h, sc_b,
                      scale, n_heads,
                      GROUP: tl.constexpr, GROUP_PAD: tl.constexpr, HEAD_DIM: tl.constexpr, SPLIT: tl.constexpr,
                      BLOCK: tl.constexpr, IEEE: tl.constexpr, ROPE: tl.constexpr):
        b = tl.program_id(0)
        kvh = tl.program_id(1)
        chunk = tl.program_id(2)
        length = tl.load(len_ptr + b).to(tl.int32)
        g = tl.arange(0, GROUP_PAD)
        d = tl.arange(0, HEAD_DIM)
        n = tl.arange(0, BLOCK)
        heads = kvh * GROUP + g
        in_group = g < GROUP
        q_rows = q_ptr + b * sq_b + heads[:, None] * sq_h
        q = tl.load(q_rows + d[None, :], mask=in_group[:, None], other=0.0)
        if ROPE:
            # q_ptr is the projection's row [q heads | k heads | v heads]; `len_ptr` holds the new slot (its index,
            # so the row attends to length + 1 slots). Rotation in fp32, rounded once to the cache dtype, as the
            # compiled layer's fused elementwise kernel did before.
            new_slot = length
            length = length + 1
            half = (d + HEAD_DIM // 2) % HEAD_DIM
            cos = tl.load(cos_ptr + b * sc_b + d).to(tl.float32)
            sin = tl.load(sin_ptr + b * sc_b + d).to(tl.float32)
            q_rolled = tl.load(q_rows + half[None, :], mask=in_group[:, None], other=0.0)
            q = (q.to(tl.float32) * cos[None, :] + q_rolled.to(tl.float32) * sin[None, :]).to(k_ptr.dtype.element_ty)
            k_row = q_ptr + b * sq_b + (n_heads + kvh) * sq_h
            k_new = (tl.load(k_row + d).to(tl.float32) * cos + tl.load(k_row + half).to(tl.float32) * sin)
            k_new = k_new.to(k_ptr.dtype.element_ty)
            v_new = tl.load(q_ptr + b * sq_b + (n_heads + n_heads // GROUP + kvh) * sq_h + d)
            slot = d * 0 + new_slot   # per element, so that the store's mask is a vector
            owner = (slot >= chunk * SPLIT) & (slot < chunk * SPLIT + SPLIT)
            tl.store(k_ptr + b * sk_b + kvh * sk_h + new_slot * sk_s + d, k_new, mask=owner)
            tl.store(v_ptr + b * sv_b + kvh * sv_h + new_slot * sv_s + d, v_new.to(v_ptr.dtype.element_ty),
                     mask=owner)
        m_i = tl.full([GROUP_PAD], -1.0e30, tl.float32)   # finite: a chunk past the row's length stays NaN-free
        l_i = tl.zeros([GROUP_PAD], tl.float32)
        acc = tl.zeros([GROUP_PAD, HEAD_DIM], tl.float32)
        start = chunk * SPLIT
        end = tl.minimum(start + SPLIT, length)
        k_base = k_ptr + b * sk_b + kvh * sk_h
        v_base = v_ptr + b * sv_b + kvh * sv_h
        for n0 in range(start, end, BLOCK):
            slots = n0 + n
            visible = slots < end
            k = tl.load(k_base + slots[:, None] * sk_s + d[None, :], mask=visible[:, None], other=0.0)
            v = tl.load(v_base + slots[:, None] * sv_s + d[None, :], mask=visible[:, None], other=0.0)
            if ROPE:    # the new slot from registers: this program's own store may not be visible to its loads
                fresh = (slots == new_slot)[:, None]
                k = tl.where(fresh, k_new[None, :], k)
                v = tl.where(fresh, v_new[None, :].to(v.dtype), v)
            if IEEE:
                s = tl.dot(q, tl.trans(k), input_precision="ieee")
            else:
                s = tl.dot(q, tl.trans(k))
            s = tl.where(visible[None, :], s * scale, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            alpha = tl.exp(m_i - m_new)
            p = tl.exp(s - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            if IEEE:
                pv = tl.dot(p, v, input_precision="ieee")
            else:
                pv = tl.dot(p.to(v.dtype), v)
            acc = acc * alpha[:, None] + pv
            m_i = m_new
        # l_i ≥ 1 for a chunk with a visible slot; an empty chunk gets lse ≈ -1e30, so the merge weighs it 0
        lse = m_i + tl.log(tl.maximum(l_i, 1.0e-30))
        out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
        tl.store(o_ptr + b * so_b + heads[:, None] * so_h + chunk * so_s + d[None, :], out, mask=in_group[:, None])
        tl.store(lse_ptr + b * sl_b + heads * sl_h + chunk, lse, mask=in_group)

    @triton.jit
    def _merge_chunks(o_ptr, lse_ptr, out_ptr, so_b, so_h, so_s, sl_b, sl_h, sout_b, sout_h, n_chunks,
                      CHUNKS_PAD: tl.constexpr, HEAD_DIM: tl.constexpr):
        b = tl.program_id(0)
        h = tl.program_id(1)
        c = tl.arange(0, CHUNKS_PAD)
        d = tl.arange(0, HEAD_DIM)
        used = c < n_chunks
        lse = tl.load(lse_ptr + b * sl_b + h * sl_h + c, mask=used, other=float("-inf"))
        w = tl.exp(lse - tl.max(lse, 0))
        o = tl.load(o_ptr + b * so_b + h * so_h + c[:, None] * so_s + d[None, :], mask=used[:, None], other=0.0)
        out = tl.sum(o * w[:, None], 0) / tl.sum(w, 0)
        tl.store(out_ptr + b * sout_b + h * sout_h + d, out.to(out_ptr.dtype.element_ty))


def _pow2(n: int, least: int) -> int:
    return max(least, 1 << (max(1, n) - 1).bit_length())


def split_k_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, lengths: torch.Tensor,
                      scale: float, split: int) -> torch.Tensor:
    """Same contract as `sdpa_attention` (lengths ≥ 1 for every row), computed by the split-K kernels."""
    q = q if q.stride(-1) == 1 else q.contiguous()
    return _launch(q, q.stride(0), q.stride(1), q.shape[1], k_cache, v_cache, lengths, scale, split, None, None)


def split_k_attention_rope(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k_cache: torch.Tensor,
                           v_cache: torch.Tensor, idx: torch.Tensor, n_heads: int, scale: float,
                           split: int) -> torch.Tensor:
    """The decode step's attention from its q/k/v projection row `qkv` [B, (n_heads + 2·kv_heads)·D]: q and k rotated
    (x·cos + roll(x, D/2)·sin; `sin` carries rotate-half's sign), the new key and value written at slot `idx[b]` of
    each row's cache (mutated), then attention over slots 0..idx[b] -> [B, n_heads, D]. One kernel does all three."""
    D = k_cache.shape[-1]
    if qkv.stride(-1) != 1 or cos.stride(-1) != 1 or sin.stride(-1) != 1 or cos.stride(0) != sin.stride(0):
        raise ValueError("decode attention with RoPE needs rows of qkv, cos and sin with unit inner stride")
    return _launch(qkv, qkv.stride(0), D, n_heads, k_cache, v_cache, idx, scale, split, cos, sin)


def _launch(q, sq_b, sq_h, Hq, k_cache, v_cache, lengths, scale, split, cos, sin) -> torch.Tensor:
    B = q.shape[0]
    _, Hkv, S, D = k_cache.shape
    if k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1:
        raise ValueError("decode attention needs caches with unit inner stride")
    if not supports(D):
        raise ValueError(f"decode attention needs a power-of-two head size ≥ 16, got {D}")
    if split % BLOCK_N:
        raise ValueError(f"split must be a multiple of {BLOCK_N}, got {split}")
    rope = cos is not None
    group = Hq // Hkv
    chunks = -(-S // split)
    partial = torch.empty(B, Hq, chunks, D, dtype=torch.float32, device=q.device)
    lse = torch.empty(B, Hq, chunks, dtype=torch.float32, device=q.device)
    out = torch.empty(B, Hq, D, dtype=k_cache.dtype if rope else q.dtype, device=q.device)
    _attend_chunk[(B, Hkv, chunks)](
        q, k_cache, v_cache, lengths, partial, lse, cos if rope else q, sin if rope else q,
        sq_b, sq_h, k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2), partial.stride(0), partial.stride(1),
        partial.stride(2), lse.stride(0), lse.stride(1), cos.stride(0) if rope else 0, scale, Hq,
        GROUP=group, GROUP_PAD=_pow2(group, 16), HEAD_DIM=D, SPLIT=split, BLOCK=BLOCK_N,
        IEEE=k_cache.dtype == torch.float32, ROPE=rope)
    _merge_chunks[(B, Hq)](
        partial, lse, out, partial.stride(0), partial.stride(1), partial.stride(2), lse.stride(0), lse.stride(1),
        out.stride(0), out.stride(1), chunks, CHUNKS_PAD=_pow2(chunks, 2), HEAD_DIM=D)
    return out


@torch.library.custom_op("lvr::decode_attention_rope", mutates_args=("k_cache", "v_cache"))
def decode_attention_rope(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, k_cache: torch.Tensor,
                          v_cache: torch.Tensor, idx: torch.Tensor, n_heads: int, scale: float,
                          split: int) -> torch.Tensor:
    """`split_k_attention_rope` as one opaque op for torch.compile (Inductor calls it; the CUDA graph records its two
    kernels)."""
    return split_k_attention_rope(qkv, cos, sin, k_cache, v_cache, idx, n_heads, scale, split)


@decode_attention_rope.register_fake
def _(qkv, cos, sin, k_cache, v_cache, idx, n_heads, scale, split):
    return k_cache.new_empty(qkv.shape[0], n_heads, k_cache.shape[-1])
