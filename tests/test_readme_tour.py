"""The README's tour runs as written: its commands, in order, on synthetic data.

The default run appends options that shrink the data and the training (later options win), so the same command
lines run in seconds; ``-m slow`` runs them exactly as written.
"""

from __future__ import annotations

import json
import re
import shlex
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slgt2_cli.cli.app import app

README = Path(__file__).resolve().parents[1] / "README.md"
SHRINK = {
    "synth": ["--size", "96", "--scenes", "3", "--scene-size", "64", "--dates", "6", "--quiet"],
    "train": ["--iterations", "8", "--batch-size", "2", "--patch-size", "32", "--workers", "0", "--quiet"],
    "predict": ["--quiet"],
    "evaluate": [],
    "info": [],
}


def tour_commands() -> list[list[str]]:
    """The ``slgt2 ...`` lines of the README's tour block, as argument lists (comments dropped)."""
    text = README.read_text()
    section = text[text.index("## A tour on your own data"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = []
    for line in block.splitlines():
        line = line.split(" #")[0].strip()
        if line.startswith("slgt2 "):
            commands.append(shlex.split(line)[1:])
    return commands


def _run_tour(tmp_path: Path, monkeypatch, shrink: bool) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for argv in tour_commands():
        extra = SHRINK[argv[0]] if shrink else []
        with terminal_warnings() as shown:
            result = runner.invoke(app, [*argv, *extra])
        assert result.exit_code == 0, f"slgt2 {shlex.join(argv)}\n{result.output}"
        assert_no_library_warnings(f"slgt2 {shlex.join(argv)}", result.output, shown)
        if argv[0] in ("train", "predict") or "--json" in argv:  # what was written closes the output, one form
            assert result.output.strip().splitlines()[-1].startswith("wrote "), result.output


@contextmanager
def terminal_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """The warnings that would reach a terminal: Python's default filters (deprecations hidden), each recorded."""
    with warnings.catch_warnings(record=True) as shown:
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        yield shown


def assert_no_library_warnings(what: str, output: str, shown: list[warnings.WarningMessage]) -> None:
    """Neither a warning line in the output nor a warning Python would print (its text names the warning's class)."""
    assert not re.search(r"\w+Warning\b|warnings\.warn", output), f"{what}\n{output}"
    assert not shown, f"{what}: " + "; ".join(f"{w.category.__name__}: {w.message} ({w.filename})" for w in shown)


def test_tour_lists_the_whole_path():
    names = [argv[0] for argv in tour_commands()]
    assert names == ["synth", "train", "info", "predict", "predict", "evaluate", "evaluate"]


def test_readme_tour_runs_on_tiny_synthetic_data(tmp_path, monkeypatch):
    _run_tour(tmp_path, monkeypatch, shrink=True)
    assert (tmp_path / "runs" / "s1" / "best.pt").exists()
    assert (tmp_path / "map.tif").exists() and (tmp_path / "conf.tif").exists()
    assert list((tmp_path / "maps").glob("*.tif"))
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert 0.0 <= scores["miou"] <= 1.0 and (tmp_path / "confusion.png").exists()
    # the short run validated before its end: best.pt came from an early validation
    log = [json.loads(line) for line in (tmp_path / "runs" / "s1" / "metrics.jsonl").read_text().splitlines()]
    assert len(log) >= 2 and log[0]["step"] <= 2


@pytest.mark.slow
def test_quick_demo_says_no_library_warning(tmp_path):
    with terminal_warnings() as shown:
        result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert_no_library_warnings("slgt2 demo --quick", result.output, shown)
    assert "wrote " in result.output.strip().splitlines()[-1]


@pytest.mark.slow
def test_readme_tour_runs_as_written(tmp_path, monkeypatch):
    _run_tour(tmp_path, monkeypatch, shrink=False)
    assert (tmp_path / "scores.json").exists()


def test_short_runs_validate_early():
    from slgt2_cli.train.config import resolve_config

    assert resolve_config(Path("d"), Path("r"), preset="tiny", iterations=300).val_every == 75
    assert resolve_config(Path("d"), Path("r"), preset="tiny").val_every == 150
    assert resolve_config(Path("d"), Path("r"), preset="tiny", iterations=300, val_every=200).val_every == 200
    assert resolve_config(Path("d"), Path("r"), preset="tiny", iterations=3).val_every == 1
