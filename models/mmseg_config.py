"""Reading what an mmseg checkpoint stores, without ever running code from it.

Two things are read here:

* the file itself, with ``torch.load(weights_only=True)`` and an explicit allow-list of the few globals real
  mmseg files carry in ``meta`` (numpy scalars such as ``hook_msgs["best_score"]``, pickled by numpy 1.x as
  ``numpy.core.multiarray.scalar`` with a ``numpy.dtype``). Anything else (a pickled function, a class, a
  ``posix.system`` payload) is refused with the name of the global it asked for; there is no fallback to
  unrestricted unpickling.
* ``meta["config"]``: the merged config as mmcv's ``Config.pretty_text`` writes it, Python source with one
  ``name = value`` per top-level name. It is parsed with :mod:`ast` and evaluated as literals only
  (numbers, strings, lists, tuples, dicts, ``dict(key=value)`` calls, ``True``/``False``/``None``). Anything
  else (``gpu_ids = range(0, 1)``, names, other calls) becomes an :class:`Unparsed` holding its source text.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


class ReferenceCheckpointError(ValueError):
    """The file is not a reference SL-GT2Net checkpoint this code can read (or it was refused)."""


@dataclass(frozen=True)
class Unparsed:
    """A config value that is not a literal (e.g. ``range(0, 1)``): kept as source text, never evaluated."""

    source: str


def _numpy_scalar_globals() -> list[Any]:
    """The globals real mmseg files need: numpy scalars and dtypes under their numpy 1.x and 2.x names."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    allowed: list[Any] = [(multiarray.scalar, "numpy.core.multiarray.scalar"),
                          (multiarray.scalar, "numpy._core.multiarray.scalar"), np.dtype]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25: one class per dtype (Float64DType, ...)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType")]
    return allowed


_GLOBAL = re.compile(r"Unsupported global: (?:GLOBAL )?([\w.]+)|GLOBAL ([\w.]+)")


def refusal(exc: BaseException) -> str | None:
    """Why a ``weights_only`` load refused a file, in one line; None when ``exc`` is not such a refusal."""
    message = str(exc)
    if "Weights only load failed" not in message and "WeightsUnpickler" not in message:
        return None
    found = _GLOBAL.search(message)
    what = f"asks to unpickle {next(g for g in found.groups() if g)!r}" if found else "holds pickled objects"
    return (f"refused: the file {what}, which is neither weights nor plain data (a pickle payload or a foreign "
            "object); slgt2 never runs code from a checkpoint")


def load_mmseg_file(path: str | Path) -> Any:
    """``torch.load`` restricted to tensors, plain data and numpy scalars; a clear error for anything else."""
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ReferenceCheckpointError("file not found") from None
    except IsADirectoryError:
        raise ReferenceCheckpointError("is a directory, not a checkpoint file") from None
    except MemoryError:
        raise ReferenceCheckpointError("not a readable PyTorch checkpoint (corrupt or truncated)") from None
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError (bad zip), ...
        reason = refusal(exc)
        if reason:
            raise ReferenceCheckpointError(reason) from None
        if not _looks_like_torch_file(path):
            raise ReferenceCheckpointError("not a PyTorch checkpoint (neither the zip format torch.save writes nor a "
                                           "legacy pickle)") from None
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ReferenceCheckpointError(f"not a readable PyTorch checkpoint ({type(exc).__name__}: {first[:120]})") \
            from None


def _looks_like_torch_file(path: str | Path) -> bool:
    """A zip archive (torch.save since 1.6) or a pickle stream (protocol 2+, the legacy format)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return True  # let the caller report the load error itself
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _literal(node: ast.AST) -> Any:
    """The value of a literal expression, ``dict(k=v)`` included; ValueError for anything else."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        if any(k.arg is None for k in node.keywords):
            raise ValueError("dict(**...)")
        return {k.arg: _literal(k.value) for k in node.keywords}
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ValueError("{**...}")
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    raise ValueError(ast.dump(node)[:60])


def _value(node: ast.AST, text: str) -> Any:
    try:
        return _literal(node)
    except (ValueError, TypeError, RecursionError):
        return Unparsed(ast.get_source_segment(text, node) or ast.dump(node)[:80])


def parse_config_text(text: str) -> dict[str, Any]:
    """The top-level ``name = value`` assignments of mmcv config text (or a JSON object), as plain data."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
            if isinstance(data, dict):
                return data
        except json.JSONDecodeError:
            pass
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise ReferenceCheckpointError(f"its stored config is not valid mmseg config text (line {exc.lineno})") \
            from None
    config: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            config[stmt.targets[0].id] = _value(stmt.value, text)
    return config


def backbone_of(config: dict[str, Any]) -> dict[str, Any]:
    """The backbone section of a parsed config (``model.backbone``), or the config itself if it is flat."""
    model = config.get("model")
    if isinstance(model, dict) and isinstance(model.get("backbone"), dict):
        return model["backbone"]
    return {k: v for k, v in config.items() if not isinstance(v, Unparsed)} if "model" not in config else {}
