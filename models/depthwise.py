"""Depthwise 3-D convolution with a faster input gradient on CPU.

oneDNN's backward of a depthwise ``Conv3d`` computes the input gradient 4-12× slower than the forward
convolution it equals: for stride 1, dilation 1 and "same" padding, the input gradient is the forward
convolution of the output gradient with the kernel flipped in every spatial axis. The weight gradient stays
oneDNN's. Same math, same parameters and state-dict keys as ``nn.Conv3d``. Used for fp32 training on CPU
(inference has no backward; GPUs and autocast keep the library's kernels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _SameDepthwiseConv3d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: tuple[int, ...]):
        ctx.padding = padding
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight)
        return F.conv3d(x, weight, bias, padding=padding, groups=weight.shape[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        groups = weight.shape[0]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv3d(grad, weight.flip(2, 3, 4), padding=ctx.padding, groups=groups)
        if ctx.needs_input_grad[1]:
            grad_w = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1, 1], list(ctx.padding), [1, 1, 1], False, [0, 0, 0], groups,
                [False, True, False],
            )[1]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(dim=(0, 2, 3, 4))
        return grad_x, grad_w, grad_b, None


class DepthwiseConv3d(nn.Conv3d):
    """``nn.Conv3d(dim, dim, k, padding=k // 2, groups=dim)`` for odd ``k``; backward as described above."""

    def __init__(self, dim: int, kernel_size: int = 3, bias: bool = True):
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for 'same' padding, not {kernel_size}")
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() or x.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
            return super().forward(x)  # inference, GPUs and bf16 keep the library's kernels
        return _SameDepthwiseConv3d.apply(x, self.weight, self.bias, self.padding)
