"""Issue 8: every bad input gets one clear line and exit status 2, and docs/errors.md shows the exact line."""

from __future__ import annotations

import re

import numpy as np
import pytest
from error_cases import CASES, DOC, build_world, render_row, run_case
from typer.testing import CliRunner

from slgt2_cli.cli.app import app


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("errors") / "w")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_documented_line(case, world, monkeypatch):
    code, err = run_case(case, world, monkeypatch)
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slgt2: error: "), err
    assert case.expect in lines[0]
    assert render_row(case, err) in DOC.read_text(), (
        f"docs/errors.md is out of date for {case.id}; run docs/generate_errors_table.py")
    assert not (world / "out.tif").exists()


def test_doc_lists_exactly_the_cases():
    documented = re.findall(r"^\| `([a-z0-9_]+)` \|", DOC.read_text(), flags=re.M)
    assert documented == [c.id for c in CASES]


def test_debug_shows_the_traceback(world):
    result = CliRunner().invoke(app, ["--debug", "predict", str(world / "nope.pt"), str(world / "stack.tif"),
                                      str(world / "out.tif")], env={"SLGT2_DEBUG": "0"})
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "checkpoint not found" in result.stderr.splitlines()[-1]


def test_infinite_values_are_no_data(world, tmp_path):
    """+inf/-inf in a float stack are masked like NaN: the map is nodata exactly where no observation is left."""
    import rasterio
    from error_cases import _write

    with rasterio.open(world / "stack.tif") as src:
        data, names = src.read(), list(src.descriptions)
    data[:, :4, :4] = np.inf  # every date: no data left
    data[0, 4:8, :] = -np.inf  # one date's VV only: the other date still counts
    _write(tmp_path / "inf.tif", data, descriptions=names)
    out = tmp_path / "map.tif"
    result = CliRunner().invoke(app, ["predict", "-q", "--device", "cpu", str(world / "ck.pt"),
                                      str(tmp_path / "inf.tif"), str(out)])
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as m:
        values, nodata = m.read(1), m.nodata
    assert (values[:4, :4] == nodata).all()
    assert (values[4:, :] != nodata).all() and (values[:4, 4:] != nodata).all()
