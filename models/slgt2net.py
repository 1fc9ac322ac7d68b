"""SL-GT2Net: a U-shaped sparse local-global temporal transformer for SAR time-series segmentation.

Input ``(B, C, T, H, W)`` float; output logits ``(B, K, H, W)``. See ``docs/model.md`` and the project's
architecture specification for each step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import MergeBlock, PatchEmbed, Stage, TemporalMeanHead, to_map, to_tokens, up_block
from models.head import upsample_and_classify

STEMS = {
    # name: (merge kernel, merge padding); both merges use stride (1, 2, 2)
    "slovenia": ((3, 3, 3), (1, 1, 1)),  # T kept
    "brandenburg": ((9, 3, 3), (0, 1, 1)),  # T reduced by 8
}
SPATIAL_MULTIPLE = 32


def pad_time(x: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad (or crop) dim 2 to ``length`` as the reference does: ``(length - T) // 2`` frames in front, the
    rest behind; when T > length that front "padding" is negative, so ``-((length - T) // 2)`` frames (the
    larger half when T - length is odd) are cropped off the front."""
    t = x.shape[2]
    if t == length:
        return x
    front = (length - t) // 2
    if t > length:
        return x[:, :, -front : -front + length]
    return F.pad(x, (0, 0, 0, 0, front, length - t - front))


class SLGT2Net(nn.Module):
    """The sparse local-global temporal transformer network (keyword-only configuration)."""

    def __init__(
        self,
        *,
        in_chans: int = 2,
        num_classes: int = 8,
        embed_dims: Sequence[int] = (96, 192, 384, 768),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_sizes: Sequence[Sequence[int]] = ((7, 14, 21), (7, 14, 21), (7, 14, 14), (7, 7, 7)),
        window_depths: Sequence[Sequence[int]] = ((8, 4, 2), (4, 4, 2), (2, 2, 2), (1, 1, 1)),
        temporal_length: int = 16,
        stem: str = "slovenia",
        topk_div: int = 1,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.1,
        stcrb: bool = True,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {sorted(STEMS)}, not {stem!r}")
        n = len(embed_dims)
        if not (len(depths) == len(num_heads) == len(window_sizes) == len(window_depths) == n):
            raise ValueError("embed_dims, depths, num_heads, window_sizes and window_depths need one entry per stage")
        self.config: dict[str, Any] = dict(
            in_chans=in_chans, num_classes=num_classes, embed_dims=list(embed_dims), depths=list(depths),
            num_heads=list(num_heads), window_sizes=[list(w) for w in window_sizes],
            window_depths=[list(d) for d in window_depths], temporal_length=temporal_length, stem=stem,
            topk_div=topk_div, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=drop_path, stcrb=stcrb,
            norm_eps=norm_eps,
        )
        self._check_temporal(temporal_length, stem, n)
        self.temporal_length = temporal_length
        self.num_classes = num_classes
        self.in_chans = in_chans

        rates = torch.linspace(0, drop_path, sum(depths)).tolist()
        stage_rates = [rates[sum(depths[:i]) : sum(depths[: i + 1])] for i in range(n)]

        def stage(i: int, drop: Sequence[float]) -> Stage:
            return Stage(embed_dims[i], depths[i], num_heads[i], window_sizes[i], window_depths[i], drop,
                         mlp_ratio, qkv_bias, topk_div, norm_eps)

        kernel, padding = STEMS[stem]
        d0 = embed_dims[0]
        self.patch_embeds = nn.ModuleList(
            [PatchEmbed(MergeBlock(d0, d0, kernel, (1, 2, 2), padding, stcrb, norm_eps), in_chans, d0)]
            + [
                PatchEmbed(MergeBlock(embed_dims[i - 1], embed_dims[i], (3, 3, 3), (2, 2, 2), (1, 1, 1), stcrb,
                                      norm_eps))
                for i in range(1, n)
            ]
        )
        self.layers = nn.ModuleList(stage(i, stage_rates[i]) for i in range(n))
        self.norm = nn.LayerNorm(embed_dims[-1], eps=norm_eps)
        # decoder, deepest first: step j restores the resolution of encoder stage n-2-j
        up = list(range(n - 2, -1, -1))
        self.transpose_convs = nn.ModuleList(nn.Sequential(*up_block(embed_dims[i + 1], embed_dims[i], 2)) for i in up)
        self.cat_back_dims = nn.ModuleList(
            nn.Sequential(nn.Conv3d(2 * embed_dims[i], embed_dims[i], 3, padding=1)) for i in up
        )
        # the decoder stage at the resolution of encoder stage i reuses that stage's drop-path rates, in the same
        # order (as the reference builds it)
        self.layers_up = nn.ModuleList(stage(i, stage_rates[i]) for i in up)
        self.up_x4 = nn.Sequential(*up_block(d0, d0, (1, 2, 2)), *up_block(d0, d0, (1, 2, 2)))
        self.seg_head = nn.Sequential(TemporalMeanHead(d0, num_classes, 1))
        self.apply(_init_weights)

    @staticmethod
    def _check_temporal(length: int, stem: str, stages: int) -> None:
        t = (length + 1) // 2 - (8 if stem == "brandenburg" else 0)
        if length % 2 or t < 1 or t % (2 ** (stages - 1)):
            raise ValueError(
                f"temporal_length {length} does not halve exactly through {stages} stages with the {stem} stem"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> logits (B, K, H, W); T is padded/cropped to ``temporal_length``, H and W padded."""
        if x.ndim != 5 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected input (B, {self.in_chans}, T, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        x = pad_time(x, self.temporal_length)
        ph, pw = -h % SPATIAL_MULTIPLE, -w % SPATIAL_MULTIPLE
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))

        skips = []
        tokens, shape = self.patch_embeds[0](x)
        for i, layer in enumerate(self.layers):
            if i:
                tokens, shape = self.patch_embeds[i](tokens, shape)
            tokens = layer(tokens, shape)
            skips.append((tokens, shape))
        tokens = self.norm(tokens)

        for j, (up, merge, layer) in enumerate(zip(self.transpose_convs, self.cat_back_dims, self.layers_up)):
            skip, skip_shape = skips[-2 - j]
            fmap = torch.cat([up(to_map(tokens, shape)), to_map(skip, skip_shape)], dim=1)
            tokens, shape = to_tokens(merge(fmap))
            tokens = layer(tokens, shape)

        # = self.seg_head(self.up_x4(fmap)): classifier + mean over time, computed without full-size copies
        logits = upsample_and_classify(self.up_x4, self.seg_head, to_map(tokens, shape))
        return logits[:, :, :h, :w]


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
