"""`slgt2 info CHECKPOINT`: classes, model size, bands, temporal rule, normalisation, tile/stride, provenance."""

from __future__ import annotations

import json

import torch
from helpers import make_checkpoint
from typer.testing import CliRunner

from slgt2_cli.checkpoint.format import load_checkpoint, save_checkpoint
from slgt2_cli.cli.app import app

runner = CliRunner()


def test_info_text_and_json(tmp_path):
    path = make_checkpoint(tmp_path / "ck.pt", patch=64, stride=48)
    ck = load_checkpoint(path)
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 0, result.output
    text = result.output
    params = sum(p.numel() for p in ck.build_model().parameters())
    for c in ck.classes.classes:
        assert str(c.value) in text and c.name in text and c.color in text
    assert "2 bands VV, VH in db" in text and "tile 64 px, stride 48 px" in text
    assert "mean -10, -17; std 3, 2.5" in text

    result = runner.invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert [c["value"] for c in info["classes"]] == [c.value for c in ck.classes.classes]
    assert info["inference"] == {"tile": 64, "stride": 48}
    assert info["bands"] == ["VV", "VH"] and info["units"] == "db"
    assert info["normalization"] == {"mean": [-10.0, -17.0], "std": [3.0, 2.5]}
    assert info["temporal"]["mode"] == "composite" and len(info["temporal"]["periods"]) == 16
    periods = info["temporal"]["periods"]
    assert all(a["last_day"] + 1 == b["first_day"] for a, b in zip(periods, periods[1:]))
    # the count of learnable weights, within the few float buffers a state dict carries besides them
    assert abs(info["model"]["parameters"] - params) <= 0.01 * params
    assert info["training"] is None


def test_info_shows_training_state_and_preset(tmp_path):
    path = make_checkpoint(tmp_path / "ck.pt")
    ck = load_checkpoint(path)
    ck.provenance = {"preset": "tiny", "step": 300, "pixel_size": [10.0, 10.0]}
    ck.training_state = {"step": 300, "best_miou": 0.42, "best_step": 150, "history": [{}, {}], "optimizer": {}}
    save_checkpoint(ck, tmp_path / "last.pt")
    result = runner.invoke(app, ["info", str(tmp_path / "last.pt")])
    assert result.exit_code == 0, result.output
    assert "tiny;" in result.output and "best mIoU 0.420 at step 150" in result.output
    assert "2 validations" in result.output and "[10.0, 10.0]" in result.output
    (tmp_path / "run").mkdir()
    save_checkpoint(ck, tmp_path / "run" / "best.pt")
    result = runner.invoke(app, ["info", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["checkpoint"] == str(tmp_path / "run" / "best.pt")


def test_info_refuses_what_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "notes.pt"
    torch.save({"hello": 1}, bad)
    result = runner.invoke(app, ["info", str(bad)])
    assert result.exit_code == 2, result.output
    assert "is not an slgt2 checkpoint" in result.output and len(result.output.strip().splitlines()) == 1
