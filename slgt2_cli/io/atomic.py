"""Safe output files: checks before any work, temporaries beside the target, atomic rename at the end.

Every output is first written to ``.NAME.partial-<pid>[...]`` in the target's directory and moved into place
with :func:`os.replace` only when complete, so a crash or Ctrl-C never leaves a half-written file under the
real name. Temporaries of runs that died (their pid no longer alive) are removed by the next run.
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from slgt2_cli.errors import InputError

_PARTIAL = ".partial-"


def temp_path(path: str | os.PathLike[str], suffix: str = "") -> Path:
    """The temporary name of ``path`` for this process: ``DIR/.NAME.partial-<pid><suffix>``."""
    path = Path(path)
    return path.with_name(f".{path.name}{_PARTIAL}{os.getpid()}{suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete temporaries of ``path`` left by processes that are no longer running; return them."""
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}{_PARTIAL}") + r"(\d+)")
    removed = []
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return removed
    for cand in candidates:
        m = pattern.match(cand.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            try:
                cand.unlink()
                removed.append(cand)
            except OSError:
                pass
    return removed


def prepare_output(path: str | os.PathLike[str], overwrite: bool = False, need_bytes: int | None = None) -> Path:
    """Check that ``path`` can be written (before any work) and clean stale temporaries; return it.

    Raises :class:`InputError` when the file exists and ``overwrite`` is false, when the directory cannot be
    created or written, when ``path`` is a directory, or when the disk has less than ``need_bytes`` free.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError("is a directory, expected a file name", path)
    if path.exists() and not overwrite:
        raise InputError("already exists (pass {overwrite} to replace it)", path, options=("overwrite",))
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output directory ({exc.strerror})", parent) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError("output directory is not writable", parent)
    remove_stale_temporaries(path)
    if need_bytes is not None:
        free = shutil.disk_usage(parent).free
        if free < need_bytes:
            raise InputError(
                f"not enough free disk space: about {_human(need_bytes)} needed, {_human(free)} free", parent
            )
    return path


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def discard(*paths: Path) -> None:
    """Remove files if they exist (temporaries); never raises."""
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass


@contextmanager
def atomic_output(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` if the block succeeds, and is removed otherwise."""
    path = prepare_output(path, overwrite=overwrite)
    tmp = temp_path(path, path.suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        discard(tmp)
        raise
