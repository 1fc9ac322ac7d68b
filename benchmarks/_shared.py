"""Shared by the benchmarks: the device's bf16 peak, FLOP counting, peak GPU memory, model options to try, the
heap policy.

MFU (model FLOP utilisation) = FLOPs the model needs (``torch.utils.flop_counter.FlopCounterMode``: matmuls and
convolutions, forward and, for a train step, backward) / seconds / the device's dense bf16 tensor-core peak.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, by a substring of torch.cuda.get_device_name().
# H100/H200 SXM 989, H100 PCIe 756, A100 312, L4 121, L40S 362, A10 125, RTX 4090 165.
BF16_PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "GH200": 989.0, "A100": 312.0,
                    "L40S": 362.0, "L4": 121.0, "A10": 125.0, "4090": 165.0}


def bf16_peak_tflops(name: str) -> float | None:
    """The dense bf16 peak of a device called ``name`` (first matching key, most specific first), or None."""
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def count_flops(fn: Callable[[], Any]) -> float | None:
    """FLOPs of one call of ``fn`` (None when the counter cannot trace it)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            fn()
        return float(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - counting is optional
        return None


def prepare_model(model: Any, device: Any, channels_last: bool = False, compile_model: bool = False) -> Any:
    """``model`` on ``device``, optionally in channels-last-3d memory format and/or torch.compile'd."""
    import torch

    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    if compile_model:
        model = torch.compile(model)
    return model


def gpu_lines(device: Any, flops: float | None, seconds: float, pixels: float) -> list[str]:
    """Report lines: pixels/s, peak GPU memory, achieved TFLOP/s and the share of the bf16 peak."""
    import torch

    lines = [f"throughput        {pixels / seconds:,.0f} pixels/s"]
    if getattr(device, "type", str(device)) != "cuda":
        return lines
    name = torch.cuda.get_device_name(device)
    lines.append(f"device            {name}; peak GPU memory {torch.cuda.max_memory_allocated(device) / 1e9:.2f} GB "
                 f"allocated, {torch.cuda.max_memory_reserved(device) / 1e9:.2f} GB reserved")
    peak = bf16_peak_tflops(name)
    if flops:
        achieved = flops / seconds / 1e12
        share = f" = MFU {100 * achieved / peak:.1f} % of the {peak:.0f} TFLOP/s bf16 peak" if peak else \
            " (no bf16 peak known for this device)"
        lines.append(f"achieved          {achieved:.1f} TFLOP/s{share}")
    return lines


def add_compute_options(p: Any, *, model_options: bool = True) -> None:
    """Options every benchmark that runs the network takes: --threads and --allocator; with ``model_options``
    also --precision (bf16 autocast), --compile and --channels-last, for the benchmarks that drive the model."""
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--allocator", choices=("kept", "system"), default="kept",
                   help="kept: freed memory kept for reuse, as the commands set it; system: glibc's defaults")
    if model_options:
        p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                       help="auto: bf16 autocast on CUDA, fp32 on CPU")
        p.add_argument("--compile", action="store_true", help="torch.compile the model")
        p.add_argument("--channels-last", action="store_true", help="channels-last-3d memory format")


def apply_compute_options(args: Any) -> None:
    """The heap policy (``kept``: the commands' ``slgt2_cli.runtime.keep_freed_memory``; ``system``: glibc's
    defaults, which hand large freed blocks back to the kernel) and the thread count."""
    if args.allocator == "kept":
        from slgt2_cli.runtime import keep_freed_memory

        keep_freed_memory()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
