"""The pixel grid of a raster (CRS, transform, size): what 'the same grid' means for stacks, labels and maps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from affine import Affine
from rasterio.crs import CRS


@dataclass(frozen=True)
class Grid:
    """A georeferenced pixel grid. ``crs`` may be None for the seed datasets, which carry no georeference."""

    crs: CRS | None
    transform: Affine
    width: int
    height: int

    @classmethod
    def of(cls, dataset: Any) -> Grid:
        """The grid of an open rasterio dataset."""
        return cls(dataset.crs, dataset.transform, dataset.width, dataset.height)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def same_as(self, other: Grid, tol: float = 1e-6) -> bool:
        """Equal CRS, size and transform (to ``tol`` of a pixel)."""
        if (self.width, self.height) != (other.width, other.height):
            return False
        if (self.crs is None) != (other.crs is None) or (self.crs is not None and self.crs != other.crs):
            return False
        scale = max(abs(self.transform.a), abs(self.transform.e), 1e-12)
        return all(abs(a - b) <= tol * scale for a, b in zip(self.transform, other.transform))

    def difference(self, other: Grid, tol: float = 1e-6) -> str:
        """What differs from ``other``, with the digits that show it, e.g. 'origin x 500000 vs 500000.25'."""
        parts = []
        if (self.width, self.height) != (other.width, other.height):
            parts.append(f"size {self.width}x{self.height} vs {other.width}x{other.height}")
        if (self.crs is None) != (other.crs is None) or (self.crs is not None and self.crs != other.crs):
            parts.append(f"CRS {_crs(self.crs)} vs {_crs(other.crs)}")
        scale = max(abs(self.transform.a), abs(self.transform.e), 1e-12)
        for name, a, b in zip(_TRANSFORM_TERMS, self.transform, other.transform):
            if abs(a - b) > tol * scale:
                parts.append(f"{name} {a:.15g} vs {b:.15g}")
        return ", ".join(parts) or "nothing"

    def describe(self) -> str:
        t = self.transform
        return (f"{self.width}x{self.height} px, {_crs(self.crs)}, origin ({t.c:.12g}, {t.f:.12g}), "
                f"pixel ({t.a:.12g}, {t.e:.12g})")


_TRANSFORM_TERMS = ("pixel width", "row rotation", "origin x", "column rotation", "pixel height", "origin y")


def _crs(crs: CRS | None) -> str:
    return crs.to_string() if crs is not None else "no CRS"
