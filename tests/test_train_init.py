"""Starting from a trained model (`train --init`): identical weights for the same classes, only the head for a new
class table, a reference mmseg .pth as the start, refusals in one line; extending a run with --resume --iterations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import DATES, TABLE, sar_values, write_dataset, write_flood_dataset, write_mts12
from typer.testing import CliRunner

from slgt2_cli.checkpoint.format import load_checkpoint
from slgt2_cli.cli.app import app
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.train import loop
from slgt2_cli.train.config import resolve_config
from slgt2_cli.train.runtime import Dist
from slgt2_cli.train.warmstart import HEAD, class_rows

runner = CliRunner()
FAST = ["--patch-size", "32", "--batch-size", "2", "--workers", "0", "--quiet", "--device", "cpu", "--no-baseline"]
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "reference" / "pipeline" / \
    "slovenia_mmseg.pth"
NEW_CLASSES = [{"value": 2000, "name": "grassland"}, {"value": 3100, "name": "forest"},
               {"value": 4000, "name": "water"}]


def _dataset(root: Path, classes: list[dict], seed: int = 0) -> Path:
    """One 48² training and one validation scene in VV/VH dB on the helpers' dates, labelled with ``classes``."""
    values = [c["value"] for c in classes]
    scenes = {}
    for split, s in (("train", seed), ("val", seed + 1)):
        rng = np.random.default_rng(s)
        labels = np.asarray(values, dtype=np.uint16)[rng.integers(0, len(values), (48, 48))]
        scenes[split] = [(sar_values(48, 48, seed=s), labels)]
    return write_dataset(root, scenes, classes, DATES)


def _open(dataset: Path, out: Path, **options) -> loop.Run:
    config = resolve_config(dataset, out, patch_size=32, batch_size=2, workers=0, device="cpu", progress=False,
                            iterations=2, **options)
    return loop.open_run(config, Dist(), torch.device("cpu"))


def _weights(run: loop.Run) -> dict[str, torch.Tensor]:
    return run.model.state_dict()


def test_init_with_the_same_classes_starts_from_identical_weights(tiny_checkpoint, tmp_path):
    data = _dataset(tmp_path / "ds", TABLE.to_list())
    start = load_checkpoint(tiny_checkpoint)
    run = _open(data, tmp_path / "probe", init_checkpoint=tiny_checkpoint)
    assert run.config.preset == "tiny" and run.config.normalization.value == "checkpoint"  # from the checkpoint
    weights = _weights(run)
    assert weights.keys() == start.state_dict.keys()
    assert all(torch.equal(weights[k], start.state_dict[k]) for k in weights)
    assert run.setup.norm == start.normalization and run.setup.rule == start.temporal
    assert run.notes[0].startswith(f"started from {tiny_checkpoint} (native checkpoint): loaded 330 of 330 tensors")

    # the CLI: the encoder held still for both steps, the decoder trained; recorded in config.yaml and provenance
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(data), "--out", str(out), "--init", str(tiny_checkpoint), *FAST,
                                 "--iterations", "2", "--freeze-encoder", "2"])
    assert result.exit_code == 0, result.output
    last = load_checkpoint(out / "last.pt").state_dict
    encoder = [k for k in last if k.split(".")[0] in ("patch_embeds", "layers", "norm")]
    assert encoder and all(torch.equal(last[k], start.state_dict[k]) for k in encoder)
    assert not torch.equal(last["seg_head.0.weight"], start.state_dict["seg_head.0.weight"])
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(h["step"], h["loss"] is None) for h in history] == [(0, True), (1, False), (2, False)]  # the start scored
    record = yaml.safe_load((out / "config.yaml").read_text())
    assert record["resolved"]["init"]["loaded"] == 330 and record["train"]["init_checkpoint"] == str(tiny_checkpoint)
    assert load_checkpoint(out / "best.pt").provenance["init"]["checkpoint"] == str(tiny_checkpoint)
    info = runner.invoke(app, ["info", str(out)])
    assert info.exit_code == 0 and "started from" in info.output and "loaded 330 of 330" in info.output, info.output

    # an own run directory as the start: its best.pt, weight for weight
    again = _open(data, tmp_path / "probe2", init_checkpoint=out)
    best = load_checkpoint(out / "best.pt").state_dict
    assert all(torch.equal(v, best[k]) for k, v in _weights(again).items())


def test_a_new_class_table_reinitialises_only_the_head(tiny_checkpoint, tmp_path):
    start = load_checkpoint(tiny_checkpoint)
    assert class_rows(start.classes, ClassTable.from_list(NEW_CLASSES)) == [1, 2, None]  # by value
    renamed = [{"value": 7, "name": "Forest"}, {"value": 2000, "name": "meadow"}]
    assert class_rows(start.classes, ClassTable.from_list(renamed)) == [2, None]  # by name; a value whose name differs
    run = _open(_dataset(tmp_path / "ds", NEW_CLASSES), tmp_path / "probe", init_checkpoint=tiny_checkpoint)
    weights = _weights(run)
    assert all(torch.equal(v, start.state_dict[k]) for k, v in weights.items() if k not in HEAD)
    for key in HEAD:
        assert torch.equal(weights[key][:2], start.state_dict[key][1:3])  # grassland and forest keep their rows
    assert not torch.equal(weights["seg_head.0.weight"][2], torch.zeros_like(weights["seg_head.0.weight"][2]))
    assert "head re-initialised, 2 of 3 classes keep their rows" in run.notes[0]
    assert "re-initialised 2 (seg_head.0.weight, seg_head.0.bias)" in run.notes[0]


def test_the_python_api_fine_tunes_to_new_classes(tiny_checkpoint, tmp_path):
    import slgt2_cli as slgt2

    result = slgt2.train(_dataset(tmp_path / "ds", NEW_CLASSES), tmp_path / "run", init_checkpoint=tiny_checkpoint,
                         iterations=2, patch_size=32, batch_size=2, workers=0, device="cpu", baseline=False)
    ck = load_checkpoint(result.checkpoint)
    assert result.step == 2 and ck.classes.to_list() == ClassTable.from_list(NEW_CLASSES).to_list()
    assert ck.model_config["num_classes"] == 3 and ck.provenance["init"]["classes_kept"] == 2


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference pipeline fixture not beside the checkout")
def test_a_reference_mmseg_pth_is_a_start(tmp_path):
    data = write_mts12(tmp_path / "mts12", size=40, splits=("train", "val"), scaled=True)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(data), "--out", str(out), "--init", str(REFERENCE), *FAST,
                                 "--iterations", "2"])
    assert result.exit_code == 0, result.output
    assert "(reference mmseg .pth): loaded 318 of 318 tensors" in result.output
    assert "a reference .pth names no bands: its 2 channels are taken as the dataset's VV, VH" in result.output
    ck = load_checkpoint(out / "best.pt")
    assert ck.model_config["window_sizes"][0] == [7, 14, 21] and ck.model_config["embed_dims"] == [24, 48, 96, 192]
    assert ck.normalization.to_dict() == {"mean": [127.09, 52.14], "std": [43.3, 40.76]}  # the checkpoint's
    assert ck.temporal.mode == "reference" and ck.provenance["init"]["kind"] == "reference mmseg .pth"
    # a preset that is not the checkpoint's architecture: one line naming both
    refused = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "r2"), "--init", str(REFERENCE),
                                  "--preset", "tiny", *FAST])
    assert refused.exit_code == 2, refused.output
    line = refused.stderr.strip()
    assert "\n" not in line and "preset 'tiny'" in line and str(REFERENCE) in line and "--preset" in line, line


def test_band_mismatch_and_bad_files_exit_2_in_one_line(tiny_checkpoint, tmp_path):
    floods = write_flood_dataset(tmp_path / "floods", {"train": 1, "val": 1}, size=48)
    bad = tmp_path / "garbage.pt"
    bad.write_text("not a checkpoint")
    cases = [(floods, tiny_checkpoint, ["VV, VH", "VV"]), (floods, bad, [str(bad)]),
             (floods, tmp_path / "missing.pt", ["not found"]), (floods, tmp_path, ["no best.pt or last.pt"])]
    for data, start, words in cases:
        result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), "--init", str(start), *FAST])
        assert result.exit_code == 2, result.output
        line = result.stderr.strip()
        assert "\n" not in line and "Traceback" not in line and all(w in line for w in words), line
    assert not (tmp_path / "run").exists()
    no_start = runner.invoke(app, ["train", str(floods), "--out", str(tmp_path / "run"), "--norm", "checkpoint", *FAST])
    assert no_start.exit_code == 2 and "--init" in no_start.stderr, no_start.output


def test_extending_a_run_replans_the_schedule(synth_dataset, tmp_path):
    run = tmp_path / "run"
    first = runner.invoke(app, ["train", str(synth_dataset), "--out", str(run), "--preset", "tiny", *FAST,
                                "--iterations", "10", "--val-every", "2", "--lr", "0.005"])
    assert first.exit_code == 0, first.output
    extended = runner.invoke(app, ["train", str(synth_dataset), "--out", str(run), "--resume", "--iterations", "14",
                                   "--quiet"])
    assert extended.exit_code == 0, extended.output
    assert "extending the run from 10 to 14 steps at step 10: learning rate re-planned for 14 steps" in extended.output
    last = load_checkpoint(run / "last.pt", with_training_state=True)
    assert last.training_state["step"] == 14 and last.training_state["config"]["iterations"] == 14
    assert load_checkpoint(run / "best.pt").build_model() is not None
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == [2, 4, 6, 8, 10, 12, 14]
    lr = {r["step"]: r["lr"] for r in history}
    assert lr[12] == pytest.approx(0.005 * 13 / 20 * (1 - 12 / 14) ** 0.9) and lr[14] == 0.0  # planned for 14 (warm-up 20)
    assert lr[10] == 0.0  # the first plan ended at 10
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["iterations"] == 14
    for n in ("14", "9"):  # at or below the current step: nothing to train
        refused = runner.invoke(app, ["train", str(synth_dataset), "--out", str(run), "--resume", "--iterations", n])
        assert refused.exit_code == 2, refused.output
        line = refused.stderr.strip()
        assert "\n" not in line and f"--iterations {n} is not above the run's current step 14" in line, line


def test_the_documented_commands_run(tiny_checkpoint, tmp_path):
    """docs/training.md's block of --init / --resume commands, on small data and a few steps each."""
    import shlex

    text = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    block = text.split("<!-- commands: tests/test_train_init.py")[1].split("```bash\n")[1].split("```")[0]
    data = {"data/events-a": _dataset(tmp_path / "a", TABLE.to_list()),
            "data/event-b": _dataset(tmp_path / "b", TABLE.to_list(), seed=5),
            "data/new-classes": _dataset(tmp_path / "c", NEW_CLASSES, seed=7),
            "data/slovenia": write_mts12(tmp_path / "mts12", size=40, splits=("train", "val"), scaled=True)}
    steps = {"300": "4", "200": "2", "50": "1"}
    ran = 0
    for line in block.splitlines():
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        if any(a.endswith(".pth") for a in argv) and not REFERENCE.exists():
            continue
        args = [str(data[a]) if a in data else str(REFERENCE) if a.endswith(".pth") else
                str(tmp_path / a) if a.startswith("runs/") else steps.get(a, a) for a in argv[1:]]
        if args[0] == "train":
            args += FAST + ([] if "--iterations" in args else ["--iterations", "2"])
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{line}\n{result.output}"
        ran += 1
    assert ran >= 5
    assert load_checkpoint(tmp_path / "runs/b/last.pt", with_training_state=True).training_state["step"] == 4
    assert load_checkpoint(tmp_path / "runs/c/best.pt").classes.to_list() == ClassTable.from_list(NEW_CLASSES).to_list()
    assert "initialisation: started from" in result.output  # slgt2 info runs/b
