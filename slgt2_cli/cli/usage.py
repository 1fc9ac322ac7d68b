"""How the command line reads and shows itself: the help page, flags, and usage errors.

In: Typer's click objects, through public names only (``typer.core``, ``typer.BadParameter``), so every Typer that
pyproject.toml allows works. Out: ``--help`` laid out by :mod:`slgt2_cli.cli.helptext`, and every usage error (a
bad option value, a missing argument, a flag given a value) as one line ``slgt2: error: ...`` with exit status 2,
never a boxed usage message.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from slgt2_cli.cli.helptext import format_command, format_group
from slgt2_cli.errors import command_flags

EXIT_USAGE = 2
BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "1", "0", "y", "n"})
"""Words a user may put after a flag believing it takes a value (``--overwrite true``)."""


def _click_class(name: str) -> type[Exception]:
    """Click's exception class ``name`` (``UsageError``, ``ClickException``), reached through the public
    ``typer.BadParameter`` that derives from both: Typer runs on click (up to 0.2x) or on its own copy of it (later),
    and ``typer._click`` is private."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


UsageError = _click_class("UsageError")
ClickException = _click_class("ClickException")


def _flag_given_a_value(command: Any, args: Sequence[str]) -> None:
    """Refuse ``--overwrite true``: a flag takes no value, and the word would be read as a file name."""
    flags = {o for p in command.params if getattr(p, "is_flag", False) for o in p.opts + p.secondary_opts}
    for flag, word in zip(args, args[1:]):
        if flag == "--":
            return
        if flag in flags and word.lower() in BOOLEAN_WORDS and not Path(word).exists():
            raise UsageError(f"{flag} is a flag and takes no value: drop {word!r}")


def _flags(command: Any) -> dict[str, str]:
    """Configuration field -> the flag that sets it in ``command`` (``tile`` -> ``--tile``)."""
    return {p.name: next((o for o in p.opts if o.startswith("--")), p.opts[0])
            for p in command.params if p.param_type_name == "option" and p.opts}


class Command(TyperCommand):
    """A command whose help (:mod:`slgt2_cli.cli.helptext`) and parsing follow the rules above; while it runs,
    library errors name its flags (:func:`slgt2_cli.errors.option_flag`)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        formatter.write(format_command(self, ctx))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:
            try:
                _flag_given_a_value(self, args)
            except UsageError as exc:
                exc.ctx = ctx
                raise
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        with command_flags(_flags(self)):
            return super().invoke(ctx)


PHRASES = ((re.compile(r"Value error, "), ""),
           (re.compile(r"Input should be greater than or equal to (\S+)"), r"must be at least \1"),
           (re.compile(r"Input should be less than or equal to (\S+)"), r"must be at most \1"),
           (re.compile(r"Input should be a valid (\w+)[^.;]*"), r"not a valid \1"),
           (re.compile(r"\S+ is not in the range x>=([^\s.]+(?:\.\d+)?)\.?"), r"must be at least \1"),
           (re.compile(r"\S+ is not in the range x<=([^\s.]+(?:\.\d+)?)\.?"), r"must be at most \1"),
           (re.compile(r"'[^']*' is not a valid (\w+)(?: range)?\.?"), r"not a valid \1"))
"""Typer's value errors (pydantic's wording; click's on Typer before 0.2x) put the way the rest of slgt2 speaks."""


def _one_line(exc: Any) -> str:
    message = exc.format_message()
    for pattern, replacement in PHRASES:
        message = pattern.sub(replacement, message)
    message = " ".join(message.split())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and isinstance(exc, UsageError):
        message = f"{message} (see '{ctx.command_path} --help')"
    return message


class Group(TyperGroup):
    """The root: help laid out as a command's; usage errors become one line, exit status 2."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        formatter.write(format_group(self, ctx))

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # click 8.2+: the help is the message
                print(exc.format_message(), file=sys.stderr)
                sys.exit(EXIT_USAGE)
            print(f"{prog_name or 'slgt2'}: error: {_one_line(exc)}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except typer.Abort:
            print(f"{prog_name or 'slgt2'}: error: aborted", file=sys.stderr)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)
