"""Image stacks: one scene's time series from a multi-band GeoTIFF or a directory of per-date GeoTIFFs.

``open_stack(path)`` returns a :class:`Stack` that knows its grid, dates, polarisations and units and reads any
window as float32 ``(T, C, h, w)`` in model units with NaN where there is no data. Nothing is read until asked
for, so stacks larger than memory can be sampled and tiled.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError
from rasterio.windows import Window

from slgt2_cli.errors import InputError, MissingFileError
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.remote import REMOTE_HINT, gdal_path
from slgt2_cli.io.units import detect_units, model_units, normalise_units, to_model_units

RASTER_SUFFIXES = (".tif", ".tiff")
_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
_LABEL_TAGS = ("NAME", "DESCRIPTION", "BAND_NAME", "LABEL")
_DATE_TAGS = ("DATE", "ACQUISITION_DATE", "TIME", "DATETIME")
_POL_TAGS = ("POLARISATION", "POLARIZATION", "POL", "BAND")


def parse_date(text: str) -> dt.date | None:
    """The first valid ``YYYYMMDD`` or ``YYYY-MM-DD`` in ``text``, else None."""
    for m in _DATE.finditer(text or ""):
        try:
            return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            continue
    return None


def parse_band_label(text: str) -> tuple[str | None, dt.date | None]:
    """``'VV_2021-03-01'`` -> ('VV', date); ``'VH'`` -> ('VH', None); a bare date -> (None, date)."""
    text = (text or "").strip()
    if not text:
        return None, None
    date = parse_date(text)
    name = _DATE.sub("", text).strip(" _-.:") if date else text
    return (name or None), date


def _text_metadata(src: Any, read: Callable[[], Any]) -> Any:
    """``read()`` of a file's descriptions, tags or units; bytes that are not UTF-8 -> InputError naming the file."""
    try:
        return read()
    except UnicodeDecodeError:
        raise InputError("its band descriptions or tags are not UTF-8 text", Path(src.name)) from None


def _band_label(src: Any, band: int) -> tuple[str | None, dt.date | None]:
    """Polarisation and date of band ``band`` (1-based) from its description, else from its tags."""
    description, band_tags = _text_metadata(src, lambda: (src.descriptions[band - 1] or "", src.tags(band)))
    pol, date = parse_band_label(description)
    if pol is not None and date is not None:
        return pol, date
    tags = {k.upper(): v for k, v in band_tags.items()}
    for key in _LABEL_TAGS:
        if key in tags:
            tpol, tdate = parse_band_label(tags[key])
            pol, date = pol or tpol, date or tdate
    for key in _DATE_TAGS:
        if date is None and key in tags:
            date = parse_date(tags[key])
    for key in _POL_TAGS:
        if pol is None and key in tags:
            pol = tags[key].strip() or None
    return pol, date


RASTER_ERRORS: tuple[type[BaseException], ...] = (RasterioError, CPLE_BaseError, OSError)
"""What GDAL/rasterio raise for files that are not rasters, or damaged ones."""


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def open_raster(path: Path, missing: str = "file not found") -> Any:
    """rasterio.open with one clear InputError naming the file when it is missing or not a raster.

    URLs and ``/vsi…`` paths go to GDAL as written (see :mod:`slgt2_cli.io.remote`); reads stay windowed."""
    remote = gdal_path(path)
    if remote is None and not Path(path).exists():
        raise MissingFileError(missing, path)
    try:
        if remote is None:
            return rasterio.open(path)
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):  # no directory listing over HTTP
            return rasterio.open(remote)
    except RASTER_ERRORS as exc:
        if remote is not None:
            raise InputError(f"cannot open the remote raster ({_reason(exc)})", path, hint=REMOTE_HINT) from None
        raise InputError(f"not a readable raster ({_reason(exc)})", path) from None


@contextmanager
def _damaged(path: Path) -> Iterator[None]:
    """Header or data that GDAL cannot decode (a damaged or truncated file) -> InputError naming the file."""
    try:
        yield
    except RASTER_ERRORS as exc:
        raise InputError(f"damaged or truncated raster ({_reason(exc)})", path) from None


def _declared_units(src: Any) -> str | None:
    """Units written in the file: a dataset tag UNITS or the band unit type."""
    tags = {k.upper(): v for k, v in _text_metadata(src, src.tags).items()}
    for text in [tags.get("UNITS")] + list(_text_metadata(src, lambda: getattr(src, "units", ())) or ()):
        if text:
            try:
                return normalise_units(text)
            except ValueError:
                continue
    return None


@dataclass(frozen=True)
class _Member:
    """One file of a stack and, for each of its dates, the 1-based band index of each channel."""

    path: Path
    bands: np.ndarray  # (dates_in_file, C) int


class Stack:
    """A scene's time series: ``read(window)`` -> float32 ``(T, C, h, w)`` in model units, NaN = no data."""

    def __init__(self, path: Path, grid: Grid, members: list[_Member], dates: list[dt.date] | None,
                 polarisations: list[str], units: str, dtype: str, nodata: float | None):
        self.path, self.grid, self.dates, self.polarisations = path, grid, dates, polarisations
        self.units, self.dtype, self.nodata = units, dtype, nodata
        self._members = members
        self._handles: dict[Path, Any] = {}
        self._pid = os.getpid()

    @property
    def num_dates(self) -> int:
        return sum(len(m.bands) for m in self._members)

    @property
    def num_channels(self) -> int:
        return len(self.polarisations)

    @property
    def model_units(self) -> str:
        return model_units(self.units)

    def _handle(self, path: Path) -> Any:
        if self._pid != os.getpid():  # forked (DataLoader worker): never share file offsets with the parent
            self._handles, self._pid = {}, os.getpid()
        if path not in self._handles:
            self._handles[path] = open_raster(path)
        return self._handles[path]

    def read_stored(self, window: Window | None = None) -> np.ndarray:
        """The stored values of ``window`` as ``(T, C, h, w)`` in the file's dtype (no conversion)."""
        parts = []
        for member in self._members:
            src = self._handle(member.path)
            try:
                data = src.read(member.bands.ravel().tolist(), window=window)
            except (*RASTER_ERRORS, ValueError) as exc:
                raise InputError(f"cannot read window {window} ({_reason(exc)})", member.path) from None
            parts.append(data.reshape(member.bands.shape + data.shape[1:]))
        return np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]

    def read(self, window: Window | None = None) -> np.ndarray:
        """Float32 ``(T, C, h, w)`` in model units (dB for SAR) with NaN where an observation has no data."""
        return to_model_units(self.read_stored(window), self.units, self.nodata)

    def band_cache_bytes(self, rows: int) -> int:
        """Decoded bytes of the file blocks that a full-width band of ``rows`` rows touches, plus one more row
        of blocks: a GDAL block cache this large decodes each block once while bands move down the scene."""
        total = 0
        for member in self._members:
            src = self._handle(member.path)
            block_rows, block_cols = src.block_shapes[0]
            across = -(-src.width // block_cols) * block_cols
            down = min(-(-rows // block_rows) + 1, -(-src.height // block_rows)) * block_rows
            total += across * down * src.count * np.dtype(src.dtypes[0]).itemsize
        return total

    def read_decimated(self, date: int, out_shape: tuple[int, int]) -> np.ndarray:
        """Date ``date`` of the whole scene at reduced resolution ``out_shape`` (averaged), as float32
        ``(C, h, w)`` in model units: for pictures of scenes too large to read whole."""
        from rasterio.enums import Resampling

        for member in self._members:
            if date < len(member.bands):
                src = self._handle(member.path)
                with _damaged(member.path):
                    data = src.read(member.bands[date].tolist(), out_shape=(len(member.bands[date]),) + tuple(out_shape),
                                    resampling=Resampling.average)
                return to_model_units(data[None], self.units, self.nodata)[0]
            date -= len(member.bands)
        raise IndexError(f"date {date} beyond the stack's {self.num_dates} dates")

    def select(self, polarisations: list[str]) -> Stack:
        """The same stack with channels in the order of ``polarisations`` (e.g. a checkpoint's input bands);
        InputError if one is missing. Names compare case-insensitively."""
        have = [p.upper() for p in self.polarisations]
        missing = [p for p in polarisations if p.upper() not in have]
        if missing:
            raise InputError(f"has no {', '.join(missing)} band (it has {', '.join(self.polarisations)})", self.path)
        order = [have.index(p.upper()) for p in polarisations]
        members = [_Member(m.path, m.bands[:, order]) for m in self._members]
        return Stack(self.path, self.grid, members, self.dates, [self.polarisations[i] for i in order],
                     self.units, self.dtype, self.nodata)

    def close(self) -> None:
        for src in self._handles.values():
            src.close()
        self._handles.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:  # open handles do not travel to DataLoader workers
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def __repr__(self) -> str:
        return (f"Stack({str(self.path)!r}, {self.num_dates} dates x {self.polarisations}, units={self.units}, "
                f"{self.grid.describe()})")


def _multiband_layout(src: Any, path: Path, channels: int | None) -> tuple[np.ndarray, list[dt.date] | None, list[str]]:
    """Band index table (T, C), dates and polarisations of a date-major multi-band file."""
    labels = [_band_label(src, b) for b in range(1, src.count + 1)]
    have_dates = [d is not None for _, d in labels]
    if any(have_dates) and not all(have_dates):
        missing = have_dates.index(False) + 1
        raise InputError(f"band {missing} has no date in its description or tags while others do", path)
    if all(have_dates):
        # Consecutive bands of one date form an observation; a polarisation seen again on the same date
        # starts a second observation of that date (two acquisitions of one day occur in real data).
        groups: list[tuple[dt.date, dict[str, int]]] = []
        for band, (pol, date) in enumerate(labels, start=1):
            if not groups or groups[-1][0] != date or (pol or "") in groups[-1][1]:
                groups.append((date, {}))
            groups[-1][1][pol or ""] = band
        pols = list(groups[0][1])
        for date, entry in groups:
            if sorted(entry) != sorted(pols):
                raise InputError(f"date {date} has bands {sorted(entry)}, expected {pols}", path)
        groups.sort(key=lambda g: g[0])  # stable: same-day observations keep their order
        table = np.array([[entry[p] for p in pols] for _, entry in groups], dtype=int)
        names = [p or f"band{i + 1}" for i, p in enumerate(pols)]
        return table, [d for d, _ in groups], names
    names = [p for p, _ in labels]
    if channels is None:
        distinct = list(dict.fromkeys(n for n in names if n))
        channels = len(distinct) if distinct and len(names) % len(distinct) == 0 else 1
    if src.count % channels:
        raise InputError(f"{src.count} bands do not split into {channels} channels per date", path)
    pols = [names[c] or f"band{c + 1}" for c in range(channels)]
    return np.arange(1, src.count + 1).reshape(-1, channels), None, pols


def _sample(src: Any, bands: Sequence[int], grid: Grid, size: int = 32, n: int = 4) -> np.ndarray:
    """A few small windows spread over the raster (cheap on tiled files), for unit detection."""
    out = []
    for fy in np.linspace(0.1, 0.9, n):
        for fx in np.linspace(0.1, 0.9, n):
            h, w = min(size, grid.height), min(size, grid.width)
            row, col = int(fy * (grid.height - h)), int(fx * (grid.width - w))
            out.append(src.read(list(bands), window=Window(col, row, w, h)).ravel())
    return np.concatenate(out)


def _finish(path: Path, grid: Grid, members: list[_Member], dates: list[dt.date] | None, pols: list[str],
            src: Any, units: str | None) -> Stack:
    dtype, nodata = src.dtypes[0], src.nodata
    if units is None:
        units = _declared_units(src)
        if units is None:
            units = detect_units(_sample(src, members[0].bands[:2].ravel().tolist(), grid), dtype, pols, nodata)
    else:
        try:
            units = normalise_units(units)
        except ValueError as exc:
            raise InputError(str(exc), path) from None
    return Stack(path, grid, members, dates, pols, units, dtype, nodata)


def _open_directory(path: Path, units: str | None, channels: int | None) -> Stack:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in RASTER_SUFFIXES and p.is_file())
    if not files:
        raise InputError("the stack directory holds no .tif files", path)
    entries = []
    for f in files:
        date = parse_date(f.name)
        if date is None:
            raise InputError("no date (YYYYMMDD or YYYY-MM-DD) in the file name", f)
        entries.append((date, f))
    entries.sort()
    first = entries[0][1]
    with open_raster(first) as src, _damaged(first):
        grid, count = Grid.of(src), src.count
        pols = []
        for b in range(1, count + 1):
            pol, _ = _band_label(src, b)
            pols.append(pol or f"band{b}")
        ref_dtype = src.dtypes[0]
        for _date, f in entries[1:]:
            with open_raster(f) as other, _damaged(f):
                if not Grid.of(other).same_as(grid):
                    raise InputError(f"grid differs from {first.name}'s ({Grid.of(other).difference(grid)}); "
                                     "all dates of a stack must share one grid", f)
                if other.count != count:
                    raise InputError(f"has {other.count} bands, {first.name} has {count}; all dates of a stack need the "
                                     "same bands", f)
                if other.dtypes[0] != ref_dtype:
                    raise InputError(f"data type {other.dtypes[0]} differs from {first.name} ({ref_dtype})", f)
        members = [_Member(f, np.arange(1, count + 1)[None, :]) for _, f in entries]
        return _finish(path, grid, members, [d for d, _ in entries], pols, src, units)


def open_stack(path: str | Path, units: str | None = None, channels: int | None = None) -> Stack:
    """Open a stack: a multi-band GeoTIFF (date-major bands) or a directory of per-date GeoTIFFs.

    ``units`` overrides detection ("db", "linear", "scaled", "raw"); ``channels`` sets the channels per date
    for multi-band files whose bands carry no names (named bands, and per-date files, say it themselves: a
    caller that needs a channel count checks ``num_channels`` and says why).

    Every problem with the files (missing, not a raster, unreadable header or data, dates on different
    grids, no dates where they are needed) is an :class:`InputError` naming the file.
    """
    path = Path(path)
    remote = gdal_path(path) is not None  # a URL or /vsi… path: one multi-band file, opened by GDAL
    if not remote and not path.exists():
        raise MissingFileError("image stack not found", path)
    if not remote and path.is_dir():
        return _open_directory(path, units, channels)
    if path.suffix.lower() == ".mat":  # a seed-format scene (no georeference)
        from slgt2_cli.io.matfiles import open_mat_stack

        return open_mat_stack(path, units)  # type: ignore[return-value]
    with open_raster(path) as src, _damaged(path):
        if len({str(d) for d in src.dtypes}) != 1:
            raise InputError(f"bands have different data types ({', '.join(sorted(set(src.dtypes)))})", path)
        table, dates, pols = _multiband_layout(src, path, channels)
        return _finish(path, Grid.of(src), [_Member(path, table)], dates, pols, src, units)
