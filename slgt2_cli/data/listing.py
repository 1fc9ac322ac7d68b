"""What a dataset holds, as `slgt2 info DATASET` shows it: its layout, class table and scenes per split.

Reading it opens no pixels, so a user can check before training that a tree is recognised, which split file
selects which scenes, and what is wrong with a split that can't be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slgt2_cli.data.datasets import SPLITS, DatasetSpec, open_dataset

LAYOUTS = {
    "directory": "dataset directory (classes.json, <split>/images, <split>/labels)",
    "mts12": "MTS12 Slovenia .mat tree (s1/<split>, label/<split>)",
    "brandenburg": "Brandenburg S1 .mat scenes",
    "brandenburg-s2": "Brandenburg .mat scenes, second period (its own normalisation)",
}
SHOWN_IDS = 4
"""Scene ids listed per split in the text summary (the JSON lists every scene)."""


def _layout(spec: DatasetSpec) -> str:
    from slgt2_cli.data.brandenburg import is_distributed_tree

    text = LAYOUTS.get(spec.kind, spec.kind)
    if spec.kind.startswith("brandenburg"):
        text += ", as distributed (split/*.txt over trainval_*, test_*)" if is_distributed_tree(spec.root) \
            else " in s1/<split>, label/<split> folders"
    return text


def dataset_info(root: str | Path) -> tuple[dict[str, Any], DatasetSpec]:
    """Everything :func:`format_dataset_info` shows, as plain JSON types, and the dataset it read; InputError if
    ``root`` is no dataset. A split that can't be read is listed with its error (``spec.split_errors``)."""
    spec = open_dataset(root, require_train=False)
    splits: dict[str, Any] = {}
    for split in SPLITS:
        if split in spec.split_errors:
            splits[split] = {"error": str(spec.split_errors[split])}
        elif spec.splits.get(split):
            splits[split] = {"scenes": [{"id": s.id, "image": str(s.image), "labels": str(s.labels)}
                                        for s in spec.splits[split]]}
    return {
        "dataset": str(spec.root),
        "kind": spec.kind,
        "layout": _layout(spec),
        "classes": [{"value": c.value, "name": c.name, "color": c.color} for c in spec.classes.classes],
        "splits": splits,
        "held_out": spec.held_out,
    }, spec


def format_dataset_info(info: dict[str, Any]) -> str:
    """The summary as aligned text lines."""
    lines = [f"dataset:        {info['dataset']}", f"layout:         {info['layout']}"]
    for split in SPLITS:
        entry = info["splits"].get(split)
        if entry is None:
            lines.append(f"{split + ':':<16}none")
        elif "error" in entry:
            lines.append(f"{split + ':':<16}can't be read: {entry['error']}")
        else:
            ids = [s["id"] for s in entry["scenes"]]
            more = f", … ({len(ids) - SHOWN_IDS} more)" if len(ids) > SHOWN_IDS else ""
            held = " (held out from train)" if split == "val" and info["held_out"] else ""
            lines.append(f"{split + ':':<16}{len(ids)} scenes{held}: {', '.join(ids[:SHOWN_IDS])}{more}")
    lines.append(f"classes ({len(info['classes'])}):")
    lines += [f"  {c['value']:>8}  {c['color']}  {c['name']}" for c in info["classes"]]
    return "\n".join(lines)


__all__ = ["dataset_info", "format_dataset_info"]
