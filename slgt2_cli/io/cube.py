"""xarray cubes as window sources, and stacks as lazy xarray cubes.

:func:`cube_source` turns a DataArray or Dataset (dims ``time``/``t``, ``band``/``bands``, ``y``, ``x``; or a
Dataset with one variable per polarisation, as openEO writes them) into a :class:`CubeSource` that the
inference engine reads window by window like a GeoTIFF :class:`~slgt2_cli.io.stacks.Stack`: a numpy-backed cube
is sliced, a dask-backed one computed one window at a time, never whole.

:func:`stack_dataarray` goes the other way: a stack on disk as a DataArray ``(time, band, y, x)`` whose pixels
are read (through the stack's own reader) only when asked for.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rioxarray  # noqa: F401 - registers the .rio accessor
import xarray as xr
from rasterio.windows import Window
from xarray.backends import BackendArray
from xarray.core import indexing

from slgt2_cli.errors import InputError
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.stacks import Stack
from slgt2_cli.io.units import (
    detect_units,
    is_generic_name,
    model_units,
    normalise_units,
    to_model_units,
)

TIME_DIMS = ("time", "t")
BAND_DIMS = ("band", "bands")
CUBE_HINT = "a cube needs dims time (or t), band (or bands), y, x"


# --- stack -> DataArray ---------------------------------------------------------------------------------------
class _StackArray(BackendArray):
    """The stored values of a stack, ``(T, C, H, W)``, read window by window (a lock: one GDAL handle)."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.shape = (stack.num_dates, stack.num_channels, stack.grid.height, stack.grid.width)
        self.dtype = np.dtype(stack.dtype)
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> _StackArray:  # read-only: copies of the cube share the reader
        return self

    def __getstate__(self) -> dict[str, Any]:  # pickled for dask workers: a fresh lock (the stack drops handles)
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._read)

    def _read(self, key: tuple) -> np.ndarray:
        t, c, y, x = key
        rows, cols = _span(y, self.shape[2]), _span(x, self.shape[3])
        if rows is None or cols is None:
            return np.zeros(self.shape[:2] + (0, 0), self.dtype)[t, c]
        (r0, r1, ry), (c0, c1, cx) = rows, cols
        with self._lock:
            data = self.stack.read_stored(Window(c0, r0, c1 - c0, r1 - r0))
        return data[t, c][..., ry, :][..., cx]


def _span(key: int | slice, size: int) -> tuple[int, int, Any] | None:
    """(first, stop, index within the read) of an int or slice along one axis; None if it is empty."""
    if isinstance(key, (int, np.integer)):
        return int(key), int(key) + 1, 0
    idx = np.arange(size)[key]
    if idx.size == 0:
        return None
    lo, hi = int(idx.min()), int(idx.max()) + 1
    return lo, hi, (slice(None) if key.step in (None, 1) else idx - lo)


def pixel_centres(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) coordinates of the pixel centres of a north-up grid."""
    t = grid.transform
    return t.c + t.a * (np.arange(grid.width) + 0.5), t.f + t.e * (np.arange(grid.height) + 0.5)


def stack_dataarray(stack: Stack) -> xr.DataArray:
    """A lazy DataArray ``(time, band, y, x)`` of ``stack``'s stored values; ``units``, CRS, transform and
    nodata travel as attributes (rioxarray). Undated stacks get the frame number as their time coordinate."""
    x, y = pixel_centres(stack.grid)
    time = (np.array([np.datetime64(d, "ns") for d in stack.dates]) if stack.dates
            else np.arange(stack.num_dates))
    data = indexing.LazilyIndexedArray(_StackArray(stack))
    da = xr.DataArray(xr.Variable(("time", "band", "y", "x"), data),
                      coords={"time": time, "band": list(stack.polarisations), "y": y, "x": x},
                      name=Path(stack.path).name, attrs={"units": stack.units, "source": str(stack.path)})
    if stack.grid.crs is not None:
        da = da.rio.write_crs(stack.grid.crs)
    da = da.rio.write_transform(stack.grid.transform)
    if stack.nodata is not None:
        da = da.rio.write_nodata(stack.nodata, encoded=False)
    return da


# --- cube -> window source ------------------------------------------------------------------------------------
class CubeSource:
    """A cube ``(time, band, y, x)`` read like a stack: ``read(window)`` -> float32 ``(T, C, h, w)`` in model
    units, NaN = no data. Make one with :func:`cube_source`."""

    def __init__(self, cube: xr.DataArray, grid: Grid, dates: list[dt.date] | None, units: str,
                 nodata: float | None, label: str):
        self.cube, self.grid, self.dates, self.units, self.nodata = cube, grid, dates, units, nodata
        self.polarisations = [str(b) for b in cube["band"].values]
        self.path = Path(label)
        self.dtype = str(cube.dtype)
        x_chunks = (cube.chunksizes or {}).get("x")  # dask: compute whole chunk columns, once per band of rows
        self._x_edges = np.cumsum((0, *x_chunks)) if x_chunks else None
        self._block: tuple[tuple[int, int, int, int], np.ndarray] | None = None

    @property
    def num_dates(self) -> int:
        return int(self.cube.sizes["time"])

    @property
    def num_channels(self) -> int:
        return len(self.polarisations)

    @property
    def model_units(self) -> str:
        return model_units(self.units)

    def read_stored(self, window: Window | None = None) -> np.ndarray:
        """The cube's values in ``window`` (computed now if the cube is dask-backed).

        A dask cube is computed in whole chunk columns, and the last block is kept: the engine reads a band of
        rows in narrower windows, left to right, which then compute each chunk once, not once per window."""
        if window is None:
            return self._compute(self.cube, window)
        (r0, r1), (c0, c1) = window.toranges()
        if self._x_edges is None:
            return self._compute(self.cube.isel(y=slice(r0, r1), x=slice(c0, c1)), window)
        b0 = int(self._x_edges[np.searchsorted(self._x_edges, c0, side="right") - 1])
        b1 = int(self._x_edges[np.searchsorted(self._x_edges, c1, side="left")])
        if self._block is None or self._block[0] != (r0, r1, b0, b1):
            self._block = None  # the old block is let go before the new one is computed
            self._block = ((r0, r1, b0, b1), self._compute(self.cube.isel(y=slice(r0, r1), x=slice(b0, b1)), window))
        return self._block[1][..., c0 - b0 : c1 - b0]

    def _compute(self, part: xr.DataArray, window: Window | None) -> np.ndarray:
        try:
            return np.asarray(part.values)
        except (OSError, RuntimeError, ValueError) as exc:
            raise InputError(f"cannot read window {window} of the cube ({_first_line(exc)})", self.path) from None

    def read(self, window: Window | None = None) -> np.ndarray:
        return to_model_units(self.read_stored(window), self.units, self.nodata)

    def band_cache_bytes(self, rows: int) -> int:
        """Decoded bytes of a full-width band (what a GDAL-backed cube, e.g. from open_stack, reads)."""
        return rows * self.grid.width * self.num_dates * self.num_channels * self.cube.dtype.itemsize

    def select(self, bands: Sequence[str]) -> CubeSource:
        """Channels in the order of ``bands`` (names compare case-insensitively); InputError if one is missing."""
        have = [p.upper() for p in self.polarisations]
        missing = [b for b in bands if b.upper() not in have]
        if missing:
            raise InputError(f"the cube has no {', '.join(missing)} band (its bands: {', '.join(self.polarisations)};"
                             f" the model needs {', '.join(bands)})", self.path)
        cube = self.cube.isel(band=[have.index(b.upper()) for b in bands])
        return CubeSource(cube, self.grid, self.dates, self.units, self.nodata, str(self.path))

    def match_bands(self, bands: Sequence[str]) -> CubeSource:
        """The cube's bands matched to a model's ``bands``: by name, or by position when the cube's names say
        nothing ('band1', 1, ...)."""
        if all(is_generic_name(p) for p in self.polarisations):
            if self.num_channels != len(bands):
                raise InputError(f"the cube has {self.num_channels} unnamed bands but the model needs "
                                 f"{len(bands)} ({', '.join(bands)})", self.path,
                                 hint="name them: cube.assign_coords(band=[...])")
            return CubeSource(self.cube.assign_coords(band=list(bands)), self.grid, self.dates, self.units,
                              self.nodata, str(self.path))
        return self.select(bands)

    def close(self) -> None:
        pass

    def __enter__(self) -> CubeSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"CubeSource({self.num_dates} dates x {self.polarisations}, units={self.units}, "
                f"{self.grid.describe()})")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _find_dim(dims: Sequence[str], names: Sequence[str]) -> str | None:
    return next((d for d in dims if str(d).lower() in names), None)


def _from_dataset(ds: xr.Dataset) -> xr.DataArray:
    """One variable with a band dimension, or one variable per band (openEO, netCDF) stacked on ``band``."""
    mappings = {v.attrs.get("grid_mapping") or v.encoding.get("grid_mapping") for v in ds.data_vars.values()}
    ds = ds.set_coords([m for m in mappings if m in ds.data_vars])  # CF grid mapping read as a data variable
    crs = ds.rio.crs
    spatial = [n for n, v in ds.data_vars.items() if v.ndim >= 3 and _find_dim(v.dims, TIME_DIMS)]
    if not spatial:
        raise InputError(f"the Dataset has no variable with a time dimension and y/x ({CUBE_HINT}); its variables: "
                         f"{', '.join(map(str, ds.data_vars)) or 'none'}")
    with_band = [n for n in spatial if _find_dim(ds[n].dims, BAND_DIMS)]
    if with_band:
        da = ds[with_band[0]]
    else:
        da = xr.concat([ds[n] for n in spatial], dim="band").assign_coords(band=[str(n) for n in spatial])
        da.attrs = dict(ds[spatial[0]].attrs)
    if crs is not None and da.rio.crs is None:
        da = da.rio.write_crs(crs)
    return da


def _normalise_dims(da: xr.DataArray) -> xr.DataArray:
    """``(time, band, y, x)`` with those names, y north-up, dates in order; InputError naming what is missing."""
    time_dim, band_dim = _find_dim(da.dims, TIME_DIMS), _find_dim(da.dims, BAND_DIMS)
    if time_dim is None:
        raise InputError(f"the cube has no time dimension (dims: {', '.join(map(str, da.dims))}; {CUBE_HINT})")
    if band_dim is None:
        da = da.expand_dims(band=[str(da.name or "band1")])
        band_dim = "band"
    try:
        x_dim, y_dim = da.rio.x_dim, da.rio.y_dim
    except Exception:  # noqa: BLE001 - rioxarray's MissingSpatialDimensionError and friends
        raise InputError(f"the cube has no spatial dimensions y/x (dims: {', '.join(map(str, da.dims))}; "
                         f"{CUBE_HINT})") from None
    extra = [d for d in da.dims if d not in (time_dim, band_dim, y_dim, x_dim)]
    if extra:
        raise InputError(f"the cube has dimensions besides time, band, y, x: {', '.join(map(str, extra))} "
                         "(select or squeeze them first)")
    da = da.rename({time_dim: "time", band_dim: "band", y_dim: "y", x_dim: "x"}).transpose("time", "band", "y", "x")
    if da.sizes["y"] > 1 and float(da["y"][1] - da["y"][0]) > 0:  # south-up (netCDF often is): flip to north-up
        da = da.isel(y=slice(None, None, -1))
    if np.issubdtype(da["time"].dtype, np.datetime64) and not da.indexes["time"].is_monotonic_increasing:
        da = da.isel(time=np.argsort(da["time"].values, kind="stable"))
    return da


def _dates(da: xr.DataArray) -> list[dt.date] | None:
    """The time coordinate as dates; None when it holds no dates (frame numbers, or no coordinate at all)."""
    if "time" not in da.coords:
        return None
    values = da["time"].values
    if np.issubdtype(values.dtype, np.datetime64):
        if np.isnat(values).any():
            raise InputError("the cube's time coordinate has missing dates (NaT)")
        return [dt.date.fromisoformat(str(v)[:10]) for v in values.astype("datetime64[D]")]
    if values.dtype == object and all(hasattr(v, "year") and hasattr(v, "day") for v in values):  # cftime, date
        return [dt.date(v.year, v.month, v.day) for v in values]
    return None


def _units(da: xr.DataArray, units: str | None, nodata: float | None) -> str:
    """``units`` if given, else the cube's ``units`` attribute, else detected from a few small windows."""
    given, what = (units, "units") if units is not None else (da.attrs.get("units"), "the cube's units attribute")
    if given is not None:
        try:
            return normalise_units(given)
        except ValueError as exc:
            raise InputError(f"{what}: {exc}", hint="pass units='db', 'linear', 'scaled' or 'raw'") from None
    h, w = min(32, da.sizes["y"]), min(32, da.sizes["x"])
    parts = [np.asarray(da.isel(time=slice(0, 2), y=slice(r, r + h), x=slice(c, c + w)).values).ravel()
             for r in np.linspace(0, da.sizes["y"] - h, 3).astype(int) for c in np.linspace(0, da.sizes["x"] - w, 3).astype(int)]
    return detect_units(np.concatenate(parts), str(da.dtype), [str(b) for b in da["band"].values], nodata)


def cube_source(cube: xr.DataArray | xr.Dataset, units: str | None = None, label: str = "<cube>") -> CubeSource:
    """A window source for ``cube``: dims normalised, CRS and grid taken from rioxarray, dates from the time
    coordinate, units from ``units``, the cube's ``units`` attribute or its values. Every problem is one
    InputError."""
    if isinstance(cube, xr.Dataset):
        cube = _from_dataset(cube)
    if not isinstance(cube, xr.DataArray):
        raise InputError(f"expected an xarray DataArray or Dataset, got {type(cube).__name__}")
    da = _normalise_dims(cube)
    if da.rio.crs is None:
        raise InputError("the cube has no CRS", hint="set one with cube.rio.write_crs('EPSG:32633'), or keep the "
                         "grid-mapping variable of its file")
    if min(da.sizes["y"], da.sizes["x"], da.sizes["time"], da.sizes["band"]) < 1:
        raise InputError(f"the cube is empty (sizes {dict(da.sizes)})")
    if not (np.issubdtype(da.dtype, np.number) and not np.issubdtype(da.dtype, np.complexfloating)):
        raise InputError(f"the cube holds {da.dtype} values; expected real numbers")
    try:
        transform = da.rio.transform(recalc=True)
    except Exception as exc:  # noqa: BLE001 - rioxarray cannot tell the pixel size (e.g. a 1-pixel-wide cube)
        raise InputError(f"cannot derive the cube's pixel grid from its x/y coordinates ({_first_line(exc)})") from None
    grid = Grid(da.rio.crs, transform, int(da.sizes["x"]), int(da.sizes["y"]))
    nodata = da.rio.nodata
    nodata = None if nodata is None else float(nodata)
    return CubeSource(da, grid, _dates(da), _units(da, units, nodata), nodata, label)
