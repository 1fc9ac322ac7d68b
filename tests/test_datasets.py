"""Datasets: directory layout, seed .mat layouts, held-out validation, patches, streaming normalisation."""

import datetime as dt
import json

import numpy as np
import pytest
import scipy.io
import torch
from helpers import ORIGIN, dates_from, write_dataset, write_mts12, write_raster
from rasterio.transform import from_origin

from slgt2_cli.data.datasets import PatchDataset, hold_out, open_dataset
from slgt2_cli.data.normalization import Normalization, compute_normalization
from slgt2_cli.data.preprocess import prepare_input
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.errors import InputError
from slgt2_cli.io.classes import IGNORE_INDEX
from slgt2_cli.io.stacks import Stack

CLASSES = [{"value": 1110, "name": "wheat"}, {"value": 2000, "name": "grass"}, {"value": 5000, "name": "water"}]
DATES = dates_from(dt.date(2021, 3, 1), 6, step=20)


def _scene(seed, size=48):
    rng = np.random.default_rng(seed)
    labels = np.array([1110, 2000, 5000], np.uint16)[(np.arange(size)[:, None] // 8 + np.arange(size) // 8) % 3]
    labels[:4, :] = 0
    mean = np.where(labels == 1110, -12.0, np.where(labels == 2000, -9.0, -20.0)).astype(np.float32)
    values = (mean[None, None] + rng.normal(0, 1, (6, 2, size, size))).astype(np.float32)
    values[2, :, 10:14, 10:14] = np.nan
    return values, labels


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "ds", {"train": [_scene(i) for i in range(4)], "test": [_scene(9)]},
                         CLASSES, DATES)


def test_directory_dataset_holds_out_validation_deterministically(dataset):
    spec = open_dataset(dataset)
    assert spec.kind == "directory" and spec.classes.values.tolist() == [1110, 2000, 5000]
    assert len(spec.splits["train"]) == 3 and len(spec.splits["val"]) == 1 and len(spec.splits["test"]) == 1
    assert spec.held_out == [s.id for s in spec.splits["val"]]
    assert open_dataset(dataset).held_out == spec.held_out
    assert not set(spec.held_out) & {s.id for s in spec.splits["train"]}


def test_hold_out_single_scene_keeps_it_for_training(dataset):
    scenes = open_dataset(dataset).splits["test"]
    assert hold_out(scenes) == (scenes, [])


def test_dataset_errors(tmp_path, dataset):
    with pytest.raises(InputError, match="not found"):
        open_dataset(tmp_path / "missing")
    (dataset / "train" / "labels" / "s0.tif").unlink()
    with pytest.raises(InputError, match=r"s0\.tif.*no label raster"):
        open_dataset(dataset)
    (dataset / "classes.json").unlink()
    (dataset / "train" / "images" / "s0.tif").unlink()
    with pytest.raises(InputError, match="classes.json"):
        open_dataset(dataset)


def test_scene_reader_and_per_date_directory_with_coarser_labels(tmp_path):
    values, labels = _scene(1)
    root = tmp_path / "ds"
    for t, d in enumerate(DATES):
        write_raster(root / "train" / "images" / "dirscene" / f"S1_{d:%Y%m%d}.tif", values[t],
                     descriptions=["VV", "VH"])
    coarse = labels[::2, ::2]
    write_raster(root / "train" / "labels" / "dirscene.tif", coarse, transform=from_origin(*ORIGIN, 20, 20), nodata=0)
    (root / "classes.json").write_text(json.dumps(CLASSES))
    spec = open_dataset(root)
    scene = spec.splits["train"][0]
    with scene.open() as stack, scene.open_labels(stack.grid) as aligned:
        assert stack.dates == DATES and stack.num_channels == 2
        got, valid = aligned.read()
    np.testing.assert_array_equal(got, np.repeat(np.repeat(coarse, 2, 0), 2, 1))


def _tiny_norm():
    return Normalization((-13.0, -13.0), (5.0, 5.0))


def test_patch_dataset_shapes_determinism_and_labels(dataset):
    spec = open_dataset(dataset)
    rule = TemporalRule.fit([DATES], length=8)
    ds = PatchDataset(spec.splits["train"], spec.classes, rule, _tiny_norm(), patch_size=32, length=12, seed=3)
    x, y = ds[0]
    assert x.shape == (2, 8, 32, 32) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert y.shape == (32, 32) and y.dtype == torch.int64
    assert set(torch.unique(y).tolist()) <= {IGNORE_INDEX, 0, 1, 2}
    again = PatchDataset(spec.splits["train"], spec.classes, rule, _tiny_norm(), patch_size=32, length=12, seed=3)
    for i in (0, 5, 11):
        assert torch.equal(ds[i][0], again[i][0]) and torch.equal(ds[i][1], again[i][1])
    assert not torch.equal(ds[1][0], ds[2][0])
    ds.set_epoch(1)
    assert not torch.equal(ds[0][0], again[0][0])
    with pytest.raises(IndexError):
        ds[12]


def test_patch_dataset_in_dataloader_workers_matches(dataset):
    spec = open_dataset(dataset)
    rule = TemporalRule.fit([DATES], length=8)
    ds = PatchDataset(spec.splits["train"], spec.classes, rule, _tiny_norm(), patch_size=16, length=4, seed=0)
    xs = torch.cat([x for x, _ in torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)])
    np.testing.assert_array_equal(xs.numpy(), torch.stack([ds[i][0] for i in range(4)]).numpy())


def test_patch_crops_limit_the_dominant_class(tmp_path):
    values, labels = _scene(2, size=64)
    labels[:, :32] = 2000  # the left half is one class: unconstrained crops there are 100 % grass
    root = write_dataset(tmp_path / "ds", {"train": [(values, labels)]}, CLASSES, DATES)
    spec = open_dataset(root)

    def share_ok(limit):
        ds = PatchDataset(spec.splits["train"], spec.classes, TemporalRule.fit([DATES], length=4), _tiny_norm(),
                          patch_size=16, length=60, seed=1, min_labelled=0.5, max_class_share=limit)
        ok = []
        for i in range(60):
            y = ds[i][1].numpy()
            labelled = y[y != IGNORE_INDEX]
            ok.append(labelled.size >= 0.5 * y.size and np.bincount(labelled).max() <= 0.75 * labelled.size)
        return np.mean(ok)

    assert share_ok(0.75) > 0.9 and share_ok(None) < 0.8


def test_windows_only_never_the_whole_stack(dataset, monkeypatch):
    spec = open_dataset(dataset)
    sizes = []
    original = Stack.read_stored

    def spy(self, window=None):
        sizes.append(None if window is None else (int(window.height), int(window.width)))
        return original(self, window)

    monkeypatch.setattr(Stack, "read_stored", spy)
    rule = TemporalRule.fit([DATES], length=4)
    ds = PatchDataset(spec.splits["train"], spec.classes, rule, _tiny_norm(), patch_size=8, length=20, seed=0)
    for i in range(20):
        ds[i]
    compute_normalization(spec.splits["train"], rule, window=16)
    assert sizes and None not in sizes and max(max(s) for s in sizes) <= 16


def test_streaming_normalisation_equals_whole_array_statistics(dataset):
    spec = open_dataset(dataset)
    rule = TemporalRule.fit([DATES], length=4)
    norm = compute_normalization(spec.splits["train"], rule, window=7)
    frames = []
    for scene in spec.splits["train"]:
        with scene.open() as stack:
            raw = stack.read()
        valid = ~np.isnan(raw).any(axis=1).all(axis=0)
        frames.append(np.moveaxis(rule.apply(raw, DATES), 1, 0)[:, :, valid].reshape(2, -1))
    allv = np.concatenate(frames, axis=1).astype(np.float64)
    np.testing.assert_allclose(norm.mean, allv.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(norm.std, allv.std(axis=1), rtol=1e-6)
    assert Normalization.from_dict(norm.to_dict()) == norm


def test_prepare_input_shapes_valid_mask_and_channel_check():
    raw = np.random.default_rng(0).normal(-10, 2, (5, 2, 4, 4)).astype(np.float32)
    raw[:, :, 0, 0] = np.nan
    dates = dates_from(dt.date(2021, 4, 1), 5)
    rule, norm = TemporalRule.fit([dates], length=6), Normalization((-10.0, -12.0), (2.0, 4.0))
    x, valid = prepare_input(raw, dates, rule, norm)
    assert x.shape == (2, 6, 4, 4) and x.dtype == np.float32 and np.isfinite(x).all()
    assert not valid[0, 0] and valid.sum() == 15
    np.testing.assert_allclose(x[:, :, 0, 0], 0.0)  # no data -> the mean -> zero after normalisation
    with pytest.raises(InputError, match="channels"):
        prepare_input(raw[:, :1], dates, rule, norm)


# --- seed .mat datasets ---------------------------------------------------------------------------------------
def test_mts12_layout(tmp_path):
    spec = open_dataset(write_mts12(tmp_path / "mts12"))
    assert spec.kind == "mts12" and len(spec.classes) == 8 and spec.classes.names[6] == "artificial surface"
    assert {k: len(v) for k, v in spec.splits.items()} == {"train": 2, "val": 2, "test": 2}
    scene = spec.splits["train"][0]
    band = scipy.io.loadmat(scene.image)["band"]
    with scene.open() as stack, scene.open_labels(stack.grid) as labels:
        assert stack.dates is None and stack.grid.crs is None and stack.grid.shape == (24, 24)
        assert stack.num_dates == 5 and stack.num_channels == 2 and stack.units == "db"
        from rasterio.windows import Window

        np.testing.assert_allclose(stack.read(Window(2, 3, 4, 5)), np.moveaxis(band[:, 3:8, 2:6], 3, 1))
        values, valid = labels.read()
        np.testing.assert_allclose(stack.select(["VH"]).read()[:, 0], np.moveaxis(band, 3, 1)[:, 1])
    y = spec.classes.encode(values, valid)
    assert (y[values == 0] == IGNORE_INDEX).all() and (y[values == 3] == 2).all()
    rule = TemporalRule.fit([None], length=16)
    norm = compute_normalization(spec.splits["train"], rule)
    bands = np.stack([scipy.io.loadmat(s.image)["band"] for s in spec.splits["train"]])
    np.testing.assert_allclose(norm.mean, bands.mean(axis=(0, 1, 2, 3)), rtol=1e-5)  # padded frames left out
    np.testing.assert_allclose(norm.std, bands.std(axis=(0, 1, 2, 3)), rtol=1e-4)
    x, y = PatchDataset(spec.splits["train"], spec.classes, rule, norm, patch_size=16, length=3, seed=0)[0]
    assert x.shape == (2, 16, 16, 16) and torch.isfinite(x).all()


def test_brandenburg_layout_and_mismatched_label(tmp_path):
    root = tmp_path / "bb"
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        scipy.io.savemat(root / split / "p1.mat", {"data": np.full((41, 8, 8, 2), -11.0, np.float32)})
        scipy.io.savemat(root / split / "p1_label.mat", {"label": np.arange(64).reshape(8, 8) % 16})
    spec = open_dataset(root)
    assert spec.kind == "brandenburg" and len(spec.classes) == 15 and spec.classes.values[0] == 1
    assert "val" not in spec.splits  # one training scene: nothing to hold out
    scene = spec.splits["train"][0]
    with scene.open() as stack:
        assert stack.num_dates == 41 and stack.read().shape == (41, 2, 8, 8)
    scipy.io.savemat(root / "test" / "p1_label.mat", {"label": np.zeros((7, 8))})
    scene = spec.splits["test"][0]
    with scene.open() as stack, pytest.raises(InputError, match="p1_label.mat.*does not match"):
        with scene.open_labels(stack.grid):
            pass


def test_mat_scenes_score_through_the_tiled_predictor(tmp_path):
    """Validation and `evaluate --dataset` run .mat scenes through the same tiled inference as GeoTIFF stacks."""
    from models import create_model
    from slgt2_cli.infer.predictor import Predictor
    from slgt2_cli.scoring.scenes import score_scenes

    spec = open_dataset(write_mts12(tmp_path / "mts12"))
    rule = TemporalRule.fit([None], length=16)
    norm = compute_normalization(spec.splits["train"], rule)
    model = create_model("tiny", num_classes=len(spec.classes)).eval()
    predictor = Predictor(model, spec.classes, rule, norm, ["VV", "VH"], tile=32, stride=16)
    cm = score_scenes(predictor, spec.splits["val"])
    labelled = 0
    for scene in spec.splits["val"]:
        with scene.open() as stack, scene.open_labels(stack.grid) as labels:
            values, valid = labels.read()
            labelled += int((spec.classes.encode(values, valid) != IGNORE_INDEX).sum())
    assert cm.counts.sum() == labelled > 0
