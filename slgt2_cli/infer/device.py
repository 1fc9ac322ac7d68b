"""Device names a user may ask for (``--device``), checked without importing torch.

In: a name such as ``auto``, ``cpu``, ``cuda``, ``cuda:1`` or ``mps``. Out: the same name, normalised, or a
ValueError saying what is accepted. Whether the device exists on this machine is checked later, when torch
resolves it (:func:`slgt2_cli.infer.predictor.resolve_device`).
"""

from __future__ import annotations

import re
from enum import Enum


class DeviceKind(str, Enum):
    """Kinds of device the model runs on; ``cuda`` also takes an index (``cuda:N``)."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


_INDEXED = re.compile(r"^(cuda):(\d+)$")
ACCEPTED = ", ".join([k.value for k in DeviceKind] + ["cuda:N"])
"""The accepted names, for messages and help."""


def parse_device(name: str) -> str:
    """Return ``name`` normalised (lower case, no spaces) if it names a supported device; ValueError otherwise."""
    key = str(name).strip().lower()
    if key in {k.value for k in DeviceKind} or _INDEXED.match(key):
        return key
    raise ValueError(f"unknown device {name!r}; use {ACCEPTED}")
