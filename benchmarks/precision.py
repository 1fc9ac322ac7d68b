"""bf16 against fp32 for `slgt2 predict`: seconds per scene and the share of pixels whose class agrees.

    python benchmarks/precision.py --checkpoint runs/demo/best.pt --stack slgt2-demo/data/scene/image.tif
    python benchmarks/precision.py --preset paper --size 448 --dates 12      # untrained weights, a synthetic scene

Rounds interleave fp32 and bf16 (``torch.autocast("cpu"|"cuda", torch.bfloat16)``); the maps of the first round
are compared pixel by pixel. Acceptance for making bf16 a default: agreement >= 99.5 % and faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def predict(ck: Path, stack: Path, out: Path, precision: str, device: str, batch: int) -> float:
    from slgt2_cli.infer.run import PredictConfig, run_predict
    from slgt2_cli.infer.settings import InferenceSettings

    t0 = time.perf_counter()
    settings = InferenceSettings(batch_size=batch, device=device, precision=precision)
    run_predict(PredictConfig(checkpoint=ck, stacks=[stack], output=out, settings=settings, overwrite=True,
                              progress=False))
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, help="A trained checkpoint (default: an untrained --preset model).")
    p.add_argument("--stack", type=Path, help="The scene to map (default: a synthetic --size scene).")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--dates", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    from slgt2_cli.runtime import configure_threads

    threads = configure_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="slgt2-precision-"))
    stack, ck = args.stack, args.checkpoint
    if stack is None or ck is None:
        from predict_speed import make_checkpoint, make_scene

        stack_made, dates = make_scene(work, args.size, args.size, args.dates)
        stack = stack or stack_made
        ck = ck or make_checkpoint(work / "ck.pt", dates, args.preset,
                                   patch=224 if args.preset.startswith("paper") else 64,
                                   stride=200 if args.preset.startswith("paper") else 48)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    predict(ck, stack, work / "warm.tif", "fp32", args.device, args.batch_size)
    for _ in range(args.rounds):
        for precision in ("fp32", "bf16"):
            times[precision].append(predict(ck, stack, work / f"{precision}.tif", precision, args.device,
                                            args.batch_size))
    with rasterio.open(work / "fp32.tif") as a, rasterio.open(work / "bf16.tif") as b:
        x, y, valid = a.read(1), b.read(1), a.read_masks(1) > 0
        pixels = a.width * a.height
    agree = float((x == y)[valid].mean()) if valid.any() else 1.0
    f, b16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
    print(f"{ck.name} on {stack.name} ({pixels:,} px), device {args.device}, {threads} threads, batch {args.batch_size}")
    print(f"fp32 {f:.2f} s ({pixels / f:,.0f} px/s)  bf16 {b16:.2f} s ({pixels / b16:,.0f} px/s)  "
          f"bf16 speed-up {f / b16:.2f}x  (medians of {args.rounds}: fp32 {np.round(times['fp32'], 2).tolist()}, "
          f"bf16 {np.round(times['bf16'], 2).tolist()})")
    print(f"maps agree on {100 * agree:.3f} % of {int(valid.sum()):,} valid pixels")


if __name__ == "__main__":
    main()
