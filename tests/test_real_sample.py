"""The real eo-learn Slovenia NDVI sample: 68 irregular dates, NaN holes, one channel, LULC labels."""

from pathlib import Path

import numpy as np
import pytest
import torch
from rasterio.windows import Window

from slgt2_cli.data.datasets import MTS12_CLASSES, PatchDataset, Scene
from slgt2_cli.data.normalization import compute_normalization
from slgt2_cli.data.preprocess import prepare_input
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.io.classes import IGNORE_INDEX, ClassTable
from slgt2_cli.io.stacks import open_stack

SAMPLE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "eolearn-slovenia-ndvi"
pytestmark = pytest.mark.skipif(not (SAMPLE / "NDVI_68dates.tif").exists(), reason="shared sample not available")


@pytest.fixture
def scene():
    return Scene("slovenia", "train", SAMPLE / "NDVI_68dates.tif", SAMPLE / "LULC.tif")


def test_read_real_stack():
    with open_stack(SAMPLE / "NDVI_68dates.tif") as stack:
        assert stack.num_dates == 68 and stack.polarisations == ["NDVI"] and stack.units == "raw"
        assert stack.dates[0].isoformat() == "2015-07-11" and stack.dates[-1].isoformat() == "2017-12-22"
        assert stack.dates == sorted(stack.dates)
        raw = stack.read()
        assert raw.shape == (68, 1, 101, 100)
        assert 0.3 < np.isnan(raw).mean() < 0.5
        assert np.nanmin(raw) >= -1 and np.nanmax(raw) <= 1


def test_temporal_rule_and_patches_on_real_sample(scene):
    with scene.open() as stack:
        rule = TemporalRule.fit([stack.dates], length=16)
        assert rule.mode == "composite" and rule.season_days == 365  # 2.5 years fold onto one annual cycle
        rule.check(stack)
        norm = compute_normalization([stack], rule, window=32)
        x, valid = prepare_input(stack.read(Window(10, 20, 40, 30)), stack.dates, rule, norm)
    assert x.shape == (1, 16, 30, 40) and np.isfinite(x).all() and valid.mean() > 0.9
    classes = ClassTable.default(range(1, 9), MTS12_CLASSES)
    ds = PatchDataset([scene], classes, rule, norm, patch_size=32, length=4, seed=0)
    for i in range(4):
        xb, yb = ds[i]
        assert xb.shape == (1, 16, 32, 32) and torch.isfinite(xb).all()
        assert set(torch.unique(yb).tolist()) <= {IGNORE_INDEX, 0, 1, 2, 3, 7}  # values 1, 2, 3, 4, 8
    with scene.open() as stack, scene.open_labels(stack.grid) as labels:
        values, valid = labels.read()
    y = classes.encode(values, valid)
    assert (y == IGNORE_INDEX).sum() == 155 and (y == 1).sum() == 7601
