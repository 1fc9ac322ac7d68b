"""CPU threads and numeric precision for the commands that run the network (predict, train, evaluate, demo).

Threads: ``--threads N`` sets torch's intra-op threads; the default is ``OMP_NUM_THREADS`` when set, else the
cores this process may run on (``os.sched_getaffinity``, not the machine's count: containers and ``taskset``
limit it). OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``, unless set) instead of spinning after
each parallel region: spinning threads take a shared core from the process that holds it and stall on it in
the next barrier (a 512² predict beside one busy process: 108 s spinning, 16 s passive; docs/performance.md).

Memory: :func:`keep_freed_memory` stops glibc from handing every large tensor back to the kernel when it is
freed (its default for blocks over 128 KB-32 MB): each step of the network then re-faults hundreds of MB of
fresh pages, which cost a tenth of a training step (docs/performance.md). The commands call it; the Python API
leaves the process's allocator alone.

Precision: ``fp32``; ``bf16`` runs the network under ``torch.autocast`` in bfloat16 (CUDA, and CPUs with
AVX512-BF16 or AMX); ``auto`` is bf16 on CUDA, and on such CPUs for models of BF16_CPU_MIN_PARAMS or more (small,
paper: measured faster there, the tiny preset slower; docs/performance.md), else fp32.
"""

from __future__ import annotations

import functools
import os
from contextlib import nullcontext
from enum import Enum
from pathlib import Path
from typing import Any

from slgt2_cli.errors import InputError

BF16_CPU_MIN_PARAMS = 10_000_000
"""auto picks bf16 on CPU for models at least this large (small: 12 M, paper: 63 M; tiny: 3 M), where it measured
faster (tiny ran 0.87x as fast in bf16)."""


class Precision(str, Enum):
    """How the network's forward pass computes."""

    FP32 = "fp32"
    BF16 = "bf16"
    AUTO = "auto"


def available_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set, else every core this process may run on. (Fewer threads when other
    processes are busy measured slower: with passive waiting, a thread per core still gets its share of each.)"""
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    return available_cores()


def prepare_openmp() -> None:
    """Passive OpenMP waiting; takes effect only before torch is first imported (the CLI imports it lazily)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to ``threads`` or :func:`default_threads`; returns the number set."""
    if threads is not None and threads < 1:
        raise InputError(f"{{threads}} must be at least 1, not {threads}", options=("threads",))
    prepare_openmp()
    import torch

    n = threads or default_threads()
    torch.set_num_threads(n)
    return n


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, glibc's malloc.h
KEPT_FREE_BYTES = 256 << 20
"""Free memory at the top of the heap kept for reuse before glibc returns it to the kernel."""


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and keep up to KEPT_FREE_BYTES of freed memory for reuse (glibc's
    ``mallopt``); False where the C library is not glibc, which is then left as it is."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # no C library by that name, or no mallopt in it
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEPT_FREE_BYTES))


def prepare_compute(threads: int | None = None) -> int:
    """What the commands that run the network set up for the process: threads (:func:`configure_threads`,
    returned) and the allocator (:func:`keep_freed_memory`)."""
    n = configure_threads(threads)
    keep_freed_memory()
    return n


@functools.lru_cache(maxsize=4)
def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str | Precision, device: Any, model: Any = None) -> Precision:
    """FP32 or BF16 for ``device`` (a torch.device) and ``model``; InputError for bf16 where the CPU lacks it.
    ``auto``: bf16 on CUDA; on CPU bf16 only for models of at least BF16_CPU_MIN_PARAMS parameters on CPUs
    that have it (measured faster there; the small presets ran slower in bf16)."""
    try:
        p = Precision(precision)
    except ValueError:
        raise InputError(f"{{precision}} must be fp32, bf16 or auto, not {precision!r}",
                             options=("precision",)) from None
    kind = getattr(device, "type", str(device))
    if p is Precision.AUTO:
        if kind == "cuda":
            return Precision.BF16
        wide = model is not None and sum(t.numel() for t in model.parameters()) >= BF16_CPU_MIN_PARAMS
        return Precision.BF16 if kind == "cpu" and wide and cpu_has_bf16() else Precision.FP32
    if p is Precision.BF16 and kind == "cpu" and not cpu_has_bf16():
        raise InputError("{precision} bf16 on this CPU: it has neither AVX512-BF16 nor AMX (use fp32)",
                         options=("precision",))
    return p


def autocast(device: Any, precision: Precision) -> Any:
    """The autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    if precision is not Precision.BF16:
        return nullcontext()
    import torch

    return torch.autocast(getattr(device, "type", str(device)), dtype=torch.bfloat16)


def to_device(x: Any, device: Any) -> Any:
    """A numpy batch as a tensor on ``device``; to a GPU through pinned memory with a non-blocking copy (torch's
    caching host allocator reuses the pinned blocks, and keeps each alive until its copy has run)."""
    import torch

    t = torch.from_numpy(x)
    if getattr(device, "type", str(device)) == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


__all__ = ["Precision", "autocast", "available_cores", "configure_threads", "cpu_has_bf16", "default_threads",
           "keep_freed_memory", "prepare_compute", "prepare_openmp", "resolve_precision", "to_device"]
