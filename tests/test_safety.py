"""Nothing lost (issue 16 points 2, 3, 5, 6; issue 12 point 4; issue 18 point 2): outputs never land on inputs,
a full disk never leaves or replaces a broken file, class tables and labels are validated when first read,
files come out with the umask's mode and temporaries never outlive an error, Ctrl-C or SIGTERM."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from helpers import make_checkpoint, sar_values, utm_grid, write_raster, write_stack
from typer.testing import CliRunner

from slgt2_cli.cli.app import app
from slgt2_cli.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"SLGT2_DEBUG": "0", "COLUMNS": "200"})


def error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("slgt2: error: "), result.output
    return lines[-1]


def partials(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if ".partial" in p.name)


def enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope="module")
def ck(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "ck.pt", patch=32, stride=32)


@pytest.fixture
def stack(tmp_path) -> Path:
    return write_stack(tmp_path / "stack.tif", sar_values(32, 32))


@pytest.fixture
def good_map(ck, stack, tmp_path) -> Path:
    """A map predict wrote; the tests check it survives failed --overwrite runs byte for byte."""
    out = tmp_path / "map.tif"
    assert run("predict", "-q", "--device", "cpu", ck, stack, out).exit_code == 0
    return out


def labels_for(path: Path, values: np.ndarray, grid=None) -> Path:
    return write_raster(path, values, grid or utm_grid(values.shape[1], values.shape[0]))


# --- issue 16 point 3: outputs that resolve to an input or to another output --------------------------------------
def test_predict_overwrite_onto_its_own_stack_is_refused(ck, stack):
    before = stack.read_bytes()
    result = run("predict", "-q", "--device", "cpu", ck, stack, stack, "--overwrite")
    assert result.exit_code == 2
    assert "would overwrite the image stack" in error_line(result)
    assert stack.read_bytes() == before


def test_predict_confidence_through_a_symlink_to_the_stack_is_refused(ck, stack, tmp_path):
    link = tmp_path / "link.tif"
    link.symlink_to(stack)
    before = stack.read_bytes()
    result = run("predict", "-q", "--device", "cpu", ck, stack, tmp_path / "out.tif", "--confidence", link,
                 "--overwrite")
    assert result.exit_code == 2 and "confidence map would overwrite the image stack" in error_line(result)
    assert stack.read_bytes() == before and not (tmp_path / "out.tif").exists()


def test_predict_glob_into_the_stacks_directory_is_refused(ck, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    stacks = [write_stack(d / f"{n}.tif", sar_values(32, 32, seed=i)) for i, n in enumerate("ab")]
    before = [s.read_bytes() for s in stacks]
    result = run("predict", "-q", "--device", "cpu", ck, f"{d}/*.tif", d, "--overwrite")
    assert result.exit_code == 2 and "would overwrite the image stack" in error_line(result)
    assert [s.read_bytes() for s in stacks] == before


def test_predict_output_inside_a_per_date_stack_is_refused(ck, tmp_path):
    stack = write_stack(tmp_path / "dates", sar_values(32, 32), per_date_dir=True)
    result = run("predict", "-q", "--device", "cpu", ck, stack, stack / "map.tif")
    assert result.exit_code == 2 and "inside the image stack" in error_line(result)
    assert not (stack / "map.tif").exists()


def test_predict_confidence_equal_to_the_map_is_refused(ck, stack, tmp_path):
    out = tmp_path / "out.tif"
    result = run("predict", "-q", "--device", "cpu", ck, stack, out, "--confidence", tmp_path / "." / "out.tif")
    assert result.exit_code == 2 and "the confidence map and the map are the same file" in error_line(result)
    assert not out.exists()


def test_predict_onto_the_checkpoint_is_refused(ck, stack, tmp_path):
    copy = shutil.copy(ck, tmp_path / "ck.tif")
    result = run("predict", "-q", "--device", "cpu", copy, stack, copy, "--overwrite")
    assert result.exit_code == 2 and "would overwrite the checkpoint" in error_line(result)


@pytest.mark.parametrize("option, target", [("--json", "labels"), ("--csv", "prediction"), ("--plot", "hardlink")])
def test_evaluate_reports_never_overwrite_an_input(good_map, tmp_path, option, target):
    labels = labels_for(tmp_path / "labels.tif", np.full((32, 32), 1110, np.uint16))
    victim = {"labels": labels, "prediction": good_map}.get(target)
    if target == "hardlink":
        victim = tmp_path / "hard.tif"
        os.link(labels, victim)
    before = victim.read_bytes()
    result = run("evaluate", good_map, labels, option, victim)
    assert result.exit_code == 2, result.output
    assert "would overwrite the" in error_line(result) and str(victim) in error_line(result)
    assert victim.read_bytes() == before


def test_evaluate_reports_must_differ_from_each_other(good_map, tmp_path):
    labels = labels_for(tmp_path / "labels.tif", np.full((32, 32), 1110, np.uint16))
    result = run("evaluate", good_map, labels, "--json", tmp_path / "r", "--csv", tmp_path / "r")
    assert result.exit_code == 2 and "the CSV report and the JSON report are the same file" in error_line(result)


def test_evaluate_checkpoint_report_onto_a_dataset_label_is_refused(tmp_path):
    from slgt2_cli.io.classes import ClassTable
    from slgt2_cli.synth.scenes import synthesize

    ds = synthesize(tmp_path / "ds", size=32, dates=4, scenes=3, scene_size=32)
    ckpt = make_checkpoint(tmp_path / "ck.pt", table=ClassTable.load(ds.root / "classes.json"), patch=32, stride=32)
    victim = ds.root / "test" / "labels" / f"{ds.splits['test'][0]}.tif"
    before = victim.read_bytes()
    result = run("evaluate", "--checkpoint", ckpt, "--dataset", ds.root, "--device", "cpu", "-q", "--json", victim)
    assert result.exit_code == 2 and "would overwrite the label raster" in error_line(result)
    assert victim.read_bytes() == before


def test_convert_onto_its_reference_is_refused(tmp_path):
    ref = tmp_path / "ref.pth"
    ref.write_bytes(b"precious reference weights")
    result = run("convert-checkpoint", ref, ref, "--overwrite")
    assert result.exit_code == 2 and "would overwrite the reference checkpoint" in error_line(result)
    assert ref.read_bytes() == b"precious reference weights"


# --- issue 16 point 2: a full disk ---------------------------------------------------------------------------------
def _truncating_copy(real):
    def copy(src, dst, **kw):  # GDAL "succeeds" but the file on disk is cut short
        real(src, dst, **kw)
        size = os.path.getsize(dst)
        with open(dst, "r+b") as f:
            f.truncate(size // 2)
    return copy


@pytest.mark.parametrize("point", ["block_write", "cog_copy", "truncated_cog", "fsync", "rename"])
def test_predict_full_disk_keeps_the_good_map(ck, stack, good_map, monkeypatch, point):
    import rasterio.shutil as rshutil

    from slgt2_cli.io import atomic, geotiff

    before = good_map.read_bytes()
    if point == "block_write":  # GDAL's write of the staging file fails with ENOSPC
        monkeypatch.setattr(geotiff.MapWriter, "write", _enospc_inside_writing)
    elif point == "cog_copy":
        monkeypatch.setattr(rshutil, "copy", enospc)
    elif point == "truncated_cog":
        monkeypatch.setattr(rshutil, "copy", _truncating_copy(rshutil.copy))
    elif point == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", enospc)
    else:
        monkeypatch.setattr(atomic.os, "replace", enospc)
    result = run("predict", "-q", "--device", "cpu", ck, stack, good_map, "--overwrite", "--confidence",
                 good_map.with_name("conf.tif"))
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert str(good_map.parent) in line and ("disk full" in line or "cannot be read back" in line), line
    assert good_map.read_bytes() == before
    assert partials(good_map.parent) == []


def _enospc_inside_writing(self, window, data):
    from slgt2_cli.io.atomic import writing

    with writing(self.path):
        enospc()


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MB tmpfs (needs root); skipped where it cannot be mounted."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                                       capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def _fill(mnt: Path, leave: int) -> None:
    free = shutil.disk_usage(mnt).free
    (mnt / "filler").write_bytes(b"\0" * max(0, free - leave))


def test_predict_on_a_really_full_disk(ck, small_tmpfs, tmp_path, monkeypatch):
    """On a real 1 MB tmpfs (the free-space pre-check fooled): exit 2 'disk full', the good map kept."""
    stack = write_stack(tmp_path / "big.tif", sar_values(256, 256))
    out = small_tmpfs / "map.tif"
    out.write_bytes(b"a good map")
    _fill(small_tmpfs, 4_000)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 40, 0, 1 << 40))
    result = run("predict", "-q", "--device", "cpu", "--tile", "128", ck, stack, out, "--overwrite",
                 "--probabilities", small_tmpfs / "p.tif")
    assert result.exit_code == 2, result.output
    assert f"{out}: disk full while writing" in error_line(result) or "p.tif: disk full" in error_line(result)
    assert out.read_bytes() == b"a good map"
    assert partials(small_tmpfs) == []


def test_checkpoint_on_a_really_full_disk(ck, small_tmpfs):
    """torch's zip writer reports ENOSPC as a RuntimeError: still 'disk full', the old file kept."""
    from slgt2_cli.checkpoint.format import load_checkpoint, save_checkpoint

    target = small_tmpfs / "last.pt"
    target.write_bytes(b"the last good checkpoint")
    with pytest.raises(InputError, match="disk full while writing") as info:
        save_checkpoint(load_checkpoint(ck), target)
    assert str(target) in str(info.value)
    assert target.read_bytes() == b"the last good checkpoint" and partials(small_tmpfs) == []


def test_synth_on_a_really_full_disk(small_tmpfs, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 40, 0, 1 << 40))
    result = run("synth", "-q", small_tmpfs / "ds", "--size", "256", "--scene-size", "64", "--scenes", "3",
                 "--dates", "8")
    assert result.exit_code == 2 and "disk full while writing" in error_line(result)
    assert partials(small_tmpfs) == []
    assert all(p.stat().st_size > 0 for p in small_tmpfs.rglob("*.tif"))


def test_synth_free_space_is_checked_first(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 40, 0, 100_000))
    result = run("synth", "-q", tmp_path / "ds", "--size", "256")
    assert result.exit_code == 2 and "not enough free disk space for the synthetic dataset" in error_line(result)
    assert list((tmp_path / "ds").rglob("*.tif")) == []


def test_synth_write_failure_leaves_no_empty_files(tmp_path, monkeypatch):
    from slgt2_cli.io import atomic

    monkeypatch.setattr(atomic.os, "fsync", enospc)
    result = run("synth", "-q", tmp_path / "ds", "--size", "32", "--scene-size", "32", "--scenes", "3",
                 "--dates", "2")
    assert result.exit_code == 2 and "disk full" in error_line(result)
    assert list((tmp_path / "ds").rglob("*.tif")) == [] and partials(tmp_path) == []


def test_evaluate_report_on_a_full_disk(good_map, tmp_path, monkeypatch):
    from slgt2_cli.io import atomic

    labels = labels_for(tmp_path / "labels.tif", np.full((32, 32), 1110, np.uint16))
    report = tmp_path / "m.json"
    report.write_text("old report")
    monkeypatch.setattr(atomic.os, "fsync", enospc)
    result = run("evaluate", good_map, labels, "--json", report)
    assert result.exit_code == 2 and f"{report}: disk full" in error_line(result)
    assert report.read_text() == "old report" and partials(tmp_path) == []


def _tiny_reference(path: Path) -> Path:
    import models

    torch.manual_seed(0)
    net = models.create_model("paper-brandenburg", embed_dims=(24, 48, 96, 192), depths=(2, 2, 2, 2),
                              num_heads=(3, 3, 6, 6), stcrb=True, drop_path=0.0, topk_div=2)
    state = {f"backbone.{k}": v for k, v in net.state_dict().items()}
    state["backbone.abs_pos_embeds.0"] = torch.zeros(1, 4, 24)
    state["decode_head.conv_seg.weight"] = torch.zeros(15, 8, 1, 1)
    torch.save({"meta": {}, "state_dict": state}, path)
    return path


@pytest.mark.parametrize("failure", ["disk_full", "unwritable"])
def test_convert_write_failures_exit_2(tmp_path, monkeypatch, failure):
    from slgt2_cli.io import atomic

    ref = _tiny_reference(tmp_path / "ref.pth")
    out = tmp_path / "out.pt"
    if failure == "disk_full":
        out.write_bytes(b"old")
        monkeypatch.setattr(atomic.os, "fsync", enospc)
    else:
        (tmp_path / "a_file").write_text("")
        out = tmp_path / "a_file" / "out.pt"
    result = run("convert-checkpoint", ref, out, "--num-heads", "3,3,6,6", "--topk-div", "2", "--overwrite")
    assert result.exit_code == 2, result.output
    assert ("disk full" if failure == "disk_full" else "cannot create the output directory") in error_line(result)
    assert partials(tmp_path) == []
    if failure == "disk_full":
        assert out.read_bytes() == b"old"


TRAIN = ["train", "--preset", "tiny", "--patch-size", "32", "--iterations", "2", "--workers", "0", "-q",
         "--device", "cpu"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from slgt2_cli.synth.scenes import synthesize

    return synthesize(tmp_path_factory.mktemp("ds") / "ds", size=32, dates=4, scenes=3, scene_size=32).root


def test_train_checks_room_for_checkpoints_before_the_first_step(dataset, tmp_path, monkeypatch):
    from slgt2_cli.train import loop

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 40, 0, 1 << 20))
    steps = []
    monkeypatch.setattr(loop, "train_step", lambda *a: steps.append(1) or 0.0)
    result = run(*TRAIN, dataset, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "not enough free disk space for the checkpoints" in error_line(result)
    assert steps == []


def test_train_checkpoint_on_a_full_disk(dataset, tmp_path, monkeypatch):
    from slgt2_cli.checkpoint import format as fmt

    real = torch.save

    def save(obj, f, *a, **kw):
        real(obj, f, *a, **kw)
        enospc()

    monkeypatch.setattr(fmt.torch, "save", save)
    result = run(*TRAIN, dataset, "--out", tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert "disk full" in error_line(result) and ".pt" in error_line(result)
    assert not list((tmp_path / "run").glob("*.pt")) and partials(tmp_path) == []


# --- issue 12 point 4: one writer, the umask's mode, no temporaries left ------------------------------------------
@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_output_is_mode_0644(umask_022, ck, stack, dataset, tmp_path):
    from slgt2_cli.checkpoint.format import load_checkpoint, save_checkpoint

    out = tmp_path / "out"
    assert run("predict", "-q", "--device", "cpu", ck, stack, out / "map.tif", "--confidence",
               out / "conf.tif").exit_code == 0
    labels = labels_for(tmp_path / "labels.tif", np.full((32, 32), 1110, np.uint16))
    assert run("evaluate", out / "map.tif", labels, "--json", out / "m.json", "--csv", out / "m.csv",
               "--plot", out / "m.png").exit_code == 0
    save_checkpoint(load_checkpoint(ck), out / "copy.pt")
    run_dir = tmp_path / "run"
    assert run(*TRAIN, dataset, "--out", run_dir).exit_code == 0
    assert run("synth", "-q", tmp_path / "ds", "--size", "32", "--scene-size", "32", "--scenes", "3",
               "--dates", "2").exit_code == 0
    files = [*out.iterdir(), *(run_dir / n for n in ("best.pt", "last.pt", "config.yaml", "curves.png")),
             *(p for p in (tmp_path / "ds").rglob("*") if p.is_file())]
    assert len(files) > 12
    assert {str(p): oct(_mode(p)) for p in files if _mode(p) != 0o644} == {}


def test_interrupted_checkpoint_write_leaves_the_old_file_and_no_temporary(ck, tmp_path, monkeypatch):
    from slgt2_cli.checkpoint import format as fmt

    target = tmp_path / "last.pt"
    shutil.copy(ck, target)
    before = target.read_bytes()
    real = torch.save

    def interrupted(obj, f, *a, **kw):
        real(obj, f, *a, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(fmt.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fmt.save_checkpoint(fmt.load_checkpoint(ck), target)
    assert target.read_bytes() == before and partials(tmp_path) == []


def test_a_checkpoint_that_does_not_read_back_never_replaces_the_old_one(ck, tmp_path, monkeypatch):
    from slgt2_cli.checkpoint import format as fmt

    target = tmp_path / "best.pt"
    shutil.copy(ck, target)
    before = target.read_bytes()
    real = torch.save

    def silently_cut_short(obj, f, *a, **kw):  # a write that "succeeds" but leaves half a file
        real(obj, f, *a, **kw)
        f.flush()
        f.truncate(f.tell() // 2)

    monkeypatch.setattr(fmt.torch, "save", silently_cut_short)
    with pytest.raises(InputError, match="cannot be read back"):
        fmt.save_checkpoint(fmt.load_checkpoint(ck), target)
    assert target.read_bytes() == before and partials(tmp_path) == []


def test_a_killed_runs_temporary_is_removed_by_the_next_write(ck, tmp_path):
    from slgt2_cli.checkpoint.format import load_checkpoint, save_checkpoint

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    orphan = tmp_path / f".last.pt.partial-{dead}.pt"
    orphan.write_bytes(b"half a checkpoint")
    save_checkpoint(load_checkpoint(ck), tmp_path / "last.pt")
    assert not orphan.exists() and partials(tmp_path) == []


def test_interrupted_synth_leaves_no_temporary(tmp_path, monkeypatch):
    from slgt2_cli.synth import scenes

    calls = []
    real = scenes.backscatter

    def backscatter(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(scenes, "backscatter", backscatter)
    result = run("synth", "-q", tmp_path / "ds", "--size", "32", "--scene-size", "32", "--scenes", "3",
                 "--dates", "2")
    assert result.exit_code == 130
    assert partials(tmp_path) == []


def _wait_for(predicate, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_synth_signal_exits_130_without_temporaries(tmp_path, signum):
    """A real process: the 21 MB temporary of the large scene is gone after Ctrl-C or SIGTERM."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "slgt2_cli", "synth", "-q", str(out), "--size", "2048",
                             "--scenes", "3", "--scene-size", "16", "--dates", "4"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: any(p.name.startswith(".image.tif.partial") for p in out.rglob("*"))), \
            "the large scene was never started"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("slgt2: error: interrupted"), err
    assert partials(tmp_path) == [] and not (out / "scene" / "image.tif").exists()


def _sigterm_self(*_a, **_kw):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler raises KeyboardInterrupt long before
    raise AssertionError("SIGTERM was not turned into an interrupt")


@pytest.mark.parametrize("command", ["evaluate", "evaluate-checkpoint", "train"])
def test_sigterm_exits_130_with_a_message(command, good_map, dataset, tmp_path, monkeypatch):
    from slgt2_cli.scoring import evaluator
    from slgt2_cli.train import loop

    if command == "evaluate":
        monkeypatch.setattr(evaluator, "score_map", _sigterm_self)
        labels = labels_for(tmp_path / "labels.tif", np.full((32, 32), 1110, np.uint16))
        argv = ["evaluate", good_map, labels, "--json", tmp_path / "m.json"]
    elif command == "evaluate-checkpoint":
        monkeypatch.setattr("slgt2_cli.data.datasets.open_dataset", _sigterm_self)
        argv = ["evaluate", "--checkpoint", make_checkpoint(tmp_path / "ck.pt"), "--dataset", dataset]
    else:
        monkeypatch.setattr(loop, "prepare_run", _sigterm_self)  # training start-up
        argv = [*TRAIN, dataset, "--out", tmp_path / "run"]
    def unhandled(*_a):  # what SIGTERM meets if the command installs nothing (instead of killing pytest)
        raise RuntimeError("SIGTERM reached the default handler")

    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        result = run(*argv)
        assert signal.getsignal(signal.SIGTERM) is unhandled
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.exit_code == 130, result.output
    assert error_line(result).startswith("slgt2: error: interrupted: SIGTERM received")
    assert partials(tmp_path) == []


# --- issue 16 point 6: unwritable outputs and messages that say what differs -------------------------------------
@pytest.mark.parametrize("command", ["synth", "demo"])
def test_unwritable_output_exits_2(command, tmp_path):
    (tmp_path / "a_file").write_text("")
    target = tmp_path / "a_file" / "out"
    argv = ["synth", "-q", target] if command == "synth" else ["demo", "--quick", "--device", "cpu", "--out", target]
    result = run(*argv)
    assert result.exit_code == 2, result.output
    assert "cannot write" in error_line(result) and str(target) in error_line(result)


def test_read_only_filesystem_exits_2(tmp_path):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        result = run("synth", "-q", mnt / "ds", "--size", "32", "--scene-size", "32")
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
    assert result.exit_code == 2 and "Read-only file system" in error_line(result)


def test_labels_without_crs_say_what_differs(tmp_path):
    from slgt2_cli.io.grid import Grid
    from slgt2_cli.io.labels import open_aligned_labels

    grid = utm_grid(16, 16)
    shifted = Grid(None, grid.transform @ grid.transform.translation(0.5, 0), 16, 16)
    labels = write_raster(tmp_path / "l.tif", np.ones((16, 16), np.uint16), shifted)
    with pytest.raises(InputError) as info:
        with open_aligned_labels(labels, grid):
            pass
    text = str(info.value)
    assert "origin x 500005 vs 500000" in text and "CRS no CRS vs EPSG:32633" in text
    assert "size 16x16 differs" not in text


def test_sub_pixel_grid_mismatch_shows_the_difference(ck, tmp_path):
    stack = write_stack(tmp_path / "dates", sar_values(32, 32), per_date_dir=True)
    second = sorted(stack.iterdir())[1]
    with rasterio.open(second, "r+") as dst:
        t = dst.transform
        dst.transform = t @ t.translation(0.01, 0)  # 0.1 m: invisible at 6 digits
    result = run("predict", "-q", "--device", "cpu", ck, stack, tmp_path / "map.tif")
    assert result.exit_code == 2
    assert "origin x 500000.1 vs 500000" in error_line(result)


# --- issue 16 point 5: class tables and float labels -------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"color": "#zzzzzz"}, "colour '#zzzzzz' is not #rrggbb"),
    ({"value": 1110.7}, "value 1110.7 is not an integer"),
    ({"value": True}, "value True is not an integer"),
])
def test_bad_class_table_entries_are_refused(change, message, dataset, tmp_path):
    """Refused when the table is first read: before training, not at the first predict after it."""
    from slgt2_cli.io.classes import ClassTable

    with pytest.raises(InputError, match=message):
        ClassTable.from_list([{"value": 1, **change}], tmp_path / "classes.json")
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    table = json.loads((ds / "classes.json").read_text())
    table[0].update(change)
    (ds / "classes.json").write_text(json.dumps(table))
    result = run(*TRAIN, ds, "--out", tmp_path / "run")
    assert result.exit_code == 2 and message in error_line(result) and "classes.json" in error_line(result)
    assert not (tmp_path / "run" / "best.pt").exists()


def test_integral_float_class_values_are_accepted():
    from slgt2_cli.io.classes import ClassTable

    assert ClassTable.from_list([{"value": 1110.0}, {"value": "2000"}]).values.tolist() == [1110, 2000]


def test_float_labels_with_fractions_are_refused(good_map, tmp_path):
    values = np.full((32, 32), 1110.0, np.float32)
    ok = labels_for(tmp_path / "whole.tif", values)
    assert run("evaluate", good_map, ok).exit_code == 0
    values[3, 4] = 1110.7
    bad = labels_for(tmp_path / "fraction.tif", values)
    result = run("evaluate", good_map, bad)
    assert result.exit_code == 2
    assert "non-integer values (e.g. 1110.699951" in error_line(result) and "fraction.tif" in error_line(result)


# --- issue 18 point 2: under torchrun a rank checks only its own outputs ------------------------------------------
def test_a_rank_does_not_check_the_outputs_of_other_ranks(ck, tmp_path, monkeypatch):
    from slgt2_cli.infer.run import PredictConfig, run_predict
    from slgt2_cli.infer.settings import InferenceSettings

    cpu = InferenceSettings(device="cpu")
    stacks = [write_stack(tmp_path / f"{n}.tif", sar_values(32, 32, seed=i)) for i, n in enumerate("ab")]
    out = tmp_path / "multi"
    out.mkdir()
    (out / "b.tif").write_bytes(b"written by rank 1 a moment ago")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    results = run_predict(PredictConfig(checkpoint=ck, stacks=stacks, output=out, settings=cpu, progress=False))
    assert [r.output.name for r in results] == ["a.tif"]
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(InputError, match="already exists"):
        run_predict(PredictConfig(checkpoint=ck, stacks=stacks, output=out, settings=cpu, progress=False))

