"""Library warnings said our way: while a command runs, a warning a library raises that we understand becomes one
``slgt2: note:`` line, said once per run; the rest pass as Python shows them. ``--debug`` shows everything raw.

In: the warnings raised during one command. Out: notes on stderr. Known warnings and why each is turned into a
note or silenced are in :data:`NOTES`; an unknown warning is never hidden.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

NO_GEOREFERENCE = "{path} has no georeference: maps keep pixel coordinates, areas are in pixels"
NOTES: tuple[tuple[str, str, str | None], ...] = (
    # rasterio, opening a raster without geotransform (or writing one with the identity transform): the files are
    # plain image patches (seed .mat scenes, PNG-derived sets); the pipeline works in pixels, which is the note.
    ("NotGeoreferencedWarning", r"", NO_GEOREFERENCE),
)
"""(warning class name, message pattern, note or None to silence): the warnings slgt2 says its own way."""


def _raster_path() -> str:
    """The raster being opened when the warning was raised: ``rasterio.open``'s ``fp`` (or a ``path``) up the stack."""
    frame = sys._getframe(2)
    while frame is not None:
        for name in ("fp", "path"):
            value = frame.f_locals.get(name)
            if isinstance(value, (str, os.PathLike)):
                return os.fspath(value)
        frame = frame.f_back
    return "a raster"


@contextmanager
def library_warnings(debug: bool = False) -> Iterator[None]:
    """Within the block, known library warnings become one note each (the first occurrence names its file);
    with ``debug`` every warning is shown, each once per place, as Python does with ``-W default``."""
    with warnings.catch_warnings():
        if debug:
            warnings.simplefilter("default")
            yield
            return
        said: set[str] = set()
        previous = warnings.showwarning

        def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
            for name, pattern, note in NOTES:
                if category.__name__ == name and re.search(pattern, str(message)):
                    if note is not None and name not in said:
                        said.add(name)
                        print(f"slgt2: note: {note.format(path=_raster_path())}", file=sys.stderr)
                    return
            previous(message, category, filename, lineno, file, line)

        for name, _, _ in NOTES:  # every occurrence reaches show(), which says each note once per run
            category = _category(name)
            if category is not None:
                warnings.simplefilter("always", category)
        warnings.showwarning = show
        yield


def _category(name: str) -> type[Warning] | None:
    if name == "NotGeoreferencedWarning":
        from rasterio.errors import NotGeoreferencedWarning

        return NotGeoreferencedWarning
    return None
