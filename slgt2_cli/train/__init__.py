"""Training: the configuration (`config`), the training loop with validation, resume and DDP (`loop`), the run
directory it writes (`run_dir`), and starting from a trained model (`warmstart`).

In: a dataset directory and a configuration. Out: RUN_DIR with checkpoints, metrics log, plots, config.yaml.

``slgt2_cli.train`` is also the Python API's :func:`slgt2_cli.api.train`: once this package is imported, Python
binds the name ``train`` of ``slgt2_cli`` to it, so calling it runs :func:`slgt2_cli.api.train`.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from slgt2_cli.api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
