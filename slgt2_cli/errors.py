"""Errors users can act on, and the one place that turns them into exit codes.

Library code raises :class:`InputError` for anything caused by the user's files or options; the CLI prints
its message as one line on stderr and exits with status 2. Python code catches it as the built-in it is: a
``ValueError``, and a missing file (:class:`MissingFileError`) also a ``FileNotFoundError``. Training that
diverges raises :class:`DivergedError` (exit 3). Anything else is an internal error (exit 1).
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


class InputError(ValueError):
    """Bad input or bad usage: one clear line, exit status 2 (a ``ValueError``, so ``except ValueError`` catches it).

    Give the file (``path``) when there is one, so the message names it. A message about an option names it
    as ``{name}`` (the configuration field, e.g. ``{tile}``) and lists it in ``options``: the library shows the
    bare name (``tile must be ...``), the command line its flag (``--tile must be ...``, see :meth:`render`).
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None, hint: str | None = None,
                 options: Sequence[str] = ()):
        self.path = Path(path) if path is not None else None
        self.hint = hint
        self.message = message
        self.options = tuple(options)
        super().__init__(self.render())

    def __str__(self) -> str:
        return self.render()

    def __reduce__(self) -> tuple[Any, ...]:  # across processes (data-loading workers) with its parts
        return type(self), (self.message, self.path, self.hint, self.options)

    def render(self, name_of: Callable[[str], str] = str) -> str:
        """The one-line message, each ``{option}`` written as ``name_of(option)`` (the bare name by default)."""
        message, hint = self.message, self.hint
        for option in self.options:
            message = message.replace("{" + option + "}", name_of(option))
            hint = hint.replace("{" + option + "}", name_of(option)) if hint else hint
        from slgt2_cli.io.remote import shown

        text = f"{shown(self.path)}: {message}" if self.path is not None else message  # URLs keep their //
        return f"{text} ({hint})" if hint else text


class MissingFileError(InputError, FileNotFoundError):
    """An input file or directory that does not exist: an :class:`InputError` (exit status 2) that is also a
    ``FileNotFoundError`` (``errno`` ENOENT, ``filename`` the path)."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None, hint: str | None = None,
                 options: Sequence[str] = ()):
        super().__init__(message, path, hint, options)
        self.errno, self.strerror = errno.ENOENT, message
        self.filename = os.fspath(path) if path is not None else None


_FLAGS: ContextVar[Mapping[str, str] | None] = ContextVar("slgt2_command_flags", default=None)


@contextmanager
def command_flags(flags: Mapping[str, str]) -> Iterator[None]:
    """While a command runs: which flag sets each configuration field (``{"tile": "--tile"}``)."""
    token = _FLAGS.set(dict(flags))
    try:
        yield
    finally:
        _FLAGS.reset(token)


def option_flag(name: str) -> str:
    """The command-line flag of configuration field ``name`` in the running command (``tile`` -> ``--tile``)."""
    return (_FLAGS.get() or {}).get(name) or "--" + name.replace("_", "-")


class DivergedError(Exception):
    """Training cannot go on: the loss or the weights became non-finite (exit status 3, one line)."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


def debug_enabled() -> bool:
    """True when tracebacks were asked for (``--debug`` or ``SLGT2_DEBUG=1``)."""
    return os.environ.get("SLGT2_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _fail(message: str, code: int) -> None:
    import typer

    if debug_enabled():
        traceback.print_exc(file=sys.stderr)
    print(f"slgt2: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def cli_errors(func: F) -> F:
    """Decorate a CLI command so errors become one line and an exit status, never a traceback, and library
    warnings our notes (:mod:`slgt2_cli.cli.notes`)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from slgt2_cli.cli.notes import library_warnings

        try:
            with library_warnings(debug=debug_enabled()):
                return func(*args, **kwargs)
        except InputError as exc:
            _fail(exc.render(option_flag), EXIT_INPUT)
        except DivergedError as exc:
            _fail(exc.render(option_flag) if isinstance(exc, InputError) else str(exc), EXIT_DIVERGED)
        except KeyboardInterrupt as exc:
            _fail(f"interrupted: {exc}" if str(exc) else "interrupted", EXIT_INTERRUPTED)
        except MemoryError:
            _fail("out of memory (try a smaller --tile or --batch-size)", EXIT_INTERNAL)
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            if isinstance(exc, SystemExit) or type(exc).__module__.startswith(("click", "typer")):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", EXIT_INTERNAL)

    return wrapper  # type: ignore[return-value]


@contextmanager
def terminate_as_interrupt(what: str = "no output was written") -> Iterator[None]:
    """Within the block, SIGTERM (and SIGHUP) raise KeyboardInterrupt in the main thread like Ctrl-C, so
    ``finally`` and ``except BaseException`` clean-ups run (e.g. temporaries removed) before the exit.
    Later signals during that clean-up are ignored. A no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, _frame: Any) -> None:
        if fired:
            return
        fired.append(signum)
        raise KeyboardInterrupt(f"{signal.Signals(signum).name} received; {what}")

    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {s: signal.signal(s, handler) for s in wanted}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
