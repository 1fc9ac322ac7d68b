"""`slgt2 predict` throughput overhead and peak memory on synthetic scenes.

speed:  end-to-end pixels/s of ``run_predict`` (read, prepare, infer, blend, write the COG) against the model's own
        pixels/s at the same tile, stride and batch size (``Predictor.infer`` on random prepared batches, the same
        number of tiles the scene computes). Rounds are interleaved (e2e, model, e2e, model, ...) so that load from
        other processes hits both sides alike. Acceptance: end-to-end >= 85 % of model-only.
memory: peak RSS (VmHWM) of a fresh subprocess predicting a ``rows x width`` scene, for each ``--heights``.
        Acceptance: the tallest scene within 15 % of the shortest.

``--model stub`` swaps the network for a 1x1 convolution over the time-mean (same input, same outputs), to
measure the pipeline alone where the tiny model is too slow to predict 8 Mpx (a 2-core CPU: ~0.5 s per tile).

    PYTHONPATH=. python benchmarks/predict_speed.py speed --height 256 --width 512 --rounds 2
    PYTHONPATH=. python benchmarks/predict_speed.py memory --heights 1024 8192 --width 1024 --model stub
    PYTHONPATH=. python benchmarks/predict_speed.py memory --heights 1024 8192 --width 1024   # on a GPU
    PYTHONPATH=. python benchmarks/predict_speed.py speed --device cuda --preset paper --tile 224 --stride 200 \
        --batch-size 16 --height 4096 --width 4096 --dates 12      # pixels/s, peak GPU memory, MFU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `slgt2 predict` runs (slgt2_cli.runtime); before torch
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _shared import add_compute_options, apply_compute_options, count_flops, gpu_lines  # noqa: E402

from models import create_model  # noqa: E402
from slgt2_cli.checkpoint.format import Checkpoint, save_checkpoint  # noqa: E402
from slgt2_cli.data.normalization import Normalization  # noqa: E402
from slgt2_cli.data.temporal import TemporalRule  # noqa: E402
from slgt2_cli.io.classes import ClassTable  # noqa: E402
from slgt2_cli.synth.model import CLASSES, acquisition_dates  # noqa: E402
from slgt2_cli.synth.scenes import write_scene  # noqa: E402


class StubModel(torch.nn.Module):
    """(B, C, T, H, W) -> (B, K, H, W): a 1x1 convolution of the time-mean; costs next to nothing."""

    def __init__(self, in_chans: int, num_classes: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_chans, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.mean(2))


def make_scene(dirpath: Path, height: int, width: int, dates: int, seed: int = 0) -> tuple[Path, list]:
    image = dirpath / f"scene_{height}x{width}.tif"
    ds = acquisition_dates(np.random.default_rng([seed, 7]), dates, 2021)
    if not image.exists():
        write_scene(image, dirpath / f"labels_{height}x{width}.tif", size=(height, width), dates=ds, seed=seed,
                    scene_seed=1, origin=(400000.0, 5200000.0), margin=0.0)
    return image, ds


def make_checkpoint(path: Path, dates: list, preset: str = "tiny", patch: int = 64, stride: int = 48) -> Path:
    torch.manual_seed(0)
    table = ClassTable.from_list(CLASSES)
    model = create_model(preset, num_classes=len(table))
    save_checkpoint(Checkpoint(model.config, model.state_dict(), table, Normalization((-11.0, -18.0), (3.0, 3.0)).to_dict(),
                               TemporalRule.fit([dates], length=model.temporal_length).to_dict(), ["VV", "VH"], "db",
                               patch, stride), path)
    return path


def use_stub() -> None:
    """Make every checkpoint build the stub model (in this process)."""
    def build(self):
        return StubModel(self.model_config["in_chans"], self.model_config["num_classes"]).eval()

    Checkpoint.build_model = build


def predict_once(ck: Path, image: Path, out: Path, tile: int | None, stride: int | None, batch: int, device: str,
                 precision: str = "auto"):
    from slgt2_cli.infer.run import PredictConfig, run_predict
    from slgt2_cli.infer.settings import InferenceSettings

    t0 = time.perf_counter()
    settings = InferenceSettings(tile=tile, stride=stride, batch_size=batch, device=device, precision=precision)
    [result] = run_predict(PredictConfig(checkpoint=ck, stacks=[image], output=out, settings=settings, overwrite=True,
                                         progress=False))
    return time.perf_counter() - t0, result


def model_only(ck: Path, tiles: int, tile: int | None, stride: int | None, batch: int, device: str,
               precision: str = "auto", flops: dict | None = None) -> float:
    """Seconds for ``Predictor.infer`` on ``tiles`` random prepared tiles in batches of ``batch`` (+ one warm-up);
    ``flops["tile"]`` receives the FLOPs of one tile's forward pass when asked for."""
    from slgt2_cli.checkpoint.format import load_checkpoint
    from slgt2_cli.infer.predictor import Predictor, resolve_device

    p = Predictor.from_checkpoint(load_checkpoint(ck), resolve_device(device), tile=tile, stride=stride,
                                  batch_size=batch, precision=precision)
    rng = np.random.default_rng(0)
    shape = (batch, p.norm.num_channels, p.rule.length, p.tile, p.tile)
    batches = [rng.standard_normal(shape, dtype=np.float32) for _ in range(2)]
    p.infer(batches[0])  # warm-up
    if flops is not None and "tile" not in flops:
        flops["tile"] = (count_flops(lambda: p.infer(batches[0][:1])) or 0.0)
    if p.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    done = 0
    while done < tiles:
        n = min(batch, tiles - done)
        p.infer(batches[done // batch % 2][:n])
        done += n
    return time.perf_counter() - t0


def cmd_speed(args) -> dict:
    if args.model == "stub":
        use_stub()
    apply_compute_options(args)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="slgt2-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    image, dates = make_scene(work, args.height, args.width, args.dates)
    ck = make_checkpoint(work / "ck.pt", dates, args.preset)
    pixels = args.height * args.width
    predict_once(ck, image, work / "map.tif", args.tile, args.stride, args.batch_size, args.device,
                 args.precision)  # warm-up
    e2e, model, flops, computed = [], [], {}, 0
    for r in range(args.rounds):
        seconds, result = predict_once(ck, image, work / "map.tif", args.tile, args.stride, args.batch_size,
                                       args.device, args.precision)
        computed = result.stats["tiles"] - result.stats["skipped"]
        e2e.append(pixels / seconds)
        model.append(pixels / model_only(ck, computed, args.tile, args.stride, args.batch_size, args.device,
                                         args.precision, flops))
        print(f"round {r + 1}: end-to-end {e2e[-1]:,.0f} px/s ({seconds:.1f} s, {computed} tiles computed, "
              f"model time inside {result.stats['model_s']:.1f} s)  model-only {model[-1]:,.0f} px/s", flush=True)
    ratios = [a / b for a, b in zip(e2e, model)]
    out = {"scene": f"{args.height}x{args.width}", "dates": args.dates, "model": args.model, "preset": args.preset,
           "tile": args.tile or 64, "stride": args.stride or 48, "batch_size": args.batch_size,
           "device": str(torch.device(args.device) if args.device != "auto" else "auto"),
           "end_to_end_px_s": statistics.median(e2e), "model_only_px_s": statistics.median(model),
           "ratio_median": statistics.median(ratios), "ratios": ratios}
    out["overhead_pct"] = 100 * (1 - out["ratio_median"])
    device = torch.device(args.device) if args.device != "auto" else torch.device("cpu")
    total = flops.get("tile", 0.0) * computed
    for label, px_s in (("end to end", out["end_to_end_px_s"]), ("model alone", out["model_only_px_s"])):
        print(label, *gpu_lines(device, total, pixels / px_s, pixels), sep="\n  ")
    out["pass"] = out["ratio_median"] >= 0.85
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the address space exec made, whereas Linux carries
    ru_maxrss over exec, so a child of this (large, torch-importing) parent would report at least its size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cmd_child(args) -> None:
    """One prediction in this (fresh) process; prints its own peak RSS."""
    if args.model == "stub":
        use_stub()
    apply_compute_options(args)
    seconds, result = predict_once(Path(args.ck), Path(args.image), Path(args.out), args.tile, args.stride,
                                   args.batch_size, args.device)
    print(json.dumps({"maxrss_mb": peak_rss_mb(), "seconds": seconds,
                      "tiles": result.stats["tiles"], "skipped": result.stats["skipped"]}))


def cmd_memory(args) -> dict:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="slgt2-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = {}
    ck = None
    for height in args.heights:
        image, dates = make_scene(work, height, args.width, args.dates)
        ck = ck or make_checkpoint(work / "ck.pt", dates, args.preset)
        cmd = [sys.executable, __file__, "_child", "--ck", str(ck), "--image", str(image), "--out",
               str(work / f"map_{height}.tif"), "--batch-size", str(args.batch_size), "--device", args.device,
               "--model", args.model, "--allocator", args.allocator]
        for name in ("tile", "stride"):
            if getattr(args, name):
                cmd += [f"--{name}", str(getattr(args, name))]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            raise SystemExit(proc.stdout + proc.stderr)
        rows[height] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{height} x {args.width}: peak RSS {rows[height]['maxrss_mb']:,.0f} MB in {rows[height]['seconds']:.0f} s "
              f"({rows[height]['tiles']} tiles)", flush=True)
    lo, hi = rows[min(rows)]["maxrss_mb"], rows[max(rows)]["maxrss_mb"]
    return {"width": args.width, "dates": args.dates, "model": args.model, "rows": rows,
            "growth_pct": 100 * (hi / lo - 1), "pass": hi <= 1.15 * lo}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("speed", "memory", "_child"):
        p = sub.add_parser(name)
        p.add_argument("--tile", type=int)
        p.add_argument("--stride", type=int)
        p.add_argument("--batch-size", type=int, default=4)
        p.add_argument("--device", default="auto")
        p.add_argument("--model", choices=("real", "stub"), default="real")
        p.add_argument("--preset", default="tiny")
        p.add_argument("--dates", type=int, default=6)
        p.add_argument("--width", type=int, default=1024)
        p.add_argument("--workdir")
        p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
        add_compute_options(p, model_options=False)
    sub.choices["speed"].add_argument("--height", type=int, default=1024)
    sub.choices["speed"].add_argument("--rounds", type=int, default=3)
    sub.choices["memory"].add_argument("--heights", type=int, nargs="+", default=[1024, 8192])
    for name in ("ck", "image", "out"):
        sub.choices["_child"].add_argument(f"--{name}", required=True)
    args = ap.parse_args()
    if args.cmd == "_child":
        cmd_child(args)
        return
    result = cmd_speed(args) if args.cmd == "speed" else cmd_memory(args)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
