"""`slgt2 predict` wall time while another process keeps a core busy: the thread defaults under contention.

    python benchmarks/busy_predict.py --rounds 3                          # this checkout's default vs --threads N
    python benchmarks/busy_predict.py --baseline /tmp/base --rounds 3     # and another checkout's default

Writes a synthetic scene and an untrained tiny checkpoint (benchmarks/predict_speed.py), starts ``--busy``
processes spinning in pure Python, then runs fresh `slgt2 predict` processes, rounds interleaved, without
OMP_NUM_THREADS / OMP_WAIT_POLICY in their environment so that each variant's defaults apply.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def run(repo: Path, ck: Path, stack: Path, out: Path, extra: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["PYTHONPATH"] = str(repo)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "slgt2_cli", "predict", str(ck), str(stack), str(out), "-q", "--overwrite",
                    "--device", "cpu", *extra], env=env, check=True, cwd=repo, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--dates", type=int, default=12)
    p.add_argument("--busy", type=int, default=1, help="Competing processes, each spinning on one core.")
    p.add_argument("--threads", type=int, nargs="*", default=[1, 2], help="Also run with --threads N.")
    p.add_argument("--baseline", type=Path, help="Another checkout, run with its defaults.")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    from predict_speed import make_checkpoint, make_scene

    work = Path(tempfile.mkdtemp(prefix="slgt2-busy-"))
    stack, dates = make_scene(work, args.size, args.size, args.dates)
    ck = make_checkpoint(work / "ck.pt", dates, "tiny")
    variants: dict[str, tuple[Path, list[str]]] = {"default": (ROOT, [])}
    variants.update({f"--threads {n}": (ROOT, ["--threads", str(n)]) for n in args.threads})
    if args.baseline:
        variants["baseline default"] = (args.baseline, [])
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    times: dict[str, list[float]] = {k: [] for k in variants}
    try:
        time.sleep(1.0)
        for _ in range(args.rounds):
            for name, (repo, extra) in variants.items():
                times[name].append(run(repo, ck, stack, work / "map.tif", extra))
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.size}² px, {args.dates} dates, tiny, {args.busy} busy process(es), {cores} cores; "
          f"load before: {os.getloadavg()[0]:.1f}")
    for name, values in times.items():
        print(f"{name:18s} {statistics.median(values):6.1f} s (median of {len(values)}: "
              f"{', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
