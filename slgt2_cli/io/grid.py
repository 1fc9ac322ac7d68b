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
    def of(cls, dataset: Any) -> "Grid":
        """The grid of an open rasterio dataset."""
        return cls(dataset.crs, dataset.transform, dataset.width, dataset.height)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def same_as(self, other: "Grid", tol: float = 1e-6) -> bool:
        """Equal CRS, size and transform (to ``tol`` of a pixel)."""
        if (self.width, self.height) != (other.width, other.height):
            return False
        if (self.crs is None) != (other.crs is None) or (self.crs is not None and self.crs != other.crs):
            return False
        scale = max(abs(self.transform.a), abs(self.transform.e), 1e-12)
        return all(abs(a - b) <= tol * scale for a, b in zip(self.transform, other.transform))

    def describe(self) -> str:
        crs = self.crs.to_string() if self.crs is not None else "no CRS"
        t = self.transform
        return f"{self.width}x{self.height} px, {crs}, origin ({t.c:g}, {t.f:g}), pixel ({t.a:g}, {t.e:g})"
