"""How the command line reads and shows itself: usage lines, argument names, flags, and usage errors.

In: Typer's click objects. Out: ``--help`` with arguments as ``DATASET``, ``[PREDICTION]``, ``STACKS...``,
flags without a value placeholder, and every usage error (a bad option value, a missing argument, a flag given a
value) as one line ``slgt2: error: ...`` with exit status 2, never a boxed usage message.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from typer import _click as click
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

EXIT_USAGE = 2
BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "1", "0", "y", "n"})
"""Words a user may put after a flag believing it takes a value (``--overwrite true``)."""


class Argument(TyperArgument):
    """A positional argument shown by its upper-case name: ``DATASET``, ``[PREDICTION]``, ``STACKS...``."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar if self.metavar is not None else self.name.upper()

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return re.sub(r"list\[(\w+)\]", lambda m: m[1].lower(), self.display_type(ctx))


class Option(TyperOption):
    """An option whose default given in words (``show_default="preset: ..."``) is shown as written."""

    def _get_default_string(self, *, ctx: click.Context, show_default_is_str: bool, default_value: Any) -> str:
        if show_default_is_str:
            return str(self.show_default)
        return super()._get_default_string(ctx=ctx, show_default_is_str=False, default_value=default_value)


class Flag(Option):
    """A boolean flag: no ``<bool>`` placeholder, since it takes no value."""

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None


def _specialise(params: list[click.Parameter]) -> list[click.Parameter]:
    """Give Typer's own parameters the display rules above (their class is chosen inside Typer)."""
    for p in params:
        if type(p) is TyperArgument:
            p.__class__ = Argument
        elif type(p) is TyperOption:
            p.__class__ = Flag if p.is_bool_flag else Option
    return params


def _flag_given_a_value(command: click.Command, args: Sequence[str]) -> None:
    """Refuse ``--overwrite true``: a flag takes no value, and the word would be read as a file name."""
    flags = {o for p in command.params if isinstance(p, TyperOption) and p.is_flag for o in p.opts + p.secondary_opts}
    for flag, word in zip(args, args[1:]):
        if flag == "--":
            return
        if flag in flags and word.lower() in BOOLEAN_WORDS and not Path(word).exists():
            raise UsageError(f"{flag} is a flag and takes no value: drop {word!r}")


class Command(TyperCommand):
    """A command whose help and parsing follow the rules above."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return _specialise(super().get_params(ctx))

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:
            try:
                _flag_given_a_value(self, args)
            except UsageError as exc:
                exc.ctx = ctx
                raise
        return super().parse_args(ctx, args)


PHRASES = ((re.compile(r"Value error, "), ""),
           (re.compile(r"Input should be greater than or equal to (\S+)"), r"must be at least \1"),
           (re.compile(r"Input should be less than or equal to (\S+)"), r"must be at most \1"),
           (re.compile(r"Input should be a valid (\w+)[^.;]*"), r"not a valid \1"))
"""Typer's value errors (pydantic's wording) put the way the rest of slgt2 speaks."""


def _one_line(exc: ClickException) -> str:
    message = exc.format_message()
    for pattern, replacement in PHRASES:
        message = pattern.sub(replacement, message)
    message = " ".join(message.split())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and isinstance(exc, UsageError):
        message = f"{message} (see '{ctx.command_path} --help')"
    return message


class Group(TyperGroup):
    """The root: its parameters shown like a command's; usage errors become one line, exit status 2."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return _specialise(super().get_params(ctx))

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:  # the help is printed already (Rich) or here
            if exc.format_message().strip():
                print(exc.format_message(), file=sys.stderr)
            sys.exit(EXIT_USAGE)
        except ClickException as exc:
            print(f"{prog_name or 'slgt2'}: error: {_one_line(exc)}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except typer.Abort:
            print(f"{prog_name or 'slgt2'}: error: aborted", file=sys.stderr)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)
