"""The temporal rule: how a stack's irregular dates become the model's fixed time axis of length L.

Two modes:

* ``composite`` (for dated stacks): the season, a day-of-year interval fitted to the training dates, is cut
  into L equal periods; the valid observations falling into each period are averaged (NaN-aware, in model
  units, i.e. dB for SAR). Periods without an observation are filled per pixel by linear interpolation between
  the nearest valid periods (constant beyond the first/last one, or ``fill="nearest"``). Dates are placed by
  day of year, so a model trained on one year applies to another.
* ``pad`` (the paper's rule for date-less data): the T frames are zero-padded or cropped symmetrically to L,
  ``(L - T) // 2`` frames in front. "Zero" is meant in normalised model-input space, so padded frames take the
  per-channel ``fill`` value (the normalisation mean) before normalisation.

* ``order`` (for short series, and dates that describe no season: event mapping from one acquisition or a
  before/after pair): the observations in date order, each stretched over an equal share of the L frames
  (T < L: frame ``j`` shows observation ``j·T // L``; T ≥ L: frame ``j`` is the NaN-aware mean of the
  observations ``k`` with ``k·L // T = j``). The dates themselves are ignored, so a model trained on one date
  pair maps a pair of any other dates. Missing observations are interpolated between valid frames as in
  ``composite``. Chosen automatically (:func:`choose_mode`) when no training stack has more than
  ``SHORT_SERIES`` dates, or when the training dates span fewer days than the model has frames.

* ``reference`` (what the public reference's data pipeline does, for converted checkpoints and the seed
  datasets): the date axis is padded to L by **reflection** (``numpy.pad(mode="reflect")``, ``(L - T) // 2``
  frames in front, edge not repeated), or cropped like the reference network crops when T > L
  (``-((L - T) // 2)`` frames off the front). No-data observations enter as 0, the value the seed files store
  for them: the reference normalises and classifies them like any other value.

In the first two modes a pixel without any valid observation gets the per-channel ``fill`` value everywhere.
The rule is plain data (:meth:`to_dict` / :meth:`from_dict`) so a checkpoint stores it and predict applies
exactly the same one.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

import numpy as np

from slgt2_cli.errors import InputError


class TemporalMode(str, Enum):
    """How a stack's dates become the model's frames (``--temporal-mode``; module docstring)."""

    COMPOSITE = "composite"
    PAD = "pad"
    ORDER = "order"
    REFERENCE = "reference"


MODES = tuple(m.value for m in TemporalMode)
FILLS = ("linear", "nearest")
YEAR_DAYS = 365
SEASON_MARGIN_DAYS = 6
"""Days added on each side of a fitted season, so dates of another year a few days off still fall inside."""
SHORT_SERIES = 3
"""Training stacks with at most this many dates are a short series: the automatic rule is ``order``."""


def day_of_year(date: dt.date) -> int:
    """0-based day of year on a 365-day calendar: the same calendar date maps to the same day in every year
    (29 Feb shares 28 Feb's day)."""
    day = 28 if (date.month, date.day) == (2, 29) else date.day
    return dt.date(2001, date.month, day).timetuple().tm_yday - 1


@dataclass(frozen=True)
class TemporalRule:
    """Maps ``(T, C, h, w)`` observations with their dates to ``(L, C, h, w)`` model frames."""

    length: int = 16
    mode: str = "composite"
    season_start: int = 0
    """First day of the season (0-based day of year)."""
    season_days: int = YEAR_DAYS
    """Length of the season in days (1..365); may wrap over New Year."""
    fill: str = "linear"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"temporal rule: unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.fill not in FILLS:
            raise InputError(f"temporal rule: unknown fill {self.fill!r}; use one of {', '.join(FILLS)}")
        if int(self.length) < 1:
            raise InputError(f"temporal rule: length must be at least 1, not {self.length}")
        if not 0 <= int(self.season_start) < YEAR_DAYS or not 1 <= int(self.season_days) <= YEAR_DAYS:
            raise InputError(f"temporal rule: bad season start {self.season_start} / days {self.season_days}")

    @property
    def maps_every_pixel(self) -> bool:
        """True under the ``reference`` rule: as in the reference's pipeline, no-data observations enter the
        network as their stored values and every pixel is mapped (and trained on where it has a label)."""
        return self.mode == "reference"

    # -- persistence -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemporalRule:
        known = {k: data[k] for k in ("length", "mode", "season_start", "season_days", "fill") if k in data}
        try:
            for key in ("length", "season_start", "season_days"):
                if key in known:
                    known[key] = int(known[key])
        except (TypeError, ValueError):
            raise InputError(f"temporal rule: not a valid rule {data!r}") from None
        return cls(**known)

    # -- fitting -----------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, date_lists: Iterable[Sequence[dt.date] | None], length: int = 16, mode: str | None = None,
            fill: str = "linear", frame_counts: Sequence[int] | None = None) -> TemporalRule:
        """The rule for a training set: ``mode`` when given, else :func:`choose_mode`'s; a composite spans the
        shortest day-of-year interval that holds every training date (plus a margin). ``frame_counts`` (frames
        per stack) lets date-less short series be told from long ones."""
        date_lists = list(date_lists)
        if mode is not None and mode not in MODES:
            raise InputError(f"temporal rule: unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if mode is None:
            mode, _ = choose_mode(date_lists, length, frame_counts)
        if mode in ("reference", "order", "pad"):
            return cls(length=length, mode=mode, fill=fill)
        if any(d is None for d in date_lists):
            raise InputError("composite temporal rule needs dated stacks, and some training stacks have no dates")
        doys = sorted({day_of_year(d) for dates in date_lists for d in dates})  # type: ignore[union-attr]
        if not doys:
            raise InputError("no dates in the training stacks to fit the temporal rule to")
        start, days = season_of(doys, length)
        return cls(length=length, mode="composite", season_start=start, season_days=days, fill=fill)

    # -- mapping -----------------------------------------------------------------------------------------
    def period_of(self, dates: Sequence[dt.date]) -> np.ndarray:
        """Period index (0..L-1) of each date; -1 for dates outside the season."""
        offsets = np.array([(day_of_year(d) - self.season_start) % YEAR_DAYS for d in dates], dtype=np.int64)
        inside = offsets < self.season_days
        return np.where(inside, offsets * self.length // self.season_days, -1)

    def period_bounds(self) -> list[tuple[int, int]]:
        """(first day of year, last day of year) of each period, 0-based."""
        edges = [self.season_start + i * self.season_days // self.length for i in range(self.length + 1)]
        return [(a % YEAR_DAYS, (b - 1) % YEAR_DAYS) for a, b in zip(edges[:-1], edges[1:])]

    def check(self, stack: Any) -> None:
        """Raise InputError if ``stack`` (anything with ``dates`` and ``path``) cannot be mapped by this rule."""
        path = getattr(stack, "path", None)
        if self.mode in ("pad", "order", "reference"):
            if getattr(stack, "num_dates", 1) < 1:
                raise InputError("the stack has no dates", path)
            return
        dates = getattr(stack, "dates", None)
        if not dates:
            raise InputError("the stack has no dates, but the temporal rule composites by date "
                             "(name bands <POL>_<YYYY-MM-DD> or put the date in each file name)", path)
        if (self.period_of(dates) < 0).all():
            raise InputError(f"none of the stack's {len(dates)} dates ({dates[0]} .. {dates[-1]}) falls into the "
                             f"season the model was trained on ({self.describe()})", path,
                             "map stacks from that part of the year, or train a model with temporal mode 'order', "
                             "which ignores dates")

    def apply(self, raw: np.ndarray, dates: Sequence[dt.date] | None, fill: Sequence[float] | None = None) -> np.ndarray:
        """``(T, C, h, w)`` in model units (NaN = no data) -> float32 ``(L, C, h, w)`` without NaN.

        ``fill`` is the per-channel value for pixels with no observation and for padded frames (default: the
        channel's mean over ``raw``, or 0).
        """
        raw = np.asarray(raw, dtype=np.float32)
        if raw.ndim != 4:
            raise ValueError(f"expected (T, C, h, w), got shape {raw.shape}")
        if self.mode == "reference":
            _fill_values(raw, fill)  # checks the channel count like the other modes
            return reflect_or_crop(np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0), self.length)
        fill_values = _fill_values(raw, fill)
        if self.mode == "pad":
            frames = fill_gaps(raw, self.fill, fill_values)
            return pad_or_crop(frames, self.length, fill_values)
        if self.mode == "order":
            return fill_gaps(order_frames(raw, self.length), self.fill, fill_values)
        if dates is None or len(dates) != raw.shape[0]:
            raise InputError(f"the composite temporal rule needs one date per frame "
                             f"({raw.shape[0]} frames, {0 if dates is None else len(dates)} dates)")
        return fill_gaps(composite(raw, self.period_of(dates), self.length), self.fill, fill_values)

    def describe(self) -> str:
        if self.mode == "reference":
            return f"reflect-pad/crop to {self.length} frames (the reference's rule)"
        if self.mode == "pad":
            return f"pad/crop to {self.length} frames"
        if self.mode == "order":
            return f"observations in date order, stretched over {self.length} frames (dates ignored)"
        first = dt.date(2001, 1, 1) + dt.timedelta(days=self.season_start)
        last = first + dt.timedelta(days=self.season_days - 1)
        return (f"{self.length} periods of {self.season_days / self.length:.1f} days, "
                f"{first:%d %b} .. {last:%d %b}, gaps: {self.fill}")


def choose_mode(date_lists: Sequence[Sequence[dt.date] | None], length: int,
                frame_counts: Sequence[int] | None = None) -> tuple[str, str]:
    """The automatic temporal mode for a training set and why: ``order`` for short series (no stack with more
    than SHORT_SERIES dates or frames) and for dates spanning fewer days than ``length`` periods; ``pad`` for
    other date-less stacks (the paper's rule); ``composite`` for dated seasons."""
    counts = list(frame_counts) if frame_counts is not None else [len(d) for d in date_lists if d is not None]
    most = max(counts, default=0)
    if counts and most <= SHORT_SERIES:
        return "order", f"at most {most} date{'s' if most != 1 else ''} per stack: a short series, too few to composite"
    if any(d is None for d in date_lists):
        return "pad", "stacks without dates"
    doys = sorted({day_of_year(d) for dates in date_lists for d in dates or []})
    if doys:
        _, days = season_of(doys, length)
        span = days - 2 * SEASON_MARGIN_DAYS
        if span < length:
            return "order", f"the dates span {span} day{'s' if span != 1 else ''}, fewer than {length} periods"
    return "composite", "dated stacks over a season"


def order_frames(raw: np.ndarray, length: int) -> np.ndarray:
    """``(T, C, h, w)`` observations in order -> ``(length, C, h, w)``: each observation stretched over an equal
    share of the frames (T < length), or the NaN-aware mean of equal shares of observations (T ≥ length)."""
    t = raw.shape[0]
    if t >= length:
        return composite(raw, np.arange(t) * length // t, length)
    return raw[np.arange(length) * t // length].astype(np.float32, copy=False)


def season_of(doys: Sequence[int], length: int = 1) -> tuple[int, int]:
    """Shortest circular day-of-year interval holding all ``doys`` (sorted, unique), widened by the margin;
    the whole year (from 1 Jan) when what is left of the year is shorter than one of ``length`` periods."""
    u = np.asarray(doys, dtype=np.int64)
    gaps = np.append(np.diff(u), u[0] + YEAR_DAYS - u[-1])
    k = int(np.argmax(gaps))
    start, end = int(u[(k + 1) % len(u)]), int(u[k])
    days = (end - start) % YEAR_DAYS + 1
    if days + 2 * SEASON_MARGIN_DAYS >= YEAR_DAYS or YEAR_DAYS - days < YEAR_DAYS / length:
        return 0, YEAR_DAYS
    return (start - SEASON_MARGIN_DAYS) % YEAR_DAYS, days + 2 * SEASON_MARGIN_DAYS


def _fill_values(raw: np.ndarray, fill: Sequence[float] | None) -> np.ndarray:
    if fill is not None:
        values = np.asarray(fill, dtype=np.float32).ravel()
        if values.size != raw.shape[1]:
            raise InputError(f"{raw.shape[1]} input channels, but the fill/normalisation has {values.size}")
        return values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 'Mean of empty slice' for all-NaN channels
        means = np.nanmean(raw, axis=(0, 2, 3)) if raw.size else np.zeros(raw.shape[1])
    return np.nan_to_num(means, nan=0.0).astype(np.float32)


def composite(raw: np.ndarray, periods: np.ndarray, length: int) -> np.ndarray:
    """NaN-aware mean of the frames of each period -> ``(length, C, h, w)``, NaN where a period has none."""
    out = np.full((length,) + raw.shape[1:], np.nan, dtype=np.float32)
    for p in np.unique(periods[periods >= 0]):
        frames = np.flatnonzero(periods == p)
        if len(frames) == 1:  # a lone observation is its own mean, NaN included (the common case)
            out[p] = raw[frames[0]]
            continue
        sel = raw[frames]
        count = np.sum(~np.isnan(sel), axis=0)
        total = np.nansum(sel, axis=0, dtype=np.float64)
        np.divide(total, count, out=total, where=count > 0)
        out[p] = np.where(count > 0, total, np.nan)
    return out


def fill_gaps(frames: np.ndarray, how: str, fill_values: np.ndarray) -> np.ndarray:
    """Fill NaN along axis 0 per pixel and channel: linear (or nearest) between valid frames, constant beyond
    them, and ``fill_values[c]`` where a pixel has no valid frame at all."""
    n = frames.shape[0]
    flat = frames.reshape(n, -1)
    valid = ~np.isnan(flat)
    if flat.shape[1] and valid[:, 0].any() and (valid == valid[:, :1]).all():
        # Fast path (whole tiles of fully observed pixels): every column has the same gaps, so the same
        # neighbours and weights. Observed frames are kept; gap frames get the general path's arithmetic.
        prev_c, nxt_c, w = _gap_weights(valid[:, 0], how)
        out = flat.astype(np.float32)
        gaps = np.flatnonzero(~valid[:, 0])
        a, b = flat[prev_c[gaps]], flat[nxt_c[gaps]]
        out[gaps] = a + (b - a) * w[gaps, None]
        return out.reshape(frames.shape)
    index = np.arange(n)[:, None]
    prev = np.maximum.accumulate(np.where(valid, index, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(valid, index, n)[::-1], axis=0)[::-1]
    empty = prev[-1] < 0  # no valid frame in the column
    prev_c = np.where(prev < 0, nxt, prev).clip(0, n - 1)
    nxt_c = np.where(nxt >= n, prev, nxt).clip(0, n - 1)
    a = np.take_along_axis(flat, prev_c, axis=0)
    b = np.take_along_axis(flat, nxt_c, axis=0)
    span = (nxt_c - prev_c).astype(np.float32)
    w = np.divide(index - prev_c, span, out=np.zeros_like(span), where=span > 0)
    if how == "nearest":
        w = (w > 0.5).astype(np.float32)
    out = a + (b - a) * w
    channel_fill = np.broadcast_to(fill_values.reshape(1, -1, *([1] * (frames.ndim - 2))), frames.shape)
    out = np.where(empty[None, :], channel_fill.reshape(n, -1), out)
    return out.reshape(frames.shape).astype(np.float32, copy=False)


def _gap_weights(valid: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For one column's validity (n,), with some frame valid: previous and next valid frame of each frame and
    the interpolation weight, as :func:`fill_gaps` computes them per column."""
    n = valid.shape[0]
    index = np.arange(n)
    prev = np.maximum.accumulate(np.where(valid, index, -1))
    nxt = np.minimum.accumulate(np.where(valid, index, n)[::-1])[::-1]
    prev_c = np.where(prev < 0, nxt, prev).clip(0, n - 1)
    nxt_c = np.where(nxt >= n, prev, nxt).clip(0, n - 1)
    span = (nxt_c - prev_c).astype(np.float32)
    w = np.divide(index - prev_c, span, out=np.zeros_like(span), where=span > 0)  # as fill_gaps, same rounding
    if how == "nearest":
        w = (w > 0.5).astype(np.float32)
    return prev_c, nxt_c, w


def pad_or_crop(frames: np.ndarray, length: int, fill_values: np.ndarray) -> np.ndarray:
    """Place T frames at ``(length - T) // 2`` of a ``length`` axis (crop symmetrically when T > length)."""
    t = frames.shape[0]
    offset = (length - t) // 2
    out = np.empty((length,) + frames.shape[1:], dtype=np.float32)
    out[...] = fill_values.reshape(1, -1, *([1] * (frames.ndim - 2)))
    src_lo, dst_lo = max(0, -offset), max(0, offset)
    n = min(t - src_lo, length - dst_lo)
    out[dst_lo : dst_lo + n] = frames[src_lo : src_lo + n]
    return out


def reflect_or_crop(frames: np.ndarray, length: int) -> np.ndarray:
    """The reference's time axis: reflect-pad T frames to ``length`` (``(length - T) // 2`` in front), or crop
    ``-((length - T) // 2)`` frames off the front and keep ``length`` (as its network's negative padding does)."""
    t = frames.shape[0]
    front = (length - t) // 2
    if t >= length:
        return np.ascontiguousarray(frames[-front : -front + length], dtype=np.float32)
    pad = [(front, length - t - front)] + [(0, 0)] * (frames.ndim - 1)
    return np.pad(frames.astype(np.float32, copy=False), pad, mode="reflect")
