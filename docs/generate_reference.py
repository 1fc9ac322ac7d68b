"""Generate docs/configuration.md from the code: every command's options and defaults, and every
training-config field with its default per preset. `tests/test_docs.py` fails if the file is stale.

    python docs/generate_reference.py          # rewrite docs/configuration.md
"""

from __future__ import annotations

import dataclasses
import sys
from enum import Enum
from pathlib import Path

import typer
import typer.main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import PRESETS  # noqa: E402
from slgt2_cli.cli.app import app  # noqa: E402
from slgt2_cli.train.config import PRESET_SCHEDULES, RECIPES, Recipe, TrainConfig, defaults  # noqa: E402

OUT = Path(__file__).with_name("configuration.md")


def _default(param: typer.core.TyperOption | typer.core.TyperArgument) -> str:
    shown = getattr(param, "show_default", None)
    if isinstance(shown, str):
        return shown
    if param.default is None or param.default == ():
        return ""
    if isinstance(param.default, Enum):
        return f"`{param.default.value}`"
    if isinstance(param.default, bool):
        return "on" if param.default else "off"
    return f"`{param.default}`"


def _value(v: object) -> str:
    return f"`{getattr(v, 'value', v)}`"


def _field_docs() -> dict[str, str]:
    """The docstring under each TrainConfig field, read from the source."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())  # type: ignore[union-attr]
    return docs


def render() -> str:
    lines = ["# Configuration reference", "",
             "Generated from the code by `python docs/generate_reference.py`; do not edit by hand.", ""]
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    for name in sorted(group.list_commands(ctx)):
        cmd = group.get_command(ctx, name)
        lines += [f"## `slgt2 {name}`", "", (cmd.help or "").split("\n\n")[0].strip(), ""]
        lines += ["| argument / option | default | meaning |", "|---|---|---|"]
        for p in cmd.params:
            if p.param_type_name == "argument":
                label = p.name.upper() + ("..." if p.nargs == -1 else "")
            else:
                label = " / ".join(f"`{o}`" for o in p.opts + p.secondary_opts)
            helptext = (getattr(p, "help", "") or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {label} | {_default(p)} | {helptext} |")
        lines.append("")
    lines += ["## Training configuration file", "",
              "`slgt2 train --config FILE` reads YAML or TOML with these keys (`batch_size` or `batch-size`); values "
              "are coerced by type and checked, unknown keys are errors. Precedence: default < preset schedule < "
              "recipe < config file < command-line options. The resolved configuration is written to "
              "`RUN_DIR/config.yaml` (section `train`, which `--config` accepts back; `--print-config` prints it).",
              "", "| key | default | " + " | ".join(f"preset `{p}`" for p in PRESET_SCHEDULES)
              + " | `--recipe reference` | meaning |",
              "|---|---|" + "---|" * len(PRESET_SCHEDULES) + "---|---|"]
    base, reference = defaults(), RECIPES[Recipe.REFERENCE]
    for f in dataclasses.fields(TrainConfig):
        if f.name not in base:
            continue
        per = [_value(PRESET_SCHEDULES[p][f.name]) if f.name in PRESET_SCHEDULES[p] else "" for p in PRESET_SCHEDULES]
        ref = _value(reference[f.name]) if f.name in reference else ""
        doc = _field_docs().get(f.name, "").replace("|", "\\|")
        lines.append(f"| `{f.name}` | {_value(base[f.name])} | " + " | ".join(per) + f" | {ref} | {doc} |")
    lines += ["", "## Model presets", "", "| preset | " + " | ".join(PRESETS) + " |", "|---|" + "---|" * len(PRESETS)]
    keys = sorted({k for p in PRESETS.values() for k in p})
    for k in keys:
        lines.append(f"| `{k}` | " + " | ".join(f"`{PRESETS[p].get(k, '')}`" for p in PRESETS) + " |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
