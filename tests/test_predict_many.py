"""Issue 26: predict-many maps many scenes with one model load, in this process or on a real Dask LocalCluster of
two worker processes; every map is what `predict` writes; bad inputs fail alone; re-runs skip; a worker killed
mid-scene loses nothing; SIGTERM leaves nothing partial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from helpers import sar_values, write_stack
from test_remote import _cog_stack, server  # noqa: F401 - the loopback HTTP server fixture
from typer.testing import CliRunner

import slgt2_cli as slgt2
from slgt2_cli.cli.app import app
from slgt2_cli.infer import batch

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
CPU = ["--device", "cpu", "-q"]
SHAPES = [(40, 44), (32, 32), (64, 48), (48, 64)]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("many")
    return [write_stack(root / f"scene{i}.tif", sar_values(h, w, seed=i)) for i, (h, w) in enumerate(SHAPES)]


@pytest.fixture(scope="module")
def reference(tiny_checkpoint, scenes, tmp_path_factory) -> Path:
    """`slgt2 predict` of every scene, one command per scene, with every companion output."""
    out = tmp_path_factory.mktemp("reference")
    for s in scenes:
        m = out / f"{s.stem}.tif"
        result = runner.invoke(app, ["predict", *CPU, str(tiny_checkpoint), str(s), str(m), "--confidence",
                                     str(m.with_suffix(".confidence.tif")), "--areas", str(m.with_suffix(".areas.csv")),
                                     "--stac"])
        assert result.exit_code == 0, result.output
    return out


def _pixels(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def _same_as_predict(out: Path, reference: Path, names) -> None:
    for name in names:
        for suffix in (".tif", ".confidence.tif"):
            np.testing.assert_array_equal(_pixels(out / f"{name}{suffix}"), _pixels(reference / f"{name}{suffix}"))
        for suffix in (".qml", ".tif.aux.xml", ".areas.csv"):
            assert (out / f"{name}{suffix}").read_text() == (reference / f"{name}{suffix}").read_text(), suffix
        item = json.loads((out / f"{name}.stac.json").read_text())
        assert sorted(item["assets"]) == sorted(json.loads((reference / f"{name}.stac.json").read_text())["assets"])
    produced = sorted(p.name for p in out.iterdir() if p.name not in ("summary.json", "collection.json"))
    assert produced == sorted(p.name for p in reference.iterdir() if p.stem.split(".")[0] in names)


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def _partials(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if ".partial" in p.name]


# --- in this process ------------------------------------------------------------------------------------------
def test_in_process_maps_equal_predict_bad_input_fails_alone_and_rerun_skips(tiny_checkpoint, scenes, reference,
                                                                              tmp_path):
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(b"II*\x00 this is not a complete GeoTIFF")
    out = tmp_path / "maps"
    args = ["predict-many", *CPU, str(tiny_checkpoint), *map(str, scenes[:2]), str(bad), *map(str, scenes[2:]),
            "--out-dir", str(out), "--confidence", "--areas", "--stac"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    summary = _summary(out)
    assert [s["status"] for s in summary["scenes"]] == ["done", "done", "failed", "done", "done"]
    failed = summary["scenes"][2]
    assert "corrupt.tif" in failed["error"] and "\n" not in failed["error"] and "failed: " in result.output
    done = summary["scenes"][0]
    assert done["pixels"] == 40 * 44 and done["seconds"] > 0 and str(out / "scene0.tif") in done["outputs"]
    _same_as_predict(out, reference, [s.stem for s in scenes])
    assert not _partials(out)

    again = runner.invoke(app, [a for a in args if a != str(bad)])  # the same command without the bad input
    assert again.exit_code == 0, again.output
    assert {s["status"] for s in _summary(out)["scenes"]} == {"skipped"}


def test_other_options_are_not_skipped_and_overwrite_redoes(tiny_checkpoint, scenes, tmp_path):
    out = tmp_path / "maps"
    base = ["predict-many", *CPU, str(tiny_checkpoint), str(scenes[0]), "--out-dir", str(out)]
    assert runner.invoke(app, base).exit_code == 0
    other = runner.invoke(app, [*base, "--tile", "32", "--stride", "24"])
    assert other.exit_code == 2
    assert "made by another checkpoint or other options (pass --overwrite" in _summary(out)["scenes"][0]["error"]
    redo = runner.invoke(app, [*base, "--tile", "32", "--stride", "24", "--overwrite"])
    assert redo.exit_code == 0 and _summary(out)["scenes"][0]["status"] == "done"
    with rasterio.open(out / "scene0.tif") as src:
        assert src.tags()["SLGT2_TILE"] == "32"
    more = runner.invoke(app, [*base, "--tile", "32", "--stride", "24", "--confidence"])  # ours, one output missing
    assert more.exit_code == 0 and _summary(out)["scenes"][0]["status"] == "done"
    assert (out / "scene0.confidence.tif").exists()


def test_list_file_and_python_api_with_a_loaded_model(tiny_checkpoint, scenes, tmp_path):
    listing = tmp_path / "stacks.txt"
    listing.write_text("# two scenes\n" + "\n".join(os.path.relpath(s, tmp_path) for s in scenes[:2]) + "\n\n")
    model = slgt2.load_model(tiny_checkpoint, device="cpu")
    summary = slgt2.predict_many(model, [scenes[2]], tmp_path / "api", list_file=listing, tile=32, stride=24,
                                 batch_size=3)
    assert summary.ok and [r.status for r in summary.scenes] == ["done"] * 3
    assert summary.to_dict() == {**_summary(tmp_path / "api"), "seconds": summary.to_dict()["seconds"]}
    assert sorted(p.name for p in (tmp_path / "api").glob("*.tif")) == ["scene0.tif", "scene1.tif", "scene2.tif"]
    with pytest.raises(TypeError, match="colour"):
        slgt2.predict_many(model, [scenes[2]], tmp_path / "x", colour=True)


def test_settings_are_declared_once():
    """The default batch size stands in one place; the CLI and the API read it from there."""
    import inspect

    from slgt2_cli.infer.settings import DEFAULT_BATCH_SIZE, InferenceSettings

    src = "".join(inspect.getsource(m) for m in (slgt2_cli_module("cli.predict"), slgt2_cli_module("cli.evaluate"),
                                                  slgt2_cli_module("cli.predict_many"), slgt2_cli_module("infer.run"),
                                                  slgt2_cli_module("scoring.evaluator"), slgt2_cli_module("api")))
    assert "batch_size: BatchOpt = 4" not in src and "batch_size: int = 4" not in src
    assert InferenceSettings().batch_size == DEFAULT_BATCH_SIZE
    s = InferenceSettings(blend="Average", units="db", precision="fp32", device="CPU")
    assert (s.blend.value, s.units.value, s.precision.value, s.device) == ("average", "db", "fp32", "cpu")
    with pytest.raises(TypeError):
        InferenceSettings(64)  # keyword-only
    with pytest.raises(slgt2_cli_module("errors").InputError, match="blend"):
        InferenceSettings(blend="nearest")


def slgt2_cli_module(name: str):
    import importlib

    return importlib.import_module(f"slgt2_cli.{name}")


def test_sigterm_keeps_finished_maps_and_leaves_nothing_partial(tiny_checkpoint, scenes, tmp_path):
    big = write_stack(tmp_path / "big.tif", sar_values(384, 384, seed=9))
    out = tmp_path / "maps"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "slgt2_cli", "predict-many", *CPU, "--batch-size", "1",
                             str(tiny_checkpoint), str(scenes[0]), str(big), "--out-dir", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while not ((out / "scene0.tif").exists() and out.exists() and _partials(out)) and time.time() < deadline \
            and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "predict-many ended before it could be interrupted"
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted: SIGTERM" in err
    assert not _partials(out) and not (out / "big.tif").exists() and (out / "scene0.tif").exists()
    summary = _summary(out)
    assert summary["interrupted"] and [s["status"] for s in summary["scenes"]] == ["done", "failed"]


# --- on a LocalCluster of two worker processes ------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two worker processes, one thread each; workers die mid-scene when the test hook's file names a scene."""
    distributed = pytest.importorskip("distributed")
    kill_dir = tmp_path_factory.mktemp("kill")
    before = os.environ.get(batch.FAULT_ENV)
    os.environ[batch.FAULT_ENV] = str(kill_dir)  # inherited by the worker processes
    env_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                      silence_logs=50) as lc, distributed.Client(lc) as client:
            yield client, kill_dir
    finally:
        for key, value in ((batch.FAULT_ENV, before), ("OMP_NUM_THREADS", env_threads)):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _loads(client) -> dict:
    def loads():
        from slgt2_cli.infer import batch as b

        return b.SESSION_LOADS

    return client.run(loads)


def test_cluster_maps_equal_predict_and_each_worker_loads_the_model_once(tiny_checkpoint, scenes, reference,
                                                                        cluster, tmp_path):
    client, _ = cluster
    out = tmp_path / "maps"
    summary = slgt2.predict_many(tiny_checkpoint, scenes, out, client=client, device="cpu", confidence=True,
                                 areas=True, stac=True)
    assert summary.ok and [r.status for r in summary.scenes] == ["done"] * len(scenes)
    _same_as_predict(out, reference, [s.stem for s in scenes])
    assert all(n <= 1 for n in _loads(client).values()), _loads(client)
    again = slgt2.predict_many(tiny_checkpoint, scenes, out, client=client, device="cpu", confidence=True,
                               areas=True, stac=True)
    assert [r.status for r in again.scenes] == ["skipped"] * len(scenes)


def test_a_worker_killed_mid_scene_is_retried_and_every_map_is_complete(tiny_checkpoint, scenes, reference,
                                                                        cluster, tmp_path):
    client, kill_dir = cluster
    (kill_dir / scenes[1].name).write_text("die once")
    out = tmp_path / "maps"
    summary = slgt2.predict_many(tiny_checkpoint, scenes, out, client=client, device="cpu", confidence=True)
    assert not (kill_dir / scenes[1].name).exists(), "the worker did not reach the hook"
    assert summary.ok, summary.table()
    for s in scenes:
        np.testing.assert_array_equal(_pixels(out / f"{s.stem}.tif"), _pixels(reference / f"{s.stem}.tif"))
        np.testing.assert_array_equal(_pixels(out / f"{s.stem}.confidence.tif"),
                                      _pixels(reference / f"{s.stem}.confidence.tif"))
    assert not _partials(out)


def test_cli_on_a_running_scheduler_bad_input_fails_alone(tiny_checkpoint, scenes, cluster, tmp_path):
    client, _ = cluster
    bad = tmp_path / "truncated.tif"
    bad.write_bytes(scenes[0].read_bytes()[:600])
    out = tmp_path / "maps"
    result = runner.invoke(app, ["predict-many", *CPU, str(tiny_checkpoint), str(scenes[0]), str(bad),
                                 str(scenes[1]), "--out-dir", str(out), "--cluster", client.scheduler.address])
    assert result.exit_code == 2, result.output
    summary = _summary(out)
    assert [s["status"] for s in summary["scenes"]] == ["done", "failed", "done"]
    assert "truncated.tif" in summary["scenes"][1]["error"] and summary["workers"] == 2
    assert not _partials(out)


def test_stac_collection_of_all_maps(tiny_checkpoint, scenes, tmp_path):
    from slgt2_cli.io.stac import validate_item

    out = tmp_path / "maps"
    summary = slgt2.predict_many(tiny_checkpoint, scenes[:3], out, device="cpu", stac=True)
    assert summary.ok
    collection = json.loads((out / "collection.json").read_text())
    assert collection["type"] == "Collection" and collection["stac_version"] == "1.1.0"
    items = [link["href"] for link in collection["links"] if link["rel"] == "item"]
    assert items == [f"./{s.stem}.stac.json" for s in scenes[:3]]
    for href in items:
        assert validate_item(json.loads((out / href).read_text())) == []
    lon0, lat0, lon1, lat1 = collection["extent"]["spatial"]["bbox"][0]
    assert lon0 < lon1 and lat0 < lat1
    start, end = collection["extent"]["temporal"]["interval"][0]
    assert start.startswith("2021-05-01") and end.startswith("2021-07-12")
    assert [c["value"] for c in collection["summaries"]["classification:classes"]] == [1110, 2000, 3100]


def test_sigterm_on_a_cluster_stops_the_scene_in_flight_and_leaves_nothing_partial(tiny_checkpoint, scenes, cluster,
                                                                                   tmp_path):
    client, _ = cluster
    big = write_stack(tmp_path / "big.tif", sar_values(512, 512, seed=9))
    out = tmp_path / "maps"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop(batch.FAULT_ENV, None)
    proc = subprocess.Popen([sys.executable, "-m", "slgt2_cli", "predict-many", *CPU, "--batch-size", "1",
                             str(tiny_checkpoint), str(big), str(scenes[0]), "--out-dir", str(out),
                             "--cluster", client.scheduler.address],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while not (out.exists() and any(p.name.startswith(".big.tif.partial") for p in out.iterdir())) \
            and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "predict-many ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    deadline = time.time() + 30  # the worker sees the stop event at its next tile row and removes its temporaries
    while _partials(out) and time.time() < deadline:
        time.sleep(0.1)
    assert not _partials(out) and not (out / "big.tif").exists()
    assert _summary(out)["interrupted"]


def test_cluster_specs_and_the_local_layout():
    from slgt2_cli.errors import InputError
    from slgt2_cli.infer.cluster import check_cluster, local_layout

    assert local_layout(2, cores=2, gpus=0) == local_layout(2, cores=3, gpus=0)  # one thread each
    assert (local_layout(None, cores=16, gpus=0).workers, local_layout(None, cores=16, gpus=0).threads) == (4, 4)
    assert local_layout(None, cores=16, gpus=2).workers == 2  # one worker per GPU
    for good in ("local", "local:3", "tcp://10.0.0.1:8786", "10.0.0.1:8786"):
        check_cluster(good, None)
    for bad in ("locale", "local:0", "nowhere"):
        with pytest.raises(InputError, match="cluster"):
            check_cluster(bad, None)


def test_remote_stacks_are_mapped_like_local_ones(tiny_checkpoint, scenes, server, tmp_path):  # noqa: F811
    base, www, _ = server
    local, _ = _cog_stack(www)
    out = tmp_path / "maps"
    result = runner.invoke(app, ["predict-many", *CPU, str(tiny_checkpoint), f"{base}/{local.name}", str(scenes[1]),
                                 "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert [s["status"] for s in _summary(out)["scenes"]] == ["done", "done"]
    assert result.output.rstrip().splitlines()[-2:] == [f"wrote {out}  (2 maps made, 0 already there)",
                                                         f"wrote {out / 'summary.json'}  (status, outputs and time per input)"]
    assert runner.invoke(app, ["predict", *CPU, str(tiny_checkpoint), str(local), str(tmp_path / "ref.tif")]).exit_code == 0
    np.testing.assert_array_equal(_pixels(out / "s1.tif"), _pixels(tmp_path / "ref.tif"))
