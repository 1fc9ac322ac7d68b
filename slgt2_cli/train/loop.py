"""`slgt2 train`: a run (model, optimiser, data, :class:`RunState`) advanced by :func:`train_step`, validated and
checkpointed by :func:`validate_and_save`, and saved on Ctrl-C/SIGTERM by :func:`save_interrupted`.

One CPU, one GPU or several (torchrun: DistributedDataParallel, NCCL on GPU, Gloo on CPU; each rank its own
samples, validation confusion matrices summed across ranks, only rank 0 writes). Every sample is drawn from
its own seed and the RNG states travel in `last.pt`, so a resumed run ends with the same weights (and the same
`best.pt`: a validation an interrupt cut short is redone first) as an uninterrupted one.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from models import SLGT2Net
from slgt2_cli.checkpoint.format import (
    Checkpoint,
    load_checkpoint,
    provenance,
    save_checkpoint,
)
from slgt2_cli.data.patches import PatchDataset
from slgt2_cli.data.windows import WindowSample
from slgt2_cli.errors import DivergedError, InputError, terminate_as_interrupt
from slgt2_cli.io.classes import IGNORE_INDEX
from slgt2_cli.progress import progress_bar
from slgt2_cli.scoring.metrics import compute_metrics
from slgt2_cli.train.config import Flips, Result, ScaleSampling, TrainConfig, check_steps_ahead
from slgt2_cli.train.curves import thin_losses
from slgt2_cli.train.recipe import class_weights, cross_entropy, initialise, poly_lambda
from slgt2_cli.train.run_dir import RunWriter
from slgt2_cli.train.runtime import (
    Dist,
    StepBatches,
    init_distributed,
    is_main_thread,
    make_optimizer,
    mixed_precision,
    quiet_worker,
    replan,
    rng_state,
    seed_everything,
    set_rng_state,
)
from slgt2_cli.train.setup import RunSetup, prepare_run
from slgt2_cli.train.space import check_checkpoint_space
from slgt2_cli.train.state import RunState, TrainResult, describe_result
from slgt2_cli.train.validation import (
    Stopped,
    describe_validation,
    ensure_baseline,
    learning_warnings,
    prior_loss,
    validate,
    validation_sample,
)
from slgt2_cli.train.warmstart import encoder_parameters, load_start


@dataclass
class Run:
    """A training run in progress: its configuration, setup, model, optimiser and state."""

    config: TrainConfig
    setup: RunSetup
    d: Dist
    device: torch.device
    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    amp_dtype: torch.dtype | None
    weights: torch.Tensor | None
    accumulate: int
    writer: RunWriter
    state: RunState
    val_sample: WindowSample | None = None
    """The fixed validation windows (None: the whole split, or no validation)."""
    baseline_miou: float | None = None
    """The per-pixel baseline's validation mIoU (None: not run)."""
    val_seconds: float = 0.0
    """Wall time spent validating in this process."""
    init: dict[str, Any] | None = None
    """What starting from a trained model did (``init_checkpoint``; a resumed run's from its last.pt)."""
    notes: list[str] = field(default_factory=list)
    """Lines printed when the run starts."""
    frozen: bool = False
    """The encoder is held still (``freeze_encoder``)."""
    started: float = field(default_factory=time.perf_counter)


def open_run(config: TrainConfig, d: Dist, device: torch.device) -> Run:
    """Check everything and build the run (restored from last.pt with ``--resume``); writes nothing."""
    writer = RunWriter(config.out, enabled=d.main)
    resume = load_checkpoint(config.out / "last.pt", with_training_state=True) if config.resume else None
    if resume is None and d.main:
        writer.check_fresh(config.overwrite)
    if device.type == "cuda" and config.deterministic:
        torch.backends.cudnn.benchmark = False
    seed_everything(config.seed)
    setup = prepare_run(config, resume)
    model = SLGT2Net(**setup.model_config)
    initialise(model, config.init)
    report = load_start(model, setup.start, setup.spec.classes) if setup.start is not None else None
    model.to(device)
    if d.main:
        check_checkpoint_space(config.out, model)
    optimizer = make_optimizer(model, config.lr, config.weight_decay, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_lambda(config.iterations, config.poly_power,
                                                                         config.warmup))
    amp_dtype, use_scaler = mixed_precision(device, config.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    state, notes = RunState(), list(setup.notes)
    if resume is not None:
        ts = resume.training_state or {}
        model.load_state_dict(resume.state_dict)
        optimizer.load_state_dict(ts["optimizer"])
        scheduler.load_state_dict(ts["scheduler"])
        if ts.get("scaler"):
            scaler.load_state_dict(ts["scaler"])
        state = RunState.restored(ts)
        set_rng_state(ts["rng"])
        planned = int(((resume.training_state or {}).get("config") or {}).get("iterations", config.iterations))
        if config.iterations != planned:
            check_steps_ahead(config.iterations, resume.source or config.out / "last.pt", state.step)
            notes.append(replan(scheduler, planned, config.iterations, state.step))
    net = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None) if d.active else model
    weights = class_weights(config.class_weights, setup.class_counts)
    run = Run(config, setup, d, device, model, net, optimizer, scheduler, scaler, amp_dtype,
              weights.to(device) if weights is not None else None, accumulation(config, d), writer, state)
    run.init = report.to_dict() if report is not None else (resume.provenance.get("init") if resume else None)
    run.notes = ([report.summary()] if report is not None else []) + notes
    run.val_sample = validation_sample(run)
    return run


def accumulation(config: TrainConfig, d: Dist) -> int:
    """Micro-batches per optimiser step that make the effective batch over ``d.world`` devices."""
    per_pass = config.batch_size * d.world
    if config.effective_batch is None:
        return 1
    if config.effective_batch % per_pass:
        raise InputError(f"the effective batch {config.effective_batch} is not a multiple of batch size "
                         f"{config.batch_size} × {d.world} device(s)")
    return config.effective_batch // per_pass


def make_loader(run: Run) -> torch.utils.data.DataLoader:
    """Batches of the steps still to come (``accumulate`` micro-batches per step)."""
    c, s = run.config, run.setup
    dataset = PatchDataset(s.train, s.spec.classes, s.rule, s.norm, c.patch_size,
                           length=c.iterations * run.accumulate * c.batch_size * run.d.world, seed=c.seed,
                           min_labelled=c.min_labelled, augment=c.augment, scale_range=s.scale_range,
                           crop_tries=c.crop_tries, rotate=c.flips is Flips.FLIP_ROTATE,
                           log_uniform=c.scale_sampling is ScaleSampling.LOG_UNIFORM, shapes=s.shapes)
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=StepBatches(run.state.step, c.iterations, c.batch_size, run.d, run.accumulate),
        num_workers=c.workers, pin_memory=run.device.type == "cuda", generator=torch.Generator(),
        persistent_workers=False, prefetch_factor=4 if c.workers else None, worker_init_fn=quiet_worker,
    )


def make_checkpoint(run: Run, kind: str, with_state: bool) -> Checkpoint:
    """The model and everything predict needs; with the training state for last.pt."""
    c, s, st = run.config, run.setup, run.state
    ts = None
    if with_state:
        ts = {"optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
              "scaler": run.scaler.state_dict() if run.scaler.is_enabled() else None, "rng": rng_state(),
              "config": c.settings(), "scenes": s.scene_ids(), **st.persisted()}
    return Checkpoint(
        model_config=dict(s.model_config), state_dict={k: v.detach().cpu() for k, v in run.model.state_dict().items()},
        classes=s.spec.classes, normalization=s.norm, temporal=s.rule, bands=list(s.bands), units=s.units,
        patch_size=c.patch_size, stride=s.stride, training_gsd_m=s.gsd,
        provenance=provenance(kind=kind, dataset=str(c.dataset), preset=c.preset, recipe=c.recipe.value,
                              step=st.step, seed=c.seed, best_miou=st.best, best_step=st.best_step,
                              **({"init": run.init} if run.init else {})),
        training_state=ts,
    )


def _kept(run: Run) -> str:
    advice = "lower the learning rate in a new run, or check the input for extreme values"
    if run.state.saved_step is None:
        return f"no checkpoint had been written yet ({advice})"
    return f"{run.config.out / 'last.pt'} keeps the last good weights, of step {run.state.saved_step} ({advice})"


def train_step(run: Run, micro: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """One optimiser step over ``micro`` (the accumulated micro-batches); the step's mean loss."""
    hold_encoder(run)
    run.optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for i, (x, y) in enumerate(micro):
        x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
        last = i == len(micro) - 1  # under DDP, gradients are averaged across ranks once, with the last one
        with nullcontext() if last or not run.d.active else run.net.no_sync():
            with torch.autocast(run.device.type, dtype=run.amp_dtype or torch.float32,
                                enabled=run.amp_dtype is not None):
                logits = run.net(x)
                loss = cross_entropy(logits.float(), y, run.weights, run.config.loss_average)
            if not torch.isfinite(loss):
                if (y != IGNORE_INDEX).any():
                    raise DivergedError(f"the loss became {loss.item()} at step {run.state.step + 1}; {_kept(run)}",
                                        run.config.out)
                loss = logits.sum() * 0.0  # a batch with no labelled pixel: no gradient, no harm
            run.scaler.scale(loss / len(micro)).backward()
        total += float(loss.detach()) / len(micro)
    if run.frozen:  # under DDP the encoder still computes gradients (the reducer expects them): drop them
        for p in encoder_parameters(run.model):
            p.grad = None
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    st = run.state
    st.step, st.seen = st.step + 1, st.seen + sum(x.shape[0] for x, _ in micro) * run.d.world
    st.loss_sum, st.loss_n = st.loss_sum + total, st.loss_n + 1
    st.step_losses.append(total)
    return total


def hold_encoder(run: Run) -> None:
    """Hold the encoder still for the first ``freeze_encoder`` steps (AdamW leaves parameters without a gradient
    alone: no update, no weight decay); on one process its gradients are not even computed."""
    frozen = run.state.step < run.config.freeze_encoder
    if frozen != run.frozen:
        if not run.d.active:
            for p in encoder_parameters(run.model):
                p.requires_grad_(not frozen)
        run.frozen = frozen


def validate_and_save(run: Run, bar: Any) -> bool:
    """Validate at the current step, log it, write best.pt (if better) and last.pt; False if interrupted."""
    st, out = run.state, run.config.out
    if not _finite(run.model):  # never write non-finite weights over the last good checkpoint
        raise DivergedError(f"the weights became non-finite at step {st.step}; {_kept(run)}", out)
    began = time.perf_counter()
    try:
        cm = validate(run, run.val_sample)
    except Stopped:
        return False
    finally:
        run.net.train()
        run.val_seconds += time.perf_counter() - began
    metrics = compute_metrics(cm, run.setup.spec.classes) if cm is not None else None
    miou = metrics["miou"] if metrics and metrics["miou"] is not None else 0.0
    elapsed = time.perf_counter() - run.started
    loss = st.loss_sum / max(1, st.loss_n) if st.step else None  # step 0: a started run's model before training
    record = {"step": st.step, "loss": loss, "lr": run.scheduler.get_last_lr()[0],
              "miou": metrics["miou"] if metrics else None, "mean_f1": metrics["mean_f1"] if metrics else None,
              "overall_accuracy": metrics["overall_accuracy"] if metrics else None,
              "seconds": elapsed, "samples_per_second": st.seen / max(elapsed, 1e-9),
              "val_seconds": round(time.perf_counter() - began, 3), "step_losses": thin_losses(st.step_losses, st.step)}
    st.history.append(record)
    st.loss_sum, st.loss_n, st.validated_step, st.step_losses = 0.0, 0, st.step, []
    improved = metrics is not None and miou > st.best
    if improved:
        st.best, st.best_step = miou, st.step
    if run.d.main:
        if improved:
            save_checkpoint(make_checkpoint(run, "best", False), out / "best.pt")
            run.writer.best_report(cm, run.setup.spec.classes, st.step)
        save_checkpoint(make_checkpoint(run, "last", True), out / "last.pt")
        run.writer.log(st.history)
        run.writer.curves(st.history, run.baseline_miou)
        bar.write(f"step {st.step}: loss {'—' if loss is None else f'{loss:.4f}'}  val mIoU {miou:.4f}  "
                  f"mF1 {record['mean_f1'] or 0:.4f}  (best {st.best:.4f} at {st.best_step}; "
                  f"validated in {record['val_seconds']:.1f} s)")
        for warning in learning_warnings(loss=math.nan if loss is None else loss,
                                         prior=prior_loss(run.setup.class_counts, run.weights),
                                         step=st.step, warmup=run.config.warmup, iterations=run.config.iterations,
                                         cm=cm, classes=run.setup.spec.classes):
            bar.write(f"slgt2: warning: {warning}")
    st.saved_step = st.step
    return True


def save_interrupted(run: Run) -> None:
    """Keep the work of an interrupted run in last.pt (a cut-short validation is redone on resume); raises."""
    if run.d.main and _finite(run.model):
        save_checkpoint(make_checkpoint(run, "last", True), run.config.out / "last.pt")
    raise KeyboardInterrupt(f"stopped at step {run.state.step}; resume with --resume")


def _due(config: TrainConfig, step: int) -> bool:
    return step > 0 and (step % config.val_every == 0 or step == config.iterations)


def run_steps(run: Run, bar: Any) -> bool:
    """Train (and validate when due) up to the last step; False when a stop signal ended it early."""
    st = run.state
    if _due(run.config, st.step) and st.validated_step < st.step and not validate_and_save(run, bar):
        return False  # the resumed run's first job: the validation an interrupt cut short
    if run.init is not None and st.step == 0 and not st.history and not validate_and_save(run, bar):
        return False  # a started run scores its starting point: the curve's origin, and best.pt if never beaten
    run.net.train()
    for micro in _steps(make_loader(run), run):
        train_step(run, micro)
        elapsed = time.perf_counter() - run.started
        bar.update(1)
        bar.set_postfix(loss=f"{st.loss_sum / max(1, st.loss_n):.3f}", lr=f"{run.scheduler.get_last_lr()[0]:.2e}",
                        sps=f"{st.seen / max(elapsed, 1e-9):.1f}")
        if st.stop is not None:
            return False
        if _due(run.config, st.step) and not validate_and_save(run, bar):
            return False
    return st.stop is None or st.step >= run.config.iterations


def _steps(loader: torch.utils.data.DataLoader, run: Run) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
    """The loader's micro-batches grouped by step; a loader failure after a stop signal ends the loop."""
    micro: list[tuple[torch.Tensor, torch.Tensor]] = []
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except Exception:
            if run.state.stop is not None:
                return
            raise
        micro.append(batch)
        if len(micro) == run.accumulate:
            yield micro
            micro = []


def _finite(model: torch.nn.Module) -> bool:
    """True when every weight and buffer is finite."""
    return all(bool(torch.isfinite(t).all()) for t in [*model.parameters(), *model.buffers()]
               if t.is_floating_point())


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) a training run into ``config.out``."""
    d, device = init_distributed(config.device)
    try:
        with terminate_as_interrupt("training stopped outside its steps; files already written are kept"):
            return _train(config, d, device)
    finally:
        if d.active and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, d: Dist, device: torch.device) -> TrainResult:
    run = open_run(config, d, device)
    run.writer.start(fresh=not config.resume)  # every check passed: from here on the run directory changes
    if d.main:
        run.setup.store_survey(config.out)
    run.writer.write_config(config.settings(), {**run.setup.record(), **({"init": run.init} if run.init else {})})
    run.writer.log(run.state.history)

    def on_signal(signum: int, _frame: Any) -> None:
        run.state.stop = signum

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} \
        if is_main_thread() else {}
    bar = progress_bar(total=config.iterations, initial=run.state.step, enabled=d.main and config.progress, unit="it",
                       desc="train")
    try:
        if d.main:
            _start_lines(run, bar)
        finished = run_steps(run, bar)
    finally:
        bar.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)
    if not finished:
        save_interrupted(run)
    if d.main and not (config.out / "best.pt").exists():  # no validation split: the final weights are the best
        save_checkpoint(make_checkpoint(run, "best", False), config.out / "best.pt")
    st = run.state
    result = config.out / ("last.pt" if config.result is Result.LAST else "best.pt")
    return TrainResult(config.out, st.step, st.best, st.best_step, time.perf_counter() - run.started, result,
                       run.baseline_miou, run.val_seconds)


def _start_lines(run: Run, bar: Any) -> None:
    """Say how the run maps dates and validates, and fit (or read back) the per-pixel baseline."""
    s = run.setup
    reason = s.survey.rule_reason if s.survey is not None and not run.config.resume else ""
    for note in run.notes:
        bar.write(note)
    bar.write(f"temporal rule: {s.rule.mode}, {s.rule.describe()}" + (f" ({reason})" if reason else ""))
    bar.write(describe_validation(run, run.val_sample))
    if run.config.baseline:
        run.baseline_miou, line = ensure_baseline(run)
        if line:
            bar.write(line)


__all__ = ["RunState", "TrainConfig", "TrainResult", "describe_result", "train"]
