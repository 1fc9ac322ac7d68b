"""Forward and train-step speed of an SL-GT2Net preset.

    python benchmarks/model_speed.py                       # paper preset, 1x2x16x224x224, CPU
    python benchmarks/model_speed.py --preset tiny --size 128
    python benchmarks/model_speed.py --device cuda          # bf16 autocast, reports share of bf16 peak
    python benchmarks/model_speed.py --device cuda --compile --channels-last
    python benchmarks/model_speed.py --precision bf16 --size 128   # bf16 autocast on a CPU with AVX512-BF16/AMX
                                                      # (224: oneDNN's bf16 train step does not finish)

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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import add_compute_options, apply_compute_options, bf16_peak_tflops, count_flops, prepare_model  # noqa: E402


def run_phase(args: argparse.Namespace, phase: str) -> dict:
    import torch

    from models import create_model

    apply_compute_options(args)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    base = create_model(args.preset, topk_div=args.topk_div)
    in_chans, num_classes = base.in_chans, base.num_classes
    model = prepare_model(base, device, args.channels_last, args.compile)
    x = torch.randn(args.batch, in_chans, args.dates, args.size, args.size, device=device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    y = torch.randint(0, num_classes, (args.batch, args.size, args.size), device=device)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and cuda)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times = []
    if phase == "forward":
        model.eval()
        step = lambda: model(x)  # noqa: E731
        ctx = torch.inference_mode
    else:
        model.train()
        # fused, as slgt2 train makes it (slgt2_cli.train.runtime.make_optimizer)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5, fused=device.type in ("cpu", "cuda") or None)

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
        out["device_name"] = torch.cuda.get_device_name()
    else:
        out["peak_mem_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    if phase == "forward":  # counted on the eager model (the counter does not trace compiled graphs)
        with torch.inference_mode(), autocast:
            flops = count_flops(lambda: base.eval()(x))
    else:
        flops = count_flops(lambda: torch.nn.functional.cross_entropy(base.train()(x), y).backward())
    peak = bf16_peak_tflops(out.get("device_name", ""))
    if flops:
        out["tflops"] = flops / out["median_s"] / 1e12
        if peak:
            out["share_of_bf16_peak"] = out["tflops"] / peak
    out["params_m"] = sum(p.numel() for p in base.parameters()) / 1e6
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="paper")
    p.add_argument("--size", type=int, default=224, help="H = W of the input")
    p.add_argument("--dates", type=int, default=16)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--topk-div", type=int, default=1)
    p.add_argument("--device", default="cpu")
    add_compute_options(p)
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
          f" {f.get('device_name', '')}  topk_div {args.topk_div}  precision {args.precision}"
          f"{'  compiled' if args.compile else ''}{'  channels-last-3d' if args.channels_last else ''}")
    print(f"parameters        {f['params_m']:.2f} M")
    print(f"forward           {f['median_s']:.3f} s  (median of {len(f['times_s'])}; peak mem {f['peak_mem_gb']:.2f} GB)")
    print(f"train step        {t['median_s']:.3f} s  (median of {len(t['times_s'])}; peak mem {t['peak_mem_gb']:.2f} GB)")
    print(f"inference         {pixels / f['median_s']:,.0f} pixels/s")
    print(f"training          {pixels / t['median_s']:,.0f} pixels/s")
    for name, r in (("forward", f), ("train step", t)):
        if "tflops" in r:
            share = f" = MFU {100 * r['share_of_bf16_peak']:.1f} % of bf16 peak" if "share_of_bf16_peak" in r else ""
            print(f"{name:17s} {r['tflops'] * 1000:,.1f} GFLOP/s achieved{share}")


if __name__ == "__main__":
    main()
