"""Reproduce docs/training.md's fine-tuning table: start from a model trained on other flood events vs from scratch.

sar-floods-2021 split by event: the *source* set trains on France (88 patches) and validates on Guyana (the test
split); the *target* set trains on Timor (10 patches) and validates on Albania (the val split), so neither the
source model nor its best.pt choice has seen Timor or Albania. One source run (`--preset tiny`, 300 steps), then
each variant × seed trains 200 steps on the target, validating every 40 steps on the same windows:

    slgt2 train WORK/data/france --out WORK/runs/source-s0 --preset tiny --iterations 300 --val-every 100 --seed 0
    slgt2 train WORK/data/timor --out WORK/runs/scratch-s0 --preset tiny --iterations 200 --val-every 40 --seed 0
    slgt2 train WORK/data/timor --out WORK/runs/ft3e-3-s0 --init WORK/runs/source-s0 --iterations 200 --val-every 40 --seed 0

    python benchmarks/finetune_table.py --work /tmp/ft25            # run what is missing, print the table
    python benchmarks/finetune_table.py --work /tmp/ft25 --table    # print the table only

The datasets are symbolic links into ../shared/data/sar-floods-2021 (SLGT2_SHARED=DIR for another shared/).
One run at a time: on 2 cores a second training process slows both several-fold.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FLOODS = Path(os.environ.get("SLGT2_SHARED", ROOT.parent / "shared")) / "data" / "sar-floods-2021"
SPLITS = {"france": {"train": ("train", "2021_FRANCE_"), "val": ("test", "")},
          "timor": {"train": ("train", "2021_TIMOR_"), "val": ("val", "")}}
STEPS, VAL_EVERY = 200, 40

# Options of each variant on the target set (a variant with --init starts from WORK/runs/source-s0).
VARIANTS: dict[str, list[str]] = {
    "scratch": ["--preset", "tiny"],
    "ft3e-3": ["--init", "{source}"],  # the fine-tuning default: the preset's rate (3e-3) and warm-up (20)
    "ft1e-3": ["--init", "{source}", "--lr", "0.001"],
    "ft3e-4": ["--init", "{source}", "--lr", "0.0003"],
    "ft-freeze50": ["--init", "{source}", "--freeze-encoder", "50"],
    "ft-wu0": ["--init", "{source}", "--config", "{work}/wu0.yaml"],
    "ft-wu60": ["--init", "{source}", "--config", "{work}/wu60.yaml"],
}


def datasets(work: Path) -> None:
    """WORK/data/{france,timor}: the event splits as dataset directories of links."""
    for name, splits in SPLITS.items():
        root = work / "data" / name
        (root / "classes.json").parent.mkdir(parents=True, exist_ok=True)
        if not (root / "classes.json").exists():
            (root / "classes.json").symlink_to(FLOODS / "classes.json")
        for split, (source, prefix) in splits.items():
            for kind in ("images", "labels"):
                (root / split / kind).mkdir(parents=True, exist_ok=True)
                for path in sorted((FLOODS / source / kind).glob(f"{prefix}*.tif")):
                    link = root / split / kind / path.name
                    if not link.exists():
                        link.symlink_to(path)
    (work / "wu0.yaml").write_text("warmup: 0\n")
    (work / "wu60.yaml").write_text("warmup: 60\n")


def _slgt2(*args: str) -> None:
    env = os.environ | {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", "slgt2_cli", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"slgt2 {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def run(work: Path, variant: str, seed: int) -> None:
    out = work / "runs" / f"{variant}-s{seed}"
    if (out / "last.pt").exists():
        return
    options = [o.format(source=work / "runs" / "source-s0", work=work) for o in VARIANTS[variant]]
    _slgt2("train", str(work / "data" / "timor"), "--out", str(out), "--iterations", str(STEPS), "--val-every",
           str(VAL_EVERY), "--seed", str(seed), "--quiet", "--no-baseline", *options)


def table(work: Path) -> str:
    """Validation mIoU (Albania) against steps: mean over seeds, then each seed."""
    rows = ["| variant | seeds | " + " | ".join(f"step {s}" for s in range(VAL_EVERY, STEPS + 1, VAL_EVERY))
            + " | best | seconds (median) |", "|---" * (STEPS // VAL_EVERY + 4) + "|"]
    for variant in VARIANTS:
        curves, seconds = [], []
        for path in sorted((work / "runs").glob(f"{variant}-s*/metrics.jsonl")):
            history = [json.loads(line) for line in path.read_text().splitlines()]
            if len(history) == STEPS // VAL_EVERY:
                curves.append([h["miou"] for h in history])
                seconds.append(history[-1]["seconds"])
        if not curves:
            continue
        c = np.array(curves)
        cells = [f"{m:.3f} ({', '.join(f'{v:.2f}' for v in col)})" for m, col in zip(c.mean(0), c.T)]
        best = c.max(1)
        rows.append(f"| {variant} | {len(c)} | " + " | ".join(cells) + f" | {best.mean():.3f} ± {best.std():.3f} | "
                    f"{np.median(seconds):.0f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="Working directory (datasets and runs).")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--table", action="store_true", help="Only print the table of the runs so far.")
    args = ap.parse_args()
    if not args.table:
        datasets(args.work)
        if not (args.work / "runs" / "source-s0" / "last.pt").exists():
            _slgt2("train", str(args.work / "data" / "france"), "--out", str(args.work / "runs" / "source-s0"),
                   "--preset", "tiny", "--iterations", "300", "--val-every", "100", "--seed", "0", "--quiet",
                   "--no-baseline")
        for variant in args.variants:
            for seed in args.seeds:
                run(args.work, variant, seed)
    print(table(args.work))


if __name__ == "__main__":
    main()
