"""Issue 8: interrupting predict and train loses nothing and leaves nothing half-written; a diverging run stops
with the step and keeps its last good checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from error_cases import _write, build_world
from typer.testing import CliRunner

from slgt2_cli.checkpoint.format import load_checkpoint
from slgt2_cli.cli.app import app

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["--preset", "tiny", "--patch-size", "32", "--batch-size", "2", "--workers", "0", "--quiet", "--device", "cpu"]


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = build_world(tmp_path_factory.mktemp("interrupts") / "w")
    with rasterio.open(root / "stack.tif") as src:  # a scene big enough to take seconds: 512 px, 64 px tiles
        names = list(src.descriptions)
    rng = np.random.default_rng(1)
    _write(root / "big.tif", rng.normal(-12, 3, (len(names), 512, 512)).astype(np.float32), descriptions=names)
    return root


def _partials(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if ".partial" in p.name]


def _start_predict(world: Path, out: Path) -> subprocess.Popen:
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "slgt2_cli", "predict", "-q", "--device", "cpu", "--tile", "64",
                             "--batch-size", "1", str(world / "ck.pt"), str(world / "big.tif"), str(out)],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not _partials(out.parent) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None and _partials(out.parent), "predict ended before it could be interrupted"
    time.sleep(0.3)  # into the tiles
    return proc


def test_sigterm_during_predict_leaves_nothing(world, tmp_path):
    out = tmp_path / "maps" / "map.tif"
    proc = _start_predict(world, out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("slgt2: error: interrupted: SIGTERM")
    assert list(out.parent.iterdir()) == []


def test_sigkill_during_predict_leaves_only_a_temporary_the_next_run_removes(world, tmp_path):
    out = tmp_path / "maps" / "map.tif"
    proc = _start_predict(world, out)
    proc.kill()
    proc.communicate(timeout=60)
    left = list(out.parent.iterdir())
    assert not out.exists() and left and all(p.name.startswith(".map.tif.partial-") for p in left), left
    result = CliRunner().invoke(app, ["predict", "-q", "--device", "cpu", "--tile", "128", "--batch-size", "4",
                                      str(world / "ck.pt"), str(world / "big.tif"), str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(out.parent.iterdir()) == [out.with_suffix(".qml"), out, out.with_name("map.tif.aux.xml")]
    with rasterio.open(out) as m:
        assert (m.width, m.height) == (512, 512)


def test_sigkill_during_train_keeps_a_complete_last_pt_and_resume_finishes(world, tmp_path):
    run = tmp_path / "run"
    args = ["train", str(world / "ds"), "--out", str(run), *TRAIN, "--iterations", "12", "--val-every", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "slgt2_cli", *args], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=60)
    ck = load_checkpoint(run / "last.pt", with_training_state=True)  # complete, whatever moment the kill came
    assert 2 <= ck.training_state["step"] < 12
    result = CliRunner().invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run / "last.pt", with_training_state=True).training_state["step"] == 12


def test_non_finite_loss_names_the_step_and_keeps_the_last_good_checkpoint(world, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(world / "ds"), "--out", str(run), *TRAIN, "--iterations", "12",
                                      "--val-every", "1", "--lr", "1e6"])
    assert result.exit_code == 3, result.output  # its own exit status: not bad input
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "at step " in lines[0] and ("non-finite" in lines[0] or "the loss became" in lines[0]), lines[0]
    ck = load_checkpoint(run / "last.pt", with_training_state=True)  # written at step 1, before it diverged
    assert f"of step {ck.training_state['step']}" in lines[0]
    assert all(torch.isfinite(v).all() for v in ck.state_dict.values() if v.is_floating_point())
