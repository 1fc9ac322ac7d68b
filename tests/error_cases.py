"""Bad inputs and the one-line error each gets: the single source of `tests/test_errors.py` and `docs/errors.md`.

``build_world(root)`` writes a small dataset, a checkpoint and a set of broken files under ``root`` (a few
seconds); every case in :data:`CASES` is a command line over those files plus the substring its message must
contain. ``docs/generate_errors_table.py`` runs the cases and writes the table; the tests check that the
messages are still exactly the ones in the table.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.transform import from_origin

PLACEHOLDER = "DIR"
"""What the world's root directory is shown as in the documented messages."""


@dataclass(frozen=True)
class Case:
    id: str
    what: str  # the bad input, in words
    argv: Callable[[Path], list[str]]
    expect: str  # substring the message must contain
    patch: Callable[[object], None] | None = None  # gets pytest's monkeypatch (in-process faults)

    @property
    def command(self) -> str:
        return self.argv(Path(PLACEHOLDER))[0]


UTM33 = CRS.from_epsg(32633)


def _write(path: Path, data: np.ndarray, crs=UTM33, transform=None, descriptions=(), nodata=None,
           tags=None) -> Path:
    data = np.asarray(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs=crs, transform=transform or from_origin(500000, 5100000, 10, 10),
                       nodata=nodata) as dst:
        dst.write(data)
        for b, text in enumerate(descriptions, start=1):
            dst.set_band_description(b, text)
        if tags:
            dst.update_tags(**tags)
    return path


def _stack(rng: np.random.Generator, pols=("VV", "VH"), dates=("2021-05-08", "2021-06-13"), size=32) -> tuple:
    data = rng.normal(-12, 3, (len(dates) * len(pols), size, size)).astype(np.float32)
    return data, [f"{p}_{d}" for d in dates for p in pols]


def build_world(root: Path) -> Path:
    """A dataset, a checkpoint made from it and the broken inputs the cases use; returns ``root``."""
    from models import SLGT2Net, preset
    from slgt2_cli.checkpoint.format import Checkpoint, provenance, save_checkpoint
    from slgt2_cli.data.datasets import open_dataset
    from slgt2_cli.data.normalization import compute_normalization
    from slgt2_cli.data.temporal import TemporalRule
    from slgt2_cli.io.stacks import open_stack
    from slgt2_cli.synth.scenes import synthesize

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ds = root / "ds"
    synthesize(ds, size=64, dates=8, scenes=3, seed=0, scene_size=64)
    spec = open_dataset(ds)
    train = spec.scenes("train")
    with open_stack(train[0].image) as s:
        dates, bands, units = s.dates, list(s.polarisations), s.model_units
    config = preset("tiny", in_chans=len(bands), num_classes=len(spec.classes))
    rule = TemporalRule.fit([dates], length=config["temporal_length"])
    norm = compute_normalization(train, rule)
    torch.manual_seed(0)
    model = SLGT2Net(**config)
    ck = Checkpoint(config, model.state_dict(), spec.classes, norm.to_dict(), rule.to_dict(), bands, units, 64, 57,
                    provenance(kind="test"))
    save_checkpoint(ck, root / "ck.pt")

    # --- broken checkpoints
    raw = (root / "ck.pt").read_bytes()
    (root / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    torch.save({"weights": torch.zeros(3)}, root / "foreign.pt")
    torch.save({"state_dict": {"backbone.x": torch.zeros(1)}, "meta": {}}, root / "reference.pt")
    bad = Checkpoint(config, {k: v[..., :1] if v.ndim else v for k, v in model.state_dict().items()}, spec.classes,
                     norm.to_dict(), rule.to_dict(), bands, units, 64, 57)
    save_checkpoint(bad, root / "mismatched.pt")
    (root / "notes.tif").write_text("these are notes, not an image\n")

    # --- stacks
    data, names = _stack(rng)
    _write(root / "stack.tif", data, descriptions=names)
    _write(root / "nodates.tif", data)
    data3, names3 = _stack(rng, pols=("VV", "VH", "HH"))
    _write(root / "three.tif", data3, descriptions=names3)
    datawin, nameswin = _stack(rng, dates=("2021-12-20", "2022-01-01"))
    _write(root / "winter.tif", datawin, descriptions=nameswin)
    datahh, nameshh = _stack(rng, pols=("HH", "HV"))
    _write(root / "hh.tif", datahh, descriptions=nameshh)
    one = data[:2]
    for name, kw in {"crs": dict(crs=CRS.from_epsg(32634)),
                     "transform": dict(transform=from_origin(500100, 5100000, 10, 10)),
                     "size": dict(size=16), "bands": dict(bands=3)}.items():
        d = root / f"dates_{name}"
        _write(d / "S1_20210508.tif", one, descriptions=["VV", "VH"])
        other = one
        if "size" in kw:
            other = one[:, : kw.pop("size"), : 16]
        if "bands" in kw:
            other = np.concatenate([one, one[:1]])
            kw.pop("bands")
        _write(d / "S1_20210613.tif", other, **kw)
    (root / "empty_stack").mkdir()
    _write(root / "undated" / "S1_first.tif", one, descriptions=["VV", "VH"])

    # --- labels (64 x 64 scene grid)
    scene = ds / "scene"
    with rasterio.open(scene / "labels.tif") as src:
        labels, crs, transform = src.read(), src.crs, src.transform
    _write(root / "far_labels.tif", labels, crs=crs, transform=transform @ transform.translation(5000, 0))
    _write(root / "foreign_labels.tif", (labels % 7 + 1).astype(np.uint16), crs=crs, transform=transform)
    _write(root / "two_band_labels.tif", np.concatenate([labels, labels]), crs=crs, transform=transform)
    # a map to evaluate: the labels themselves, with the class table embedded as predict does
    from slgt2_cli.io.geotiff import MapWriter
    from slgt2_cli.io.grid import Grid

    with rasterio.open(scene / "labels.tif") as src:
        grid, values = Grid.of(src), src.read(1)
    with MapWriter.classes(root / "map.tif", grid, spec.classes) as w:
        w.write(rasterio.windows.Window(0, 0, grid.width, grid.height), values)

    # --- datasets
    (root / "not_a_dataset").mkdir()
    (root / "no_train" / "train" / "images").mkdir(parents=True)
    shutil.copy(ds / "classes.json", root / "no_train" / "classes.json")
    shutil.copytree(ds, root / "no_classes", ignore=shutil.ignore_patterns("classes.json", "scene"))
    foreign = root / "foreign_classes"
    shutil.copytree(ds, foreign, ignore=shutil.ignore_patterns("scene"))
    (foreign / "classes.json").write_text(json.dumps([{"value": 7001, "name": "a"}, {"value": 7002, "name": "b"}]))
    (root / "old_run").mkdir()
    shutil.copy(root / "ck.pt", root / "old_run" / "last.pt")
    (root / "a_file").write_text("")
    (root / "old_run" / "config.yaml").write_text("train:\n  preset: tiny\n  patch_size: 32\n  iterations: 2\n")
    (root / "run_at_4").mkdir()  # a run at step 4 of 8, to extend
    ck.training_state = {"step": 4}
    save_checkpoint(ck, root / "run_at_4" / "last.pt")
    ck.training_state = None
    (root / "run_at_4" / "config.yaml").write_text("train:\n  preset: tiny\n  patch_size: 32\n  iterations: 8\n")
    hh = Checkpoint(config, model.state_dict(), spec.classes, norm.to_dict(), rule.to_dict(), ["HH", "HV"], units, 64,
                    57, provenance(kind="test"))
    save_checkpoint(hh, root / "hh.pt")
    (root / "bad_config.yaml").write_text("preset: tiny\nworkers: -3\n")
    _build_safety_world(root, ds, labels, crs, transform)
    _build_brandenburg_trees(root)
    return root


def _build_brandenburg_trees(root: Path) -> None:
    """Brandenburg trees as distributed (two tiny test scenes), each broken in one way."""
    import scipy.io

    for name, split_file, labels in (("bb_index", "1\n5\n", ("0001", "0002")),
                                     ("bb_split_missing", None, ("0001", "0002")),
                                     ("bb_mismatch", "0\n1\n", ("0001", "0007"))):
        tree = root / name
        (tree / "test_vhvv").mkdir(parents=True)
        (tree / "test_label").mkdir()
        (tree / "split").mkdir()
        for sid, label_id in zip(("0001", "0002"), labels):
            scipy.io.savemat(tree / "test_vhvv" / f"VHVV_{sid}.mat", {"data": np.zeros((3, 8, 8, 2), np.float32)})
            scipy.io.savemat(tree / "test_label" / f"label_s1_{label_id}.mat", {"label": np.ones((8, 8), np.uint8)})
        if split_file is not None:
            (tree / "split" / "test.txt").write_text(split_file)


def _build_safety_world(root: Path, ds: Path, labels: np.ndarray, crs, transform) -> None:
    """Inputs of the 'nothing lost' cases (issue 16): bad class tables, float and unreferenced labels."""
    for name, change in (("bad_colour", {"color": "#zzzzzz"}), ("fraction_class", {"value": 1110.7})):
        bad = root / name
        shutil.copytree(ds, bad, ignore=shutil.ignore_patterns("scene"))
        table = json.loads((bad / "classes.json").read_text())
        table[0].update(change)
        (bad / "classes.json").write_text(json.dumps(table))
    fractional = labels.astype(np.float32)
    fractional[0, 5, 5] = 1110.7
    _write(root / "fractional_labels.tif", fractional, crs=crs, transform=transform)
    _write(root / "no_crs_labels.tif", labels, crs=None, transform=transform @ transform.translation(0.5, 0))


def _full_disk(monkeypatch) -> None:
    import shutil as sh
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(sh, "disk_usage", lambda path: usage(10 << 30, 10 << 30, 1024))


def _enospc_on_sync(monkeypatch) -> None:
    import errno
    import os

    from slgt2_cli.io import atomic

    def full(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)


P = ["predict", "--quiet", "--device", "cpu"]
T = ["train", "--preset", "tiny", "--patch-size", "32", "--iterations", "2", "--workers", "0", "--quiet",
     "--device", "cpu"]


def _p(*args: str) -> Callable[[Path], list[str]]:
    """predict argv with ``{}`` in args replaced by the world's root."""
    return lambda w: [a.replace("{}", str(w)) for a in (*P, *args)]


def _cmd(*args: str) -> Callable[[Path], list[str]]:
    return lambda w: [a.replace("{}", str(w)) for a in args]


CASES: list[Case] = [
    # --- files that are missing or not what they should be
    Case("stack_missing", "image stack path does not exist", _p("{}/ck.pt", "{}/nope.tif", "{}/out.tif"),
         "image stack not found"),
    Case("checkpoint_missing", "checkpoint path does not exist", _p("{}/nope.pt", "{}/stack.tif", "{}/out.tif"),
         "checkpoint not found"),
    Case("checkpoint_directory", "a directory given as the checkpoint", _p("{}/ds", "{}/stack.tif", "{}/out.tif"),
         "not a checkpoint file"),
    Case("stack_not_raster", "a stack file that is not a raster", _p("{}/ck.pt", "{}/notes.tif", "{}/out.tif"),
         "not a readable raster"),
    # --- stacks whose dates do not share one grid
    Case("dates_crs", "per-date files on different CRS", _p("{}/ck.pt", "{}/dates_crs", "{}/out.tif"),
         "all dates of a stack must share one grid"),
    Case("dates_transform", "per-date files with different transforms",
         _p("{}/ck.pt", "{}/dates_transform", "{}/out.tif"), "all dates of a stack must share one grid"),
    Case("dates_size", "per-date files of different sizes", _p("{}/ck.pt", "{}/dates_size", "{}/out.tif"),
         "all dates of a stack must share one grid"),
    Case("dates_bands", "per-date files with different band counts", _p("{}/ck.pt", "{}/dates_bands", "{}/out.tif"),
         "has 3 bands"),
    # --- dates
    Case("stack_dir_empty", "a stack directory without .tif files", _p("{}/ck.pt", "{}/empty_stack", "{}/out.tif"),
         "holds no .tif files"),
    Case("stack_file_undated", "a per-date file without a date in its name", _p("{}/ck.pt", "{}/undated", "{}/out.tif"),
         "no date (YYYYMMDD or YYYY-MM-DD) in the file name"),
    Case("stack_no_dates", "a multi-band stack whose bands carry no dates",
         _p("{}/ck.pt", "{}/nodates.tif", "{}/out.tif"), "the stack has no dates"),
    Case("stack_outside_season", "a stack whose dates all fall outside the season the model composites",
         _p("{}/ck.pt", "{}/winter.tif", "{}/out.tif"), "or train a model with temporal mode 'order'"),
    # --- stack versus checkpoint
    Case("channels", "3 channels per date, the checkpoint has 2", _p("{}/ck.pt", "{}/three.tif", "{}/out.tif"),
         "the stack has 3 channels"),
    Case("polarisations", "HH/HV stack, the checkpoint has VV/VH", _p("{}/ck.pt", "{}/hh.tif", "{}/out.tif"),
         "differ from the model's"),
    Case("units_unknown", "--units that is not a unit", _p("{}/ck.pt", "{}/stack.tif", "{}/out.tif", "--units", "furlongs"),
         "is not one of 'db'"),
    Case("units_mismatch", "units the checkpoint cannot take (raw values for a dB model)",
         _p("{}/ck.pt", "{}/stack.tif", "{}/out.tif", "--units", "raw"), "trained on 'db'"),
    # --- checkpoints
    Case("checkpoint_truncated", "a truncated checkpoint", _p("{}/truncated.pt", "{}/stack.tif", "{}/out.tif"),
         "corrupt, truncated or foreign"),
    Case("checkpoint_not_torch", "a file that is not a checkpoint at all", _p("{}/notes.tif", "{}/stack.tif", "{}/out.tif"),
         "corrupt, truncated or foreign"),
    Case("checkpoint_foreign", "a PyTorch file that is not an slgt2 checkpoint",
         _p("{}/foreign.pt", "{}/stack.tif", "{}/out.tif"), "is not an slgt2 checkpoint"),
    Case("checkpoint_reference", "a reference (mmseg) checkpoint given to predict",
         _p("{}/reference.pt", "{}/stack.tif", "{}/out.tif"), "slgt2 convert-checkpoint"),
    Case("checkpoint_weights", "checkpoint weights that do not fit its model config",
         _p("{}/mismatched.pt", "{}/stack.tif", "{}/out.tif"), "weights do not fit"),
    # --- outputs
    Case("output_exists", "the output exists and --overwrite is not given",
         _p("{}/ck.pt", "{}/stack.tif", "{}/notes.tif"), "--overwrite"),
    Case("output_dir_unwritable", "the output's directory cannot be created",
         _p("{}/ck.pt", "{}/stack.tif", "{}/a_file/out.tif"), "cannot create the output directory"),
    Case("disk_full", "not enough free disk space for the map", _p("{}/ck.pt", "{}/stack.tif", "{}/out.tif"),
         "not enough free disk space", patch=_full_disk),
    # --- tiles
    Case("stride_gt_tile", "--stride larger than --tile",
         _p("{}/ck.pt", "{}/stack.tif", "{}/out.tif", "--tile", "32", "--stride", "48"), "must not exceed --tile"),
    Case("tile_zero", "--tile 0", _p("{}/ck.pt", "{}/stack.tif", "{}/out.tif", "--tile", "0"),
         "'--tile': must be at least 1"),
    Case("tile_huge", "--tile far too large to fit in memory",
         _p("{}/ck.pt", "{}/stack.tif", "{}/out.tif", "--tile", "100000"), "larger than 4096 px"),
    Case("stride_zero", "--stride 0", _p("{}/ck.pt", "{}/stack.tif", "{}/out.tif", "--stride", "0"),
         "'--stride': must be at least 1"),
    # --- labels and evaluate
    Case("labels_missing", "label raster path does not exist", _cmd("evaluate", "{}/map.tif", "{}/nope.tif"),
         "label raster not found"),
    Case("labels_no_overlap", "a label raster that does not overlap the map",
         _cmd("evaluate", "{}/map.tif", "{}/far_labels.tif"), "does not overlap"),
    Case("labels_foreign_values", "label values none of which are in the class table",
         _cmd("evaluate", "{}/map.tif", "{}/foreign_labels.tif"), "none of the label values"),
    Case("labels_two_bands", "a label raster with two bands", _cmd("evaluate", "{}/map.tif", "{}/two_band_labels.tif"),
         "must have one band"),
    Case("prediction_not_raster", "a prediction that is not a raster", _cmd("evaluate", "{}/notes.tif", "{}/map.tif"),
         "not a readable raster"),
    # --- datasets and train
    Case("dataset_missing", "dataset directory does not exist", lambda w: [*T, str(w / "nope"), "--out", str(w / "run")],
         "dataset directory not found"),
    Case("dataset_empty", "an empty directory given as the dataset",
         lambda w: [*T, str(w / "not_a_dataset"), "--out", str(w / "run")], "no dataset found"),
    Case("dataset_no_train", "a dataset whose train split has no scenes",
         lambda w: [*T, str(w / "no_train"), "--out", str(w / "run")], "has no training scenes"),
    Case("dataset_no_classes", "a dataset without classes.json",
         lambda w: [*T, str(w / "no_classes"), "--out", str(w / "run")], "has no classes.json"),
    Case("split_index", "a Brandenburg split file whose index is past the end of its folder",
         _cmd("evaluate", "--checkpoint", "{}/ck.pt", "--dataset", "{}/bb_index", "--split", "test"),
         "index 5 is out of range"),
    Case("split_missing", "a Brandenburg tree without the split file asked for",
         _cmd("evaluate", "--checkpoint", "{}/ck.pt", "--dataset", "{}/bb_split_missing", "--split", "test"),
         "split file not found"),
    Case("split_pairing", "a Brandenburg image and label at the same sorted position with other numbers",
         _cmd("evaluate", "--checkpoint", "{}/ck.pt", "--dataset", "{}/bb_mismatch", "--split", "test"),
         "do not pair"),
    Case("dataset_foreign_classes", "training labels none of which are in classes.json",
         lambda w: [*T, str(w / "foreign_classes"), "--out", str(w / "run")], "none of the label values"),
    Case("run_exists", "train into a run directory that holds a run",
         lambda w: [*T, str(w / "ds"), "--out", str(w / "old_run")], "use --resume"),
    Case("resume_nothing", "--resume without a last.pt",
         lambda w: [*T, str(w / "ds"), "--out", str(w / "fresh_run"), "--resume"], "nothing to resume"),
    Case("run_dir_unwritable", "a run directory that cannot be created",
         lambda w: [*T, str(w / "ds"), "--out", str(w / "a_file" / "run")], "cannot write the run directory"),
    Case("patch_size", "--patch-size that is not a multiple of 32",
         lambda w: [*T, "--patch-size", "48", str(w / "ds"), "--out", str(w / "run")], "multiple of 32"),
    Case("resume_other_preset", "--resume with another preset than the run's",
         lambda w: [*T, str(w / "ds"), "--out", str(w / "old_run"), "--resume", "--preset", "paper"],
         "differs from the run's"),
    Case("extend_not_ahead", "--resume --iterations at or below the run's current step",
         lambda w: [*T, str(w / "ds"), "--out", str(w / "run_at_4"), "--resume"], "is not above the run's current step 4"),
    Case("init_other_bands", "--init from a checkpoint trained on other bands (HH/HV for a VV/VH dataset)",
         lambda w: [*T, str(w / "ds"), "--out", str(w / "run_init"), "--init", str(w / "hh.pt")],
         "differ from the dataset's"),
    Case("resume_overwrite", "--resume together with --overwrite",
         lambda w: [*T, str(w / "ds"), "--out", str(w / "old_run"), "--resume", "--overwrite"], "cannot be combined"),
    Case("config_bad_value", "a config file with a value out of range",
         lambda w: [*T, str(w / "ds"), "--out", str(w / "run"), "--config", str(w / "bad_config.yaml")],
         "workers: must be at least 0"),
    # --- convert-checkpoint
    Case("convert_corrupt", "a reference checkpoint that is not a checkpoint",
         _cmd("convert-checkpoint", "{}/notes.tif", "{}/converted.pt"), "notes.tif"),
    # --- nothing lost (issue 16): outputs onto inputs, full disks, unwritable outputs, class tables, labels
    Case("output_is_input", "the map would overwrite its own stack (even with --overwrite)",
         _p("{}/ck.pt", "{}/stack.tif", "{}/stack.tif", "--overwrite"), "would overwrite the image stack"),
    Case("confidence_is_output", "--confidence names the map itself",
         _p("{}/ck.pt", "{}/stack.tif", "{}/out.tif", "--confidence", "{}/out.tif"), "are the same file"),
    Case("report_is_input", "an evaluate report pointed at the label raster",
         _cmd("evaluate", "{}/map.tif", "{}/foreign_labels.tif", "--json", "{}/foreign_labels.tif"),
         "would overwrite the label raster"),
    Case("convert_onto_reference", "convert-checkpoint X X --overwrite",
         _cmd("convert-checkpoint", "{}/notes.tif", "{}/notes.tif", "--overwrite"),
         "would overwrite the reference checkpoint"),
    Case("convert_unwritable", "the converted checkpoint's directory cannot be created",
         _cmd("convert-checkpoint", "{}/notes.tif", "{}/a_file/converted.pt"), "cannot create the output directory"),
    Case("report_disk_full", "the disk fills while an evaluate report is written",
         _cmd("evaluate", "{}/map.tif", "{}/map.tif", "--json", "{}/report.json"), "disk full", patch=_enospc_on_sync),
    Case("train_disk_full", "no room for the checkpoints (checked before the first step)",
         lambda w: [*T, str(w / "ds"), "--out", str(w / "full_run")], "not enough free disk space", patch=_full_disk),
    Case("synth_unwritable", "synth into a directory that cannot be created",
         _cmd("synth", "-q", "{}/a_file/ds"), "cannot write"),
    Case("class_colour", "a class colour that is not #rrggbb hex",
         lambda w: [*T, str(w / "bad_colour"), "--out", str(w / "run")], "is not #rrggbb"),
    Case("class_value_fraction", "a class value with a fraction (1110.7)",
         lambda w: [*T, str(w / "fraction_class"), "--out", str(w / "run")], "is not an integer"),
    Case("labels_fractional", "a float label raster holding 1110.7",
         _cmd("evaluate", "{}/map.tif", "{}/fractional_labels.tif"), "non-integer values"),
    Case("labels_no_crs", "labels without a CRS, half a pixel off the map's grid",
         _cmd("evaluate", "{}/map.tif", "{}/no_crs_labels.tif"), "origin x"),
    # --- predict-many: what stops the whole run (a bad stack only fails its own row of summary.json)
    Case("many_no_stacks", "predict-many without stacks", _cmd("predict-many", "-q", "{}/ck.pt", "--out-dir", "{}/maps"),
         "no stacks to map"),
    Case("many_list_missing", "a --list file that does not exist",
         _cmd("predict-many", "-q", "{}/ck.pt", "--list", "{}/nope.txt", "--out-dir", "{}/maps"),
         "cannot read the list of stacks"),
    Case("many_out_dir_file", "an --out-dir that is a file",
         _cmd("predict-many", "-q", "{}/ck.pt", "{}/stack.tif", "--out-dir", "{}/notes.tif"),
         "the output must be a directory"),
    Case("many_cluster_unknown", "a --cluster that is neither local[:N] nor an address",
         _cmd("predict-many", "-q", "{}/ck.pt", "{}/stack.tif", "--out-dir", "{}/maps", "--cluster", "nowhere"),
         "is neither local[:N] nor a scheduler address"),
]


# --- running a case and the documented table ----------------------------------------------------------------
DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
TABLE_HEADER = ("| Case | Bad input | Command | Message on stderr (exit status 2) |\n"
                "|---|---|---|---|\n")


def run_case(case: Case, root: Path, monkeypatch) -> tuple[int, str]:
    """Run ``case`` in-process; (exit code, stderr with the world's root shown as DIR)."""
    from typer.testing import CliRunner

    from slgt2_cli.cli.app import app

    if case.patch is not None:
        case.patch(monkeypatch)
    result = CliRunner().invoke(app, case.argv(root), env={"SLGT2_DEBUG": "0", "COLUMNS": "200"})
    return result.exit_code, result.stderr.replace(str(root), PLACEHOLDER)


def render_row(case: Case, message: str) -> str:
    text = message.strip().replace("|", "\\|")
    return f"| `{case.id}` | {case.what} | `{case.command}` | `` {text} `` |\n"


def render_table(messages: dict[str, str]) -> str:
    return TABLE_HEADER + "".join(render_row(c, messages[c.id]) for c in CASES)
