"""The command line exists, reports its version and never shows tracebacks for user errors."""

import subprocess
import sys

from typer.testing import CliRunner

from slgt2_cli import __version__
from slgt2_cli.cli.app import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert __version__ in result.output


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_python_dash_m():
    proc = subprocess.run([sys.executable, "-m", "slgt2_cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout
