"""Reproduce docs/training.md's recipe table: `slgt2 train` variants × seeds on the shared real sets and synthetic data.

Each run is `slgt2 train DATASET --preset tiny --iterations N --config VARIANT.yaml --seed S` followed, where the
dataset has a test split, by `slgt2 evaluate --checkpoint best.pt --dataset DATASET --split test`; the per-pixel
baseline's validation score comes from the run's baseline.json, its test score from the same classifier refitted
and scored on the test split. Results are appended to WORK/results.jsonl (a run already there is not redone), and
the table (mean ± standard deviation over seeds) is printed as Markdown.

    python benchmarks/recipe_table.py --work /tmp/recipes                       # the default recipe, 3 seeds
    python benchmarks/recipe_table.py --work /tmp/recipes --variants default lr1e-3 --datasets floods
    python benchmarks/recipe_table.py --work /tmp/recipes --table               # print the table only

One run at a time: on 2 cores a second training process slows both several-fold.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SLGT2_SHARED", ROOT.parent / "shared")) / "data"
"""The shared real sets (../shared/data beside the checkout; SLGT2_SHARED=DIR for another shared/)."""

# Options of each variant, on top of the tiny preset's defaults (written as a --config file).
VARIANTS: dict[str, dict] = {
    "default": {},
    "lr1e-2": {"lr": 1e-2},
    "lr3e-3": {"lr": 3e-3},
    "lr1e-3": {"lr": 1e-3},
    "lr3e-4": {"lr": 3e-4},
    "composite": {"temporal_mode": "composite"},
    "pad": {"temporal_mode": "pad"},
    "cw-none": {"class_weights": "none"},
    "warmup0": {"warmup": 0},
    "init-torch": {"init": "torch"},
    "old-recipe": {"init": "torch", "lr": 1e-2, "class_weights": "none", "temporal_mode": "composite"},
    "batch4": {"batch_size": 4},
    "batch16": {"batch_size": 16},
    "patch96": {"patch_size": 96},
    "patch128": {"patch_size": 128},
    "no-augment": {"augment": False},
    "scale-1": {"scale_range": [1.0, 1.0]},
}


def floods(work: Path) -> Path:
    return SHARED / "sar-floods-2021"


def slovenia(work: Path) -> Path:
    """The eo-learn NDVI patch as a dataset: rows 0-63 train, rows 64-99 validation (no test split)."""
    import rasterio
    from rasterio.windows import Window

    out = work / "data" / "slovenia-ndvi"
    if (out / "classes.json").exists():
        return out
    src_dir = SHARED / "eolearn-slovenia-ndvi"
    parts = {"train": Window(0, 0, 101, 64), "val": Window(0, 64, 101, 36)}
    for split, window in parts.items():
        for name, kind in (("NDVI_68dates.tif", "images"), ("LULC.tif", "labels")):
            with rasterio.open(src_dir / name) as src:
                profile = src.profile | {"height": window.height, "width": window.width,
                                         "transform": src.window_transform(window)}
                data = src.read(window=window)
                descriptions = src.descriptions
            path = out / split / kind / "patch.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(data)
                for i, d in enumerate(descriptions, 1):
                    if d:
                        dst.set_band_description(i, d)
    classes = [{"value": 1, "name": "cultivated land", "color": "#ffff00"},
               {"value": 2, "name": "forest", "color": "#054907"},
               {"value": 3, "name": "grassland", "color": "#ffa500"},
               {"value": 4, "name": "shrubland", "color": "#806000"},
               {"value": 8, "name": "artificial surface", "color": "#dc143c"}]
    (out / "classes.json").write_text(json.dumps(classes))
    return out


def synthetic(work: Path) -> Path:
    """`slgt2 synth` data as the full demo makes it (10 scenes of 192², 24 dates)."""
    out = work / "data" / "synthetic"
    if not (out / "classes.json").exists():
        _slgt2("synth", str(out), "--scenes", "10", "--scene-size", "192", "--size", "256", "--seed", "0",
               "--overwrite")
    return out


DATASETS = {"floods": floods, "slovenia-ndvi": slovenia, "synthetic": synthetic}


def _slgt2(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", "slgt2_cli", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"slgt2 {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def test_baseline(run_dir: Path, data: Path, seed: int) -> float | None:
    """The per-pixel baseline (as the run fitted it) scored on the dataset's test split."""
    sys.path.insert(0, str(ROOT))
    from slgt2_cli.checkpoint.format import load_checkpoint
    from slgt2_cli.data.datasets import open_dataset
    from slgt2_cli.data.windows import WindowSample
    from slgt2_cli.scoring.baseline import TRAIN_WINDOW_PIXELS, score_baseline
    from slgt2_cli.scoring.metrics import compute_metrics

    spec = open_dataset(data)
    test = spec.scenes("test")
    if not test:
        return None
    ck = load_checkpoint(run_dir / "best.pt")

    def shapes(scenes):
        out = []
        for s in scenes:
            with s.open() as stack:
                out.append(stack.grid.shape)
        return out

    train = spec.scenes("train")
    result = score_baseline(WindowSample.of(train, shapes(train), ck.patch_size, TRAIN_WINDOW_PIXELS),
                            WindowSample.of(test, shapes(test), ck.patch_size, None), ck.temporal, ck.normalization,
                            ck.classes, seed=seed)
    return None if result is None else compute_metrics(result.cm, ck.classes)["miou"]


def run_one(work: Path, dataset: str, variant: str, seed: int, iterations: int) -> dict:
    data = DATASETS[dataset](work)
    run_dir = work / "runs" / f"{dataset}.{variant}.s{seed}"
    config = work / "configs" / f"{variant}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    import yaml

    config.write_text(yaml.safe_dump(VARIANTS[variant]) if VARIANTS[variant] else "{}\n")
    start = time.perf_counter()
    _slgt2("train", str(data), "--out", str(run_dir), "--preset", "tiny", "--iterations", str(iterations),
           "--config", str(config), "--seed", str(seed), "--overwrite", "--quiet")
    seconds = time.perf_counter() - start
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    row = {"dataset": dataset, "variant": variant, "seed": seed, "iterations": iterations,
           "val_miou": max(h["miou"] for h in history if h["miou"] is not None),
           "val_baseline": json.loads((run_dir / "baseline.json").read_text())["miou"],
           "train_seconds": round(seconds, 1), "final_loss": history[-1]["loss"],
           "val_seconds": round(sum(h.get("val_seconds", 0) for h in history), 1)}
    if (data / "test").is_dir():
        _slgt2("evaluate", "--checkpoint", str(run_dir / "best.pt"), "--dataset", str(data), "--split", "test",
               "--json", str(run_dir / "test.json"), "--quiet")
        row["test_miou"] = json.loads((run_dir / "test.json").read_text())["miou"]
        row["test_baseline"] = test_baseline(run_dir, data, seed)
    return row


def _stat(values: list) -> str:
    v = np.array([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return "—"
    return f"{v.mean():.3f} ± {v.std():.3f}" if v.size > 1 else f"{v[0]:.3f}"


def table(rows: list[dict]) -> str:
    keys = sorted({(r["dataset"], r["variant"], r["iterations"]) for r in rows}, key=lambda k: (k[0], k[2], k[1]))
    out = ["| dataset | variant | steps | seeds | val mIoU | val baseline | test mIoU | test baseline | train time (s, median) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for dataset, variant, iterations in keys:
        sel = [r for r in rows if (r["dataset"], r["variant"], r["iterations"]) == (dataset, variant, iterations)]
        out.append(f"| {dataset} | {variant} | {iterations} | {len(sel)} | {_stat([r['val_miou'] for r in sel])} | "
                   f"{_stat([r['val_baseline'] for r in sel])} | {_stat([r.get('test_miou') for r in sel])} | "
                   f"{_stat([r.get('test_baseline') for r in sel])} | "
                   f"{np.median([r['train_seconds'] for r in sel]):.0f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="Working directory (datasets, runs, results.jsonl).")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--variants", nargs="+", default=["default"], choices=list(VARIANTS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--table", action="store_true", help="Only print the table of the results so far.")
    args = ap.parse_args()
    results = args.work / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    if not args.table:
        for dataset in args.datasets:
            for variant in args.variants:
                for seed in args.seeds:
                    key = (dataset, variant, seed, args.iterations)
                    if any((r["dataset"], r["variant"], r["seed"], r["iterations"]) == key for r in rows):
                        continue
                    row = run_one(args.work, dataset, variant, seed, args.iterations)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
                    with results.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
