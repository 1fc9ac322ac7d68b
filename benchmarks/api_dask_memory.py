"""Peak memory of `slgt2.predict` on a dask-backed cube, at several scene heights: it should not grow with the
height beyond the in-memory result (the cube is computed window by window, never whole).

The cube is lazy: each chunk of synthetic Sentinel-1 dB values is computed from its coordinates only when
the engine reads it, so a cube of any size costs nothing until then. The model is an untrained `tiny`
SL-GT2Net (speed does not matter here; its cost per tile is the same at any height).

    python benchmarks/api_dask_memory.py                          # heights 1024 and 4096, 128 px wide, 64 dates
    python benchmarks/api_dask_memory.py --heights 2048 8192 --width 256 --dates 32

Each height runs in its own child process, measured alone with ``os.wait4`` (maxRSS); this parent imports
neither numpy nor torch so a child's maxRSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import datetime as dt, json, sys, time
import numpy as np, torch, dask.array as da, xarray as xr, rioxarray
sys.path.insert(0, sys.argv[1])
import slgt2_cli as slgt2
from models import create_model
from slgt2_cli.checkpoint.format import Checkpoint, save_checkpoint
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.data.normalization import Normalization
from slgt2_cli.data.temporal import TemporalRule

height, width, n_dates, ck_path = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(1)
dates = [dt.date(2021, 4, 1) + dt.timedelta(days=6 * i) for i in range(n_dates)]
torch.manual_seed(0)
model = create_model("tiny", num_classes=3)
save_checkpoint(Checkpoint(model_config=model.config, state_dict=model.state_dict(),
                           classes=ClassTable.default([1, 2, 3]), normalization=Normalization((-10.0, -17.0), (3.0, 2.5)).to_dict(),
                           temporal=TemporalRule.fit([dates], length=16).to_dict(), bands=["VV", "VH"], units="db",
                           patch_size=64, stride=48), ck_path)

def chunk(block_info=None):
    (t0, t1), _, (r0, r1), (c0, c1) = block_info[None]["array-location"]
    yy, xx = np.mgrid[r0:r1, c0:c1]
    field = np.sin(yy / 9.0) + np.cos(xx / 13.0)
    base = np.stack([-10 + 3 * field, -17 + 2 * field])[None]
    return (base + 0.1 * np.arange(t0, t1)[:, None, None, None]).astype(np.float32)

data = da.map_blocks(chunk, dtype=np.float32, chunks=((n_dates,), (2,), (64,) * (height // 64), (width,)))
x = 500000.0 + 10 * (np.arange(width) + 0.5)
y = 5100000.0 - 10 * (np.arange(height) + 0.5)
cube = xr.DataArray(data, dims=("time", "band", "y", "x"),
                    coords={"time": np.array(dates, "datetime64[ns]"), "band": ["VV", "VH"], "y": y, "x": x})
cube = cube.rio.write_crs("EPSG:32633")
start = time.perf_counter()
result = slgt2.predict(slgt2.load_model(ck_path, device="cpu"), cube)
seconds = time.perf_counter() - start
print(json.dumps({"cube_mb": cube.nbytes / 2**20, "result_mb": result.nbytes / 2**20, "seconds": seconds,
                  "classes": np.unique(result["classes"].values).tolist()}))
"""


def measure(height: int, width: int, dates: int) -> dict:
    """Run one prediction in a child process; its report plus its peak resident memory."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT), str(height), str(width), str(dates),
                                 str(Path(tmp) / "ck.pt")], stdout=subprocess.PIPE, env=env)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if status != 0:
            sys.exit(f"height {height}: the child failed (status {status})")
    report = json.loads(out.decode().strip().splitlines()[-1])
    return {"height": height, **report, "peak_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--dates", type=int, default=64)
    args = parser.parse_args()
    rows = [measure(h, args.width, args.dates) for h in args.heights]
    print(f"{'height':>7} {'cube (lazy) MB':>15} {'result MB':>10} {'peak RSS MB':>12} {'seconds':>8}")
    for r in rows:
        print(f"{r['height']:>7} {r['cube_mb']:>15.0f} {r['result_mb']:>10.1f} {r['peak_mb']:>12.0f} {r['seconds']:>8.1f}")
    growth = rows[-1]["peak_mb"] - rows[0]["peak_mb"]
    cube_growth = rows[-1]["cube_mb"] - rows[0]["cube_mb"]
    result_growth = rows[-1]["result_mb"] - rows[0]["result_mb"]
    print(f"peak grew {growth:.0f} MB while the cube grew {cube_growth:.0f} MB (the result, {result_growth:.1f} MB)")


if __name__ == "__main__":
    main()
