"""xformers for the GPU benchmark: memory_efficient_attention through PyTorch's
scaled_dot_product_attention (its memory-efficient kernel handles the block-diagonal mask of
Open-Sora's cross-attention). Used only when the real xformers package is missing."""
from . import ops  # noqa: F401
