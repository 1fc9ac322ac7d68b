"""Ground sampling distance (pixel size in metres) of a grid, and the check of a stack's against training's.

A model learns textures and field shapes at one pixel size; a stack at 2× or ½ of it gives silently poor maps.
Training records the GSD of its (georeferenced) scenes in the checkpoint; ``predict`` warns when a stack differs
from it by more than :data:`MAX_RATIO`, and ``--strict`` refuses.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from pathlib import Path

from pyproj import CRS as ProjCRS
from pyproj import Geod

from slgt2_cli.errors import InputError
from slgt2_cli.io.grid import Grid

MAX_RATIO = 2.0
"""A stack whose pixel size differs from the training one by more than this factor (either way) is flagged."""


def ground_sampling_distance(grid: Grid) -> float | None:
    """Pixel size in metres (geometric mean of its x and y sides at the grid's centre); None without a CRS.

    Geographic CRSs (EPSG:4326) are measured on the ellipsoid; projected ones through their linear unit.
    """
    if grid.crs is None:
        return None
    t = grid.transform
    crs = ProjCRS.from_user_input(grid.crs.to_wkt())
    if crs.is_geographic:
        geod = crs.get_geod() or Geod(ellps="WGS84")
        lon, lat = t @ (grid.width / 2, grid.height / 2)
        lon1, lat1 = t @ (grid.width / 2 + 1, grid.height / 2)
        lon2, lat2 = t @ (grid.width / 2, grid.height / 2 + 1)
        dx = geod.inv(lon, lat, lon1, lat1)[2]
        dy = geod.inv(lon, lat, lon2, lat2)[2]
        return float(math.sqrt(dx * dy))
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return float(math.sqrt(abs(t.a * t.e - t.b * t.d)) * unit)


def training_gsd(grids: Iterable[Grid]) -> float | None:
    """The GSD recorded by training: the median over its georeferenced scenes (None if none has a CRS)."""
    values = sorted(g for g in (ground_sampling_distance(grid) for grid in grids) if g is not None)
    if not values:
        return None
    return round(values[len(values) // 2], 4)


def check_pixel_size(grid: Grid, trained_m: float | None, path: Path | None, strict: bool = False) -> str | None:
    """Compare a stack's GSD with the training GSD; a warning (returned and printed to stderr) or, with
    ``strict``, an InputError when they differ by more than :data:`MAX_RATIO`. None when fine or unknown."""
    gsd = ground_sampling_distance(grid)
    if gsd is None or not trained_m:
        return None
    ratio = gsd / trained_m
    if 1 / MAX_RATIO <= ratio <= MAX_RATIO:
        return None
    message = (f"its pixel size is {gsd:.3g} m but the model was trained on {trained_m:.3g} m pixels "
               f"({ratio:.2g}×); the map will likely be poor (resample the stack to {trained_m:.3g} m)")
    if strict:
        raise InputError(message, path, "without {strict} this is a warning", options=("strict",))
    text = f"slgt2: warning: {path}: {message}" if path else f"slgt2: warning: {message}"
    print(text, file=sys.stderr)
    return text
