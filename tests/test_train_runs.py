"""Training runs that must lose no work: resume takes everything from the run directory, every split is checked
before the first step, an interrupted validation is redone, leftovers of a killed run do not leak into the next,
--units reaches every reader, and the reference recipe trains on a seed dataset."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml
from helpers import dates_from, write_dataset, write_mts12
from typer.testing import CliRunner

from slgt2_cli.checkpoint.format import load_checkpoint
from slgt2_cli.cli.app import app
from slgt2_cli.data.normalization import SEED_STATISTICS
from slgt2_cli.train import loop, validation
from slgt2_cli.train.config import resolve_config
from slgt2_cli.train.setup import prepare_run

runner = CliRunner()
FAST = ["--preset", "tiny", "--patch-size", "32", "--batch-size", "2", "--workers", "0", "--quiet", "--device", "cpu"]
RUN = [*FAST, "--iterations", "4", "--val-every", "2", "--lr", "0.005", "--seed", "1"]


@pytest.fixture(scope="module")
def full_run(synth_dataset, tmp_path_factory):
    """An uninterrupted run of RUN: what every interrupted and resumed run must end with."""
    out = tmp_path_factory.mktemp("full") / "run"
    result = runner.invoke(app, ["train", str(synth_dataset), "--out", str(out), *RUN])
    assert result.exit_code == 0, result.output
    return out


def _stop_after_step(monkeypatch, step: int) -> None:
    """Ctrl-C arrives while step ``step`` trains (before its validation)."""
    real = loop.train_step

    def step_then_stop(run, micro):
        loss = real(run, micro)
        if run.state.step == step:
            run.state.stop = signal.SIGINT
        return loss

    monkeypatch.setattr(loop, "train_step", step_then_stop)


def _stop_in_validation(monkeypatch) -> None:
    """Ctrl-C arrives during the first validation."""
    real = validation.Predictor.infer
    calls = []

    def interrupted(predictor, x):
        if not calls:
            calls.append(1)
            signal.raise_signal(signal.SIGINT)
        return real(predictor, x)

    monkeypatch.setattr(validation.Predictor, "infer", interrupted)


def _files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_checkpoint(a).state_dict, load_checkpoint(b).state_dict
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _mious(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["miou"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def test_resume_takes_everything_from_the_run_directory_and_refuses_other_options(synth_dataset, full_run, tmp_path,
                                                                                   monkeypatch):
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        _stop_after_step(m, 3)
        cut = runner.invoke(app, ["train", str(synth_dataset), "--out", str(run), *RUN])
    assert cut.exit_code == 130, cut.output
    before = _files(run)
    for option, key in ((["--preset", "paper"], "preset"), (["--lr", "0.01"], "lr"), (["--seed", "2"], "seed"),
                        (["--iterations", "3"], "iterations"), (["--no-augment"], "augment"),
                        (["--overwrite"], "overwriting")):
        refused = runner.invoke(app, ["train", str(synth_dataset), "--out", str(run), "--resume", *option])
        assert refused.exit_code == 2, refused.output
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and key in lines[0] and "Traceback" not in refused.stderr, refused.stderr
        assert _files(run) == before  # config.yaml included: nothing changed
    # The README's line: no options but the run directory (and ones that do not change the weights)
    resumed = runner.invoke(app, ["train", str(synth_dataset), "--out", str(run), "--resume", "--quiet", "--workers", "0",
                                  "--seed", "1"])
    assert resumed.exit_code == 0, resumed.output
    assert "per-pixel baseline" in resumed.output and "(from " in resumed.output  # read back, not fitted again
    assert (run / "baseline.json").read_bytes() == before["baseline.json"]
    assert json.loads((run / "baseline.json").read_text())["miou"] == json.loads((full_run / "baseline.json").read_text())["miou"]
    assert _same_weights(run / "last.pt", full_run / "last.pt") and _same_weights(run / "best.pt", full_run / "best.pt")
    assert yaml.safe_load((run / "config.yaml").read_text())["train"] == \
        yaml.safe_load((full_run / "config.yaml").read_text())["train"]
    assert _mious(run) == _mious(full_run)


@pytest.mark.parametrize("where", ["step", "validation"])
def test_an_interrupted_validation_is_redone_on_resume(synth_dataset, full_run, tmp_path, monkeypatch, where):
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        _stop_after_step(m, 2) if where == "step" else _stop_in_validation(m)
        cut = runner.invoke(app, ["train", str(synth_dataset), "--out", str(run), *RUN])
    assert cut.exit_code == 130, cut.output
    state = load_checkpoint(run / "last.pt", with_training_state=True).training_state
    assert state["step"] == 2 and state["validated_step"] == 0 and not (run / "best.pt").exists()
    resumed = runner.invoke(app, ["train", str(synth_dataset), "--out", str(run), "--resume", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert _mious(run) == _mious(full_run) and [s for s, _ in _mious(run)] == [2, 4]
    assert _same_weights(run / "best.pt", full_run / "best.pt")
    best = [load_checkpoint(r / "best.pt").provenance["step"] for r in (run, full_run)]
    assert best[0] == best[1]


def test_config_yaml_of_a_run_round_trips_through_config(synth_dataset, full_run, tmp_path):
    again = resolve_config(synth_dataset, full_run, full_run / "config.yaml")
    record = yaml.safe_load((full_run / "config.yaml").read_text())
    assert again.settings() == record["train"]
    printed = runner.invoke(app, ["train", str(synth_dataset), "--out", str(tmp_path / "r"), "--config",
                                  str(full_run / "config.yaml"), "--print-config"])
    assert printed.exit_code == 0, printed.output
    assert yaml.safe_load(printed.stdout)["train"] == record["train"]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def _one_channel(path: Path) -> None:
    with rasterio.open(path) as src:
        profile, data, names = src.profile, src.read(), src.descriptions
    keep = [i for i, n in enumerate(names) if n.startswith("VV")]
    profile.update(count=len(keep))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data[keep])
        for b, i in enumerate(keep, start=1):
            dst.set_band_description(b, names[i])


@pytest.mark.parametrize("damage", [_truncate, _one_channel], ids=["truncated", "one_channel"])
def test_a_broken_val_split_is_found_before_the_first_step(synth_dataset, tmp_path, damage):
    data = tmp_path / "ds"
    shutil.copytree(synth_dataset, data)
    broken = sorted((data / "val" / "images").glob("*.tif"))[0]
    damage(broken)
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(data), "--out", str(run), *RUN])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and broken.name in lines[0], result.stderr
    assert not run.exists()  # nothing written: no step was taken


def test_leftovers_of_a_run_killed_before_its_first_checkpoint_do_not_leak(synth_dataset, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".last.pt.k1ll3d.partial").write_bytes(b"half a checkpoint")
    (run / "metrics.jsonl").write_text(json.dumps({"step": 2, "miou": 0.5}) + "\n")
    result = runner.invoke(app, ["train", str(synth_dataset), "--out", str(run), *RUN])
    assert result.exit_code == 0, result.output
    assert not list(run.glob(".*partial*"))
    assert [s for s, _ in _mious(run)] == [2, 4]  # its own two validations, not appended to the old log


def _linear_dataset(root: Path) -> Path:
    """SAR stacks stored as linear power (0.01..0.2), two scenes in train and one in val."""
    rng = np.random.default_rng(0)
    dates = dates_from(dt.date(2021, 4, 1), 4)
    classes = [{"value": 1, "name": "a", "color": "#ff0000"}, {"value": 2, "name": "b", "color": "#00ff00"}]

    def scene():
        return rng.uniform(0.01, 0.2, (4, 2, 32, 32)).astype(np.float32), rng.integers(1, 3, (32, 32)).astype(np.uint8)

    return write_dataset(root, {"train": [scene(), scene()], "val": [scene()]}, classes, dates)


def test_units_override_reaches_normalisation_and_validation(tmp_path):
    data = _linear_dataset(tmp_path / "lin")
    detected = prepare_run(resolve_config(data, tmp_path / "run", None, preset="tiny"))
    assert detected.units == "db" and detected.norm.mean[0] < -5  # linear power converted to dB
    forced = prepare_run(resolve_config(data, tmp_path / "run", None, preset="tiny", units="db"))
    assert 0.01 < forced.norm.mean[0] < 0.2  # the values read as dB, as --units says
    for scene in (*forced.train, *forced.val):
        with scene.open() as stack:
            values = stack.read()
        assert np.nanmax(values) < 0.2 and np.nanmin(values) > 0.0, scene.id
    run = tmp_path / "cli"
    result = runner.invoke(app, ["train", str(data), "--out", str(run), *FAST, "--iterations", "2", "--val-every", "2",
                                 "--units", "db"])
    assert result.exit_code == 0, result.output
    ck = load_checkpoint(run / "best.pt")
    assert ck.units == "db" and 0.01 < ck.normalization.mean[0] < 0.2
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["units"] == "db"


def test_reference_recipe_trains_on_a_seed_dataset(tmp_path):
    run, data = tmp_path / "run", write_mts12(tmp_path / "mts12", size=40, splits=("train", "val"), scaled=True)
    result = runner.invoke(app, ["train", str(data), "--out", str(run), *FAST,
                                 "--recipe", "reference", "--iterations", "2", "--val-every", "2"])
    assert result.exit_code == 0, result.output
    assert f"result: {run / 'last.pt'}" in result.stdout
    ck = load_checkpoint(run / "last.pt", with_training_state=True)
    _, mean, std = SEED_STATISTICS["mts12"]
    assert ck.normalization.mean == mean and ck.normalization.std == std  # fixed, not computed
    assert ck.provenance["recipe"] == "reference" and ck.training_state["config"]["effective_batch"] == 8
    record = yaml.safe_load((run / "config.yaml").read_text())
    assert record["resolved"]["scale_range"] == [0.5, 2.0] and record["train"]["loss_average"] == "all"


def test_no_baseline_fits_none_and_says_nothing_of_it(synth_dataset, full_run, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(synth_dataset), "--out", str(run), *RUN, "--no-baseline"])
    assert result.exit_code == 0, result.output
    assert not (run / "baseline.json").exists() and "per-pixel baseline" not in result.output
    assert json.loads((full_run / "baseline.json").read_text())["source"]["model"].startswith("per-pixel")
    assert _mious(run) == _mious(full_run)  # the baseline takes nothing from the network's run
