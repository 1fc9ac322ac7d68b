"""``--help`` reads at 80 columns and at 120: descriptions get most of the width, no option's text runs past four
lines, every default is shown, and the examples close the page."""

from __future__ import annotations

import pytest
import typer.main
from helpers import help_entries
from typer.testing import CliRunner

from slgt2_cli.cli.app import app
from slgt2_cli.cli.helptext import default_text

runner = CliRunner()
GROUP = typer.main.get_command(app)
COMMANDS = list(GROUP.commands)
MIN_TEXT = 40
"""A wrapped description line shorter than this means the text is squeezed into a narrow column."""
MAX_LINES = 4


def _help(argv: list[str], columns: int) -> str:
    result = runner.invoke(app, [*argv, "--help"], env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("command", [*COMMANDS, None])
def test_help_fits_and_descriptions_get_the_width(command, columns):
    text = _help([command] if command else [], columns)
    assert max(map(len, text.splitlines())) < columns, text
    entries = help_entries(text)
    assert "-h, --help" in entries, text
    for names, lines in entries.items():
        assert len(lines) <= MAX_LINES, f"{names}: {len(lines)} lines at {columns} columns:\n" + "\n".join(lines)
        for line in lines[:-1]:  # the last line of a text may be short
            assert len(line) >= MIN_TEXT, f"{names}: a {len(line)}-character line at {columns} columns: {line!r}"
    assert "<bool>" not in text and "<int" not in text and "[x>=" not in text and "│" not in text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_default_is_shown_and_examples_come_last(command):
    text = _help([command], 80)
    entries = help_entries(text)
    for p in GROUP.commands[command].params:
        if p.param_type_name == "argument":
            assert len(entries[(p.metavar or p.name.upper()) + ("..." if p.nargs != 1 else "")]) >= 1, (command, p.name, text)
        default = default_text(p)
        if default is None or p.hidden:
            continue
        block = next(" ".join(lines) for names, lines in entries.items() if p.opts[0] in names.replace(",", " ").split())
        assert f"[default: {' '.join(default.split())}]" in block, (command, p.opts[0], block)
    tail = text.rstrip().split("\n\n")[-1].splitlines()
    assert tail[0] in ("Example:", "Examples:"), text
    assert tail[1].startswith(f"  slgt2 {command}"), tail
    assert all(line.startswith((f"  slgt2 {command}", "      ")) for line in tail[1:]), tail


def test_help_width_follows_the_terminal():
    narrow, wide = _help(["predict"], 80), _help(["predict"], 120)
    assert "\n  --tile INT\n      Tile size" in narrow  # text under the names
    assert "\n  --tile INT  " in wide and "Tile size in pixels" in wide.split("--tile INT", 1)[1].splitlines()[0]
    assert len(wide.splitlines()) < len(narrow.splitlines())
