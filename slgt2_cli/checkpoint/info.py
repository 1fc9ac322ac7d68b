"""What a checkpoint holds, for a user about to predict with it or resume it (``slgt2 info``).

In: a native checkpoint (read by the safe loader of :mod:`slgt2_cli.checkpoint.format`). Out: a JSON-able
summary (classes, model and its size, bands and units, temporal rule and its periods, normalisation, inference
tile/stride, provenance, training state) and its human-readable text.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from slgt2_cli.checkpoint.format import Checkpoint, load_checkpoint
from slgt2_cli.data.normalization import Normalization
from slgt2_cli.data.temporal import TemporalRule
from slgt2_cli.errors import InputError

MODEL_KEYS = ("stem", "embed_dims", "depths", "num_heads", "temporal_length", "in_chans", "num_classes", "topk_div")
"""Model-config entries worth showing (the rest is in ``model.config`` of the JSON)."""
_NOT_WEIGHTS = ("running_mean", "running_var", "num_batches_tracked", "relative_position_index")


def _typed(value: Any, kind: type) -> Any:
    """Accept both the stored dict and an already typed object (the checkpoint fields are being typed)."""
    return value if isinstance(value, kind) else kind.from_dict(value)


def _periods(rule: TemporalRule) -> list[dict[str, Any]]:
    """The composite's periods as day-of-year spans with their dates in a non-leap year; none for pad rules."""
    if rule.mode != "composite":
        return []
    out = []
    step = rule.season_days / rule.length
    for i in range(rule.length):
        first = round(rule.season_start + i * step)
        last = round(rule.season_start + (i + 1) * step) - 1
        day = lambda d: (dt.date(2001, 1, 1) + dt.timedelta(days=d % 365)).strftime("%d %b")  # noqa: E731
        out.append({"period": i, "first_day": first % 365, "last_day": last % 365, "from": day(first), "to": day(last)})
    return out


def _parameters(ck: Checkpoint) -> int:
    return int(sum(t.numel() for k, t in ck.state_dict.items()
                   if t.is_floating_point() and not k.endswith(_NOT_WEIGHTS)))


def _training(ck: Checkpoint) -> dict[str, Any] | None:
    state = ck.training_state
    if not isinstance(state, dict):
        return None
    return {"step": state.get("step"), "best_miou": state.get("best_miou"), "best_step": state.get("best_step"),
            "validations": len(state.get("history") or [])}


def checkpoint_info(path: str | Path) -> dict[str, Any]:
    """Everything :func:`format_info` shows, as plain JSON types; InputError if ``path`` is not a checkpoint."""
    path = Path(path)
    if path.is_dir() and (path / "best.pt").is_file():  # a run directory: its best checkpoint
        path = path / "best.pt"
    try:
        ck = load_checkpoint(path, with_training_state=True)
    except InputError:  # a best.pt or converted checkpoint has no training state: read it without
        ck = load_checkpoint(path)
    rule = _typed(ck.temporal, TemporalRule)
    norm = _typed(ck.normalization, Normalization)
    prov = dict(ck.provenance)
    cfg = ck.model_config
    return {
        "checkpoint": str(path),
        "classes": [{"value": c.value, "name": c.name, "color": c.color} for c in ck.classes.classes],
        "preset": prov.get("preset"),
        "model": {"parameters": _parameters(ck), **{k: cfg[k] for k in MODEL_KEYS if k in cfg}, "config": cfg},
        "bands": list(ck.bands),
        "units": ck.units,
        "temporal": {**rule.to_dict(), "description": rule.describe(), "periods": _periods(rule)},
        "normalization": {"mean": list(norm.mean), "std": list(norm.std)},
        "pixel_size": prov.get("pixel_size"),
        "inference": {"tile": ck.patch_size, "stride": ck.stride},
        "provenance": prov,
        "training": _training(ck),
    }


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.3g}" for v in values)


def format_info(info: dict[str, Any]) -> str:
    """The summary as aligned text lines."""
    model, t, prov = info["model"], info["temporal"], info["provenance"]
    shape = ", ".join(f"{k} {model[k]}" for k in MODEL_KEYS if k in model and k not in ("in_chans", "num_classes"))
    lines = [
        f"checkpoint:     {info['checkpoint']}",
        f"model:          {info['preset'] or 'no preset recorded'}; {model['parameters']:,} parameters; {shape}",
        f"input:          {len(info['bands'])} bands {', '.join(info['bands'])} in {info['units']}",
        f"temporal rule:  {t['description']}",
    ]
    if t["periods"]:
        spans = "; ".join(f"{p['period']}: {p['from']}-{p['to']}" for p in t["periods"])
        lines.append(f"periods:        {spans}")
    lines += [
        f"normalisation:  mean {_fmt(info['normalization']['mean'])}; std {_fmt(info['normalization']['std'])}",
        f"pixel size:     {info['pixel_size'] or 'not recorded'}",
        f"inference:      tile {info['inference']['tile']} px, stride {info['inference']['stride']} px",
        f"classes ({len(info['classes'])}):",
        *[f"  {c['value']:>8}  {c['color']}  {c['name']}" for c in info["classes"]],
        "provenance:     " + (", ".join(f"{k} {v}" for k, v in prov.items() if k != "init") or "none recorded"),
    ]
    init = prov.get("init")
    if isinstance(init, dict) and init.get("summary"):
        lines.append(f"initialisation: {init['summary']}")
    if info["training"]:
        tr = info["training"]
        best = f"{tr['best_miou']:.3f} at step {tr['best_step']}" if tr["best_miou"] is not None else "none yet"
        lines.append(f"training state: step {tr['step']}, {tr['validations']} validations, best mIoU {best} "
                     "(resumable with --resume)")
    return "\n".join(lines)
