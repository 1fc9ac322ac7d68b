"""Library errors name configuration fields; only the command line turns them into flags."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slgt2_cli.cli.app import app
from slgt2_cli.errors import InputError
from slgt2_cli.infer.tiling import check_tile_stride

ROOT = Path(__file__).resolve().parents[1]
FLAG = re.compile(r"(^|[\s(`'\"])--[a-z]")


def _error_strings(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")).endswith("Error"):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    yield node.lineno, sub.value


def test_library_error_messages_name_no_flags():
    offenders = []
    for path in sorted((ROOT / "slgt2_cli").rglob("*.py")):
        if "cli" in path.relative_to(ROOT / "slgt2_cli").parts[:1]:
            continue
        for line, text in _error_strings(ast.parse(path.read_text())):
            if FLAG.search(text):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not offenders, "library messages naming flags:\n" + "\n".join(offenders)


def test_library_says_field_cli_says_flag(tmp_path):
    with pytest.raises(InputError) as info:
        check_tile_stride(64, 80)
    assert str(info.value) == "stride (80) must not exceed tile (64): pixels between tiles would be skipped"
    assert info.value.render(lambda o: "--" + o).startswith("--stride (80) must not exceed --tile (64)")

    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "x").write_text("")
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "ds"), "--size", "16", "--scenes", "3"])
    assert result.exit_code == 2, result.output
    assert "use --overwrite to replace its contents" in result.output


def test_flag_is_the_commands_own_spelling(tmp_path):
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    error = InputError("{json_path} and {plot_path} must differ", options=("json_path", "plot_path"))
    assert str(error) == "json_path and plot_path must differ"
    for name in ("m.tif", "l.tif"):  # a map without a class table
        with rasterio.open(tmp_path / name, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8",
                           crs="EPSG:32633", transform=from_origin(500000, 5100000, 10, 10)) as dst:
            dst.write(np.ones((1, 4, 4), np.uint8))
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "m.tif"), str(tmp_path / "l.tif")])
    assert result.exit_code == 2, result.output
    assert "pass --classes classes.json" in result.output, result.output
