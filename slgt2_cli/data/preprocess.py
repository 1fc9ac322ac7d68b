"""The one function that turns raw stack pixels into model input, shared by training, validation and predict."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
from einops import rearrange

from slgt2_cli.data.normalization import Normalization
from slgt2_cli.data.temporal import TemporalRule


def valid_pixels(raw: np.ndarray) -> np.ndarray:
    """(T, C, h, w) with NaN = no data -> (h, w) bool: the pixel has at least one valid observation."""
    return ~np.isnan(raw).any(axis=1).all(axis=0)


def prepare_input(raw: np.ndarray, dates: Sequence[dt.date] | None, rule: TemporalRule,
                  norm: Normalization, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Raw ``(T, C, h, w)`` in model units (from ``Stack.read``) -> ``(x, valid)``.

    ``x`` is float32 ``(C, L, h, w)``: the temporal rule applied (gaps and padding filled with the
    normalisation mean, i.e. zero after normalisation), then normalised per channel. ``valid`` is bool
    ``(h, w)``: the pixel has at least one valid observation (every pixel under a rule that maps every pixel);
    outside it the output is no data. A caller that already has ``valid_pixels(raw)`` passes it as ``valid``.
    """
    if rule.maps_every_pixel:
        valid = np.ones(raw.shape[-2:], dtype=bool)
    elif valid is None:
        valid = valid_pixels(raw)
    frames = rule.apply(raw, dates, fill=norm.mean)  # (L, C, h, w), NaN-free; checks the channel count
    x = norm.apply(frames, channel_axis=1)
    return np.ascontiguousarray(rearrange(x, "l c h w -> c l h w")), valid
