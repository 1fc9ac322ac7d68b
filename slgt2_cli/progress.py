"""One progress display for every long step (training, predicting, scoring a split).

In: a total, a label and a unit. Out: a tqdm bar on a terminal; on anything else (a log file, a pipe, CI) a plain
line every :data:`LOG_SECONDS` seconds and one at the end, so a redirected log holds readable lines instead of
thousands of carriage-return frames.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

from tqdm import tqdm

LOG_SECONDS = 10.0
"""Seconds between two progress lines when stderr is not a terminal (``SLGT2_PROGRESS_SECONDS`` overrides)."""
LOG_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def log_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("SLGT2_PROGRESS_SECONDS", LOG_SECONDS)))
    except ValueError:
        return LOG_SECONDS


class _Lines:
    """A stream that passes only whole lines: tqdm's bare carriage returns and blank clears are dropped."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, text: str) -> None:
        if text.strip():
            self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class LogProgress(tqdm):
    """tqdm that prints its state as a line at most every ``interval`` seconds, and once when it is closed."""

    def __init__(self, *args: Any, interval: float = LOG_SECONDS, **kwargs: Any):
        self._interval, self._emitted_at, self._last_line = interval, -float("inf"), ""
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        now = time.monotonic()
        finished = self.total is not None and self.n >= self.total
        if not finished and now - self._emitted_at >= self._interval:
            self._emit()
            self._emitted_at = now
        return True

    def _emit(self) -> None:
        line = self.__str__().strip()
        if line and line != self._last_line and self.n > 0:
            self.fp.write(line + "\n")
            self.fp.flush()
            self._last_line = line

    def close(self) -> None:
        if not self.disable and not getattr(self, "_closed_once", False):
            self._closed_once = True
            self._emit()  # the final state, once
        super().close()


def progress_bar(*, total: int | None, desc: str, unit: str = "it", enabled: bool = True, initial: int = 0,
                 leave: bool = True, unit_scale: bool = False, file: IO[str] | None = None) -> tqdm:
    """A progress bar for ``total`` units of work, shown on ``file`` (stderr) when ``enabled``.

    A terminal gets tqdm's live bar; a file or pipe gets a line every few seconds (see :class:`LogProgress`).
    ``unit_scale`` writes large counts with k/M/G prefixes.
    """
    stream = file if file is not None else sys.stderr
    if not enabled or _is_terminal(stream):
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave, dynamic_ncols=True,
                    disable=not enabled, unit_scale=unit_scale, file=stream)
    return LogProgress(total=total, initial=initial, desc=desc, unit=unit, leave=leave, file=_Lines(stream),
                       unit_scale=unit_scale, bar_format=LOG_FORMAT, interval=log_seconds(), mininterval=0,
                       miniters=1)
