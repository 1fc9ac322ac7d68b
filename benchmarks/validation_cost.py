"""What validation and the per-pixel baseline cost: `slgt2 train --iterations 1` on a real-sized two-date flood set.

Writes (or reuses) WORK/floods: N uint8 two-date scenes of 256² like a real flood set (tests/helpers.py's
``write_flood_dataset``; no val split, so 20 % are held out), then times ``slgt2 train DATA --preset tiny
--iterations 1`` end to end in a fresh process: start-up, one step, the per-pixel baseline and the final
validation, each as the run reports it. ``--val-pixels 0`` measures whole-split validation instead.

    python benchmarks/validation_cost.py --work /tmp/valcost --scenes 620
    python benchmarks/validation_cost.py --work /tmp/valcost --scenes 620 --val-pixels 0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("/tmp/slgt2-valcost"))
    p.add_argument("--scenes", type=int, default=620)
    p.add_argument("--val-pixels", type=int, default=None)
    args = p.parse_args()
    data = args.work / f"floods{args.scenes}"
    if not (data / "classes.json").exists():
        sys.path.insert(0, str(REPO / "tests"))
        from helpers import write_flood_dataset

        write_flood_dataset(data, {"train": args.scenes}, size=256)
    run = args.work / "run"
    extra = ["--val-pixels", str(args.val_pixels)] if args.val_pixels is not None else []
    env = os.environ | {"PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "slgt2_cli", "train", str(data), "--out", str(run), "--preset", "tiny",
                           "--iterations", "1", "--overwrite", "--quiet", *extra], env=env, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    baseline = json.loads((run / "baseline.json").read_text())["source"] if (run / "baseline.json").exists() else {}
    print(done.stdout.strip())
    print(f"\n{args.scenes} scenes: start-up + 1 step + baseline + final validation {seconds:.1f} s "
          f"(validation {history[-1]['val_seconds']:.1f} s, baseline {baseline.get('seconds', 0):.1f} s)")


if __name__ == "__main__":
    main()
