"""Pictures a user looks at: the demo's quick-look, the confusion matrix's title, distinguishable synth colours."""

from __future__ import annotations

import numpy as np
from helpers import ORIGIN, TABLE, sar_values, write_raster, write_stack
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import from_origin

from slgt2_cli.demo.quicklook import (
    _nice_length,
    read_labels,
    read_map,
    write_quicklook,
)
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.scoring.report import scored


def _map_and_labels(tmp_path):
    values = np.full((40, 60), 1110, np.int32)
    values[:, 30:] = 2000
    values[:5] = 0  # no data
    map_path = write_raster(tmp_path / "map.tif", values, nodata=0)
    labels = np.full((20, 30), 3100, np.int32)  # 20 m pixels, same footprint
    labels_path = write_raster(tmp_path / "labels.tif", labels, transform=from_origin(*ORIGIN, 20.0, 20.0))
    return map_path, labels_path


def test_labels_are_warped_onto_the_map_grid(tmp_path):
    map_path, labels_path = _map_and_labels(tmp_path)
    index, view = read_map(map_path, TABLE)
    assert view.shape == (40, 60) and view.crs == CRS.from_epsg(32633)
    assert (index[:5] == 0).all() and (index[5:, :30] == 1).all() and (index[5:, 30:] == 2).all()
    labels = read_labels(labels_path, view, TABLE)
    assert labels.shape == (40, 60) and (labels == 3).all()


def test_quicklook_gains_a_labels_panel(tmp_path):
    map_path, labels_path = _map_and_labels(tmp_path)
    stack = write_stack(tmp_path / "stack.tif", sar_values(40, 60))
    two = write_quicklook(map_path, stack, tmp_path / "two.png", TABLE, "map")
    three = write_quicklook(map_path, stack, tmp_path / "three.png", TABLE, "map", labels_path=labels_path)
    w2, w3 = Image.open(two).size[0], Image.open(three).size[0]
    assert w3 > w2 * 1.3  # one more panel


def test_scale_bar_lengths_are_round():
    assert _nice_length(600.0) == 100.0
    assert _nice_length(2560.0) == 500.0
    assert _nice_length(12_000.0) == 2000.0


def test_confusion_title_says_what_was_scored():
    assert scored({"prediction": "out/map.tif", "labels": "d/labels.tif"}) == "map.tif against labels.tif"
    assert scored({"checkpoint": "run/best.pt", "dataset": "data", "split": "test", "scenes": ["a", "b"]}) == \
        "best.pt on the test split of data (2 scenes)"
    assert scored({"step": 150, "split": "val"}) == "val split at training step 150"


def test_synth_class_colours_are_distinguishable():
    from slgt2_cli.synth.model import CLASSES

    rgb = ClassTable.from_list(CLASSES).rgb().astype(float)
    distances = [np.linalg.norm(a - b) for i, a in enumerate(rgb) for b in rgb[i + 1:]]
    assert min(distances) > 60, min(distances)  # winter wheat and rapeseed were 37 apart (both yellow)


def test_step_losses_are_thinned_to_bin_means():
    from slgt2_cli.train.curves import thin_losses

    assert thin_losses([4.0, 2.0, 3.0], last_step=3) == [[1.0, 4.0], [2.0, 2.0], [3.0, 3.0]]
    thinned = thin_losses(list(range(1000)), last_step=2000, max_points=100)
    assert len(thinned) == 100 and thinned[0] == [1005.5, 4.5] and thinned[-1][0] == 1995.5
    assert thin_losses([], last_step=5) == []


def test_curves_show_the_range_that_matters():
    from slgt2_cli.train.curves import plot_curves, thin_losses

    history, losses = [], list(np.geomspace(2.0, 0.01, 400))
    for i, step in enumerate((100, 200, 300, 400)):
        history.append({"step": step, "loss": float(np.mean(losses[step - 100:step])),
                        "step_losses": thin_losses(losses[step - 100:step], step),
                        "miou": 0.93 + 0.01 * i, "mean_f1": 0.95, "overall_accuracy": 0.97})
    loss_ax, score_ax = plot_curves(history).axes
    assert loss_ax.get_yscale() == "log"  # two orders of magnitude
    assert len(loss_ax.lines[0].get_xdata()) == 400  # every step drawn
    lo, hi = score_ax.get_ylim()
    assert 0.85 < lo < 0.93 and 0.97 < hi <= 1.0  # not the whole [0, 1]
    history[0]["step_losses"] = []  # an old metrics log: validation points only
    assert plot_curves(history[:1]).axes[0].get_yscale() == "linear"
