"""Decode attention for the static rollout step (lvr.train.decode_step): one new query per row over a preallocated
KV cache, of which each row has filled only its first `lengths[b]` slots.

Why not SDPA: with 8 rows and 2 key/value heads a flash kernel gets one block per (row, kv head), 16 blocks on a
132-SM GPU, each walking the whole padded cache (1,024 slots at 3B rollout shapes): ~24 µs a layer, 20% of a decode
step. Here (split-K "flash decoding") each program takes one (row, kv head, chunk of `split` slots), skips chunks past
the row's filled length, and attends with all query heads of its group at once (GQA: keys are read once per group,
never repeated); a second small kernel merges the chunks by their log-sum-exp.

Triton kernels behind a torch custom op (`lvr::decode_attention`) so that a `torch.compile`d decoder layer and a CUDA
graph capture it. Under TRITON_INTERPRET=1 the same kernels run on CPU tensors, which is how the tests check them
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
    def _attend_chunk(q_ptr, k_ptr, v_ptr, len_ptr, o_ptr, lse_ptr,
                      sq_b, sq_h, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, so_b, so_h, so_s, sl_b, sl_h, scale,
                      GROUP: tl.constexpr, GROUP_PAD: tl.constexpr, HEAD_DIM: tl.constexpr, SPLIT: tl.constexpr,
                      BLOCK: tl.constexpr, IEEE: tl.constexpr):
        b = tl.program_id(0)
        kvh = tl.program_id(1)
        chunk = tl.program_id(2)
        length = tl.load(len_ptr + b).to(tl.int32)
        g = tl.arange(0, GROUP_PAD)
        d = tl.arange(0, HEAD_DIM)
        n = tl.arange(0, BLOCK)
        heads = kvh * GROUP + g
        in_group = g < GROUP
        q = tl.load(q_ptr + b * sq_b + heads[:, None] * sq_h + d[None, :], mask=in_group[:, None], other=0.0)
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
            if IEEE:
                s = tl.dot(q, tl.trans(k), input_precision="ieee")
            else:
                s = tl.dot(q, tl.trans(k))
            s = tl.where(visible[None, :], s * scale, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            alpha = tl.exp(m_i - m_new)
            p = tl.exp(s - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            v = tl.load(v_base + slots[:, None] * sv_s + d[None, :], mask=visible[:, None], other=0.0)
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
    B, Hq, D = q.shape
    _, Hkv, S, _ = k_cache.shape
    q, k_cache, v_cache = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k_cache, v_cache))
    if not supports(D):
        raise ValueError(f"decode attention needs a power-of-two head size ≥ 16, got {D}")
    if split % BLOCK_N:
        raise ValueError(f"split must be a multiple of {BLOCK_N}, got {split}")
    group = Hq // Hkv
    chunks = -(-S // split)
    partial = torch.empty(B, Hq, chunks, D, dtype=torch.float32, device=q.device)
    lse = torch.empty(B, Hq, chunks, dtype=torch.float32, device=q.device)
    out = torch.empty(B, Hq, D, dtype=q.dtype, device=q.device)
    _attend_chunk[(B, Hkv, chunks)](
        q, k_cache, v_cache, lengths, partial, lse,
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2), partial.stride(0), partial.stride(1),
        partial.stride(2), lse.stride(0), lse.stride(1), scale,
        GROUP=group, GROUP_PAD=_pow2(group, 16), HEAD_DIM=D, SPLIT=split, BLOCK=BLOCK_N,
        IEEE=q.dtype == torch.float32)
    _merge_chunks[(B, Hq)](
        partial, lse, out, partial.stride(0), partial.stride(1), partial.stride(2), lse.stride(0), lse.stride(1),
        out.stride(0), out.stride(1), chunks, CHUNKS_PAD=_pow2(chunks, 2), HEAD_DIM=D)
    return out


@torch.library.custom_op("lvr::decode_attention", mutates_args=())
def decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, lengths: torch.Tensor,
                     scale: float, split: int) -> torch.Tensor:
    """`split_k_attention` as one opaque op for torch.compile (Inductor calls it; the CUDA graph records its two
    kernels)."""
    return split_k_attention(q, k_cache, v_cache, lengths, scale, split)


@decode_attention.register_fake
def _(q, k_cache, v_cache, lengths, scale, split):
    return torch.empty_like(q, memory_format=torch.contiguous_format)
