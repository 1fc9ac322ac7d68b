"""How ``--help`` reads: plain text laid out for the terminal's width, the same under every Typer and Click.

In: a command (or the root group) and its click context. Out: the help page as one string. Each option is a name
line (``--tile INT``, choices as ``[cosine|gaussian|average]``, flags bare) and its text, default included; on a
terminal of at least :data:`TWO_COLUMNS_FROM` columns the text stands beside the names, otherwise indented below
them (as git and rio do), so descriptions get most of the width at 80 columns too. Paragraphs that start with
``Example`` go to the end of the page, verbatim. Only public click attributes are read (``opts``, ``help``,
``default``, ``show_default``, ``type``), so the page is the same on every supported Typer.
"""

from __future__ import annotations

import inspect
import os
import textwrap
import typing
from enum import Enum
from typing import Any

MAX_WIDTH = 120
"""Wider terminals still get lines of at most this many columns (longer lines read badly)."""
MIN_WIDTH = 60
TWO_COLUMNS_FROM = 99
"""From this width the option text stands beside the names; below it, on the lines under them."""
NAMES_COLUMN = 30
INDENT = 6
"""Where an option's text starts when it stands under its names."""
METAVARS = {"int": "INT", "integer": "INT", "int range": "INT", "integer range": "INT", "float": "FLOAT",
            "float range": "FLOAT", "path": "PATH", "file": "FILE", "directory": "DIR", "str": "TEXT", "text": "TEXT"}
"""Click's and Typer's type words, as the name line shows them (``<int range>`` and ``INTEGER RANGE``: ``INT``)."""


def help_width(ctx: Any) -> int:
    """The page width: the context's ``terminal_width``, else the terminal (``COLUMNS``), within the limits; one
    column is left free, so no line ends exactly at the terminal's edge."""
    width = getattr(ctx, "terminal_width", None) or _terminal_columns()
    return max(MIN_WIDTH, min(int(width), MAX_WIDTH)) - 1


def _terminal_columns() -> int:
    """``COLUMNS``, else the width of the terminal on stdout, stderr or stdin (``--help | less`` keeps it), else 80."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    for fd in (1, 2, 0):
        try:
            return os.get_terminal_size(fd).columns
        except OSError:
            continue
    return 80


def _wrap(text: str, width: int, first: str, rest: str | None = None) -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=first if rest is None else rest,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


def _paragraphs(text: str) -> tuple[list[str], list[str]]:
    """The help text's paragraphs, and separately its examples (paragraphs starting with ``Example``)."""
    body, examples = [], []
    for part in inspect.cleandoc(text or "").split("\n\n"):
        part = part.strip("\n")
        if part.strip():
            (examples if part.lstrip().startswith("Example") else body).append(part)
    return body, examples


def _description(paragraphs: list[str], width: int) -> list[str]:
    lines: list[str] = []
    for part in paragraphs:
        if part.startswith("\b"):  # click's mark for lines kept as written
            lines += ["  " + line for line in part[1:].strip("\n").splitlines()]
        elif part.lstrip().startswith(("* ", "- ")):
            for item in ("\n" + part.strip()).split("\n" + part.strip()[0] + " ")[1:]:
                lines += _wrap(" ".join(item.split()), width, "  " + part.strip()[0] + " ", "    ")
        else:
            lines += _wrap(" ".join(part.split()), width, "  ")
        lines.append("")
    return lines


def _examples(paragraphs: list[str], width: int) -> list[str]:
    """``Examples:  slgt2 a`` / ``           slgt2 b`` as a section of command lines; one too long for the width
    goes on over lines ending in ``\\``, as a shell reads it."""
    lines: list[str] = []
    for part in paragraphs:
        head, _, first = part.splitlines()[0].partition(":")
        if not lines:
            lines.append(head.strip() + ":")
        for command in (line.strip() for line in [first, *part.splitlines()[1:]] if line.strip()):
            wrapped = _wrap(command, width - 2, "  ", "      ") if len(command) + 2 > width else ["  " + command]
            lines += [line + " \\" for line in wrapped[:-1]] + wrapped[-1:]
    return lines + [""] if lines else []


def _names(param: Any, usage: bool = False) -> str:
    if param.param_type_name == "argument":
        name = (param.metavar or param.name.upper()) + ("..." if param.nargs != 1 else "")
        return name if param.required or not usage else f"[{name}]"
    opts = sorted(param.opts, key=lambda o: o.startswith("--"))
    text = ", ".join(opts)
    if param.secondary_opts:
        text += " / " + ", ".join(param.secondary_opts)
    return text


def _metavar(param: Any, ctx: Any) -> str:
    """The value placeholder of an option: its own metavar, else Typer's/Click's type word made compact."""
    if param.param_type_name == "argument" or getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    if param.metavar:
        return param.metavar
    kind = getattr(param, "type", None)  # a click ParamType (Typer on click); Typer on its own copy: display_type
    if kind is not None:
        choices = getattr(kind, "choices", None)
        word = "|".join(str(getattr(c, "value", c)) for c in choices) if choices else kind.name
    else:
        word = param.display_type(ctx) or ""
    if "|" in word:
        return "[" + word.strip("<>[]{}") + "]"
    return METAVARS.get(word.strip("<>").lower(), word.upper())


def default_text(param: Any) -> str | None:
    """What ``[default: ...]`` says: the words given as ``show_default``, else the default value; None for none."""
    shown = getattr(param, "show_default", None)
    if isinstance(shown, str):
        return shown or None
    if shown is False or param.required or "--help" in param.opts or getattr(param, "is_eager", False):
        return None
    value = param.default
    if callable(value) or value is None or value == () or value == []:
        return None
    if getattr(param, "is_flag", False):
        if not param.secondary_opts:
            return None
        return (param.opts if value else param.secondary_opts)[-1].lstrip("-")
    if isinstance(value, (list, tuple)):
        return ", ".join(str(getattr(v, "value", v)) for v in value)
    return str(value.value if isinstance(value, Enum) else value)


def _declared_help(command: Any, name: str) -> str:
    """The ``help=`` given in the command function's annotation for parameter ``name`` (Typer before 0.2x on
    click 8.2+ loses an argument's help: click's own ``__init__`` resets it)."""
    try:
        annotation = inspect.signature(command.callback, eval_str=True).parameters[name].annotation
    except (KeyError, NameError, TypeError, ValueError):
        return ""
    return next((m.help for m in typing.get_args(annotation)[1:] if isinstance(getattr(m, "help", None), str)), "")


def param_text(param: Any, command: Any = None) -> str:
    """The option's help text with its default, on one line."""
    text = getattr(param, "help", None) or (_declared_help(command, param.name) if command is not None else "")
    text = " ".join(text.split())
    default = default_text(param)
    return f"{text} [default: {default}]".strip() if default is not None else text


def _rows(params: list[Any], ctx: Any) -> list[tuple[str, str]]:
    rows = []
    for p in params:
        if getattr(p, "hidden", False):
            continue
        names = " ".join(filter(None, (_names(p), _metavar(p, ctx))))
        rows.append((names, param_text(p, ctx.command)))
    return rows


def _section(title: str, rows: list[tuple[str, str]], width: int, *, column: int | None = None) -> list[str]:
    """A titled list of (names, text): beside each other when the text keeps most of the width, else stacked."""
    if not rows:
        return []
    names_width = min(max(len(n) for n, _ in rows), column or NAMES_COLUMN)
    beside = width >= TWO_COLUMNS_FROM or column is not None
    lines = [title + ":"]
    for names, text in rows:
        if beside:
            start = 2 + names_width + 2
            if len(names) <= names_width:
                lines += _wrap(text, width, "  " + names.ljust(names_width + 2), " " * start) if text else ["  " + names]
            else:
                lines += ["  " + names] + (_wrap(text, width, " " * start) if text else [])
        else:
            lines += ["  " + names] + (_wrap(text, width, " " * INDENT) if text else [])
    return lines + [""]


def format_command(command: Any, ctx: Any) -> str:
    """The whole help page of a command."""
    width = help_width(ctx)
    params = command.get_params(ctx)
    arguments = [p for p in params if p.param_type_name == "argument"]
    options = [p for p in params if p.param_type_name != "argument"]
    usage = " ".join(["[OPTIONS]" if options else "", *(_names(p, usage=True) for p in arguments)]).strip()
    body, examples = _paragraphs(command.help or "")
    lines = _wrap(f"{ctx.command_path} {usage}", width, "Usage: ", " " * 7) + [""]
    lines += _description(body, width)
    lines += _section("Arguments", _rows(arguments, ctx), width)
    lines += _section("Options", _rows(options, ctx), width)
    lines += _examples(examples, width)
    return "\n".join(lines).rstrip("\n") + "\n"


def format_group(group: Any, ctx: Any) -> str:
    """The root's help page: what slgt2 is, its commands in workflow order, its own options."""
    width = help_width(ctx)
    body, examples = _paragraphs(group.help or "")
    lines = _wrap(f"{ctx.command_path} [OPTIONS] COMMAND [ARGS]...", width, "Usage: ", " " * 7) + [""]
    lines += _description(body, width)
    names = group.list_commands(ctx)
    commands = [(n, group.get_command(ctx, n)) for n in names]
    column = max((len(n) for n in names), default=0)
    rows = [(n, c.get_short_help_str(limit=300)) for n, c in commands if c is not None and not c.hidden]
    lines += _section("Commands", rows, width, column=column)
    lines += _section("Options", _rows(group.get_params(ctx), ctx), width)
    lines += _examples(examples, width)
    return "\n".join(lines).rstrip("\n") + "\n"
