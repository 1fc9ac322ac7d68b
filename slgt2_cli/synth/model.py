"""The synthetic landscape and its Sentinel-1 signal, as pure functions of coordinates, dates and seeds.

Parcels are cells of a jittered-grid Voronoi diagram; a parcel's class, phenology shift, amplitude and offset
come from a hash of its cell, and classes cluster in zones (farmland, forest, town, lake) of 5 x 5 cells. So any
window can be generated on its own, in any order, with the same result. Backscatter is a class-specific dB
profile over the season (crops rise and fall, grassland varies gently, forest is stable, water dark, built-up
bright) times multiplicative gamma speckle.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

CLASSES = [
    {"value": 1110, "name": "winter wheat", "color": "#9a6324"},
    {"value": 1120, "name": "maize", "color": "#f58231"},
    {"value": 1310, "name": "rapeseed", "color": "#ffe119"},
    {"value": 2000, "name": "grassland", "color": "#3cb44b"},
    {"value": 3100, "name": "forest", "color": "#0b5d1e"},
    {"value": 5000, "name": "water", "color": "#4363d8"},
    {"value": 6000, "name": "built-up", "color": "#e6194b"},
]
# Per class: VV base, VV amplitude, VH base, VH amplitude (dB), phenology centre and width (season fraction).
PROFILES = np.array([
    [-10.5, -3.5, -20.0, 7.0, 0.30, 0.10],   # winter wheat: early peak, VV drops as stems attenuate
    [-12.5, 4.0, -22.0, 9.0, 0.68, 0.10],    # maize: late peak
    [-12.0, 5.0, -19.0, 6.0, 0.48, 0.08],    # rapeseed: mid-season peak
    [-10.0, 1.5, -16.5, 1.5, 0.50, 0.30],    # grassland: gentle
    [-7.5, 0.0, -12.5, 0.0, 0.50, 0.30],     # forest: stable, bright in VH
    [-21.0, 0.0, -27.5, 0.0, 0.50, 0.30],    # water: dark
    [-2.0, 0.0, -9.0, 0.0, 0.50, 0.30],      # built-up: bright
])
WATER, UNLABELLED_SHARE = 5, 0.04
# Zone types (farmland, forest, town, lake) and their class mixtures.
ZONE_PROBS = np.array([0.60, 0.22, 0.10, 0.08])
ZONE_CLASS_PROBS = np.array([
    [0.26, 0.24, 0.20, 0.22, 0.04, 0.01, 0.03],
    [0.00, 0.00, 0.00, 0.15, 0.85, 0.00, 0.00],
    [0.00, 0.00, 0.00, 0.25, 0.05, 0.00, 0.70],
    [0.00, 0.00, 0.00, 0.15, 0.05, 0.80, 0.00],
])
ENL = 4.5
SEASON = (dt.date(2001, 3, 1), dt.date(2001, 10, 31))
"""Day-of-year span of the acquisitions (the year is replaced by the scene's)."""


def hash_u64(seed: int, *arrays: np.ndarray) -> np.ndarray:
    """A well-mixed uint64 hash of integer arrays (splitmix64 steps), elementwise."""
    with np.errstate(over="ignore"):
        h = np.full(np.broadcast(*arrays).shape, np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64), dtype=np.uint64)
        for a in arrays:
            h ^= np.asarray(a, dtype=np.int64).view(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
            h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h ^= h >> np.uint64(31)
    return h


def unit(h: np.ndarray) -> np.ndarray:
    """uint64 hash -> float64 uniform in [0, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


@dataclass(frozen=True)
class Parcels:
    """Per-pixel parcel attributes of a window."""

    cls: np.ndarray        # (h, w) class index 0..K-1
    labelled: np.ndarray   # (h, w) bool: the parcel has a reference label
    shift: np.ndarray      # (h, w) phenology shift (season fraction)
    gain: np.ndarray       # (h, w) amplitude factor
    offset: np.ndarray     # (h, w) dB offset


def parcels(seed: int, row0: int, col0: int, h: int, w: int, cell: int = 24) -> Parcels:
    """Parcel attributes of the window at (row0, col0) of size h x w, in world pixel coordinates."""
    gy = np.arange(row0, row0 + h, dtype=np.int64)[:, None]
    gx = np.arange(col0, col0 + w, dtype=np.int64)[None, :]
    ci, cj = gy // cell, gx // cell
    best = np.full((h, w), np.inf)
    bi, bj = np.zeros((h, w), np.int64), np.zeros((h, w), np.int64)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            i, j = ci + di, cj + dj
            py = (i + 0.15 + 0.7 * unit(hash_u64(seed, i, j, 1))) * cell
            px = (j + 0.15 + 0.7 * unit(hash_u64(seed, i, j, 2))) * cell
            d = (gy + 0.5 - py) ** 2 + (gx + 0.5 - px) ** 2
            closer = d < best
            best = np.where(closer, d, best)
            bi, bj = np.where(closer, i, bi), np.where(closer, j, bj)
    zone_u = unit(hash_u64(seed, bi // 5, bj // 5, 3))
    zone = np.searchsorted(np.cumsum(ZONE_PROBS), zone_u, side="right").clip(0, len(ZONE_PROBS) - 1)
    class_cdf = np.cumsum(ZONE_CLASS_PROBS, axis=1)[zone]  # (h, w, K)
    cls = (unit(hash_u64(seed, bi, bj, 4))[..., None] >= class_cdf).sum(axis=-1).clip(0, len(CLASSES) - 1)
    labelled = unit(hash_u64(seed, bi, bj, 5)) >= UNLABELLED_SHARE
    shift = (unit(hash_u64(seed, bi, bj, 6)) - 0.5) * 0.08
    gain = 0.8 + 0.4 * unit(hash_u64(seed, bi, bj, 7))
    offset = (unit(hash_u64(seed, bi, bj, 8)) - 0.5) * 2.0
    return Parcels(cls, labelled, shift, gain, offset)


def season_fraction(dates: list[dt.date]) -> np.ndarray:
    """Position of each date in the acquisition season, by day of year (0 at 1 Mar, 1 at 31 Oct)."""
    start = SEASON[0].timetuple().tm_yday
    span = SEASON[1].timetuple().tm_yday - start
    return np.array([(d.timetuple().tm_yday - start) / span for d in dates])


def acquisition_dates(rng: np.random.Generator, n: int, year: int, drop_max: int = 3) -> list[dt.date]:
    """``n`` nominal dates over the season, each jittered by up to 2 days, 0..``drop_max`` of them missing."""
    first = SEASON[0].replace(year=year)
    span = (SEASON[1] - SEASON[0]).days
    nominal = np.linspace(0, span, n)
    days = np.clip(np.round(nominal + rng.integers(-2, 3, n)), 0, span).astype(int)
    keep = np.ones(n, dtype=bool)
    drop = int(rng.integers(0, drop_max + 1)) if n > drop_max + 2 else 0
    keep[rng.choice(n, size=drop, replace=False)] = False
    return sorted({first + dt.timedelta(days=int(d)) for d in days[keep]})


def backscatter(p: Parcels, frac: np.ndarray, date_offsets: np.ndarray, water_wind: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Speckled dB backscatter ``(T, 2, h, w)`` float32 (VV, VH) for parcels ``p`` at season fractions ``frac``.

    ``date_offsets`` (T,) is a scene-wide calibration offset per date, ``water_wind`` (T,) the extra dB of
    wind-roughened water on each date.
    """
    prof = PROFILES[p.cls]  # (h, w, 6)
    centre = (prof[..., 4] + p.shift)[None]
    bump = np.exp(-0.5 * ((frac[:, None, None] - centre) / prof[..., 5][None]) ** 2)  # (T, h, w)
    base = (p.offset[None] + date_offsets[:, None, None]
            + np.where(p.cls == WATER, 1.0, 0.0)[None] * water_wind[:, None, None])
    out = np.empty((len(frac), 2) + p.cls.shape, dtype=np.float32)
    for c in (0, 1):
        mean_db = prof[..., 2 * c][None] + p.gain[None] * prof[..., 2 * c + 1][None] * bump + base
        speckle = rng.gamma(ENL, 1.0 / ENL, size=mean_db.shape)
        out[:, c] = 10.0 * np.log10(10.0 ** (mean_db / 10.0) * speckle)
    return out


def footprint(row0: int, col0: int, h: int, w: int, height: int, width: int, margin: float) -> np.ndarray:
    """(h, w) bool: inside the acquisition footprint, whose left edge is slanted like a swath edge."""
    if margin <= 0:
        return np.ones((h, w), dtype=bool)
    rows = np.arange(row0, row0 + h)[:, None]
    cols = np.arange(col0, col0 + w)[None, :]
    edge = width * margin * (0.4 + 0.6 * (1.0 - rows / max(height - 1, 1)))
    return cols >= edge
