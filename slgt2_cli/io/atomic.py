"""Safe output files: the one way slgt2 writes a file a user keeps (maps, reports, checkpoints, config, plots).

Checks before any work (:func:`prepare_output`, :func:`check_distinct`: never an output onto an input or onto
another output, whatever ``--overwrite`` says), then every output is written to ``.NAME.partial-<pid>[...]``
in the target's directory and moved into place by :func:`publish` only when complete and verified (not empty,
flushed to disk, readable back when a ``verify`` function is given), with the mode a new file gets under the
umask (0644 usually). A crash, Ctrl-C or SIGTERM never leaves a half-written file under the real name and never
replaces a good file with a broken one; temporaries of runs that died (their pid gone) are removed by the next
run. A full disk or an unwritable output is an :class:`InputError` naming the file (exit 2), see :func:`writing`.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from slgt2_cli.errors import InputError

_PARTIAL = ".partial-"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DISK_FULL_TEXT = re.compile(r"no space left|disk space|disk full|quota exceeded|file too large", re.I)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
_IN_THE_WAY = (errno.ENOTDIR, errno.EEXIST)


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
            discard(cand)
            if not cand.exists():
                removed.append(cand)
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
        why = "a file of that name is in the way" if exc.errno in _IN_THE_WAY else exc.strerror
        raise InputError(f"cannot create the output directory ({why}); choose another output location",
                         parent) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError("output directory is not writable", parent)
    remove_stale_temporaries(path)
    if need_bytes is not None:
        require_free_space(parent, need_bytes)
    return path


def require_free_space(directory: str | os.PathLike[str], need_bytes: int, what: str = "") -> None:
    """InputError naming ``directory`` when its disk has less than ``need_bytes`` free (checked before work).
    A directory not created yet is measured on the disk of its nearest existing parent."""
    existing = next((p for p in (Path(directory), *Path(directory).absolute().parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(existing).free
    if free < need_bytes:
        for_what = f" for {what}" if what else ""
        raise InputError(f"not enough free disk space{for_what}: about {_human(need_bytes)} needed, "
                         f"{_human(free)} free (free some space or write elsewhere)", directory)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def discard(*paths: str | os.PathLike[str]) -> None:
    """Remove temporaries (files or directories) if they exist; never raises."""
    for p in map(Path, paths):
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink()
        except OSError:
            pass


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC/EDQUOT/EFBIG, and for GDAL errors that say the disk is full."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return True
    return bool(_DISK_FULL_TEXT.search(str(exc)))


def write_error(exc: BaseException, path: str | os.PathLike[str]) -> InputError | None:
    """The InputError a failed write of ``path`` becomes (disk full, permission, I/O), or None if it is a bug.

    GDAL often reports a full disk only as a warning and then fails later on an unreadable file, so an I/O
    error while the disk has almost no space left counts as a full disk."""
    if is_disk_full(exc) or (isinstance(exc, OSError) and _nearly_full(path)):
        return InputError("disk full while writing; nothing was replaced (free some space or write elsewhere, "
                          "then run again)", path)
    if isinstance(exc, OSError) and exc.errno in _DENIED + _IN_THE_WAY:
        in_the_way = ": a file stands where a directory should be" if exc.errno in _IN_THE_WAY else ""
        return InputError(f"cannot write ({exc.strerror}{in_the_way}); choose a writable location", path)
    if isinstance(exc, OSError) and not isinstance(exc, (FileNotFoundError, IsADirectoryError)):
        reason = (exc.strerror or str(exc) or type(exc).__name__).splitlines()[0]
        return InputError(f"cannot write ({reason}); nothing was replaced (check the disk, then run again)", path)
    if type(exc).__name__.startswith("CPLE_") and re.search(r"permission denied|read-only", str(exc), re.I):
        return InputError("cannot write (permission denied); choose a writable location", path)
    return None


def _nearly_full(path: str | os.PathLike[str], margin: int = 1 << 20) -> bool:
    try:
        st = os.statvfs(Path(path).parent)
        return st.f_bavail * st.f_frsize < margin
    except (OSError, AttributeError):
        return False


@contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Within the block, a full disk or an unwritable file becomes an InputError naming ``path``."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - sorted by write_error; bugs pass through unchanged
        error = write_error(exc, path)
        if error is None:
            raise
        raise error from exc


def _umask_mode() -> int:
    """The mode a new file gets here: 0666 less the process umask (read without changing it for long)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str],
            verify: Callable[[Path], None] | None = None, size: int | None = None) -> Path:
    """Move the finished temporary ``tmp`` onto ``path``: only if it has ``size`` bytes (not empty when the size
    is not known), is on disk (fsync) and passes ``verify`` (which raises if the file is broken); it gets the
    umask's mode. ``tmp`` is removed on failure."""
    tmp, path = Path(tmp), Path(path)
    try:
        with writing(path):
            written = tmp.stat().st_size
            if (size is None and written == 0) or (size is not None and written != size):
                raise InputError("the written file came out short (disk full?); nothing was replaced", path)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            if verify is not None:
                verify(tmp)
            os.chmod(tmp, _umask_mode())
            os.replace(tmp, path)
    except BaseException:
        discard(tmp)
        raise
    return path


@contextmanager
def atomic_output(path: str | os.PathLike[str], overwrite: bool = True, *,
                  verify: Callable[[Path], None] | None = None, size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` (see :func:`publish`) if the block succeeds, and
    is removed otherwise (errors, Ctrl-C). A full disk is an InputError naming ``path``."""
    path = prepare_output(path, overwrite=overwrite)
    tmp = temp_path(path, path.suffix)
    try:
        with writing(path):
            yield tmp
        publish(tmp, path, verify, size)
    except BaseException:
        discard(tmp)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path, overwrite, size=len(data)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, overwrite: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"), overwrite)


# --- outputs must not be inputs ------------------------------------------------------------------------------
def _canonical(path: str | os.PathLike[str]) -> Path:
    """``path`` absolute with every symlink resolved, as far as it exists."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when ``a`` and ``b`` are one file: same inode (hard links, symlinks) or the same resolved path."""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return _canonical(a) == _canonical(b)


def check_distinct(outputs: Sequence[tuple[str, str | os.PathLike[str] | None]],
                   inputs: Sequence[tuple[str, str | os.PathLike[str] | None]] = ()) -> None:
    """Refuse (InputError) any output that is one of the inputs, lies inside an input directory, or is the same
    file as another output; ``--overwrite`` never allows that. Each item is ``(role, path)``; None is skipped."""
    outs = [(role, Path(p)) for role, p in outputs if p is not None]
    ins = [(role, Path(p)) for role, p in inputs if p is not None]
    for i, (role, out) in enumerate(outs):
        for in_role, src in ins:
            if same_file(out, src):
                raise InputError(f"this {role} would overwrite the {in_role} {src} it is made from; "
                                 f"choose another output name", out)
            if src.is_dir() and _canonical(src) in _canonical(out).parents:
                raise InputError(f"this {role} would be written inside the {in_role} {src}; "
                                 f"choose another output location", out)
        for other_role, other in outs[:i]:
            if same_file(out, other):
                raise InputError(f"the {role} and the {other_role} are the same file; give them different names",
                                 out)
