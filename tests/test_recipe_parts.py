"""The pieces of the training recipe that make it learn real data: the order rule for short series, the fixed
validation windows, the variance-preserving initialisation, the per-pixel baseline, the learning warnings."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
import torch

from models import SLGT2Net, preset
from models.blocks import ChannelAffine
from slgt2_cli.data.temporal import TemporalRule, choose_mode, order_frames
from slgt2_cli.data.windows import pick_windows
from slgt2_cli.errors import InputError
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.scoring.baseline import fit_classifier, pixel_features
from slgt2_cli.scoring.metrics import ConfusionMatrix
from slgt2_cli.train.config import Init
from slgt2_cli.train.recipe import initialise
from slgt2_cli.train.validation import learning_warnings, prior_loss

D0 = dt.date(2021, 3, 1)


def test_order_rule_stretches_a_pair_over_the_frames_whatever_the_dates():
    raw = np.stack([np.full((1, 2, 2), -10.0), np.full((1, 2, 2), -20.0)]).astype(np.float32)  # (2, 1, 2, 2)
    rule = TemporalRule(length=16, mode="order")
    a = rule.apply(raw, [D0, D0 + dt.timedelta(days=12)])
    b = rule.apply(raw, [dt.date(2019, 11, 5), dt.date(2019, 11, 6)])  # other dates: the same frames
    assert a.shape == (16, 1, 2, 2)
    assert (a[:8] == -10).all() and (a[8:] == -20).all()
    np.testing.assert_array_equal(a, b)
    rule.check(type("S", (), {"dates": [dt.date(1999, 1, 1)], "num_dates": 1, "path": None})())  # any date maps


def test_order_rule_averages_long_series_in_order_and_fills_gaps():
    raw = np.arange(32, dtype=np.float32).reshape(32, 1, 1, 1)
    np.testing.assert_array_equal(order_frames(raw, 16).ravel(), np.arange(16) * 2 + 0.5)
    raw = np.array([1.0, np.nan, 3.0], dtype=np.float32).reshape(3, 1, 1, 1)
    out = TemporalRule(length=16, mode="order").apply(raw, None)
    assert np.isfinite(out).all() and out[0, 0, 0, 0] == 1 and out[-1, 0, 0, 0] == 3


@pytest.mark.parametrize("dates, counts, mode", [
    ([[D0], [D0]], None, "order"),                                                     # one acquisition
    ([[D0, D0 + dt.timedelta(days=12)]], None, "order"),                               # a before/after pair
    ([[D0 + dt.timedelta(days=i) for i in range(6)]], None, "order"),                  # 6 dates within 6 days
    ([[D0 + dt.timedelta(days=12 * i) for i in range(20)]], None, "composite"),        # a season
    ([None, None], [40, 40], "pad"),                                                   # date-less long series
    ([None], [2], "order"),                                                            # date-less pair
])
def test_the_automatic_rule_ties_only_seasons_to_dates(dates, counts, mode):
    assert choose_mode(dates, 16, counts)[0] == mode
    assert TemporalRule.fit(dates, length=16, frame_counts=counts).mode == mode


def test_a_date_outside_the_season_says_what_to_do():
    rule = TemporalRule.fit([[D0 + dt.timedelta(days=12 * i) for i in range(10)]], length=16)
    stack = type("S", (), {"dates": [dt.date(2021, 12, 20)], "num_dates": 1, "path": "x.tif"})()
    with pytest.raises(InputError, match="that part of the year.*temporal mode .order."):
        rule.check(stack)


def test_validation_windows_are_fixed_evenly_spread_and_within_budget():
    shapes = [(256, 256)] * 10 + [(40, 300)]
    every = pick_windows(shapes, 64, None)
    assert len(every) == 10 * 16 + 5
    assert all(w.width <= 64 and w.height <= 64 and w.col_off + w.width <= shapes[i][1] for i, w in every)
    some = pick_windows(shapes, 64, 64 * 64 * 20)
    assert len(some) == 20 and some == pick_windows(shapes, 64, 64 * 64 * 20)
    assert len({i for i, _ in some}) >= 9  # spread over the scenes, not the first ones only


def test_slgt2_init_preserves_variance_and_starts_affines_as_identity():
    torch.manual_seed(0)
    model = SLGT2Net(**preset("tiny", num_classes=3, in_chans=2))
    initialise(model, Init.SLGT2)
    affines = [m for m in model.modules() if isinstance(m, ChannelAffine)]
    assert affines and all(bool((m.weight == 1).all()) and bool((m.bias == 0).all()) for m in affines)
    conv = model.cat_back_dims[0][0]
    fan_in = conv.in_channels * math.prod(conv.kernel_size)
    assert abs(float(conv.weight.detach().std()) * math.sqrt(fan_in) - 1) < 0.05
    x = torch.randn(1, conv.in_channels, 4, 16, 16)
    assert 0.7 < float(conv(x).detach().std()) < 1.3  # PyTorch's default gives ~0.58


def test_pixel_baseline_fits_a_per_pixel_change_signal():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(4, 32, 32))
    x = rng.normal(size=(4, 1, 2, 32, 32)).astype(np.float32)
    x[:, 0, 1] -= 2.5 * y  # the second date darkens where flooded
    feats = pixel_features(torch.from_numpy(x))
    assert feats.shape == (4, 6, 32, 32)
    flat = feats.permute(0, 2, 3, 1).reshape(-1, 6)
    classifier = fit_classifier(flat, torch.from_numpy(y.ravel()), 2)
    accuracy = (classifier.predict(x) == y).mean()
    assert accuracy > 0.85


def test_a_run_that_learns_nothing_is_warned_about():
    table = ClassTable.from_list([{"value": 1, "name": "land"}, {"value": 2, "name": "water"}])
    prior = prior_loss([900, 100], None)
    assert prior == pytest.approx(-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)))
    cm = ConfusionMatrix(2, np.array([[900, 0], [100, 0]]))
    warnings = learning_warnings(loss=prior, prior=prior, step=50, warmup=20, iterations=100, cm=cm, classes=table)
    assert len(warnings) == 2 and "class-prior entropy" in warnings[0] and "land: 100.0 %" in warnings[1]
    good = ConfusionMatrix(2, np.array([[880, 20], [10, 90]]))
    assert learning_warnings(loss=0.1, prior=prior, step=50, warmup=20, iterations=100, cm=good, classes=table) == []
    assert learning_warnings(loss=prior, prior=prior, step=5, warmup=20, iterations=100, cm=None, classes=table) == []


def test_the_default_recipe_learns_a_two_date_change_above_its_per_pixel_baseline(tmp_path):
    """The tiny preset's defaults on a real-like flood set (uint8, placeholder dates, speckle): the order rule is
    chosen and printed, baseline.json is written, and the network beats the per-pixel baseline."""
    import json

    from helpers import write_flood_dataset
    from typer.testing import CliRunner

    from slgt2_cli.cli.app import app

    data = write_flood_dataset(tmp_path / "floods", {"train": 6, "val": 2})
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny",
                                      "--iterations", "100", "--val-every", "50", "--quiet", "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "temporal rule: order" in result.output and "short series" in result.output
    baseline = json.loads((tmp_path / "run" / "baseline.json").read_text())
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    best = max(h["miou"] for h in history)
    assert f"per-pixel baseline {baseline['miou']:.4f}" in result.output
    assert best > baseline["miou"] + 0.02, (best, baseline["miou"])


def test_temporal_mode_is_a_train_option_checked_at_parse_time(tmp_path):
    from typer.testing import CliRunner

    from slgt2_cli.cli.app import app

    shown = CliRunner().invoke(app, ["train", "--temporal-mode", "order", "--print-config"])
    assert shown.exit_code == 0, shown.output
    assert "temporal_mode: order" in shown.output and "class_weights: auto" in shown.output
    bad = CliRunner().invoke(app, ["train", "--temporal-mode", "weekly", "--print-config"])
    assert bad.exit_code == 2 and "weekly" in bad.output
