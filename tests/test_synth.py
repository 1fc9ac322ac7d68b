"""`slgt2 synth`: a small synthetic dataset through the CLI, its layout, determinism and realism."""

import json

import numpy as np
import rasterio
from typer.testing import CliRunner

from slgt2_cli.cli.app import app
from slgt2_cli.data.datasets import open_dataset
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.io.stacks import open_stack
from slgt2_cli.synth.model import parcels

runner = CliRunner()
ARGS = ["--size", "80", "--scene-size", "48", "--dates", "8", "--scenes", "5", "-q"]


def _synth(path, *extra):
    result = runner.invoke(app, ["synth", str(path), *ARGS, *extra])
    assert result.exit_code == 0, result.output
    return result


def test_synth_writes_a_usable_dataset(tmp_path):
    out = tmp_path / "syn"
    _synth(out, "--seed", "7")
    classes = json.loads((out / "classes.json").read_text())
    assert max(c["value"] for c in classes) > 255 and len(classes) == 7
    spec = open_dataset(out)
    assert spec.kind == "directory" and {k: len(v) for k, v in spec.splits.items()} == {"train": 3, "val": 1, "test": 1}
    assert any(s.image.is_dir() for s in spec.splits["train"])  # one per-date directory stack
    dates = []
    for scene in spec.splits["train"]:
        with scene.open() as stack, scene.open_labels(stack.grid) as labels:
            assert stack.units == "db" and stack.polarisations == ["VV", "VH"] and 5 <= stack.num_dates <= 8
            assert stack.grid.crs.to_epsg() == 32633 and stack.grid.transform.a == 10.0
            raw = stack.read()
            values, valid = labels.read()
            dates.append(stack.dates)
        assert set(np.unique(values[valid])) <= {c["value"] for c in classes}
        assert -40 < np.nanmean(raw) < 0
    rule = TemporalRule.fit(dates, length=8)
    with open_stack(out / "scene" / "image.tif") as big:
        assert big.grid.shape == (80, 80) and big.dates[0].year == dates[0][0].year + 1
        rule.check(big)  # another year maps by day of year
        raw = big.read()
        assert np.isnan(raw[:, :, 70, 0]).all() and not np.isnan(raw[:, :, 0, 79]).any()  # slanted no-data edge
    with rasterio.open(out / "scene" / "image.tif") as src:
        assert src.profile["tiled"] and src.compression is not None
        assert src.descriptions[0].startswith("VV_") and src.descriptions[1].startswith("VH_")
    assert not list(out.rglob(".*partial*"))


def test_synth_is_deterministic_per_seed(tmp_path):
    _synth(tmp_path / "a", "--seed", "3")
    _synth(tmp_path / "b", "--seed", "3")
    _synth(tmp_path / "c", "--seed", "4")
    read = lambda root: open_stack(root / "scene" / "image.tif").read()  # noqa: E731
    np.testing.assert_array_equal(read(tmp_path / "a"), read(tmp_path / "b"))
    assert read(tmp_path / "a").shape != read(tmp_path / "c").shape or not np.array_equal(
        read(tmp_path / "a"), read(tmp_path / "c"), equal_nan=True)


def test_synth_refuses_non_empty_output_without_overwrite(tmp_path):
    _synth(tmp_path / "a")
    result = runner.invoke(app, ["synth", str(tmp_path / "a"), *ARGS])
    assert result.exit_code == 2 and "not empty" in result.output
    (tmp_path / "a" / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["synth", str(tmp_path / "a"), *ARGS[:-3], "--scenes", "3", "--overwrite", "-q"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "a" / "train" / "images").iterdir())) == 1  # no stale scenes from the first run
    assert (tmp_path / "a" / "notes.txt").read_text() == "keep me"


def test_parcels_are_a_function_of_coordinates():
    whole = parcels(5, 100, 200, 64, 64)
    part = parcels(5, 132, 216, 16, 16)
    np.testing.assert_array_equal(whole.cls[32:48, 16:32], part.cls)
    np.testing.assert_array_equal(whole.offset[32:48, 16:32], part.offset)
    assert len(np.unique(whole.cls)) >= 2
