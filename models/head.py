"""The full-resolution end of the decoder: ``up_x4`` (two ×2 up-sampling blocks) and the temporal-mean classifier.

The modules keep the reference's layout (:func:`models.blocks.up_block`, :class:`models.blocks.TemporalMeanHead`);
this module computes the same function with far less memory traffic, because at full resolution every
element-wise pass is over ``96 × T × H × W`` values (38.5 M for a 224² patch of the paper model):

- both pixel shuffles are deferred to the logits: each up-sampling step is a per-token linear map followed by a
  permutation of positions, and element-wise maps and the mean over time commute with that permutation, so the
  network stays at the coarse grid with the sub-positions as extra channels, and only the K-channel logits are
  shuffled (once, by ×4);
- the last GELU → per-channel affine → GELU → mean over time runs in row blocks that stay in cache, and its
  backward recomputes the two GELUs from the saved input instead of storing three full-resolution tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from models.blocks import ChannelAffine, TemporalMeanHead

BLOCK_ELEMENTS = 1 << 18  # ~1 MB of fp32 per row block: several such temporaries fit in a core's L2
GPU_BLOCK_ELEMENTS = 1 << 24  # on a GPU, blocks only bound the temporaries' memory (not measured on one yet)


def _affine_params(affine: ChannelAffine, repeats: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine map's per-channel weight and bias, tiled over ``repeats`` sub-positions (channels last)."""
    weight = affine.weight.flatten().repeat(repeats)
    bias = affine.bias.repeat(repeats) if affine.bias is not None else torch.zeros_like(weight)
    return weight, bias


class _GeluAffineGeluTimeMean(torch.autograd.Function):
    """``mean_t gelu(weight · gelu(y) + bias)`` for ``y`` of shape (B, T, H, W, C), in cache-sized row blocks."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        out = y.new_empty(y.shape[:1] + y.shape[2:])
        for rows in _row_blocks(y):
            out[:, rows] = F.gelu(torch.addcmul(bias, F.gelu(y[:, :, rows]), weight)).mean(dim=1)
        ctx.save_for_backward(y, weight, bias)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y, weight, bias = ctx.saved_tensors
        grad_y = torch.empty_like(y)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=y.device)
        grad_bias = torch.zeros_like(grad_weight)
        scale = 1.0 / y.shape[1]
        for rows in _row_blocks(y):
            yb = y[:, :, rows]
            a = F.gelu(yb)
            b = torch.addcmul(bias, a, weight)
            g = (grad[:, rows] * scale).unsqueeze(1).expand_as(b)
            grad_b = torch.ops.aten.gelu_backward(g, b)
            sum_dims = tuple(range(grad_b.ndim - 1))
            grad_weight += (grad_b * a).sum(dim=sum_dims, dtype=torch.float32)
            grad_bias += grad_b.sum(dim=sum_dims, dtype=torch.float32)
            grad_y[:, :, rows] = torch.ops.aten.gelu_backward(grad_b * weight, yb)
        return grad_y, grad_weight.to(weight.dtype), grad_bias.to(bias.dtype)


def _row_blocks(y: torch.Tensor) -> list[slice]:
    """Slices along H (dim 2) of (B, T, H, W, C) holding about BLOCK_ELEMENTS values each (GPU_BLOCK_ELEMENTS
    off the CPU)."""
    height = y.shape[2]
    per_row = max(1, y.numel() // max(1, height))
    step = max(1, (BLOCK_ELEMENTS if y.device.type == "cpu" else GPU_BLOCK_ELEMENTS) // per_row)
    return [slice(r, min(r + step, height)) for r in range(0, height, step)]


def upsample_and_classify(up_x4: nn.Sequential, seg_head: nn.Sequential, fmap: torch.Tensor) -> torch.Tensor:
    """``seg_head(up_x4(fmap))`` (logits (B, K, 4H, 4W) from a (B, D, T, H, W) map) without full-size copies.

    ``up_x4`` is two :func:`~models.blocks.up_block` steps with kernel (1, 2, 2); ``seg_head`` holds the
    :class:`~models.blocks.TemporalMeanHead`.
    """
    up1, _, affine1, _, up2, _, affine2, _ = up_x4
    head: TemporalMeanHead = seg_head[0]
    (a1, b1, c1), (a2, b2, c2) = up1.kernel_size, up2.kernel_size
    if a1 != 1 or a2 != 1:
        raise ValueError("the full-resolution up-sampling keeps the time axis: kernels (1, b, c) only")
    x = rearrange(fmap, "n d t h w -> n t h w d")
    w1, s1 = _affine_params(affine1, b1 * c1)
    x = F.gelu(torch.addcmul(s1, F.gelu(up1.linear(x)), w1))
    # (B, T, H, W, b1·c1·D): the first shuffle's sub-positions become a token axis of the second linear map
    x = up2.linear(rearrange(x, "n t h w (s d) -> n t h w s d", s=b1 * c1))
    x = rearrange(x, "n t h w s e -> n t h w (s e)")
    w2, s2 = _affine_params(affine2, b1 * c1 * b2 * c2)
    pooled = _GeluAffineGeluTimeMean.apply(x, w2, s2)
    pooled = rearrange(pooled, "n h w (s d) -> n h w s d", s=b1 * c1 * b2 * c2)
    logits = F.linear(pooled, head.weight.flatten(1), head.bias)
    return rearrange(
        logits, "n h w (p1 q1 p2 q2) k -> n k (h p1 p2) (w q1 q2)", p1=b1, q1=c1, p2=b2, q2=c2
    )
