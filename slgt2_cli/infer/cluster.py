"""Where `predict-many` runs its scenes: in this process, on a Dask ``LocalCluster`` it starts, or on a running
Dask scheduler (an address or a scheduler file, e.g. from dask-jobqueue on Slurm/PBS or a Kubernetes cluster).

In: ``--cluster local[:N]`` / ``ADDRESS`` / ``--scheduler-file F`` (or a ``distributed.Client`` from the Python
API). Out: a client (or None for in-process), the dashboard link, and for each worker the device and CPU threads
it runs the network with. Dask is imported only when a cluster is asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slgt2_cli.errors import InputError
from slgt2_cli.runtime import available_cores, prepare_openmp

CORES_PER_WORKER = 4
"""``local`` without N on a machine without GPUs: one worker per this many cores (torch scales well to ~4)."""

_LOCAL = re.compile(r"^local(?::(\d+))?$")


@dataclass(frozen=True, kw_only=True)
class LocalLayout:
    """A LocalCluster's shape: worker processes, torch threads each, GPUs shared out (0: CPU only)."""

    workers: int
    threads: int
    gpus: int = 0


def visible_gpus() -> int:
    """CUDA GPUs this process sees (0 without torch's CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def local_layout(workers: int | None, cores: int | None = None, gpus: int | None = None) -> LocalLayout:
    """N workers (default: one per visible GPU, else one per CORES_PER_WORKER cores), the cores divided
    between them (each worker runs one scene at a time with that many torch threads)."""
    cores = cores if cores is not None else available_cores()
    gpus = gpus if gpus is not None else visible_gpus()
    n = workers or (gpus or max(1, cores // CORES_PER_WORKER))
    return LocalLayout(workers=n, threads=max(1, cores // n), gpus=gpus)


def check_cluster(cluster: str | None, scheduler_file: Path | None) -> None:
    """Refuse a cluster spec that is neither local[:N] nor an address, and both a cluster and a scheduler file."""
    if cluster is not None and scheduler_file is not None:
        raise InputError("give either {cluster} or {scheduler_file}, not both", options=("cluster", "scheduler_file"))
    if scheduler_file is not None and not Path(scheduler_file).is_file():
        raise InputError("scheduler file not found", scheduler_file)
    if cluster is None:
        return
    m = _LOCAL.match(cluster.strip().lower())
    if m and m.group(1) is not None and int(m.group(1)) < 1:
        raise InputError(f"{{cluster}} {cluster!r}: a local cluster needs at least one worker", options=("cluster",))
    if not m and "://" not in cluster and ":" not in cluster:
        raise InputError(f"{{cluster}} {cluster!r} is neither local[:N] nor a scheduler address such as "
                         "tcp://host:8786", options=("cluster",))


@contextmanager
def open_client(cluster: str | None, scheduler_file: Path | None = None) -> Iterator[tuple[Any, LocalLayout | None]]:
    """Yield ``(client, layout)``: ``(None, None)`` without a cluster; a LocalCluster's client and its layout
    (closed on exit); or a client of the running scheduler (left running on exit)."""
    check_cluster(cluster, scheduler_file)
    if cluster is None and scheduler_file is None:
        yield None, None
        return
    from distributed import Client, LocalCluster

    m = _LOCAL.match(cluster.strip().lower()) if cluster else None
    if m:
        prepare_openmp()  # the worker processes inherit it: passive OpenMP waits, as in-process runs have
        layout = local_layout(int(m.group(1)) if m.group(1) else None)
        with LocalCluster(n_workers=layout.workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as lc, Client(lc) as client:  # a free port
            yield client, layout
        return
    try:
        client = Client(scheduler_file=str(scheduler_file)) if scheduler_file else Client(cluster, timeout="20s")
    except OSError as exc:
        where = scheduler_file if scheduler_file else None
        raise InputError(f"cannot reach the Dask scheduler {cluster or ''} ({exc})".replace("  ", " "), where) from None
    with client:
        yield client, None


def dashboard_link(client: Any) -> str | None:
    """The Dask dashboard's address, when the scheduler serves one."""
    try:
        info = client.scheduler_info()
        if "dashboard" not in info.get("services", {}):
            return None
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - a link is a courtesy
        return None


def worker_slot() -> int | None:
    """This Dask worker's index (a LocalCluster names its workers 0..N-1), None outside a worker."""
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return None
    try:
        return int(name)
    except (TypeError, ValueError):
        return abs(hash(str(name))) % 1024


def worker_device(device: str) -> Any:
    """The torch device a worker runs on: ``auto`` or ``cuda`` on a machine with GPUs takes GPU (slot mod GPUs),
    so the workers of one machine share its GPUs out; None leaves the choice to the settings."""
    slot = worker_slot()
    if slot is None or device not in ("auto", "cuda"):
        return None
    gpus = visible_gpus()
    if not gpus:
        return None
    import torch

    return torch.device(f"cuda:{slot % gpus}")


def set_worker_threads(threads: int | None) -> None:
    """Torch threads in this worker: ``threads`` (a LocalCluster's share of the cores) or the worker's own
    OMP_NUM_THREADS / cores, and the heap policy of the commands (:func:`slgt2_cli.runtime.prepare_compute`);
    set once per process."""
    global _THREADS_SET
    if _THREADS_SET == threads:
        return
    from slgt2_cli.runtime import prepare_compute

    prepare_compute(threads)
    _THREADS_SET = threads


_THREADS_SET: int | None = -1
