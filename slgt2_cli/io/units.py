"""Pixel units of a stack (dB, linear power, scaled integers, raw) and the no-data rule, as pure functions.

The model works in one unit per channel: dB for SAR backscatter given in dB or linear power; the values as
stored for the seed datasets' scaled integers (the paper normalises those directly, so an affine-free identity
keeps a converted reference checkpoint valid) and for non-SAR channels such as NDVI ("raw").
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import numpy as np


class Units(str, Enum):
    """Pixel units of a stack (``--units``): dB, linear power, the seed datasets' scaled integers, raw values."""

    DB = "db"
    LINEAR = "linear"
    SCALED = "scaled"
    RAW = "raw"


UNITS = tuple(u.value for u in Units)
"""Accepted unit names (case-insensitive; "dB" is fine)."""

SAR_POLARISATIONS = frozenset({"VV", "VH", "HH", "HV"})
LINEAR_FLOOR = 1e-5
"""Linear power below this (including zero and negative calibration noise) is clamped to -50 dB."""


def normalise_units(units: str) -> str:
    """'dB' -> 'db' etc.; ValueError for unknown names (callers turn it into an InputError)."""
    key = str(units).strip().lower()
    aliases = {"decibel": "db", "decibels": "db", "power": "linear", "lin": "linear", "int": "scaled", "none": "raw"}
    key = aliases.get(key, key)
    if key not in UNITS:
        raise ValueError(f"unknown units {units!r}; use one of {', '.join(UNITS)}")
    return key


def is_sar(polarisations: Sequence[str]) -> bool:
    return bool(polarisations) and all(p.upper() in SAR_POLARISATIONS for p in polarisations)


def is_generic_name(name: str) -> bool:
    """True for names that say nothing about the quantity ('band1', 'B2', 'C0')."""
    n = name.strip().lower()
    return n.rstrip("0123456789") in ("band", "b", "c", "ch", "channel", "")


def detect_units(sample: np.ndarray, dtype: str, polarisations: Sequence[str], nodata: float | None = None) -> str:
    """Guess the units from a value sample of the stack (any shape).

    Non-SAR named channels are 'raw'; integer data are 'scaled'; floats with a negative median are 'db',
    positive small floats 'linear'. Generic band names are judged by their values like SAR.
    """
    if not is_sar(polarisations) and not all(is_generic_name(p) for p in polarisations):
        return "raw"
    if np.issubdtype(np.dtype(dtype), np.integer):
        return "scaled"
    values = np.asarray(sample, dtype=np.float64).ravel()
    keep = np.isfinite(values) & (values != 0)
    if nodata is not None and np.isfinite(nodata):
        keep &= values != nodata
    values = values[keep]
    if values.size == 0:
        return "db"
    median = float(np.median(values))
    if median < 0:
        return "db"
    if float(np.quantile(values, 0.99)) < 50 and median < 2:
        return "linear"
    return "db" if is_sar(polarisations) else "raw"


def invalid_observations(raw: np.ndarray, nodata: float | None) -> np.ndarray:
    """(T, C, h, w) values -> (T, h, w) bool: NaN, ±inf or nodata in any channel, or zero in every channel.

    Infinite values are no data, like NaN: no backscatter is infinite, so they can only be fill values or
    overflowed products (e.g. 10·log10(0) = -inf written by a dB conversion), and masking them keeps the rest
    of the scene usable.
    """
    raw = np.asarray(raw)
    bad = np.zeros((raw.shape[0],) + raw.shape[2:], dtype=bool)
    if np.issubdtype(raw.dtype, np.floating):
        bad |= ~np.isfinite(raw).all(axis=1)
    if nodata is not None and not np.isnan(nodata):
        bad |= (raw == nodata).any(axis=1)
    bad |= (raw == 0).all(axis=1)
    return bad


def to_model_units(raw: np.ndarray, units: str, nodata: float | None = None) -> np.ndarray:
    """(T, C, h, w) stored values -> float32 in model units, NaN on every channel of an invalid observation."""
    bad = invalid_observations(raw, nodata)
    out = np.array(raw, dtype=np.float32)  # one copy, whatever the stored dtype
    if units == "linear":
        np.maximum(out, LINEAR_FLOOR, out=out, where=~np.isnan(out))
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (10.0 * np.log10(out)).astype(np.float32)
    if bad.any():
        out[np.broadcast_to(bad[:, None], out.shape)] = np.nan
    return out


def model_units(units: str) -> str:
    """The unit the model sees for a stack stored in ``units``."""
    return "db" if units in ("db", "linear") else units
