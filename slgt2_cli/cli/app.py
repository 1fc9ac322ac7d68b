"""The `slgt2` Typer application: the root options and the commands, registered in workflow order.

In: argv. Out: an exit status (0, 2 for bad input, 1 internal, 130 interrupted). Each command module in this
package only parses options and calls one library function; this module wires them to the app.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from slgt2_cli import __version__
from slgt2_cli.cli.usage import Command, Group

app = typer.Typer(
    name="slgt2",
    cls=Group,
    help="Land-cover mapping from Sentinel-1 SAR time series with SL-GT2Net.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"slgt2 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors (or set SLGT2_DEBUG=1).")] = False,
) -> None:
    """Train SL-GT2Net on GeoTIFF time series, map whole scenes, and score maps against labels."""
    if debug:
        os.environ["SLGT2_DEBUG"] = "1"


def main() -> None:
    """Console-script entry point."""
    app(prog_name="slgt2")


def _register_commands() -> None:
    """Add every command in workflow order, each behind the one error handler (one line, an exit status)."""
    from slgt2_cli.cli import convert, demo, evaluate, info, predict, predict_many, synth, train
    from slgt2_cli.errors import cli_errors

    for name, command in (
        ("synth", synth.synth),
        ("train", train.train),
        ("info", info.info),
        ("predict", predict.predict),
        ("predict-many", predict_many.predict_many),
        ("evaluate", evaluate.evaluate),
        ("convert-checkpoint", convert.convert_checkpoint),
        ("demo", demo.demo),
    ):
        app.command(name, cls=Command)(cli_errors(command))


_register_commands()
