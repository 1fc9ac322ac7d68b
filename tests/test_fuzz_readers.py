"""Fuzzing the readers: damaged GeoTIFF bytes, random arrays and damaged checkpoints never crash the readers
with anything but a clean InputError (which the CLI turns into one line and exit status 2)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS
from rasterio.transform import from_origin

from slgt2_cli.checkpoint.format import Checkpoint, load_checkpoint
from slgt2_cli.errors import InputError
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.io.grid import Grid
from slgt2_cli.io.labels import open_aligned_labels
from slgt2_cli.io.stacks import open_stack

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GRID = Grid(CRS.from_epsg(32633), from_origin(500000, 5100000, 10, 10), 16, 16)
NAMES = ["VV_2021-05-08", "VH_2021-05-08", "VV_2021-06-13", "VH_2021-06-13"]


def _tiff_bytes(data: np.ndarray, descriptions=(), **profile) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.tif"
        with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                           count=data.shape[0], dtype=data.dtype, crs=GRID.crs, transform=GRID.transform,
                           **profile) as dst:
            dst.write(data)
            for b, text in enumerate(descriptions, start=1):
                dst.set_band_description(b, text)
        return path.read_bytes()


_rng = np.random.default_rng(0)
STACK = _tiff_bytes(_rng.normal(-12, 3, (4, 16, 16)).astype(np.float32), NAMES, compress="deflate", tiled=True,
                    blockxsize=16, blockysize=16)
LABELS = _tiff_bytes(_rng.integers(0, 5, (1, 16, 16)).astype(np.uint8), nodata=0)


def _checkpoint_bytes() -> bytes:
    ck = Checkpoint({"num_classes": 2}, {"w": torch.zeros(4, 3)}, ClassTable.default([1, 2]),
                    {"mean": [0.0, 0.0], "std": [1.0, 1.0]}, {"length": 4, "mode": "pad"}, ["VV", "VH"], "db", 32, 28)
    buf = io.BytesIO()
    torch.save(ck.to_payload(), buf)
    return buf.getvalue()


CHECKPOINT = _checkpoint_bytes()


@st.composite
def damaged(draw, original: bytes):
    """Truncated, or a few bytes overwritten (anywhere, or in the header where the structure is)."""
    data = bytearray(original)
    if draw(st.booleans()):
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    limit = len(data) - 1 if draw(st.booleans()) else min(len(data) - 1, 512)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, limit))] = draw(st.integers(0, 255))
    return bytes(data)


def _write_tmp(content: bytes, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    return Path(name)


def _read_stack(path: Path) -> None:
    with open_stack(path) as stack:
        out = stack.read()
        assert out.dtype == np.float32 and out.shape[0] == stack.num_dates


def _read_labels(path: Path) -> None:
    with open_aligned_labels(path, GRID) as labels:
        values, valid = labels.read()
        assert values.shape == valid.shape == GRID.shape


def _only_input_errors(fn, path: Path) -> None:
    try:
        fn(path)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
    finally:
        path.unlink(missing_ok=True)


@FUZZ
@given(damaged(STACK))
def test_damaged_stack_bytes(content):
    _only_input_errors(_read_stack, _write_tmp(content, ".tif"))


@FUZZ
@given(damaged(LABELS))
def test_damaged_label_bytes(content):
    _only_input_errors(_read_labels, _write_tmp(content, ".tif"))


@FUZZ
@given(damaged(CHECKPOINT))
def test_damaged_checkpoint_bytes(content):
    _only_input_errors(load_checkpoint, _write_tmp(content, ".pt"))


_values = st.sampled_from([0.0, np.nan, np.inf, -np.inf, 1e30, -1e30, -12.5, 1e-7, 255.0])


@FUZZ
@given(st.sampled_from(["uint8", "int16", "uint16", "float32", "float64"]), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 9), st.integers(1, 9), st.data())
def test_random_arrays_as_stacks_and_labels(dtype, channels, dates, h, w, data):
    count = channels * dates
    if np.dtype(dtype).kind == "f":
        arr = np.array(data.draw(st.lists(_values, min_size=count * h * w, max_size=count * h * w)), dtype=dtype)
    else:
        info = np.iinfo(dtype)
        arr = np.array(data.draw(st.lists(st.integers(int(info.min), int(info.max)), min_size=count * h * w,
                                          max_size=count * h * w)), dtype=dtype)
    arr = arr.reshape(count, h, w)
    pols = data.draw(st.sampled_from([("VV", "VH", "HH"), ("", "", ""), ("NDVI", "B2", "x")]))[:channels]
    described = data.draw(st.booleans())
    names = [f"{p}_2021-0{d + 1}-15" if described else p for d in range(dates) for p in pols]
    nodata = data.draw(st.sampled_from([None, 0]))
    path = _write_tmp(_tiff_bytes(arr, names, nodata=nodata), ".tif")
    _only_input_errors(_read_stack, path)
    path = _write_tmp(_tiff_bytes(arr[:1], nodata=nodata), ".tif")
    _only_input_errors(_read_labels, path)


@pytest.mark.parametrize("content", [b"", b"\x00" * 10, b"II*\x00", b"MM\x00*" + b"\xff" * 64])
def test_degenerate_files(content):
    for fn, suffix in ((_read_stack, ".tif"), (_read_labels, ".tif"), (load_checkpoint, ".pt")):
        _only_input_errors(fn, _write_tmp(content, suffix))
