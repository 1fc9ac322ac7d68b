"""The Brandenburg tree as distributed: split files over sorted trainval_*/test_* listings, read by train,
evaluate and info through the CLI, and one clear line for each way such a tree can be wrong."""

from __future__ import annotations

import json

import pytest
import scipy.io
import yaml
from helpers import brandenburg_data, write_brandenburg_tree
from typer.testing import CliRunner

from slgt2_cli.cli.app import app
from slgt2_cli.data.datasets import open_dataset
from slgt2_cli.data.normalization import seed_normalization
from slgt2_cli.errors import InputError

runner = CliRunner()
FAST = ["--preset", "tiny", "--patch-size", "32", "--batch-size", "2", "--workers", "0", "--quiet", "--device", "cpu"]
# trainval listing: VHVV_0001 .. VHVV_0005 (indices 0..4); test: VHVV_0101, 0102, 0103 (0..2)
SPLITS = {"train": [0, 2, 3], "val": [4], "test": [2, 0]}


@pytest.fixture
def tree(tmp_path):
    scenes = {"trainval": {f"000{i}": brandenburg_data(seed=i) for i in range(1, 6)},
              "test": {f"010{i}": brandenburg_data(seed=10 + i) for i in range(1, 4)}}
    return write_brandenburg_tree(tmp_path / "s1_2017_2018", scenes, SPLITS)


def test_split_files_select_scenes_by_sorted_position(tree):
    spec = open_dataset(tree)
    assert spec.kind == "brandenburg" and len(spec.classes) == 15 and spec.classes.classes[0].name == "Maize"
    ids = {split: [s.id for s in spec.scenes(split)] for split in ("train", "val", "test")}
    assert ids == {"train": ["VHVV_0001", "VHVV_0003", "VHVV_0004"], "val": ["VHVV_0005"],
                   "test": ["VHVV_0103", "VHVV_0101"]}  # split-file order; 0002 and 0102 skipped
    train = spec.scenes("train")[1]
    assert (train.image.parent.name, train.labels.name) == ("trainval_vhvv", "label_s1_0003.mat")
    assert spec.held_out == []  # val comes from split/val.txt, nothing held out of train


def test_info_lists_the_tree(tree):
    result = runner.invoke(app, ["info", str(tree)])
    assert result.exit_code == 0, result.output
    assert "as distributed (split/*.txt" in result.output
    assert "train:          3 scenes: VHVV_0001, VHVV_0003, VHVV_0004" in result.output
    assert "test:           2 scenes: VHVV_0103, VHVV_0101" in result.output and "Sugar beet" in result.output
    data = json.loads(runner.invoke(app, ["info", str(tree), "--json"]).stdout)
    assert data["kind"] == "brandenburg" and [s["id"] for s in data["splits"]["val"]["scenes"]] == ["VHVV_0005"]


def test_train_reference_recipe_and_evaluate_on_the_tree(tree, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(tree), "--out", str(run), *FAST, "--recipe", "reference",
                                 "--iterations", "2", "--val-every", "2", "--seed", "0", "--no-baseline"])
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load((run / "config.yaml").read_text())["resolved"]
    assert resolved["scenes"] == {"train": ["VHVV_0001", "VHVV_0003", "VHVV_0004"], "val": ["VHVV_0005"]}
    assert resolved["scale_range"] == [1.0, 2.0]  # the reference's Brandenburg Resize ratio_range
    assert resolved["normalization"] == {"mean": [-16.37, -10.59], "std": [3.12, 3.2]}  # its img_norm_cfg_trainval
    assert [c["value"] for c in resolved["classes"]] == list(range(1, 16))  # reduce_zero_label: 0 is ignored
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(run / "best.pt"), "--dataset", str(tree),
                                 "--split", "test", "--json", str(out), "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    labels = [scipy.io.loadmat(tree / "test_label" / f"label_s1_010{i}.mat")["label"] for i in (1, 3)]
    assert sum(map(sum, report["confusion_matrix"])) == sum(int((lab > 0).sum()) for lab in labels)  # 0 ignored


def test_second_period_tree_has_its_own_statistics(tmp_path):
    scenes = {"trainval": {f"000{i}": brandenburg_data(seed=i) for i in range(1, 4)}}
    root = write_brandenburg_tree(tmp_path / "s2_2017_2018", scenes, {"train": [0, 1], "val": [2]}, period="s2")
    spec = open_dataset(root)
    assert spec.kind == "brandenburg-s2" and [s.id for s in spec.scenes("val")] == ["VHVV_0003"]
    assert seed_normalization(spec.kind, "db").to_dict() == {"mean": [-16.54, -10.91], "std": [3.07, 2.89]}
    with pytest.raises(InputError, match=r"s2_2017_2018: no test_\* folders for the test split"):
        spec.scenes("test")


def _one_line(result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def test_bad_trees_fail_with_one_line(tree, tmp_path):
    from helpers import make_checkpoint

    ck = make_checkpoint(tmp_path / "ck.pt")
    evaluate = ["evaluate", "--checkpoint", str(ck), "--dataset", str(tree), "--split", "test", "-q"]
    (tree / "split" / "test.txt").write_text("0\n7\n")
    _one_line(runner.invoke(app, evaluate), "test.txt", "index 7 is out of range", "test_vhvv holds 3")
    (tree / "split" / "test.txt").unlink()
    _one_line(runner.invoke(app, evaluate), "test.txt", "split file not found")
    (tree / "split" / "val.txt").unlink()
    _one_line(runner.invoke(app, ["train", str(tree), "--out", str(tmp_path / "r"), *FAST, "--iterations", "1"]),
              "val.txt", "split file not found")
    (tree / "split" / "val.txt").write_text("4\n")
    (tree / "trainval_label" / "label_s1_0003.mat").rename(tree / "trainval_label" / "label_s1_0009.mat")
    _one_line(runner.invoke(app, ["train", str(tree), "--out", str(tmp_path / "r"), *FAST, "--iterations", "1"]),
              "train.txt", "index 2", "VHVV_0003.mat", "label_s1_0004.mat", "do not pair")
    (tree / "split" / "train.txt").write_text("0\nx1\n")
    listed = runner.invoke(app, ["info", str(tree)])  # every split shown, with what is wrong; exit 2
    _one_line(listed, "train.txt", "line 2 is 'x1', not an index")
    assert "val:            can't be read" in listed.stdout and "test.txt: split file not found" in listed.stdout
    assert not (tmp_path / "r").exists()


def test_the_tree_defaults_to_the_papers_brandenburg_model(tree, tmp_path):
    from slgt2_cli.train.config import resolve_config

    assert resolve_config(tree, tmp_path / "run").preset == "paper-brandenburg"
    assert resolve_config(tree, tmp_path / "run", preset="tiny").preset == "tiny"
    assert resolve_config(tmp_path, tmp_path / "run").preset == "paper"


def test_a_tree_with_two_image_folders_is_recognised_and_says_so(tree, tmp_path):
    from slgt2_cli.train.config import resolve_config

    (tree / "test_vv").mkdir()
    assert resolve_config(tree, tmp_path / "run").preset == "paper-brandenburg"  # recognising it reads no folder
    with pytest.raises(InputError, match="expected one image folder test_<bands> beside test_label, found: "
                                         "test_vhvv, test_vv"):
        open_dataset(tree).scenes("test")
    assert [s.id for s in open_dataset(tree).scenes("val")] == ["VHVV_0005"]  # the other splits still read
