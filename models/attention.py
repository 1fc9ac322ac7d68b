"""The two attentions of SL-GT2Net: multi-scale local windows (SMLW-MHSA) and pyramid-pooled global (SMGW-MHSA).

Both take tokens ``(B, N, D)`` in (t, h, w) order plus the map shape ``(T, H, W)``. Channels (and heads) are
split into G groups; group g of the local attention has its own ``dss[g] × wss[g] × wss[g]`` window.

Speed without changing the math: at ``topk_div == 1`` attention is one fused
``F.scaled_dot_product_attention`` call per group (no top-k, no mask); the global attention attends all
queries to the shared pooled keys directly, without padding queries to windows; with ``topk_div > 1`` the
kept logits are soft-maxed on their own and scattered back into the logit buffer, so no dense float mask the
size of the attention matrix is ever built.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from models.depthwise import DepthwiseConv3d

POOL_RATIOS = (1, 2, 3, 6)


def sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: int, scale: float) -> torch.Tensor:
    """Attention in which each query keeps only its ``keep`` largest logits (the rest weigh exactly 0).

    Shapes ``(..., Nq, d)``, ``(..., Nk, d)``, ``(..., Nk, d)``. Equal to masking the other logits with −inf
    before the softmax; ties are broken as ``torch.topk`` breaks them, so exactly ``keep`` keys take part.
    """
    logits = torch.matmul(q * scale, k.transpose(-2, -1))
    if keep >= logits.shape[-1]:
        return torch.matmul(logits.softmax(dim=-1), v)
    top, index = logits.topk(keep, dim=-1, sorted=False)
    if logits.requires_grad:
        # topk's backward needs only the indices: drop the logits before allocating the probabilities
        shape = logits.shape
        del logits
        probs = q.new_zeros(shape)
    else:
        probs = logits.zero_()  # inference: re-use the logit buffer
    probs.scatter_(-1, index, top.softmax(dim=-1))
    return torch.matmul(probs, v)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, topk_div: int) -> torch.Tensor:
    """Scaled dot-product attention, dense (fused kernel) at ``topk_div == 1``, top-k sparse above."""
    if topk_div <= 1:
        return F.scaled_dot_product_attention(q, k, v)
    keep = max(1, k.shape[-2] // topk_div)
    return sparse_attention(q, k, v, keep, q.shape[-1] ** -0.5)


def _check_groups(dim: int, num_heads: int, groups: int) -> int:
    if dim % num_heads or num_heads % groups:
        raise ValueError(f"dim {dim} must divide into {num_heads} heads, and heads into {groups} window groups")
    return num_heads // groups


class LocalWindowAttention(nn.Module):
    """SMLW-MHSA: each channel group attends within its own (t, h, w) window size."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_sizes: Sequence[int],
        window_depths: Sequence[int],
        topk_div: int = 1,
        qkv_bias: bool = True,
    ):
        super().__init__()
        if len(window_sizes) != len(window_depths):
            raise ValueError("window_sizes and window_depths need one entry per group")
        self.groups = len(window_sizes)
        self.heads_per_group = _check_groups(dim, num_heads, self.groups)
        self.head_dim = dim // num_heads
        self.windows = [(int(d), int(s), int(s)) for d, s in zip(window_depths, window_sizes)]
        self.topk_div = int(topk_div)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        t, h, w = shape
        # (B, N, 3D) -> (3, G, B, T, H, W, heads_g * head_dim): q|k|v, then channel groups
        qkv = rearrange(self.qkv(x), "b (t h w) (s g c) -> s g b t h w c", t=t, h=h, w=w, s=3, g=self.groups)
        outs = [self._group(qkv[:, g], g) for g in range(self.groups)]
        out = torch.cat(outs, dim=-1)
        return self.proj(rearrange(out, "b t h w c -> b (t h w) c"))

    def _group(self, qkv: torch.Tensor, g: int) -> torch.Tensor:
        _, b, t, h, w, _ = qkv.shape
        wt, wh, ww = self.windows[g]
        pt, ph, pw = -t % wt, -h % wh, -w % ww
        if pt or ph or pw:
            # zero tokens after the projection: padded keys take part in the softmax, as in the reference
            qkv = F.pad(qkv, (0, 0, 0, pw, 0, ph, 0, pt))
        nt, nh, nw = (t + pt) // wt, (h + ph) // wh, (w + pw) // ww
        # (3, B, T', H', W', heads·d) -> (3, B·windows, heads, window tokens, d)
        win = rearrange(
            qkv,
            "s b (nt wt) (nh wh) (nw ww) (m d) -> s (b nt nh nw) m (wt wh ww) d",
            wt=wt, wh=wh, ww=ww, m=self.heads_per_group,
        )
        out = attend(win[0], win[1], win[2], self.topk_div)
        out = rearrange(
            out, "(b nt nh nw) m (wt wh ww) d -> b (nt wt) (nh wh) (nw ww) (m d)", b=b, nt=nt, nh=nh, nw=nw, wt=wt, wh=wh
        )
        return out[:, :t, :h, :w]


class PyramidPooledKV(nn.Module):
    """Keys and values of the global attention from pyramid pooling of the whole map (1, 2, 3, 6 bins)."""

    def __init__(self, dim: int, ratios: Sequence[int] = POOL_RATIOS, norm_eps: float = 1e-5):
        super().__init__()
        self.ratios = tuple(ratios)
        self.convs = nn.ModuleList(DepthwiseConv3d(dim) for _ in self.ratios)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.proj = nn.Linear(dim, dim * 2)

    def forward(self, x: torch.Tensor, shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        t, h, w = shape
        fmap = rearrange(x, "b (t h w) c -> b c t h w", t=t, h=h, w=w)
        pooled = []
        for r, conv in zip(self.ratios, self.convs):
            p = F.adaptive_avg_pool3d(fmap, (min(r, t), r, r))
            pooled.append((p + conv(p)).flatten(2))
        tokens = rearrange(torch.cat(pooled, dim=2), "b c n -> b n c")
        k, v = self.proj(self.norm(tokens)).chunk(2, dim=-1)
        return k, v


class GlobalPooledAttention(nn.Module):
    """SMGW-MHSA: every query attends to the same pyramid-pooled tokens, so cost is linear in N."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        groups: int = 3,
        topk_div: int = 1,
        qkv_bias: bool = True,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        _check_groups(dim, num_heads, groups)
        self.num_heads = num_heads
        self.topk_div = int(topk_div)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.glb_kv = PyramidPooledKV(dim, norm_eps=norm_eps)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        k, v = self.glb_kv(x, shape)
        # Groups only split channels, and all of them see the same keys: that is plain multi-head attention.
        q, k, v = (rearrange(a, "b n (m d) -> b m n d", m=self.num_heads) for a in (self.q(x), k, v))
        out = attend(q, k, v, self.topk_div)
        return self.proj(rearrange(out, "b m n d -> b n (m d)"))
