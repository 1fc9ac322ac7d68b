"""Training throughput (samples per second) of a preset at a patch size.

    python benchmarks/train_speed.py --preset tiny --patch 64 --batch 8
    python benchmarks/train_speed.py --preset paper --patch 224 --batch 2
    python benchmarks/train_speed.py --preset paper --device cuda     # bf16 autocast

Times full optimiser steps (forward, backward, AdamW) on random input after a warm-up: the model's own cost,
which the data loader (run with --workers in `slgt2 train`) overlaps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import torch

    from models import create_model

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--dates", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    model = create_model(args.preset).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5)
    x = torch.randn(args.batch, model.in_chans, args.dates, args.patch, args.patch, device=device)
    y = torch.randint(0, model.num_classes, (args.batch, args.patch, args.patch), device=device)
    cuda = device.type == "cuda"
    times = []
    for i in range(args.warmup + args.steps):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    print(f"preset {args.preset}  patch {args.patch}  batch {args.batch}  device {args.device}")
    print(f"step {step:.3f} s (median of {len(times)})  ->  {args.batch / step:.2f} samples/s  "
          f"({args.batch * args.patch**2 / step:,.0f} px/s)")


if __name__ == "__main__":
    main()
