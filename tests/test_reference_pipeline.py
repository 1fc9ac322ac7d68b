"""A published reference checkpoint gives the reference's maps and scores (../shared/fixtures/reference/pipeline).

The fixture holds an mmseg checkpoint, a Slovenia-format test split and what the reference's own `tools/test.py`
procedure produced from them; its README spells the procedure out. Nothing but the two commands a user types
is used here: `convert-checkpoint` with no options, then `evaluate --checkpoint --dataset` and `predict`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from typer.testing import CliRunner

from models.mmseg_config import Unparsed, parse_config_text
from slgt2_cli.checkpoint.format import load_checkpoint
from slgt2_cli.cli.app import app

PIPELINE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "reference" / "pipeline"
REFERENCE = PIPELINE / "slovenia_mmseg.pth"
DATA = PIPELINE / "data" / "slovenia"
OUTPUT = PIPELINE / "slovenia_reference_output.pt"
runner = CliRunner()

needs_fixture = pytest.mark.skipif(not REFERENCE.exists(), reason="reference pipeline fixture not beside the checkout")


@pytest.fixture(scope="module")
def reference_output() -> dict:
    return torch.load(OUTPUT, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "native.pt"
    result = runner.invoke(app, ["convert-checkpoint", str(REFERENCE), str(out)])
    assert result.exit_code == 0, result.output
    return out


@needs_fixture
def test_convert_takes_the_pipeline_from_the_stored_config(native):
    ck = load_checkpoint(native)
    assert ck.normalization.to_dict() == {"mean": [127.09, 52.14], "std": [43.3, 40.76]}  # the test pipeline's
    assert ck.temporal.mode == "reference" and ck.temporal.length == 16
    assert (ck.patch_size, ck.stride, ck.blend, ck.units) == (224, 200, "average", "scaled")
    assert [c.value for c in ck.classes.classes] == list(range(1, 9))  # reduce_zero_label: label k = class k-1
    assert ck.classes.classes[7].name == "bare land" and ck.classes.classes[0].color == "#ffff00"  # PALETTE
    assert ck.model_config["num_heads"] == [3, 3, 6, 6] and ck.model_config["window_depths"][0] == [8, 4, 2]


@needs_fixture
def test_evaluate_reproduces_the_reference_metrics(native, reference_output, tmp_path):
    out = tmp_path / "out.json"
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(native), "--dataset", str(DATA), "--split", "test",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    stored, ours = reference_output["metrics"], report["reference"]
    for key in ("aAcc", "mIoU", "mAcc", "mPrecision", "mF1score"):
        assert abs(ours[key] - float(stored[key])) <= 1e-4, key
    for name, iou in stored["IoU"].items():
        assert abs(ours["per_class"][name]["IoU"] - float(iou)) <= 1e-4, name
    assert ours["nan_classes"] == {k: list(v) for k, v in stored["nan_classes"].items()}
    assert report["pixels"] == 445188
    assert "0/0" in report["conventions"]["reference"] and "left out" in report["conventions"]["slgt2"]
    assert abs(report["overall_accuracy"] - ours["aAcc"]) < 1e-12


@needs_fixture
def test_predict_of_a_mat_scene_equals_the_reference_map(native, reference_output, tmp_path):
    scene = "eopatch_id_522_col_28_row_9"  # the one with a no-data corner
    index = reference_output["scene_ids"].index(scene)
    out = tmp_path / "map.tif"
    result = runner.invoke(app, ["predict", str(native), str(DATA / "s1" / "test" / f"{scene}.mat"), str(out), "-q"])
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as src:
        ours, nodata = src.read(1), src.nodata
        assert src.crs is None and "GEOREFERENCE" in src.tags()
    pred = reference_output["pred"][index].numpy()
    ties = reference_output["near_ties"]["index"].numpy()
    ties = ties[ties[:, 0] == index]
    compared = np.ones(pred.shape, bool)
    compared[ties[:, 1], ties[:, 2]] = False
    # the no-data corner (every value of every date 0) is classified like any other pixel, as the reference does
    assert (ours != nodata).all()
    differ = (ours != pred) & compared
    assert differ.sum() == 0, f"{differ.sum()} pixels differ from the reference's map"


def test_the_two_conventions_differ_only_on_undefined_ratios():
    from slgt2_cli.io.classes import ClassTable
    from slgt2_cli.scoring.metrics import ConfusionMatrix, compute_metrics

    # class 2 is neither labelled nor predicted; class 1 is predicted but never labelled
    cm = ConfusionMatrix(3, np.array([[6, 2, 0], [0, 0, 0], [0, 0, 0]]))
    m = compute_metrics(cm, ClassTable.default([1, 2, 3]))
    ref = m["reference"]
    assert m["miou"] == pytest.approx((6 / 8 + 0) / 2)  # ours: class 3 left out
    assert ref["mIoU"] == pytest.approx((6 / 8 + 0 + 0) / 3)  # the reference: 0/0 -> 0, kept in the mean
    assert ref["mAcc"] == pytest.approx(6 / 8 / 3) and ref["aAcc"] == pytest.approx(6 / 8)
    assert ref["nan_classes"]["IoU"] == ["class 3"] and ref["nan_classes"]["Acc"] == ["class 2", "class 3"]
    assert ref["per_class"]["class 1"]["F1score"] == pytest.approx(2 * 0.75 * 1 / 1.75)


def test_config_text_is_parsed_never_executed(tmp_path):
    marker = tmp_path / "executed"
    text = (f"model = dict(backbone=dict(flag=2, img_size=[48, 224, 224], mean=[-16.37, -10.58]))\n"
            f"gpu_ids = range(0, 1)\n"
            f"evil = __import__('os').system('touch {marker}')\n"
            f"crop_size = (224, 224)\n")
    config = parse_config_text(text)
    assert config["model"]["backbone"] == {"flag": 2, "img_size": [48, 224, 224], "mean": [-16.37, -10.58]}
    assert config["gpu_ids"] == Unparsed("range(0, 1)") and isinstance(config["evil"], Unparsed)
    assert config["crop_size"] == (224, 224)
    assert not marker.exists()


class _OpenForWriting:
    """Unpickling this calls open(path, "w"): the file appears."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class _System:
    """Unpickling this runs a shell command that creates the file."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _payload_checkpoints(tmp_path: Path, marker: Path) -> list[Path]:
    files = []
    for i, payload in enumerate([_OpenForWriting(marker), _System(marker)]):
        for where in ("meta", "state_dict"):
            content = {"meta": {"config": "x = 1"}, "state_dict": {"backbone.w": torch.zeros(1)}}
            if where == "meta":
                content["meta"]["hook_msgs"] = {"best_score": payload}
            else:
                content["state_dict"]["backbone.evil"] = payload
            path = tmp_path / f"payload_{i}_{where}.pth"
            torch.save(content, path)
            files.append(path)
    return files


@pytest.mark.parametrize("command", ["convert", "predict", "evaluate", "train-resume"])
def test_a_pickle_payload_is_never_executed(command, tmp_path):
    import shutil

    marker = tmp_path / "executed"
    stack, dataset, run = tmp_path / "scene.mat", tmp_path / "ds", tmp_path / "run"
    if command == "train-resume":  # a real dataset, so that the checkpoint is what stops it
        from slgt2_cli.synth.scenes import synthesize

        synthesize(dataset, size=16, dates=4, scenes=3, scene_size=32, seed=1)
        run.mkdir()
        printed = runner.invoke(app, ["train", str(dataset), "--out", str(run), "--preset", "tiny", "--iterations", "2",
                                      "--print-config"])
        assert printed.exit_code == 0, printed.output
        (run / "config.yaml").write_text(printed.output)  # the run's record, as train writes it
    for path in _payload_checkpoints(tmp_path, marker):
        if command == "train-resume":
            shutil.copy(path, run / "last.pt")
        args = {"convert": ["convert-checkpoint", str(path), str(tmp_path / "out.pt")],
                "predict": ["predict", str(path), str(stack), str(tmp_path / "map.tif")],
                "evaluate": ["evaluate", "--checkpoint", str(path), "--dataset", str(dataset)],
                "train-resume": ["train", str(dataset), "--out", str(run), "--resume"]}[command]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "refused" in result.output and "never runs code" in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not marker.exists(), f"{command} executed the payload of {path.name}"


def test_flag_3_maps_to_80_frames(tmp_path):
    """flag 3 (80 dates) takes its length from the flag when the stored config has no img_size."""
    import models

    net = models.create_model("paper-brandenburg", embed_dims=(12, 24, 48, 96), depths=(2, 2, 2, 2),
                              num_heads=(3, 3, 3, 3), temporal_length=80, drop_path=0.0)
    state = {f"backbone.{k}": v for k, v in net.state_dict().items()}
    config = "model = dict(backbone=dict(type='SLGT2', flag=3, num_heads=[3, 3, 3, 3], num_classes=15))\n"
    torch.save({"meta": {"config": config}, "state_dict": state}, tmp_path / "flag3.pth")
    loaded = models.from_reference_checkpoint(tmp_path / "flag3.pth")
    assert loaded.temporal_length == 80 and loaded.config["stem"] == "brandenburg"
    with pytest.raises(models.ReferenceCheckpointError, match="flag 4"):
        models.from_reference_checkpoint(tmp_path / "flag3.pth", flag=4)


def test_blend_average_is_mmseg_slide_inference(tmp_path):
    """--blend average on any checkpoint: the mmseg slide_inference average of raw logits, then softmax."""
    from helpers import make_checkpoint, sar_values, write_stack

    from slgt2_cli.data.preprocess import prepare_input
    from slgt2_cli.infer.predictor import Predictor
    from slgt2_cli.io.stacks import open_stack

    ck = load_checkpoint(make_checkpoint(tmp_path / "ck.pt", patch=64, stride=48))
    h, w, crop, stride = 100, 90, 64, 48
    stack_path = write_stack(tmp_path / "s.tif", sar_values(h, w, seed=3))
    predictor = Predictor.from_checkpoint(ck, torch.device("cpu"), blend="average", batch_size=3)
    got = np.zeros((len(ck.classes), h, w), np.float32)
    with open_stack(stack_path) as stack:
        def sink(window, probs, valid):
            got[:, window.row_off:window.row_off + window.height] = probs

        predictor.predict(stack, sink)
        x, _ = prepare_input(stack.read(), stack.dates, predictor.rule, predictor.norm)
    img = torch.from_numpy(x)[None]
    preds, count = torch.zeros(1, len(ck.classes), h, w), torch.zeros(1, 1, h, w)
    with torch.no_grad():
        for hi in range(max(h - crop + stride - 1, 0) // stride + 1):
            for wi in range(max(w - crop + stride - 1, 0) // stride + 1):
                y2, x2 = min(hi * stride + crop, h), min(wi * stride + crop, w)
                y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
                preds[..., y1:y2, x1:x2] += predictor.model(img[..., y1:y2, x1:x2])
                count[..., y1:y2, x1:x2] += 1
    expected = (preds / count).softmax(1)[0].numpy()
    assert np.abs(got - expected).max() < 1e-5
    cosine = Predictor.from_checkpoint(ck, torch.device("cpu"))
    assert cosine.blend == "cosine"  # a trained checkpoint keeps our default


def test_predict_blend_option(tmp_path):
    from helpers import make_checkpoint, sar_values, write_stack

    ck = make_checkpoint(tmp_path / "ck.pt", patch=64, stride=48)
    stack = write_stack(tmp_path / "s.tif", sar_values(100, 90, seed=3))
    maps = {}
    for blend in ("average", "cosine"):
        result = runner.invoke(app, ["predict", str(ck), str(stack), str(tmp_path / f"{blend}.tif"), "-q",
                                     "--blend", blend, "--probabilities", str(tmp_path / f"{blend}.p.tif")])
        assert result.exit_code == 0, result.output
        with rasterio.open(tmp_path / f"{blend}.p.tif") as src:
            maps[blend] = src.read()
    assert (maps["average"] != maps["cosine"]).any()
    result = runner.invoke(app, ["predict", str(ck), str(stack), str(tmp_path / "x.tif"), "--blend", "median"])
    assert result.exit_code == 2 and "average" in result.output and len(result.output.strip().splitlines()) == 1
