"""memory_efficient_attention(q, k, v, attn_bias) -> SDPA; fmha.BlockDiagonalMask.from_seqlens as a dense
boolean mask (one block per sample: queries of sample i attend to the keys of sample i)."""
import torch
import torch.nn.functional as F

from . import fmha  # noqa: F401
from .fmha import BlockDiagonalMask


def memory_efficient_attention(query, key, value, attn_bias=None, p=0.0, scale=None, op=None):
    assert p == 0.0
    q, k, v = (t.transpose(1, 2) for t in (query, key, value))  # [B, H, M, K]
    mask = None
    if attn_bias is not None:
        assert isinstance(attn_bias, BlockDiagonalMask) and query.shape[0] == 1
        mask = attn_bias.dense(query.shape[1], key.shape[1], query.device)
    if hasattr(F, "scaled_dot_product_attention"):
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    else:
        s = (q.float() * (scale or q.shape[-1] ** -0.5)) @ k.float().transpose(-2, -1)
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        o = s.softmax(-1).to(q.dtype) @ v
    return o.transpose(1, 2).contiguous()
