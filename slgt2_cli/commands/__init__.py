"""CLI commands; importing this package registers each of them on `slgt2_cli.cli.app`."""

from slgt2_cli.commands import evaluate, predict, synth, train  # noqa: F401
