"""Fixtures shared by the test modules, built once per session: a native checkpoint of an untrained `tiny` model
and a small synthetic dataset. Test data itself is written by `tests/helpers.py`."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A native checkpoint (tile 64, stride 48) of an untrained tiny model with three classes."""
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "tiny.pt")


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory) -> Path:
    """`slgt2 synth` with 4 scenes of 64 px and 8 dates (read-only: tests write their runs elsewhere)."""
    from slgt2_cli.synth.scenes import synthesize

    root = tmp_path_factory.mktemp("synth") / "ds"
    synthesize(root, size=64, dates=8, scenes=4, seed=3, scene_size=64)
    return root
