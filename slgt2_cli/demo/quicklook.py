"""Quick-look PNG: the classified map with its legend beside a false-colour composite of the input stack."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from slgt2_cli.io.atomic import atomic_output
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.io.stacks import open_stack

MAX_SIDE = 1024


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
    rgb[~np.isfinite(bands[0])] = 1.0  # no data: white
    return rgb


def write_quicklook(map_path: Path, stack_path: Path, out_png: Path, classes: ClassTable, title: str = "") -> Path:
    """Render the map (classes in the table's colours, legend) beside the input composite; atomic write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    with rasterio.open(map_path) as src:
        shape = _shape(src.width, src.height)
        labels = src.read(1, out_shape=shape, resampling=Resampling.nearest)
        nodata = src.nodata
    index = classes.encode(labels, None if nodata is None else labels != nodata)
    rgb = classes.rgb() / 255.0
    cmap = ListedColormap(np.vstack([[1, 1, 1], rgb]))  # index 0: no data (white), then the classes
    composite = false_colour(stack_path, shape)

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 6.2))
    a.imshow(composite, interpolation="nearest")
    a.set_title("Input: mean VV (R), VH (G), VV−VH (B)")
    b.imshow(index + 1, cmap=cmap, vmin=0, vmax=len(classes), interpolation="nearest")
    b.set_title(title or "Classified map")
    for ax in (a, b):
        ax.set_xticks([]), ax.set_yticks([])
    handles = [Patch(color=rgb[i], label=f"{c.value} {c.name}") for i, c in enumerate(classes.classes)]
    b.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    try:
        with atomic_output(out_png) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)
    return out_png
