"""`slgt2 predict-many` against one `slgt2 predict` per scene, and a LocalCluster of 1 vs 2 workers.

small:  N small scenes (sides drawn from 64..256 px) with the tiny preset: `predict-many` (one process, the model
        loaded once) against a shell loop of `python -m slgt2_cli predict` over the first K of the same scenes
        (the loop pays Python, torch and the model per scene, so K < N keeps the run short; the loop's per-scene time
        is reported with the total it extrapolates to, and `predict-many` is also timed on the same K scenes).
large:  M large scenes on `--cluster local:1` (one worker, every core) against `--cluster local:2` (two workers,
        the cores split between them), wall time of the whole command (cluster start-up included), and in-process.

Every command runs as a subprocess, as a user would run it; figures are printed and written as JSON.

    PYTHONPATH=. python benchmarks/predict_many.py small --scenes 200 --loop 40
    PYTHONPATH=. python benchmarks/predict_many.py large --scenes 4 --size 512
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from predict_speed import make_checkpoint  # noqa: E402

DATES = [dt.date(2021, 4, 1) + dt.timedelta(days=12 * i) for i in range(12)]


def write_stack(path: Path, height: int, width: int, seed: int) -> Path:
    """A dB stack (VV_<date>, VH_<date> bands) with some spatial structure, UTM 33N, 10 m pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    field = np.sin(yy / 9.0 + seed) + np.cos(xx / 13.0)
    bands, names = [], []
    for d in DATES:
        for pol, base in (("VV", -10.0), ("VH", -17.0)):
            bands.append(base + 3 * field + rng.normal(0, 1.0, (height, width)))
            names.append(f"{pol}_{d.isoformat()}")
    x0 = 500000.0 + 10 * 300 * (seed % 50)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=len(bands), dtype="float32",
                       crs="EPSG:32633", transform=from_origin(x0, 5100000.0, 10, 10), tiled=True, blockxsize=256,
                       blockysize=256) as dst:
        dst.write(np.stack(bands).astype(np.float32))
        for i, n in enumerate(names, start=1):
            dst.set_band_description(i, n)
        dst.update_tags(UNITS="dB")
    return path


def _env(threads: int) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}


def timed(cmd: list[str], threads: int) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(threads), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return seconds


def many(ck: Path, stacks: list[Path], out: Path, threads: int, *extra: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    return timed([sys.executable, "-m", "slgt2_cli", "predict-many", str(ck), *map(str, stacks), "--out-dir", str(out),
                  "--device", "cpu", "-q", *extra], threads)


def loop(ck: Path, stacks: list[Path], out: Path, threads: int) -> float:
    """A shell loop of `slgt2 predict`, one process per scene (as a user would script it)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    script = "; ".join(f"{sys.executable} -m slgt2_cli predict -q --device cpu {ck} {s} {out / (s.stem + '.tif')}"
                       for s in stacks)
    return timed(["bash", "-c", f"set -e; {script}"], threads)


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor()


def small(args: argparse.Namespace, work: Path) -> dict:
    rng = np.random.default_rng(0)
    ck = make_checkpoint(work / "tiny.pt", DATES, preset="tiny")
    sizes = [(int(rng.integers(4, 17)) * 16, int(rng.integers(4, 17)) * 16) for _ in range(args.scenes)]
    stacks = [write_stack(work / f"s{i:04d}.tif", h, w, i) for i, (h, w) in enumerate(sizes)]
    pixels = sum(h * w for h, w in sizes)
    sub = stacks[: args.loop]
    many_all = many(ck, stacks, work / "many", args.threads)
    many_sub = many(ck, sub, work / "many_sub", args.threads)
    loop_sub = loop(ck, sub, work / "loop", args.threads)
    per_scene = loop_sub / len(sub)
    return {"scenes": args.scenes, "pixels": pixels, "loop_scenes": len(sub),
            "predict_many_s": round(many_all, 2), "predict_many_same_scenes_s": round(many_sub, 2),
            "loop_same_scenes_s": round(loop_sub, 2), "loop_per_scene_s": round(per_scene, 3),
            "loop_extrapolated_s": round(per_scene * args.scenes, 1),
            "speedup_same_scenes": round(loop_sub / many_sub, 2),
            "speedup_all_scenes_extrapolated": round(per_scene * args.scenes / many_all, 2)}


def large(args: argparse.Namespace, work: Path) -> dict:
    ck = make_checkpoint(work / "tiny.pt", DATES, preset="tiny")
    stacks = [write_stack(work / f"L{i}.tif", args.size, args.size, i) for i in range(args.scenes)]
    out = {"scenes": args.scenes, "size": args.size, "rounds": []}
    for _ in range(args.rounds):  # interleaved, so load from other processes hits both alike
        one = many(ck, stacks, work / "l1", args.threads, "--cluster", "local:1")
        two = many(ck, stacks, work / "l2", args.threads, "--cluster", "local:2")
        here = many(ck, stacks, work / "lh", args.threads)
        out["rounds"].append({"local1_s": round(one, 2), "local2_s": round(two, 2), "in_process_s": round(here, 2)})
    best = {k: min(r[k] for r in out["rounds"]) for k in out["rounds"][0]}
    out.update(best=best, speedup_local2_vs_local1=round(best["local1_s"] / best["local2_s"], 2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["small", "large"])
    ap.add_argument("--scenes", type=int, default=200)
    ap.add_argument("--loop", type=int, default=40, help="scenes the shell loop of `predict` runs (small)")
    ap.add_argument("--size", type=int, default=512, help="side of the large scenes")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="OMP_NUM_THREADS of the commands")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--keep", type=Path, help="work here (kept) instead of a temporary directory")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = {"mode": args.mode, "cpu": cpu_name(), "cores": os.cpu_count(), "threads": args.threads,
                  **(small(args, work) if args.mode == "small" else large(args, work))}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
