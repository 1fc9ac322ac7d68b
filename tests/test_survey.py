"""Issue 17 point 1: training start-up surveys the dataset once (statistics, census, split), caches it in the run
directory, and stops cleanly and quickly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rasterio.windows import Window

import slgt2_cli.data.survey as survey_mod
from slgt2_cli.data.datasets import check_labels, open_dataset
from slgt2_cli.data.normalization import compute_normalization
from slgt2_cli.data.survey import (
    CACHE_NAME,
    SurveySettings,
    load_cached,
    stat_windows,
    survey_dataset,
)
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.errors import InputError
from slgt2_cli.io.classes import IGNORE_INDEX
from slgt2_cli.synth.scenes import synthesize

REPO = Path(__file__).resolve().parents[1]
SETTINGS = SurveySettings(length=16)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("survey") / "ds"
    synthesize(root, size=32, dates=6, scenes=20, seed=5, scene_size=96)
    return root


def _exact_counts(spec) -> np.ndarray:
    counts = np.zeros(len(spec.classes), dtype=np.int64)
    for scene in spec.scenes("train"):
        with scene.open() as stack, scene.open_labels(stack.grid) as labels:
            cls = spec.classes.encode(*labels.read(Window(0, 0, stack.grid.width, stack.grid.height)))
            counts += np.bincount(cls[cls != IGNORE_INDEX], minlength=len(counts))
    return counts


def test_survey_agrees_with_the_exact_passes(dataset):
    spec = open_dataset(dataset)
    s = survey_dataset(spec, SETTINGS, workers=0, progress=False)
    dates = []
    for scene in spec.scenes("train"):
        with scene.open() as stack:
            dates.append(stack.dates)
    assert s.rule == TemporalRule.fit(dates, length=16)
    assert s.class_counts == _exact_counts(spec).tolist()  # the census is exact
    exact = compute_normalization(spec.scenes("train"), s.rule)
    # the statistics are estimated from samples: means within 5 % of a standard deviation, deviations within 5 %
    assert np.allclose(s.norm.mean, exact.mean, atol=0.05 * min(exact.std)), (s.norm, exact)
    assert np.allclose(s.norm.std, exact.std, rtol=0.05), (s.norm, exact)
    assert s.bands == ["VV", "VH"] and s.units == "db"
    assert s.shapes == [(96, 96)] * len(spec.scenes("train"))
    assert s.val_ids == [x.id for x in spec.scenes("val")]


def test_worker_processes_give_the_same_survey(dataset, monkeypatch):
    spec = open_dataset(dataset)
    monkeypatch.setattr(survey_mod, "_PARALLEL_FROM", 2)
    monkeypatch.setattr(survey_mod, "_default_workers", lambda w: 2)
    assert survey_dataset(spec, SETTINGS, workers=2, progress=False) == \
        survey_dataset(spec, SETTINGS, workers=0, progress=False)


def test_cache_is_reused_until_a_file_or_setting_changes(dataset, tmp_path):
    spec = open_dataset(dataset)
    first = survey_dataset(spec, SETTINGS, cache_dir=tmp_path, workers=0, progress=False)
    assert not first.cached and (tmp_path / CACHE_NAME).is_file()
    again = survey_dataset(spec, SETTINGS, cache_dir=tmp_path, workers=0, progress=False)
    assert again.cached and again.norm == first.norm and again.rule == first.rule
    assert again.class_counts == first.class_counts and again.shapes == first.shapes
    assert not survey_dataset(spec, SurveySettings(length=8), cache_dir=tmp_path, workers=0, progress=False).cached
    label = spec.scenes("train")[0].labels
    os.utime(label, ns=(time.time_ns(), time.time_ns() + 10**9))
    from slgt2_cli.data.survey import cache_key

    assert load_cached(tmp_path, cache_key(spec, spec.scenes("train"), SETTINGS)) is None


def test_labels_off_the_class_table_are_refused_like_check_labels(dataset, tmp_path):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(dataset, root)
    (root / "classes.json").write_text('[{"value": 77, "name": "x"}, {"value": 78, "name": "y"}]')
    spec = open_dataset(root)
    with pytest.raises(InputError) as want:
        check_labels(spec)
    with pytest.raises(InputError) as got:
        survey_dataset(spec, SETTINGS, workers=0, progress=False)
    assert "classes.json" in str(got.value) and "is in the class table" in str(got.value), got.value
    assert str(want.value).split("(")[0] == str(got.value).split("(")[0].replace("train scenes", "train scenes")


def test_statistics_windows_cover_the_scene_and_stay_bounded():
    assert len(stat_windows(96, 96, 64)) == 1
    big = stat_windows(4096, 4096, 64)
    assert len(big) == 64 and len({(w.row_off, w.col_off) for w in big}) == 64
    assert len(stat_windows(4096, 4096, 8)) == 8
    assert len(stat_windows(256, 256, 64, least=10)) == 4  # at most every cell
    seen = {(w.row_off, w.col_off) for i in range(40) for w in stat_windows(256, 256, 64, index=i)}
    assert len(seen) == 4  # successive scenes sample different parts


_DRIVER = """
import sys, time
import slgt2_cli.data.survey as s
_scene = s.survey_scene
def slow(*a, **k):
    print("SURVEYING", flush=True)
    time.sleep(0.5)
    return _scene(*a, **k)
s.survey_scene = slow
from slgt2_cli.cli.app import app
app(args=sys.argv[1:], prog_name="slgt2")
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_sigterm_during_start_up_ends_within_two_seconds_and_leaves_no_run_directory(dataset, tmp_path, workers):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, "train", str(dataset), "--out", str(run), "--preset",
                             "tiny", "--workers", workers, "--quiet", "--device", "cpu"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "SURVEYING", proc.communicate()
    time.sleep(0.2)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    first = proc.stderr.readline()
    answered = time.monotonic() - sent
    _, err = proc.communicate(timeout=30)
    ended = time.monotonic() - sent
    assert proc.returncode == 130, first + err
    assert first.startswith("slgt2: error: interrupted: SIGTERM") and not err.strip(), first + err
    # the answer comes at once; the interpreter's own teardown (torch's modules) takes ~0.5 s of CPU after it,
    # which a machine shared by several busy processes stretches: the exit gets more slack than the answer
    assert answered < 2.0 and ended < 6.0, (answered, ended)
    assert not run.exists() or not any(run.iterdir()), list(run.iterdir())


def test_evaluate_uses_the_split_the_run_held_out(dataset, tmp_path):
    import shutil

    from slgt2_cli.data.survey import apply_run_split

    root = tmp_path / "ds"
    shutil.copytree(dataset, root)
    shutil.rmtree(root / "val")  # no val split: training holds a part of train out
    run = tmp_path / "run"
    run.mkdir()
    spec = open_dataset(root, val_fraction=0.5)
    survey_dataset(spec, SurveySettings(length=16, val_fraction=0.5), cache_dir=run, workers=0, progress=False)
    default = open_dataset(root)  # evaluate opens it with the default fraction
    assert len(default.scenes("val")) < len(spec.scenes("val"))
    again = apply_run_split(default, run)
    assert [s.id for s in again.scenes("val")] == [s.id for s in spec.scenes("val")]
    assert [s.id for s in again.scenes("train")] == [s.id for s in spec.scenes("train")]
    assert apply_run_split(default, tmp_path / "elsewhere") is default
