"""Training throughput (samples per second) of a preset at a patch size.

    python benchmarks/train_speed.py --preset tiny --patch 64 --batch 8
    python benchmarks/train_speed.py --preset paper --patch 224 --batch 2
    python benchmarks/train_speed.py --preset paper --device cuda     # bf16 autocast
    python benchmarks/train_speed.py --preset paper --device cuda --compile --channels-last
    python benchmarks/train_speed.py --preset small --patch 128 --batch 4 --precision bf16   # CPU bf16

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
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import torch
    from _shared import add_compute_options, apply_compute_options, count_flops, gpu_lines, prepare_model

    from models import create_model

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--dates", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu")
    add_compute_options(p)
    args = p.parse_args()
    apply_compute_options(args)

    torch.manual_seed(0)
    device = torch.device(args.device)
    base = create_model(args.preset).train()
    in_chans, num_classes = base.in_chans, base.num_classes
    model = prepare_model(base, device, args.channels_last, args.compile)
    # fused, as slgt2 train makes it (slgt2_cli.train.runtime.make_optimizer)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5, fused=device.type in ("cpu", "cuda") or None)
    x = torch.randn(args.batch, in_chans, args.dates, args.patch, args.patch, device=device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    y = torch.randint(0, num_classes, (args.batch, args.patch, args.patch), device=device)
    cuda = device.type == "cuda"
    bf16 = args.precision == "bf16" or (args.precision == "auto" and cuda)
    times = []
    for i in range(args.warmup + args.steps):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        flops = count_flops(lambda: torch.nn.functional.cross_entropy(base(x).float(), y).backward())
    print(f"preset {args.preset}  patch {args.patch}  batch {args.batch}  device {args.device}  precision "
          f"{'bf16' if bf16 else 'fp32'}{'  compiled' if args.compile else ''}"
          f"{'  channels-last-3d' if args.channels_last else ''}")
    print(f"step {step:.3f} s (median of {len(times)})  ->  {args.batch / step:.2f} samples/s")
    for line in gpu_lines(device, flops, step, args.batch * args.patch**2):
        print(line)
    if not cuda and flops:
        print(f"achieved          {flops / step / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
