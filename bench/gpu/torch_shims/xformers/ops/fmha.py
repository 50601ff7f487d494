"""BlockDiagonalMask.from_seqlens(q_seqlen, kv_seqlen) as used by Open-Sora's cross-attention."""
import torch


class BlockDiagonalMask:
    def __init__(self, q_seqlen, kv_seqlen):
        self.q_seqlen = list(q_seqlen)
        self.kv_seqlen = list(kv_seqlen if kv_seqlen is not None else q_seqlen)

    @classmethod
    def from_seqlens(cls, q_seqlen, kv_seqlen=None):
        return cls(q_seqlen, kv_seqlen)

    def dense(self, mq, mk, device):
        m = torch.zeros(mq, mk, dtype=torch.bool, device=device)
        qs = ks = 0
        for a, b in zip(self.q_seqlen, self.kv_seqlen):
            m[qs : qs + a, ks : ks + b] = True
            qs += a
            ks += b
        return m
