"""Seconds from `slgt2 train` starting to its first training step, on a synthetic dataset of many scenes.

    python benchmarks/train_startup.py --scenes 600 2000 --scene-size 256
    python benchmarks/train_startup.py --data /tmp/d600 --baseline /tmp/base --rounds 3   # before/after

Writes (or reuses) ``slgt2 synth WORK/s<N> --scenes N --scene-size S`` per dataset size, then runs
``slgt2 train DATA --out RUN --preset tiny`` in a fresh process and reports the time until the model's first
forward pass in training mode (the process is ended there): interpreter start, imports, dataset discovery,
temporal rule, normalisation statistics, class census, validation split and data-loader start-up.
With ``--baseline REPO`` the same is measured for another checkout, rounds interleaved (new, baseline, ...).
A second ``new`` figure with ``--resume``-style reuse of the cached survey is printed as ``cached``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_DRIVER = r"""
import os, sys, time
t0 = float(sys.argv[1])
import models.slgt2net as net
_forward = net.SLGT2Net.forward
def forward(self, *a, **k):
    if self.training:
        print(f"FIRST_STEP {time.time() - t0:.3f}", flush=True)
        os._exit(0)
    return _forward(self, *a, **k)
net.SLGT2Net.forward = forward
from slgt2_cli.cli.app import app
app(args=sys.argv[2:], prog_name="slgt2")
"""


def synth(root: Path, scenes: int, size: int, dates: int) -> Path:
    data = root / f"s{scenes}-{size}-d{dates}"
    if not (data / "classes.json").exists():
        print(f"synth {data} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "slgt2_cli", "synth", str(data), "--scenes", str(scenes),
                        "--scene-size", str(size), "--dates", str(dates), "--size", "64", "--quiet", "--overwrite"],
                       check=True, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL)
    return data


def time_to_first_step(repo: Path, data: Path, run: Path, fresh: bool, workers: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) from launching `slgt2 train` to its first training forward pass. CPU time:
    the process and the worker processes it waited for (on a shared machine the wall time depends on the load,
    the CPU time much less)."""
    if fresh:
        shutil.rmtree(run, ignore_errors=True)
    args = ["train", str(data), "--out", str(run), "--preset", "tiny", "--quiet", "--device", "cpu",
            "--workers", str(workers), "--overwrite"]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", _DRIVER, repr(t0), *args], env=env, capture_output=True, text=True,
                          check=False, cwd=repo)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for line in proc.stdout.splitlines():
        if line.startswith("FIRST_STEP "):
            return float(line.split()[1]), cpu
    raise SystemExit(f"no training step reached ({repo}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, nargs="+", default=[600, 2000])
    p.add_argument("--scene-size", type=int, default=256)
    p.add_argument("--dates", type=int, default=24, help="slgt2 synth --dates")
    p.add_argument("--data", type=Path, nargs="*", help="Existing datasets instead of synthesising.")
    p.add_argument("--work", type=Path, default=Path("/tmp/slgt2-startup"))
    p.add_argument("--baseline", type=Path, help="Another checkout of the project to compare against.")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--workers", type=int, default=2, help="slgt2 train --workers")
    args = p.parse_args()

    datasets = args.data or [synth(args.work, n, args.scene_size, args.dates) for n in args.scenes]
    for data in datasets:
        times: dict[str, list[tuple[float, float]]] = {"new": [], "cached": [], "baseline": []}
        for _ in range(args.rounds):
            run = args.work / "run"
            times["new"].append(time_to_first_step(REPO, data, run, True, args.workers))
            times["cached"].append(time_to_first_step(REPO, data, run, False, args.workers))
            if args.baseline:
                times["baseline"].append(time_to_first_step(args.baseline, data, args.work / "run-base", True,
                                                            args.workers))
        n = sum(1 for _ in (data / "train" / "images").iterdir())
        for name, values in times.items():
            if values:
                wall, cpu = [v[0] for v in values], [v[1] for v in values]
                print(f"{data.name}: {name:8s} {statistics.median(wall):7.2f} s to the first step, "
                      f"{statistics.median(cpu):7.2f} s CPU (medians of {len(values)}: wall "
                      f"{', '.join(f'{v:.1f}' for v in wall)}; CPU {', '.join(f'{v:.1f}' for v in cpu)}; "
                      f"{n} training scenes)", flush=True)


if __name__ == "__main__":
    main()
