"""Readers for the seed datasets' ``.mat`` scenes (MTS12 Slovenia, Brandenburg), behind the Stack interface.

Arrays are stored ``(T, H, W, C)`` without georeference, so the grid is a dummy pixel grid (no CRS, identity
transform) and ``dates`` is None. The header gives the shape without loading; the array is loaded on the first
read and kept (these scenes are small).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.windows import Window

from slgt2_cli.errors import InputError, MissingFileError
from slgt2_cli.io.classes import check_integral_labels
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.units import detect_units, model_units, normalise_units, to_model_units

SEED_CHANNELS = {"band": ("VV", "VH"), "data": ("VH", "VV")}
"""Channel order of the seed datasets: MTS12 ``band`` is VV, VH; Brandenburg ``data`` (files ``VHVV_*``, means
about -16.4 and -10.6 dB) is VH, VV."""


def mat_fields(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Variable name -> (shape, MATLAB class) from a .mat header, without loading the data."""
    import scipy.io

    try:
        return {name: (tuple(shape), cls) for name, shape, cls in scipy.io.whosmat(str(path))}
    except NotImplementedError:
        raise InputError("MATLAB v7.3 (HDF5) files are not supported; save with -v7", path) from None
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"not a readable .mat file ({exc})", path) from None


def load_mat_array(path: Path, field: str) -> np.ndarray:
    """Load one variable of a .mat file."""
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path), variable_names=[field])
    except NotImplementedError:
        raise InputError("MATLAB v7.3 (HDF5) files are not supported; save with -v7", path) from None
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"not a readable .mat file ({exc})", path) from None
    if field not in data:
        raise InputError(f"has no field {field!r}", path)
    return np.asarray(data[field])


def _slice(window: Window | None) -> tuple[slice, slice]:
    if window is None:
        return slice(None), slice(None)
    (r0, r1), (c0, c1) = window.toranges()
    return slice(int(r0), int(r1)), slice(int(c0), int(c1))


class MatStack:
    """A ``(T, H, W, C)`` array in a .mat file, read like a :class:`slgt2_cli.io.stacks.Stack`."""

    dates = None
    nodata = None

    def __init__(self, path: str | Path, field: str, units: str | None = None):
        self.path, self.field = Path(path), field
        fields = mat_fields(self.path)
        if field not in fields:
            raise InputError(f"has no field {field!r} (fields: {', '.join(sorted(fields)) or 'none'})", self.path)
        shape, _ = fields[field]
        if len(shape) == 3:
            shape = shape + (1,)
        if len(shape) != 4:
            raise InputError(f"field {field!r} has shape {shape}; expected (T, H, W, C)", self.path)
        self.shape = shape
        t, h, w, c = shape
        self.grid = Grid(None, Affine.identity(), w, h)
        self.polarisations = list(SEED_CHANNELS.get(field, ())) if c == 2 else [f"band{i + 1}" for i in range(c)]
        self.polarisations = self.polarisations or [f"band{i + 1}" for i in range(c)]
        self._array: np.ndarray | None = None
        self._units = normalise_units(units) if units else None
        self._order: list[int] | None = None

    @property
    def num_dates(self) -> int:
        return self.shape[0]

    @property
    def num_channels(self) -> int:
        return self.shape[3]

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            array = load_mat_array(self.path, self.field)
            self._array = array[..., None] if array.ndim == 3 else array
        return self._array

    @property
    def units(self) -> str:
        if self._units is None:
            a = self.array
            step = max(1, a.shape[1] // 64), max(1, a.shape[2] // 64)
            self._units = detect_units(a[:2, :: step[0], :: step[1]], str(a.dtype), self.polarisations)
        return self._units

    @property
    def model_units(self) -> str:
        return model_units(self.units)

    def select(self, polarisations: list[str]) -> MatStack:
        """The same scene with channels in the order of ``polarisations`` (see ``Stack.select``)."""
        have = [p.upper() for p in self.polarisations]
        missing = [p for p in polarisations if p.upper() not in have]
        if missing:
            raise InputError(f"has no {', '.join(missing)} band (it has {', '.join(self.polarisations)})", self.path)
        other = MatStack.__new__(MatStack)
        other.__dict__.update(self.__dict__)
        base = self._order or list(range(self.num_channels))
        picks = [have.index(p.upper()) for p in polarisations]
        other._order = [base[i] for i in picks]
        other.polarisations = [self.polarisations[i] for i in picks]
        other.shape = self.shape[:3] + (len(picks),)
        return other

    def band_cache_bytes(self, rows: int) -> int:
        """No GDAL block cache needed: the array is read into memory whole (see ``Stack.band_cache_bytes``)."""
        return 0

    def read_stored(self, window: Window | None = None) -> np.ndarray:
        rows, cols = _slice(window)
        data = self.array[:, rows, cols, :]
        if self._order is not None:
            data = data[..., self._order]
        return np.moveaxis(data, 3, 1)

    def read(self, window: Window | None = None) -> np.ndarray:
        """Float32 ``(T, C, h, w)`` in model units, NaN where an observation is all zero or NaN."""
        return to_model_units(self.read_stored(window), self.units, None)

    def close(self) -> None:
        self._array = None

    def __enter__(self) -> MatStack:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_array"] = None
        return state


IMAGE_FIELDS = ("band", "data")
"""Image variables of the seed datasets: MTS12 Slovenia ``band`` (uint8), Brandenburg ``data`` (float dB)."""


def open_mat_stack(path: str | Path, units: str | None = None) -> MatStack:
    """One seed-format scene (``band`` or ``data`` variable, (T, H, W, C)) as a stack without georeference."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError("image stack not found", path)
    fields = mat_fields(path)
    field = next((f for f in IMAGE_FIELDS if f in fields), None)
    if field is None:
        raise InputError(f"has neither a 'band' (MTS12) nor a 'data' (Brandenburg) variable; it has "
                         f"{', '.join(sorted(fields)) or 'none'}", path)
    return MatStack(path, field, units)


class MatLabels:
    """A ``(H, W)`` label field of a .mat file; value 0 is no data / background."""

    def __init__(self, path: str | Path, grid: Grid, field: str = "label"):
        self.path, self.grid, self.field = Path(path), grid, field
        fields = mat_fields(self.path)
        if field not in fields:
            raise InputError(f"has no field {field!r} (fields: {', '.join(sorted(fields)) or 'none'})", self.path)
        shape = fields[field][0]
        if tuple(shape[:2]) != grid.shape or (len(shape) > 2 and int(np.prod(shape[2:])) != 1):
            raise InputError(f"label shape {shape} does not match the image ({grid.height}x{grid.width})", self.path)
        self._array: np.ndarray | None = None

    def read(self, window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
        if self._array is None:
            a = load_mat_array(self.path, self.field)
            self._array = a.reshape(a.shape[0], a.shape[1])
        rows, cols = _slice(window)
        values = self._array[rows, cols]
        if np.issubdtype(values.dtype, np.floating):
            finite = np.isfinite(values)
            values = np.where(finite, values, 0)
            check_integral_labels(values, finite, self.path)
        values = values.astype(np.int64)
        return values, values != 0
