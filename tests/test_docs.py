"""The generated configuration reference matches the code; every command's help has an example."""

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slgt2_cli.cli.app import app

DOCS = Path(__file__).resolve().parents[1] / "docs"
runner = CliRunner()


def test_configuration_reference_is_current():
    spec = importlib.util.spec_from_file_location("generate_reference", DOCS / "generate_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "configuration.md").read_text() == module.render(), "run: python docs/generate_reference.py"


@pytest.mark.parametrize("command", ["train", "predict", "predict-many", "evaluate", "synth", "convert-checkpoint", "demo"])
def test_help_has_an_example(command):
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and "slgt2 " + command.split()[0] in result.output
