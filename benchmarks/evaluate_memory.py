"""Peak memory of `slgt2 evaluate` on a large map (default 8192 x 8192 px).

Writes a classified map (through MapWriter: tiled COG with overviews) and a label raster window by window,
then runs `python -m slgt2_cli evaluate` in a subprocess and reports its peak resident memory (maxRSS).

    python benchmarks/evaluate_memory.py                      # labels on the same 10 m grid
    python benchmarks/evaluate_memory.py --label-res 20       # labels at 20 m: reprojected on the fly
    python benchmarks/evaluate_memory.py --size 2048 --limit-mb 1024

Exit status 1 if the peak exceeds --limit-mb.

The inputs are written by one child process and the evaluation runs in another, measured alone with
``os.wait4``: on Linux a child's maxRSS starts from its parent's RSS at fork time, so this parent never
imports numpy or GDAL and stays small.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VALUES = [1110, 1120, 2100, 3000, 4100, 5000, 6000, 7000]
BAND = 512


def pattern(rows, cols, res: float):
    """Label values of a field-like pattern, as a function of map coordinates (so any resolution agrees)."""
    import numpy as np

    x, y = cols * res, rows * res
    return np.array(VALUES)[((x // 370).astype(np.int64) * 7 + (y // 530).astype(np.int64) * 3) % len(VALUES)]


def write_inputs(workdir: Path, size: int, label_res: float) -> tuple[Path, Path]:
    """Write prediction.tif (through MapWriter, 10 % wrong pixels) and labels.tif, window by window."""
    import numpy as np
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.windows import Window

    sys.path.insert(0, str(ROOT))
    from slgt2_cli.io.classes import ClassTable
    from slgt2_cli.io.geotiff import MapWriter, gdal_cache
    from slgt2_cli.io.grid import Grid

    crs, origin = CRS.from_epsg(32633), (500000.0, 5100000.0)
    table = ClassTable.default(VALUES)
    grid = Grid(crs, Affine(10, 0, origin[0], 0, -10, origin[1]), size, size)
    pred_path, label_path = workdir / "prediction.tif", workdir / "labels.tif"
    rng = np.random.default_rng(0)
    with gdal_cache(256), MapWriter.classes(pred_path, grid, table, overwrite=True) as writer:
        cols = np.arange(size)
        for row in range(0, size, BAND):
            rows = np.arange(row, min(row + BAND, size))[:, None]
            values = pattern(rows + 0.5, cols[None, :] + 0.5, 10.0)
            wrong = rng.random(values.shape) < 0.1  # 10 % errors
            values = np.where(wrong, np.array(VALUES)[rng.integers(0, len(VALUES), values.shape)], values)
            writer.write(Window(0, row, size, len(rows)), values)
    lsize = int(round(size * 10 / label_res))
    profile = dict(driver="GTiff", width=lsize, height=lsize, count=1, dtype="uint16", crs=crs,
                   transform=Affine(label_res, 0, origin[0], 0, -label_res, origin[1]), nodata=0,
                   tiled=True, blockxsize=512, blockysize=512, compress="deflate")
    with rasterio.open(label_path, "w", **profile) as dst:
        cols = np.arange(lsize)
        for row in range(0, lsize, BAND):
            rows = np.arange(row, min(row + BAND, lsize))[:, None]
            values = pattern((rows + 0.5) * label_res / 10, (cols[None, :] + 0.5) * label_res / 10, 10.0)
            dst.write(values.astype(np.uint16)[None], window=Window(0, row, lsize, len(rows)))
    return pred_path, label_path


def run_measured(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, float, float]:
    """Run ``cmd``; return (exit status, its own peak RSS in MB, seconds)."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024, time.perf_counter() - t0  # Linux: ru_maxrss in KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--label-res", type=float, default=10.0, help="label pixel size in metres (map: 10 m)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--limit-mb", type=float, default=1024.0)
    parser.add_argument("--write-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_only:
        write_inputs(args.write_only, args.size, args.label_res)
        return 0

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        workdir = Path(tmp)
        write_cmd = [sys.executable, __file__, "--size", str(args.size), "--label-res", str(args.label_res),
                     "--write-only", str(workdir)]
        rc, write_mb, t_write = run_measured(write_cmd, env, workdir / "write.log")
        if rc != 0:
            print((workdir / "write.log").read_text(), file=sys.stderr)
            return 2
        cmd = [sys.executable, "-m", "slgt2_cli", "evaluate", str(workdir / "prediction.tif"),
               str(workdir / "labels.tif"), "--json", str(workdir / "m.json")]
        rc, peak_mb, t_eval = run_measured(cmd, env, workdir / "evaluate.log")
        if rc != 0:
            print((workdir / "evaluate.log").read_text(), file=sys.stderr)
            return 2
        metrics = json.loads((workdir / "m.json").read_text())
    print(f"scene {args.size}x{args.size} px, labels at {args.label_res:g} m; inputs written in {t_write:.1f} s "
          f"(writer peak RSS {write_mb:.0f} MB)")
    print(f"evaluate: {t_eval:.1f} s, peak RSS {peak_mb:.0f} MB (limit {args.limit_mb:.0f} MB), "
          f"{metrics['pixels']:,} pixels, OA {metrics['overall_accuracy']:.4f}")
    return 0 if peak_mb <= args.limit_mb else 1


if __name__ == "__main__":
    sys.exit(main())
