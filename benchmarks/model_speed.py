"""Forward and train-step speed of an SL-GT2Net preset.

    python benchmarks/model_speed.py                       # paper preset, 1x2x16x224x224, CPU
    python benchmarks/model_speed.py --preset tiny --size 128
    python benchmarks/model_speed.py --device cuda          # bf16 autocast, reports share of bf16 peak

Prints parameters, forward time and train-step time (median of --repeats after a warm-up), peak memory
(CPU: the process's peak RSS measured in a fresh subprocess per phase; CUDA: max allocated), pixels per second.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Dense bf16 tensor-core peaks (TFLOP/s) of common GPUs, for the "share of peak" line.
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "4090": 165.0}


def _flops_per_forward(model, x) -> float | None:
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            model(x)
        return float(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - counting is optional
        return None


def run_phase(args: argparse.Namespace, phase: str) -> dict:
    import torch

    from models import create_model

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    model = create_model(args.preset, topk_div=args.topk_div).to(device)
    x = torch.randn(args.batch, model.in_chans, args.dates, args.size, args.size, device=device)
    y = torch.randint(0, model.num_classes, (args.batch, args.size, args.size), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times = []
    if phase == "forward":
        model.eval()
        step = lambda: model(x)  # noqa: E731
        ctx = torch.inference_mode
    else:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5)

        def step():
            with autocast:
                loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        ctx = torch.enable_grad
    with ctx():
        for i in range(args.warmup + args.repeats):
            sync()
            t0 = time.perf_counter()
            if phase == "forward":
                with autocast:
                    step()
            else:
                step()
            sync()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    out = {"phase": phase, "median_s": statistics.median(times), "times_s": times}
    if cuda:
        out["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 1e9
        if phase == "forward":
            model.eval()
            with torch.inference_mode(), autocast:
                flops = _flops_per_forward(model, x)
            name = torch.cuda.get_device_name()
            peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
            if flops and peak:
                out["tflops"] = flops / out["median_s"] / 1e12
                out["share_of_bf16_peak"] = out["tflops"] / peak
    else:
        out["peak_mem_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    out["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="paper")
    p.add_argument("--size", type=int, default=224, help="H = W of the input")
    p.add_argument("--dates", type=int, default=16)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--topk-div", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--phase", choices=["forward", "train"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase:  # child process: one phase, so peak RSS belongs to it alone
        print(json.dumps(run_phase(args, args.phase)))
        return
    results = {}
    for phase in ("forward", "train"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--phase", phase]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if proc.returncode:
            sys.exit(proc.stderr)
        results[phase] = json.loads(proc.stdout.strip().splitlines()[-1])
    pixels = args.batch * args.size * args.size
    f, t = results["forward"], results["train"]
    print(f"preset {args.preset}  input {args.batch}x?x{args.dates}x{args.size}x{args.size}  device {args.device}"
          f"  topk_div {args.topk_div}")
    print(f"parameters        {f['params_m']:.2f} M")
    print(f"forward           {f['median_s']:.3f} s  (median of {len(f['times_s'])}; peak mem {f['peak_mem_gb']:.2f} GB)")
    print(f"train step        {t['median_s']:.3f} s  (median of {len(t['times_s'])}; peak mem {t['peak_mem_gb']:.2f} GB)")
    print(f"inference         {pixels / f['median_s']:,.0f} pixels/s")
    print(f"training          {pixels / t['median_s']:,.0f} pixels/s")
    if "share_of_bf16_peak" in f:
        print(f"GPU bf16          {f['tflops']:.1f} TFLOP/s = {100 * f['share_of_bf16_peak']:.1f} % of peak")


if __name__ == "__main__":
    main()
