"""`slgt2 demo`: the whole path on built-in synthetic data — synth, train, predict, evaluate, picture."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slgt2_cli.errors import InputError

# (scene px, dates, scenes, scene_size, iterations, val_every, batch)
PLANS = {
    "full": dict(size=512, dates=24, scenes=10, scene_size=192, iterations=600, val_every=150, batch_size=8),
    "quick": dict(size=256, dates=16, scenes=6, scene_size=128, iterations=140, val_every=70, batch_size=8),
}


@dataclass
class DemoConfig:
    out: Path
    quick: bool = False
    device: str = "auto"
    seed: int = 0
    overwrite: bool = False


@dataclass
class DemoResult:
    out: Path
    map: Path
    quicklook: Path
    curves: Path
    metrics: dict
    seconds: float


def run_demo(config: DemoConfig, say: Callable[[str], None] = print) -> DemoResult:
    """Synthesise, train, predict, score and draw; an interrupt says how to start again (a demo cannot resume)."""
    try:
        return _run_demo(config, say)
    except KeyboardInterrupt as exc:
        reason = str(exc).split(";")[0].strip() or "interrupted"
        raise KeyboardInterrupt(f"{reason}; the demo cannot be resumed: run `slgt2 demo --out {config.out} "
                                "--overwrite` to start again") from None


def _run_demo(config: DemoConfig, say: Callable[[str], None]) -> DemoResult:
    from slgt2_cli.demo.quicklook import write_quicklook
    from slgt2_cli.infer.run import PredictConfig, run_predict
    from slgt2_cli.infer.settings import InferenceSettings
    from slgt2_cli.scoring.evaluator import EvaluateConfig, evaluate_maps
    from slgt2_cli.synth.scenes import synthesize
    from slgt2_cli.train.config import resolve_config
    from slgt2_cli.train.loop import train

    plan = PLANS["quick" if config.quick else "full"]
    out = config.out
    if out.exists() and any(out.iterdir()) and not config.overwrite:
        raise InputError("the demo directory is not empty (use {overwrite}, or {out} elsewhere)", out,
                         options=("overwrite", "out"))
    start = time.perf_counter()
    data, run = out / "data", out / "run"

    say(f"[1/4] synthesising a Sentinel-1 dataset ({plan['scenes']} scenes, {plan['dates']} dates) "
        f"and a {plan['size']} px scene in {data}")
    synth = synthesize(data, size=plan["size"], dates=plan["dates"], scenes=plan["scenes"], seed=config.seed,
                       scene_size=plan["scene_size"], overwrite=True)

    say(f"[2/4] training the tiny preset for {plan['iterations']} steps into {run}")
    train_config = resolve_config(data, run, None, preset="tiny", iterations=plan["iterations"],
                                  val_every=plan["val_every"], batch_size=plan["batch_size"], seed=config.seed,
                                  device=config.device, overwrite=True)
    trained = train(train_config)
    base = f", per-pixel baseline {trained.baseline_miou:.3f}" if trained.baseline_miou is not None else ""
    say(f"      best validation mIoU {trained.best_miou:.3f} at step {trained.best_step}{base} "
        f"({trained.seconds / 60:.1f} min)")

    say("[3/4] predicting the scene (a year later than the training data)")
    map_path = out / "map.tif"
    run_predict(PredictConfig(checkpoint=run / "best.pt", stacks=[synth.scene_image], output=map_path,
                              settings=InferenceSettings(device=config.device), overwrite=True,
                              confidence=out / "confidence.tif"))

    say("[4/4] scoring the map against the scene's labels")
    evaluation = evaluate_maps(EvaluateConfig(map_path, synth.scene_labels, None, out / "metrics.json", None,
                                              out / "confusion.png"))
    from slgt2_cli.io.geotiff import read_class_table

    table = read_class_table(map_path)
    quicklook = write_quicklook(map_path, synth.scene_image, out / "quicklook.png", table,
                                f"SL-GT2Net tiny — scene mIoU {evaluation.metrics['miou']:.3f}",
                                labels_path=synth.scene_labels)
    say(evaluation.text)
    return DemoResult(out, map_path, quicklook, run / "curves.png", evaluation.metrics, time.perf_counter() - start)
