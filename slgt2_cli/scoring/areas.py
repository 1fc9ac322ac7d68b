"""Area per class of a classified map, in hectares, counted window by window while the map is written or read.

How a pixel's area is measured (the ``method`` column of the areas file, docs/inference.md "Areas"):

* ``planar``: a projected CRS that is equal-area to within 0.5 % over the map (UTM, national grids, LAEA...):
  every pixel covers |det(transform)| m²;
* ``geodesic``: a geographic CRS (EPSG:4326...): each pixel's ellipsoidal area from pyproj's ``Geod`` (per row,
  exact for north-up grids); or a projected CRS that is not equal-area (Web Mercator...): the planar pixel area
  divided by the projection's areal scale factor at pixel centres (pyproj ``Proj.get_factors``, every 16 px);
* ``none``: the map has no CRS (seed ``.mat`` scenes): pixel counts only.
"""

from __future__ import annotations

import csv
import io
import json
from enum import Enum
from typing import Any

import numpy as np
from pyproj import CRS as ProjCRS
from pyproj import Geod, Proj, Transformer
from rasterio.windows import Window

from slgt2_cli.io.classes import ClassTable
from slgt2_cli.io.grid import Grid

EQUAL_AREA_TOLERANCE = 0.005
"""A projected CRS whose areal scale stays within this of 1 over the map counts pixels as planar."""
CELL = 16
"""Areal scale factors of non-equal-area projections are evaluated every CELL pixels."""
M2_PER_HA = 10_000.0
CSV_COLUMNS = ("value", "name", "pixels", "hectares", "percent", "method")


class AreaMethod(str, Enum):
    PLANAR = "planar"
    GEODESIC = "geodesic"
    NONE = "none"


class PixelAreas:
    """The area in m² of every pixel of ``grid``, by window."""

    def __init__(self, grid: Grid):
        self.grid = grid
        t = grid.transform
        self.planar_m2 = abs(t.a * t.e - t.b * t.d)
        self._rows: np.ndarray | None = None
        self._geographic = False
        if grid.crs is None:
            self.method = AreaMethod.NONE
            return
        crs = ProjCRS.from_user_input(grid.crs.to_wkt())
        self._geod = crs.get_geod() or Geod(ellps="WGS84")
        self._to_lonlat = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
        self._geographic = crs.is_geographic
        if crs.is_geographic:
            self.method = AreaMethod.GEODESIC
            if t.b == 0 and t.d == 0:
                self._rows = self._row_areas()
            return
        self._proj = Proj(crs)
        corners = np.array([[0, 0], [grid.width, 0], [0, grid.height], [grid.width, grid.height],
                            [grid.width / 2, grid.height / 2]], dtype=float)
        scale = self._areal_scale(corners[:, 0], corners[:, 1])
        planar = np.all(np.abs(scale - 1) <= EQUAL_AREA_TOLERANCE)
        self.method = AreaMethod.PLANAR if planar else AreaMethod.GEODESIC

    def _lonlat(self, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = self.grid.transform @ (cols, rows)
        return self._to_lonlat.transform(np.asarray(xs, float), np.asarray(ys, float))

    def _areal_scale(self, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
        lon, lat = self._lonlat(cols, rows)
        return np.asarray(self._proj.get_factors(lon, lat).areal_scale, dtype=float)

    def _pixel_geodesic(self, col: float, row: float) -> float:
        lon, lat = self._lonlat(np.array([col, col + 1, col + 1, col]), np.array([row, row, row + 1, row + 1]))
        return abs(self._geod.polygon_area_perimeter(lon, lat)[0])

    def _row_areas(self) -> np.ndarray:
        """Geodesic area of one pixel of each row (north-up geographic grids: all pixels of a row are equal)."""
        return np.array([self._pixel_geodesic(0, r) for r in range(self.grid.height)])

    def window(self, window: Window) -> np.ndarray | float:
        """Pixel areas (m²) of ``window``: a scalar (planar), or an array broadcastable to (h, w)."""
        r0, c0, h, w = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
        if self.method is not AreaMethod.GEODESIC:
            return self.planar_m2
        if self._rows is not None:
            return self._rows[r0:r0 + h, None]
        cr = np.arange(r0 // CELL, -(-(r0 + h) // CELL))
        cc = np.arange(c0 // CELL, -(-(c0 + w) // CELL))
        rows = np.minimum((cr + 0.5) * CELL, self.grid.height - 0.5)
        cols = np.minimum((cc + 0.5) * CELL, self.grid.width - 0.5)
        rr, ccs = np.meshgrid(rows, cols, indexing="ij")
        if self._geographic:
            cells = np.vectorize(lambda c, r: self._pixel_geodesic(c - 0.5, r - 0.5))(ccs, rr)
        else:
            cells = self.planar_m2 / self._areal_scale(ccs.ravel(), rr.ravel()).reshape(rr.shape)
        full = np.repeat(np.repeat(cells, CELL, axis=0), CELL, axis=1)
        return full[r0 - cr[0] * CELL: r0 - cr[0] * CELL + h, c0 - cc[0] * CELL: c0 - cc[0] * CELL + w]


class AreaTally:
    """Pixels and m² per model class, fed (window, classes) with IGNORE_INDEX (-1) for pixels left out."""

    def __init__(self, grid: Grid, num_classes: int, areas: PixelAreas | None = None):
        self.areas = areas or PixelAreas(grid)
        self.k = num_classes
        self.pixels = np.zeros(num_classes, dtype=np.int64)
        self.m2 = np.zeros(num_classes, dtype=np.float64)

    def add(self, window: Window, classes: np.ndarray) -> None:
        classes = np.asarray(classes)
        known = classes >= 0
        cls = classes[known]
        counts = np.bincount(cls, minlength=self.k)[: self.k]
        self.pixels += counts
        area = self.areas.window(window)
        if np.ndim(area) == 0:
            self.m2 += counts * float(area)
        else:
            weights = np.broadcast_to(area, classes.shape)[known]
            self.m2 += np.bincount(cls, weights=weights, minlength=self.k)[: self.k]

    __call__ = add  # a MapWriter class observer

    @property
    def hectares(self) -> np.ndarray | None:
        return None if self.areas.method is AreaMethod.NONE else self.m2 / M2_PER_HA

    def rows(self, table: ClassTable) -> list[dict[str, Any]]:
        """One dict per class with the CSV columns."""
        ha = self.hectares
        total = ha.sum() if ha is not None else self.pixels.sum()
        share = (ha if ha is not None else self.pixels) / total * 100 if total else np.zeros(self.k)
        return [{"value": c.value, "name": c.name, "pixels": int(self.pixels[i]),
                 "hectares": None if ha is None else round(float(ha[i]), 4), "percent": round(float(share[i]), 4),
                 "method": self.areas.method.value} for i, c in enumerate(table.classes)]

    def to_csv(self, table: ClassTable) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows(table):
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        return out.getvalue()

    def to_json(self, table: ClassTable) -> str:
        grid = self.areas.grid
        doc = {"crs": grid.crs.to_string() if grid.crs is not None else None, "method": self.areas.method.value,
               "pixel_area_m2": self.areas.planar_m2 if self.areas.method is AreaMethod.PLANAR else None,
               "classes": self.rows(table),
               "total": {"pixels": int(self.pixels.sum()),
                         "hectares": None if self.hectares is None else round(float(self.hectares.sum()), 4)}}
        return json.dumps(doc, indent=2) + "\n"

    def render(self, table: ClassTable, path_suffix: str) -> str:
        """The areas file: JSON for a ``.json`` path, CSV otherwise."""
        return self.to_json(table) if path_suffix.lower() == ".json" else self.to_csv(table)


class AreaComparison:
    """Reference vs mapped area per class over the pixels scored (both a known prediction and a known label)."""

    def __init__(self, grid: Grid, num_classes: int):
        self.mapped = AreaTally(grid, num_classes)
        self.reference = AreaTally(grid, num_classes, areas=self.mapped.areas)

    def add(self, window: Window, predicted: np.ndarray, reference: np.ndarray) -> None:
        """Model classes of the map and of the labels on ``window`` (IGNORE_INDEX = not scored)."""
        both = (predicted >= 0) & (reference >= 0)
        self.mapped.add(window, np.where(both, predicted, -1))
        self.reference.add(window, np.where(both, reference, -1))

    def to_dict(self, table: ClassTable) -> dict[str, Any]:
        ref_ha, map_ha = self.reference.hectares, self.mapped.hectares
        rows = []
        for i, c in enumerate(table.classes):
            row = {"value": c.value, "name": c.name, "reference_pixels": int(self.reference.pixels[i]),
                   "mapped_pixels": int(self.mapped.pixels[i])}
            if ref_ha is not None and map_ha is not None:
                row.update(reference_hectares=round(float(ref_ha[i]), 4), mapped_hectares=round(float(map_ha[i]), 4),
                           difference_hectares=round(float(map_ha[i] - ref_ha[i]), 4))
            rows.append(row)
        return {"method": self.mapped.areas.method.value, "per_class": rows}

    def format(self, table: ClassTable) -> str:
        """Terminal table: class, reference and mapped area (ha, or pixels without a CRS), difference."""
        doc = self.to_dict(table)
        unit = "pixels" if doc["method"] == AreaMethod.NONE.value else "ha"
        key = "pixels" if unit == "pixels" else "hectares"
        width = max(len(c.name) for c in table.classes) + 8
        lines = [f"Area per class ({doc['method']}, pixels scored in both):",
                 f"{'class':<{width}} {'reference ' + unit:>16} {'mapped ' + unit:>16} {'mapped - ref':>14}"]
        for row in doc["per_class"]:
            ref, mapped = row[f"reference_{key}"], row[f"mapped_{key}"]
            lines.append(f"{str(row['value']) + ' ' + row['name']:<{width}} {ref:>16,.2f} {mapped:>16,.2f} "
                         f"{mapped - ref:>+14,.2f}")
        return "\n".join(lines)
