"""The `slgt2` command line: thin commands that parse options and call one library function each."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from slgt2_cli import __version__

app = typer.Typer(
    name="slgt2",
    help="Land-cover mapping from Sentinel-1 SAR time series with SL-GT2Net.",
    no_args_is_help=True,
    add_completion=False,
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
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors (or set SLGT2_DEBUG=1).")] = False,
) -> None:
    """Train SL-GT2Net on GeoTIFF time series, map whole scenes, and score maps against labels."""
    if debug:
        os.environ["SLGT2_DEBUG"] = "1"


def main() -> None:
    """Console-script entry point."""
    app(prog_name="slgt2")


# Commands live in their own small modules and register themselves on `app`.
from slgt2_cli import commands  # noqa: E402,F401
