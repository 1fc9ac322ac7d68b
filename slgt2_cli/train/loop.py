"""`slgt2 train`: the paper's recipe from a dataset directory to self-contained checkpoints.

One CPU, one GPU or several (torchrun: DistributedDataParallel, NCCL on GPU, Gloo on CPU; each rank its own
samples, validation confusion matrices summed across ranks, only rank 0 writes). Every sample is drawn from
its own seed, the data loader has its own generator and the RNG states travel in `last.pt`, so a resumed run
ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from models import SLGT2Net, preset
from slgt2_cli.checkpoint.format import Checkpoint, load_checkpoint, provenance, save_checkpoint
from slgt2_cli.io.classes import IGNORE_INDEX
from slgt2_cli.data.datasets import DatasetSpec, PatchDataset, open_dataset
from slgt2_cli.data.survey import survey_dataset, survey_settings
from slgt2_cli.errors import InputError
from slgt2_cli.infer.predictor import Predictor, resolve_device
from slgt2_cli.scoring.metrics import ConfusionMatrix, compute_metrics
from slgt2_cli.data.normalization import Normalization
from slgt2_cli.scoring.scenes import score_scenes
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.train.config import TrainConfig
from slgt2_cli.train.run_dir import RunWriter


class TrainingError(InputError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is kept."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    best_miou: float
    best_step: int
    seconds: float


# --- distributed ----------------------------------------------------------------------------------------------
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return Dist(), resolve_device(device_name)
    d = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", 0)))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return d, device


# --- sampling ---------------------------------------------------------------------------------------------------
class StepBatches(torch.utils.data.Sampler):
    """Sample indices of steps ``start..iterations``: step s, rank r takes ``s·B·W + r·B + [0, B)``."""

    def __init__(self, start: int, iterations: int, batch: int, d: Dist):
        self.start, self.iterations, self.batch, self.d = start, iterations, batch, d

    def __iter__(self) -> Iterator[list[int]]:
        for s in range(self.start, self.iterations):
            base = s * self.batch * self.d.world + self.d.rank * self.batch
            yield list(range(base, base + self.batch))

    def __len__(self) -> int:
        return self.iterations - self.start


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate()[1],
            "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), 624, 0, 0.0))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- the recipe --------------------------------------------------------------------------------------------------
def class_weights(config: TrainConfig, spec: DatasetSpec, counts: list[int] | None = None) -> torch.Tensor | None:
    """Given weights, or inverse log-frequency weights (ENet style) from the training labels."""
    k = len(spec.classes)
    if config.class_weights in (None, "", "none"):
        return None
    if config.class_weights != "auto":
        try:
            values = [float(v) for v in str(config.class_weights).split(",")]
        except ValueError:
            raise InputError(f"--class-weights must be 'auto', 'none' or {k} numbers separated by commas") from None
        if len(values) != k:
            raise InputError(f"--class-weights has {len(values)} values but the class table has {k} classes")
        return torch.tensor(values, dtype=torch.float32)
    if counts is not None:  # the survey's exact census
        counts = np.asarray(counts, dtype=np.int64)
        freq = counts / max(1, counts.sum())
        weights = np.where(counts > 0, 1.0 / np.log(1.02 + freq), 0.0)
        return torch.tensor(weights / weights[counts > 0].mean(), dtype=torch.float32)
    counts = np.zeros(k, dtype=np.int64)
    for scene in spec.scenes("train"):
        with scene.open() as stack, scene.open_labels(stack.grid) as labels:
            for row in range(0, stack.grid.height, 512):
                from rasterio.windows import Window

                values, ok = labels.read(Window(0, row, stack.grid.width, min(512, stack.grid.height - row)))
                cls = spec.classes.encode(values, ok)
                counts += np.bincount(cls[cls != IGNORE_INDEX], minlength=k)[:k]
    freq = counts / max(1, counts.sum())
    weights = np.where(counts > 0, 1.0 / np.log(1.02 + freq), 0.0)
    return torch.tensor(weights / weights[counts > 0].mean(), dtype=torch.float32)


def poly_lambda(iterations: int, power: float, warmup: int = 0):
    """Learning-rate factor at a step: linear warm-up over ``warmup`` steps, then poly decay to 0."""
    def factor(step: int) -> float:
        ramp = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        return ramp * max(0.0, 1.0 - step / max(1, iterations)) ** power

    return factor


def _mixed_precision(device: torch.device, mode: str) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a grad scaler)."""
    if device.type != "cuda" or mode == "no":
        return None, False
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, False
    return torch.float16, True


def prepare_run(config: TrainConfig, d: Dist) -> dict[str, Any]:
    """Dataset, temporal rule, normalisation and model config: everything fixed before the first step."""
    spec = open_dataset(config.dataset, val_fraction=config.val_fraction)
    train_scenes = spec.scenes("train")
    val_scenes = spec.scenes("val")
    model_config = preset(config.preset, **(config.model or {}))
    survey = survey_dataset(spec, survey_settings(config, model_config["temporal_length"]),
                            cache_dir=config.out, write_cache=d.main, workers=config.workers,
                            progress=config.progress and d.main)
    model_config.update(in_chans=len(survey.bands), num_classes=len(spec.classes))
    return dict(spec=spec, train=train_scenes, val=val_scenes, rule=survey.rule, norm=survey.norm, bands=survey.bands,
                units=survey.units, model_config=model_config, survey=survey)


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) a training run into ``config.out``."""
    d, device = init_distributed(config.device)
    try:
        return _train(config, d, device)
    finally:
        if d.active and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, d: Dist, device: torch.device) -> TrainResult:
    run = RunWriter(config.out, enabled=d.main)
    resume_state = None
    if config.resume:
        last = config.out / "last.pt"
        if not last.exists():
            raise InputError("nothing to resume: no last.pt in the run directory", config.out)
        resume_state = load_checkpoint(last, with_training_state=True)
    elif d.main:
        run.claim(overwrite=config.overwrite)
    if torch.cuda.is_available() and device.type == "cuda" and config.deterministic:
        torch.backends.cudnn.benchmark = False
    seed_everything(config.seed)
    setup = prepare_run(config, d)
    if resume_state is not None:
        setup["rule"] = TemporalRule.from_dict(resume_state.temporal)
        setup["norm"] = Normalization.from_dict(resume_state.normalization)
    run.write_config(config, setup)

    model = SLGT2Net(**setup["model_config"]).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_lambda(config.iterations, config.poly_power, config.warmup))
    weights = class_weights(config, setup["spec"], setup["survey"].class_counts)
    amp_dtype, use_scaler = _mixed_precision(device, config.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    step, best, best_step, history = 0, -1.0, 0, []
    if resume_state is not None:
        ts = resume_state.training_state or {}
        model.load_state_dict(resume_state.state_dict)
        optimizer.load_state_dict(ts["optimizer"])
        scheduler.load_state_dict(ts["scheduler"])
        if ts.get("scaler"):
            scaler.load_state_dict(ts["scaler"])
        step, best, best_step, history = ts["step"], ts["best_miou"], ts["best_step"], list(ts.get("history", []))
        set_rng_state(ts["rng"])
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if d.active else model

    dataset = PatchDataset(setup["train"], setup["spec"].classes, setup["rule"], setup["norm"], config.patch_size,
                           length=config.iterations * config.batch_size * d.world, seed=config.seed,
                           min_labelled=config.min_labelled, augment=config.augment, units=config.units,
                           shapes=setup["survey"].shapes)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=StepBatches(step, config.iterations, config.batch_size, d),
        num_workers=config.workers, pin_memory=device.type == "cuda", generator=torch.Generator(),
        persistent_workers=False, prefetch_factor=4 if config.workers else None, worker_init_fn=_quiet_worker,
    )

    def checkpoint(kind: str, with_state: bool) -> Checkpoint:
        ts = None
        if with_state:
            ts = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                  "best_miou": best, "best_step": best_step, "history": history, "rng": rng_state(),
                  "scaler": scaler.state_dict() if use_scaler else None}
        return Checkpoint(
            model_config=setup["model_config"], state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
            classes=setup["spec"].classes, normalization=setup["norm"].to_dict(), temporal=setup["rule"].to_dict(),
            bands=setup["bands"], units=setup["units"], patch_size=config.patch_size,
            stride=config.val_stride or max(1, round(config.patch_size * 200 / 224)),
            provenance=provenance(kind=kind, dataset=str(config.dataset), preset=config.preset, step=step,
                                  seed=config.seed, best_miou=best, best_step=best_step),
            training_state=ts,
        )

    stop = {"signal": None}
    saved = {"step": step if resume_state is not None else None}  # the step last.pt holds

    def kept() -> str:
        advice = "lower --lr or check the input for extreme values"
        if saved["step"] is None:
            return f"no checkpoint had been written yet ({advice})"
        return (f"{config.out / 'last.pt'} keeps the last good weights, of step {saved['step']} "
                f"({advice}; --resume continues from it)")

    def on_signal(signum, _frame):
        stop["signal"] = signum

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} \
        if _main_thread() else {}
    start_time = time.perf_counter()
    loss_sum, loss_n, seen = 0.0, 0, 0
    bar = tqdm(total=config.iterations, initial=step, disable=not (d.main and config.progress), unit="it",
               dynamic_ncols=True, desc="train")
    try:
        net.train()
        for x, y in _batches(loader, stop):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y, weight=weights.to(device) if weights is not None else None,
                                       ignore_index=IGNORE_INDEX)
            if not torch.isfinite(loss):
                if (y != IGNORE_INDEX).any():
                    raise TrainingError(f"the loss became {loss.item()} at step {step + 1}; {kept()}", config.out)
                loss = logits.sum() * 0.0  # a batch with no labelled pixel: no gradient, no harm
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            seen += x.shape[0] * d.world
            loss_sum, loss_n = loss_sum + float(loss.detach()), loss_n + 1
            elapsed = time.perf_counter() - start_time
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / loss_n:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}",
                            sps=f"{seen / max(elapsed, 1e-9):.1f}")
            if stop["signal"] is not None:
                break
            if step % config.val_every == 0 or step == config.iterations:
                if not _finite(model):  # never write non-finite weights over the last good checkpoint
                    raise TrainingError(f"the weights became non-finite at step {step}; {kept()}", config.out)
                cm = validate(model, setup, config, device, d)
                metrics = compute_metrics(cm, setup["spec"].classes) if cm is not None else None
                miou = metrics["miou"] if metrics and metrics["miou"] is not None else 0.0
                record = {"step": step, "loss": loss_sum / max(1, loss_n), "lr": scheduler.get_last_lr()[0],
                          "miou": metrics["miou"] if metrics else None,
                          "mean_f1": metrics["mean_f1"] if metrics else None,
                          "overall_accuracy": metrics["overall_accuracy"] if metrics else None,
                          "seconds": elapsed, "samples_per_second": seen / max(elapsed, 1e-9)}
                history.append(record)
                loss_sum, loss_n = 0.0, 0
                improved = metrics is not None and miou > best
                if improved:
                    best, best_step = miou, step
                if d.main:
                    run.log(record)
                    if improved:
                        save_checkpoint(checkpoint("best", False), config.out / "best.pt")
                        run.best_report(cm, setup["spec"].classes, step)
                    save_checkpoint(checkpoint("last", True), config.out / "last.pt")
                    saved["step"] = step
                    run.curves(history)
                    bar.write(f"step {step}: loss {record['loss']:.4f}  val mIoU {miou:.4f}  "
                              f"mF1 {record['mean_f1'] or 0:.4f}  (best {best:.4f} at {best_step})")
                net.train()
    finally:
        bar.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)
    interrupted = stop["signal"] is not None and step < config.iterations
    if interrupted:
        if d.main and _finite(model):
            save_checkpoint(checkpoint("last", True), config.out / "last.pt")
        raise KeyboardInterrupt(f"stopped at step {step}; resume with --resume")
    if d.main and not (config.out / "best.pt").exists():  # no validation split: the final weights are the best
        save_checkpoint(checkpoint("best", False), config.out / "best.pt")
    return TrainResult(config.out, step, best, best_step, time.perf_counter() - start_time)


def _quiet_worker(_: int) -> None:
    """Data-loader workers leave Ctrl-C and SIGTERM (sent to the whole process group) to the main process,
    which saves last.pt and shuts them down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _batches(loader, stop: dict) -> Iterator:
    """The loader's batches; a loader failure after a stop signal ends the loop as an interruption."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except Exception:
            if stop["signal"] is not None:
                return
            raise
        yield batch


def _finite(model: torch.nn.Module) -> bool:
    """True when every weight and buffer is finite."""
    return all(bool(torch.isfinite(t).all()) for t in [*model.parameters(), *model.buffers()]
               if t.is_floating_point())


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def validate(model: torch.nn.Module, setup: dict, config: TrainConfig, device: torch.device, d: Dist
             ) -> ConfusionMatrix | None:
    """Score the validation scenes with tiled inference; each rank takes every W-th scene, counts are summed."""
    scenes = setup["val"]
    if not scenes:
        return None
    model.eval()
    predictor = Predictor(model, setup["spec"].classes, setup["rule"], setup["norm"], setup["bands"], device,
                          tile=config.patch_size, stride=config.val_stride or max(1, round(config.patch_size * 200 / 224)),
                          batch_size=config.batch_size, units=setup["units"])
    cm = score_scenes(predictor, scenes[d.rank :: d.world])
    if d.active:
        counts = torch.from_numpy(cm.counts).to(device)
        dist.all_reduce(counts)
        cm = ConfusionMatrix(len(setup["spec"].classes), counts.cpu().numpy())
    return cm


def describe_result(result: TrainResult) -> str:
    best = f"best validation mIoU {result.best_miou:.4f} at step {result.best_step}" if result.best_miou >= 0 \
        else "no validation split"
    return (f"trained {result.step} steps in {result.seconds / 60:.1f} min; {best}\n"
            f"checkpoints: {result.run_dir / 'best.pt'}, {result.run_dir / 'last.pt'}\n"
            f"metrics log: {result.run_dir / 'metrics.jsonl'}; curves: {result.run_dir / 'curves.png'}")


__all__ = ["TrainConfig", "TrainResult", "TrainingError", "train", "describe_result"]
