"""flash_attn for the GPU benchmark: flash_attn_func through PyTorch's scaled_dot_product_attention,
which dispatches to its FlashAttention-2 kernel for bf16/f16 on Ampere and newer (the "fast attention"
the PyTorch side of bench/gpu runs with). Used only when the real flash_attn package is missing.
q/k/v [B, L, H, D] -> [B, L, H, D]. Falls back to exact softmax attention where SDPA does not exist
(torch < 2.0, for the CPU dry run)."""
import torch
import torch.nn.functional as F


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, **kwargs):
    assert dropout_p == 0.0
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    if hasattr(F, "scaled_dot_product_attention"):
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=softmax_scale)
    else:
        assert not causal
        scale = q.shape[-1] ** -0.5 if softmax_scale is None else softmax_scale
        o = ((q.float() * scale) @ k.float().transpose(-2, -1)).softmax(-1).to(q.dtype) @ v
    return o.transpose(1, 2).contiguous()
