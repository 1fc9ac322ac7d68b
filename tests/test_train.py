"""`slgt2 train`: learning, resuming, torchrun, configuration, real data."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from typer.testing import CliRunner

from slgt2_cli.checkpoint.format import load_checkpoint
from slgt2_cli.cli.app import app
from slgt2_cli.errors import InputError
from slgt2_cli.synth.scenes import synthesize
from slgt2_cli.train.config import resolve_config

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "eolearn-slovenia-ndvi"
FAST = ["--preset", "tiny", "--patch-size", "32", "--batch-size", "2", "--workers", "0", "--quiet"]


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_tiny_model_overfits_a_small_dataset(tmp_path):
    """Train and validate on the same scene: the network must be able to fit it (val mIoU >= 0.9).

    Seed 7's training scene holds three classes of 866-1712 pixels each: no class of a handful of pixels
    decides the mean IoU. Without augmentation every sample is that whole 64 px scene, so one sample per step
    gives the same gradient as two: 60 steps of batch 1 reach mIoU 0.98 (200 steps of batch 2 took 6.7x the
    compute, ~450 s on a busy machine, for the same verdict)."""
    root = tmp_path / "ds"
    synthesize(root, size=32, dates=8, scenes=3, seed=7, scene_size=64)
    train_scene = next((root / "train" / "images").iterdir())
    for split in ("val", "test"):
        shutil.rmtree(root / split)
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        dst = root / split / "images" / train_scene.name
        (shutil.copytree if train_scene.is_dir() else shutil.copy)(train_scene, dst)
        shutil.copy(root / "train" / "labels" / f"{train_scene.name.removesuffix('.tif')}.tif", root / split / "labels")
    for other in list((root / "train" / "images").iterdir()):
        if other != train_scene:
            (shutil.rmtree if other.is_dir() else os.remove)(other)
    result = runner.invoke(app, ["train", str(root), "--out", str(tmp_path / "run"), "--preset", "tiny",
                                 "--patch-size", "64", "--batch-size", "1", "--iterations", "60", "--val-every", "30",
                                 "--no-augment", "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [30, 60], log
    assert log[-1]["miou"] >= 0.9 and log[-1]["loss"] < 0.25 * log[0]["loss"], log  # the final weights fit it


def test_run_directory_is_complete_and_checkpoint_self_contained(synth_dataset, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(synth_dataset), "--out", str(run), *FAST, "--iterations", "4", "--val-every", "2"])
    assert result.exit_code == 0, result.output
    for name in ("best.pt", "last.pt", "metrics.jsonl", "curves.png", "config.yaml", "best_confusion.png"):
        assert (run / name).exists(), name
    ck = load_checkpoint(run / "best.pt")
    assert ck.bands == ["VV", "VH"] and ck.units == "db"
    assert [c.value for c in ck.classes.classes][:2] == [1110, 1120]
    assert ck.temporal.mode == "composite" and ck.normalization.num_channels == 2
    assert ck.provenance["preset"] == "tiny" and ck.patch_size == 32
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    again = runner.invoke(app, ["train", str(synth_dataset), "--out", str(run), *FAST, "--iterations", "4"])
    assert again.exit_code == 2 and "--resume" in again.output


def test_same_seed_same_weights_and_resume_after_sigterm(synth_dataset, tmp_path):
    args = [sys.executable, "-m", "slgt2_cli", "train", str(synth_dataset), *FAST, "--iterations", "14", "--val-every", "3"]
    full = subprocess.run(args + ["--out", str(tmp_path / "full")], env=_env(), capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    again = subprocess.run(args + ["--out", str(tmp_path / "again")], env=_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr

    proc = subprocess.Popen(args + ["--out", str(tmp_path / "cut")], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "cut" / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    cut_step = load_checkpoint(tmp_path / "cut" / "last.pt", with_training_state=True).training_state["step"]
    assert proc.returncode != 0 and cut_step < 14, err  # it stopped early and kept a complete last.pt
    resumed = subprocess.run(args + ["--out", str(tmp_path / "cut"), "--resume"], env=_env(), capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr

    def weights(run):
        return load_checkpoint(tmp_path / run / "last.pt").state_dict

    reference = weights("full")
    for run in ("again", "cut"):
        other = weights(run)
        assert all(torch.equal(reference[k], other[k]) for k in reference), run


def test_torchrun_two_processes_gloo(synth_dataset, tmp_path):
    """Two ranks, each accumulating two micro-batches of 2 per step (an effective batch of 8)."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    out = tmp_path / "ddp"
    cfg = tmp_path / "accumulate.yaml"
    cfg.write_text("effective_batch: 8\n")
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "slgt2_cli", "train",
                           str(synth_dataset), "--out", str(out), *FAST, "--iterations", "4", "--val-every", "2",
                           "--device", "cpu", "--config", str(cfg)], env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "best.pt").exists() and (out / "last.pt").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # only rank 0 writes
    assert not list(out.glob(".*partial*"))


def test_config_file_and_overriding_option(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("preset: tiny\nbatch-size: 3\nlr: 0.0005\niterations: 50\n")
    config = resolve_config(tmp_path, tmp_path / "run", cfg, iterations=20)
    assert (config.preset, config.batch_size, config.lr, config.iterations) == ("tiny", 3, 5e-4, 20)
    assert config.patch_size == 64  # from the tiny recipe, untouched by file and options
    toml = tmp_path / "train.toml"
    toml.write_text('preset = "small"\nval_every = 7\n')
    config = resolve_config(tmp_path, tmp_path / "run", toml)
    assert (config.preset, config.val_every, config.patch_size) == ("small", 7, 128)
    bad = tmp_path / "bad.yaml"
    bad.write_text("batchsize: 3\n")
    with pytest.raises(InputError, match="unknown configuration key 'batchsize'"):
        resolve_config(tmp_path, tmp_path / "run", bad)


@pytest.mark.skipif(not SAMPLE.exists(), reason="shared sample data not beside the checkout")
def test_real_sample_trains_end_to_end(tmp_path):
    """The eo-learn Slovenia NDVI sample (one channel, 68 dates, NaN holes) split into train/val windows."""
    root = tmp_path / "ndvi"
    with rasterio.open(SAMPLE / "NDVI_68dates.tif") as img, rasterio.open(SAMPLE / "LULC.tif") as lab:
        for split, win in (("train", Window(0, 0, 64, 101)), ("val", Window(64, 0, 36, 101))):
            for kind, src in (("images", img), ("labels", lab)):
                (root / split / kind).mkdir(parents=True, exist_ok=True)
                profile = {**src.profile, "width": int(win.width), "height": int(win.height),
                           "transform": window_transform(win, src.transform)}
                profile.pop("blockxsize", None), profile.pop("blockysize", None), profile.pop("tiled", None)
                with rasterio.open(root / split / kind / "slo.tif", "w", **profile) as dst:
                    dst.write(src.read(window=win))
                    if kind == "images":
                        for b in range(1, src.count + 1):
                            dst.set_band_description(b, src.descriptions[b - 1])
    names = {1: "cultivated land", 2: "forest", 3: "grassland", 4: "shrubland", 8: "artificial surface"}
    (root / "classes.json").write_text(json.dumps([{"value": v, "name": n} for v, n in names.items()]))
    result = runner.invoke(app, ["train", str(root), "--out", str(tmp_path / "run"), *FAST, "--iterations", "3",
                                 "--val-every", "3"])
    assert result.exit_code == 0, result.output
    ck = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ck.units == "raw" and ck.bands == ["NDVI"] and ck.model_config["in_chans"] == 1
    log = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(log["loss"]) and log["miou"] is not None
