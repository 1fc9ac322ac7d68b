"""Issue 17 point 3 / issue 18 point 9: --threads and its default, --precision, the GPU path of predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from helpers import make_checkpoint, sar_values, write_stack
from typer.testing import CliRunner

from models import create_model
from slgt2_cli import runtime
from slgt2_cli.cli.app import app
from slgt2_cli.errors import InputError
from slgt2_cli.runtime import (
    Precision,
    configure_threads,
    default_threads,
    resolve_precision,
)

runner = CliRunner()


@pytest.fixture(autouse=True)
def _keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_default_threads_are_the_usable_cores_or_omp_num_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert default_threads() == 3  # the cores this process may run on, not the machine's
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert default_threads() == 2  # the user's explicit choice wins


def test_configure_threads_sets_torch_and_passive_openmp(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert configure_threads(1) == 1 and torch.get_num_threads() == 1
    assert runtime.os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    with pytest.raises(InputError):
        configure_threads(0)


REFAULTS = """
import resource, sys
import torch
from models import create_model
if sys.argv[1] == "kept":
    from slgt2_cli.runtime import keep_freed_memory
    assert keep_freed_memory()
torch.manual_seed(0)
model = create_model("tiny").train()
opt = torch.optim.AdamW(model.parameters())
x, y = torch.randn(2, 2, 16, 128, 128), torch.randint(0, 8, (2, 128, 128))
def step():
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    opt.zero_grad()
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[2:]))  # once the heap has grown to what a step needs
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="glibc/Linux heap policy")
def test_commands_keep_freed_memory_so_training_steps_do_not_refault_their_pages():
    """By default glibc hands large freed blocks back to the kernel, so every training step faults its
    activations in again page by page (~20,000 page faults per 128² tiny step measured, ~1,000 kept); with the policy the
    commands set, a step reuses the previous step's memory."""
    import subprocess
    import sys

    def faults_per_step(policy: str) -> int:
        out = subprocess.run([sys.executable, "-c", REFAULTS, policy], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1])
        assert out.returncode == 0, out.stderr
        return int(out.stdout.split()[-1])

    system, kept = faults_per_step("system"), faults_per_step("kept")
    assert kept * 5 < system, (kept, system)


def test_precision_auto_is_bf16_on_cuda_and_for_large_models_on_bf16_cpus(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    tiny, small = create_model("tiny"), create_model("small")
    assert resolve_precision("auto", cuda, tiny) is Precision.BF16
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", cpu, tiny) is Precision.FP32  # measured slower in bf16
    assert resolve_precision("auto", cpu, small) is Precision.BF16
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", cpu, small) is Precision.FP32
    with pytest.raises(InputError, match="AVX512-BF16"):
        resolve_precision("bf16", cpu, tiny)
    with pytest.raises(InputError, match="fp32, bf16 or auto"):
        resolve_precision("fp16", cpu, tiny)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    runtime.cpu_has_bf16.cache_clear()
    (tmp_path / "a").write_text("flags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n")
    (tmp_path / "b").write_text("flags\t\t: fpu sse avx2\n")
    assert runtime.cpu_has_bf16(tmp_path / "a") and not runtime.cpu_has_bf16(tmp_path / "b")


def _predict(tmp_path: Path, *extra: str) -> np.ndarray:
    ck = make_checkpoint(tmp_path / "ck.pt")
    stack = write_stack(tmp_path / "stack.tif", sar_values(96, 96))
    out = tmp_path / f"map{'-'.join(extra)}.tif"
    result = runner.invoke(app, ["predict", str(ck), str(stack), str(out), "-q", "--overwrite", *extra])
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as src:
        return src.read(1)


def test_predict_takes_threads_and_precision(tmp_path):
    fp32 = _predict(tmp_path, "--threads", "1", "--precision", "fp32", "--device", "cpu")
    assert torch.get_num_threads() == 1
    if runtime.cpu_has_bf16():
        bf16 = _predict(tmp_path, "--precision", "bf16", "--device", "cpu")
        assert (bf16 == fp32).mean() >= 0.995
    bad = runner.invoke(app, ["predict", str(tmp_path / "ck.pt"), str(tmp_path / "stack.tif"), str(tmp_path / "x.tif"),
                              "--precision", "half", "-q"])
    assert bad.exit_code == 2 and "'half' is not one of 'fp32', 'bf16', 'auto'" in bad.output  # at parse time
    assert not (tmp_path / "x.tif").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_predict_matches_cpu(tmp_path):
    cpu = _predict(tmp_path, "--device", "cpu", "--precision", "fp32")
    gpu = _predict(tmp_path, "--device", "cuda")  # bf16 autocast, pinned non-blocking copies
    assert gpu.shape == cpu.shape and (gpu == cpu).mean() >= 0.995
    gpu32 = _predict(tmp_path, "--device", "cuda", "--precision", "fp32")
    assert (gpu32 == cpu).mean() >= 0.999
