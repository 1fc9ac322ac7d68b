"""Building blocks of SL-GT2Net: transformer blocks and stages, merge (down-sampling) blocks with STCRB,
and the decoder's up-sampling steps.

Module and attribute names follow the reference implementation's state-dict layout, so a published
checkpoint loads after stripping its ``backbone.`` prefix (see :mod:`models.reference`).
Feature maps travel as tokens ``(B, N, D)`` with N in (t, h, w) order; convolutions see the same memory as
a channels-last ``(B, D, T, H, W)`` view.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from models.attention import GlobalPooledAttention, LocalWindowAttention
from models.depthwise import DepthwiseConv3d

Shape = tuple[int, int, int]


def to_map(x: torch.Tensor, shape: Shape) -> torch.Tensor:
    """Tokens (B, N, D) -> feature map (B, D, T, H, W), channels-last in memory (no copy)."""
    t, h, w = shape
    return rearrange(x, "b (t h w) c -> b c t h w", t=t, h=h, w=w)


def to_tokens(x: torch.Tensor) -> tuple[torch.Tensor, Shape]:
    """Feature map (B, D, T, H, W) -> tokens (B, N, D) and the map shape."""
    t, h, w = x.shape[2:]
    return rearrange(x, "b c t h w -> b (t h w) c"), (t, h, w)


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch of whole samples during training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    def __init__(self, dim: int, ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with local (window) or global (pooled) attention."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_sizes: Sequence[int],
        window_depths: Sequence[int],
        local: bool,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        topk_div: int = 1,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        if local:
            self.attn: nn.Module = LocalWindowAttention(dim, num_heads, window_sizes, window_depths, topk_div, qkv_bias)
        else:
            self.attn = GlobalPooledAttention(dim, num_heads, len(window_sizes), topk_div, qkv_bias, norm_eps)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, shape: Shape) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), shape))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PositionConv(nn.Module):
    """Conditional position encoding: x + depthwise 3×3×3 conv(x)."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Sequential(DepthwiseConv3d(dim))

    def forward(self, x: torch.Tensor, shape: Shape) -> torch.Tensor:
        return x + to_tokens(self.proj(to_map(x, shape)))[0]


class Stage(nn.Module):
    """``depth`` blocks alternating local (even) and global (odd), position encoding after the first."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_sizes: Sequence[int],
        window_depths: Sequence[int],
        drop_paths: Sequence[float],
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        topk_div: int = 1,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, window_sizes, window_depths, i % 2 == 0, mlp_ratio, qkv_bias, drop_paths[i],
                  topk_div, norm_eps)
            for i in range(depth)
        )
        self.cpe = PositionConv(dim)

    def forward(self, x: torch.Tensor, shape: Shape) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x, shape)
            if i == 0:
                x = self.cpe(x, shape)
        return x


class ChannelRefine(nn.Module):
    """STCRB channel refinement: pooled channel descriptor -> 1-D conv across channels -> sigmoid gate, residual."""

    def __init__(self, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = rearrange(x.mean(dim=(2, 3, 4)), "b c -> b 1 c")
        y = rearrange(torch.sigmoid(self.conv(y)), "b 1 c -> b c 1 1 1")
        return y * x + x


class MergeBlock(nn.Module):
    """LayerNorm -> [STCRB residual] -> strided Conv3d reduction -> LayerNorm."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        kernel: tuple[int, int, int],
        stride: tuple[int, int, int],
        padding: tuple[int, int, int],
        stcrb: bool = True,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim_in, eps=norm_eps)
        self.stcrb = stcrb
        if stcrb:
            self.conv = nn.Sequential(
                DepthwiseConv3d(dim_in, bias=False),
                nn.GELU(),
                ChannelRefine(),
                nn.Conv3d(dim_in, dim_in, 1, bias=False),
            )
        self.reduction = nn.Conv3d(dim_in, dim_out, kernel, stride=stride, padding=padding, bias=False)
        self.norm2 = nn.LayerNorm(dim_out, eps=norm_eps)

    def forward(self, x: torch.Tensor, shape: Shape) -> tuple[torch.Tensor, Shape]:
        fmap = to_map(self.norm1(x), shape)
        if self.stcrb:
            fmap = fmap + self.conv(fmap)
        x, shape = to_tokens(self.reduction(fmap))
        return self.norm2(x), shape


class PatchEmbed(nn.Module):
    """Stage entry: the stem (``proj`` conv, stage 0 only) followed by a merge block ``conv_down``."""

    def __init__(self, conv_down: MergeBlock, in_chans: int | None = None, dim: int | None = None):
        super().__init__()
        self.proj = nn.Conv3d(in_chans, dim, 3, stride=2, padding=1) if in_chans is not None else None
        self.conv_down = conv_down

    def forward(self, x: torch.Tensor, shape: Shape | None = None) -> tuple[torch.Tensor, Shape]:
        if self.proj is not None:  # x is the input map (B, C, T, H, W)
            x, shape = to_tokens(self.proj(x))
        assert shape is not None
        return self.conv_down(x, shape)


class ShuffleConvTranspose3d(nn.ConvTranspose3d):
    """ConvTranspose3d whose kernel equals its stride, computed as one matmul and a pixel shuffle.

    The patches do not overlap, so each input token maps to ``prod(kernel)`` output tokens by a linear
    map: the same result as the convolution at matmul speed, on channels-last memory.
    """

    def linear(self, tokens: torch.Tensor) -> torch.Tensor:
        """The per-token linear map on channels-last tokens (..., D_in) -> (..., a·b·c·D_out), before the shuffle."""
        a, b, c = self.kernel_size
        weight = rearrange(self.weight, "i o a b c -> (a b c o) i")
        bias = self.bias.repeat(a * b * c) if self.bias is not None else None
        return F.linear(tokens, weight, bias)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        a, b, c = self.kernel_size
        y = self.linear(rearrange(x, "n i t h w -> n t h w i"))
        # (B, T, H, W, a·b·c·D) -> (B, D, T·a, H·b, W·c), channels-last in memory
        y = rearrange(y, "n t h w (a b c o) -> n (t a) (h b) (w c) o", a=a, b=b, c=c).contiguous()
        return rearrange(y, "n t h w o -> n o t h w")


class ChannelAffine(nn.Conv3d):
    """Depthwise 1×1×1 convolution, computed as the per-channel affine map it is."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1, 1)
        if self.bias is None:
            return x * self.weight.view(shape)
        return torch.addcmul(self.bias.view(shape), x, self.weight.view(shape))


def up_block(dim_in: int, dim_out: int, kernel: tuple[int, int, int] | int) -> list[nn.Module]:
    """ConvTranspose3d (kernel = stride) -> GELU -> depthwise 1×1×1 conv -> GELU."""
    return [
        ShuffleConvTranspose3d(dim_in, dim_out, kernel, stride=kernel),
        nn.GELU(),
        ChannelAffine(dim_out, dim_out, 1, groups=dim_out),
        nn.GELU(),
    ]


class TemporalMeanHead(nn.Conv3d):
    """1×1×1 classifier followed by the mean over time, computed as mean-then-classify (it is linear)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last memory: (B, T, H, W, D) is a view, and the mean runs over its outer axis
        pooled = rearrange(x, "n c t h w -> n t h w c").mean(dim=1)
        logits = F.linear(pooled, self.weight.flatten(1), self.bias)
        return rearrange(logits, "n h w k -> n k h w")
