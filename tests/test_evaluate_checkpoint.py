"""`slgt2 evaluate --checkpoint CK --dataset DATASET [--split test]`: one tiled inference path, one report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import make_checkpoint
from typer.testing import CliRunner

from slgt2_cli.checkpoint.format import load_checkpoint
from slgt2_cli.cli.app import app
from slgt2_cli.data.datasets import open_dataset
from slgt2_cli.infer.predictor import Predictor
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.scoring.metrics import ConfusionMatrix
from slgt2_cli.scoring.scenes import score_scenes

runner = CliRunner()
KEYS = ("overall_accuracy", "kappa", "miou", "mean_f1", "per_class", "confusion_matrix")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from slgt2_cli.synth.scenes import synthesize

    root = tmp_path_factory.mktemp("synth") / "ds"
    synthesize(root, size=16, dates=6, scenes=3, scene_size=48, seed=1)  # 1 train, 1 val, 1 test scene
    return root


@pytest.fixture(scope="module")
def ckpt(dataset, tmp_path_factory) -> Path:
    spec = open_dataset(dataset)
    dates = [d for split in ("train", "val", "test") for s in spec.scenes(split) for d in s.open().dates]
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "ck.pt", table=spec.classes, dates=dates)


def _error(result) -> str:
    lines = (result.stderr if result.stderr else result.output).strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_checkpoint_mode_scores_the_split(dataset, ckpt, tmp_path):
    out = tmp_path / "reports"
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(ckpt), "--dataset", str(dataset), "--split", "test",
                                 "--json", str(out / "m.json"), "--csv", str(out / "m.csv"),
                                 "--plot", str(out / "cm.png"), "--device", "cpu", "--batch-size", "2", "-q"])
    assert result.exit_code == 0, result.output
    ck = load_checkpoint(ckpt)
    assert "overall accuracy" in result.output and ck.classes.names[0] in result.output
    metrics = json.loads((out / "m.json").read_text())
    for key in KEYS:
        assert key in metrics
    assert metrics["source"]["split"] == "test" and metrics["source"]["scenes"] == ["synth_002"]
    assert [c["name"] for c in metrics["per_class"]] == ck.classes.names
    assert 0 <= metrics["overall_accuracy"] <= 1
    assert (out / "m.csv").exists() and (out / "cm.png").read_bytes()[:4] == b"\x89PNG"

    # the same numbers as score_scenes with predict's own Predictor (no second inference path)
    import torch

    spec = open_dataset(dataset)
    cm = score_scenes(Predictor.from_checkpoint(ck, torch.device("cpu")), spec.scenes("test"))
    assert np.array_equal(np.array(metrics["confusion_matrix"]), cm.counts)
    assert isinstance(cm, ConfusionMatrix) and cm.total == metrics["pixels"]


def test_split_that_does_not_exist(dataset, ckpt):
    base = ["evaluate", "--checkpoint", str(ckpt), "--dataset", str(dataset), "--device", "cpu"]
    assert "'holdout' is not one of 'train', 'val', 'test'" in _error(runner.invoke(app, base + ["--split", "holdout"]))


def test_missing_split(dataset, ckpt, tmp_path):
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    shutil.rmtree(copy / "test")
    line = _error(runner.invoke(app, ["evaluate", "--checkpoint", str(ckpt), "--dataset", str(copy)]))
    assert "no 'test' split" in line and "train" in line


@pytest.mark.parametrize("args, message", [
    ([], "nothing to score"),
    (["p.tif"], "nothing to score"),
    (["--checkpoint", "ck.pt"], "give both"),
    (["p.tif", "l.tif", "--checkpoint", "ck.pt", "--dataset", "d"], "not both"),
])
def test_exactly_one_mode(args, message):
    assert message in _error(runner.invoke(app, ["evaluate", *args]))


def test_classes_must_agree(dataset, ckpt, tmp_path):
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    table = json.loads((copy / "classes.json").read_text())
    table[0]["value"] = 9999
    (copy / "classes.json").write_text(json.dumps(table))
    line = _error(runner.invoke(app, ["evaluate", "--checkpoint", str(ckpt), "--dataset", str(copy)]))
    assert "class values differ" in line and "9999" in line
    # the same values in another order (and other names) are fine: the checkpoint's table is used
    table = json.loads((dataset / "classes.json").read_text())[::-1]
    for c in table:
        c["name"] = c["name"].upper()
    assert ClassTable.from_list(table)  # valid
    (copy / "classes.json").write_text(json.dumps(table))
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(ckpt), "--dataset", str(copy), "--device", "cpu",
                                 "-q", "--split", "val"])
    assert result.exit_code == 0, result.output


def test_map_mode_options_rejected_with_checkpoint(dataset, ckpt):
    line = _error(runner.invoke(app, ["evaluate", "--checkpoint", str(ckpt), "--dataset", str(dataset),
                                      "--classes", "c.json"]))
    assert "--classes" in line
