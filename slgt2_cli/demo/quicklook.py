"""Quick-look PNG: the input's false-colour composite, the labels when known, and the classified map with its
legend, on map coordinates (CRS, axes, scale bar).

In: a classified map, the stack it was made from, optionally a label raster (on any grid: it is warped onto the
map's), the class table. Out: one PNG, written atomically, read window by window at a decimated size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from slgt2_cli.io.atomic import atomic_output
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.io.stacks import open_stack

MAX_SIDE = 1024
NO_DATA_RGB = (1.0, 1.0, 1.0)
"""No data is white in every panel (and in the legend)."""


@dataclass(frozen=True)
class MapView:
    """The map's grid as drawn: decimated shape, extent in CRS units, the CRS."""

    shape: tuple[int, int]
    extent: tuple[float, float, float, float]
    crs: rasterio.crs.CRS | None
    transform: rasterio.Affine
    width: int
    height: int


def _shape(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale))


def false_colour(stack_path: Path, out_shape: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) RGB in [0, 1]: temporal mean of VV (R), VH (G) and VV−VH (B), 2–98 % stretched; decimated reads."""
    with open_stack(stack_path) as stack:
        step = max(1, stack.num_dates // 12)  # a dozen dates are plenty for a picture
        sums = np.zeros((stack.num_channels,) + out_shape, np.float64)
        counts = np.zeros_like(sums)
        for t in range(0, stack.num_dates, step):
            frame = stack.read_decimated(t, out_shape)
            ok = np.isfinite(frame)
            sums += np.where(ok, frame, 0)
            counts += ok
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    bands = [mean[0], mean[1] if len(mean) > 1 else mean[0], (mean[0] - mean[1]) if len(mean) > 1 else mean[0]]
    rgb = np.zeros(out_shape + (3,), np.float32)
    for i, band in enumerate(bands):
        finite = band[np.isfinite(band)]
        if finite.size:
            lo, hi = np.percentile(finite, [2, 98])
            rgb[..., i] = np.clip((band - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb[~np.isfinite(bands[0])] = NO_DATA_RGB
    return rgb


def read_map(map_path: Path, classes: ClassTable) -> tuple[np.ndarray, MapView]:
    """Model-class indices + 1 (0 = no data) at the decimated size, and how the map lies on the ground."""
    with rasterio.open(map_path) as src:
        shape = _shape(src.width, src.height)
        values = src.read(1, out_shape=shape, resampling=Resampling.nearest)
        b = src.bounds
        view = MapView(shape, (b.left, b.right, b.bottom, b.top), src.crs, src.transform, src.width, src.height)
        nodata = src.nodata
    index = classes.encode(values, None if nodata is None else values != nodata)
    return index + 1, view


def read_labels(labels_path: Path, view: MapView, classes: ClassTable) -> np.ndarray | None:
    """The label raster warped onto the map's grid (nearest), as :func:`read_map` returns it; None if unreadable."""
    try:
        with rasterio.open(labels_path) as src:
            if src.crs is not None and view.crs is not None:
                with WarpedVRT(src, crs=view.crs, transform=view.transform, width=view.width, height=view.height,
                               resampling=Resampling.nearest) as vrt:
                    values, nodata = vrt.read(1, out_shape=view.shape, resampling=Resampling.nearest), vrt.nodata
            elif (src.width, src.height) == (view.width, view.height):
                values, nodata = src.read(1, out_shape=view.shape, resampling=Resampling.nearest), src.nodata
            else:
                return None
    except (rasterio.errors.RasterioError, OSError):
        return None
    return classes.encode(values, None if nodata is None else values != nodata) + 1


def _nice_length(span_m: float) -> float:
    """A round length (1, 2 or 5 × 10^k metres) of about a fifth of ``span_m``."""
    target = span_m / 5
    base = 10 ** math.floor(math.log10(target))
    return max(m * base for m in (1, 2, 5) if m * base <= target) if target >= 1 else 1.0


def _metres_per_unit(view: MapView) -> float | None:
    if view.crs is None:
        return None
    if view.crs.is_projected:
        return float(view.crs.linear_units_factor[1])
    latitude = (view.extent[2] + view.extent[3]) / 2
    return 111_320.0 * math.cos(math.radians(latitude))


def decorate(ax, view: MapView) -> None:
    """Axis labels in the CRS's units and a scale bar (nothing to measure without a CRS)."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    ax.tick_params(labelsize=7)
    per_unit = _metres_per_unit(view)
    if per_unit is None:
        ax.set(xlabel="column (px)", ylabel="row (px)")
        return
    projected = view.crs.is_projected
    ax.set(xlabel="easting (m)" if projected else "longitude (°)",
           ylabel="northing (m)" if projected else "latitude (°)")
    ax.ticklabel_format(useOffset=False, style="plain")
    length_m = _nice_length((view.extent[1] - view.extent[0]) * per_unit)
    label = f"{length_m / 1000:g} km" if length_m >= 1000 else f"{length_m:g} m"
    ax.add_artist(AnchoredSizeBar(ax.transData, length_m / per_unit, label, "lower left", pad=0.4, sep=3,
                                  color="black", frameon=True, size_vertical=(view.extent[3] - view.extent[2]) / 150))


def write_quicklook(map_path: Path, stack_path: Path, out_png: Path, classes: ClassTable, title: str = "",
                    labels_path: Path | None = None) -> Path:
    """Render the input composite, the labels (if given and readable) and the map with its legend; atomic write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    index, view = read_map(map_path, classes)
    labels = read_labels(labels_path, view, classes) if labels_path is not None else None
    rgb = classes.rgb() / 255.0
    cmap = ListedColormap(np.vstack([NO_DATA_RGB, rgb]))  # 0: no data, then the classes
    panels = [("Input: mean VV (R), VH (G), VV−VH (B)", false_colour(stack_path, view.shape), {})]
    if labels is not None:
        panels.append(("Labels", labels, dict(cmap=cmap, vmin=0, vmax=len(classes))))
    panels.append((title or "Classified map", index, dict(cmap=cmap, vmin=0, vmax=len(classes))))

    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels) + 2.6, 6.0), squeeze=False)
    for ax, (name, image, style) in zip(axes[0], panels):
        ax.imshow(image, interpolation="nearest", extent=view.extent if view.crs is not None else None, **style)
        ax.set_title(name, fontsize=10)
        decorate(ax, view)
    handles = [Patch(color=rgb[i], label=f"{c.value} {c.name}") for i, c in enumerate(classes.classes)]
    handles.append(Patch(facecolor=NO_DATA_RGB, edgecolor="0.5", label="no data"))
    axes[0][-1].legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8)
    fig.suptitle(f"{Path(map_path).name}" + (f" — CRS {view.crs.to_string()}" if view.crs else " — no CRS"),
                 fontsize=9, x=0.01, ha="left")
    fig.tight_layout()
    return _save(fig, out_png)


def _save(fig, out_png: Path) -> Path:
    import matplotlib.pyplot as plt

    try:
        with atomic_output(out_png) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)
    return out_png
