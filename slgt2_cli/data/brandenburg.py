"""The paper's Brandenburg tree as it is distributed: split files that index sorted folder listings.

```
s1_2017_2018/trainval_vhvv/VHVV_xxxx.mat     trainval_label/label_s1_xxxx.mat   (train and val)
             test_vhvv/VHVV_xxxx.mat         test_label/label_s1_xxxx.mat       (test)
             split/train.txt val.txt test.txt
```
Each line of a split file is an index into the *sorted* listing of the split's image folder (``train`` and
``val`` both index ``trainval_*``, ``test`` indexes ``test_*``); the label is the entry at the same position of
the sorted label folder, and the two names must end alike (their last 8 characters), as the reference asserts.
The listing is the whole folder, as the reference's ``sorted(os.listdir(...))``, so indices mean what they mean
there. A split whose file is missing or wrong keeps its error until that split is used: ``evaluate --split test``
on a tree without ``split/train.txt`` works.
"""

from __future__ import annotations

import os
from pathlib import Path

from slgt2_cli.errors import InputError

SPLIT_FOLDERS = {"train": "trainval", "val": "trainval", "test": "test"}
"""Which folder pair each split indexes."""
NAME_TAIL = 8
"""Characters at the end of an image and a label name that must agree (``0001.mat``), as in the reference."""
CLASS_NAMES = ("Maize", "Wheat", "Grassland", "Peanut", "Potato", "Residue", "Fallow", "Rapeseed", "Vegetable",
               "Legume", "Herb", "Orchard", "Flower", "Sugar beet", "Other")
"""The reference's BrandenburgDataset classes, label values 1..15 (0 = background, ignored); its 'Eapeseed' is
spelled as meant."""


def is_distributed_tree(root: Path) -> bool:
    """A folder laid out as the Brandenburg tree is distributed: ``split/`` beside ``trainval_*`` or ``test_*``."""
    if not (root / "split").is_dir():
        return False
    return any((root / f"{prefix}_label").is_dir() or any(p.is_dir() for p in root.glob(f"{prefix}_*"))
               for prefix in ("trainval", "test"))  # a tree with wrong folders is one: reading it says what is wrong


def _folders(root: Path, prefix: str) -> tuple[Path, Path] | None:
    """(image folder, label folder) named ``<prefix>_<anything>`` and ``<prefix>_label``; None when absent."""
    labels = root / f"{prefix}_label"
    images = sorted(p for p in root.glob(f"{prefix}_*") if p.is_dir() and p != labels)
    if not images and not labels.is_dir():
        return None
    if len(images) != 1:
        found = ", ".join(p.name for p in images) or "none"
        raise InputError(f"expected one image folder {prefix}_<bands> beside {prefix}_label, found: {found}", root)
    if not labels.is_dir():
        raise InputError(f"no label folder {prefix}_label beside {images[0].name}", root)
    return images[0], labels


def read_split_file(path: Path) -> list[int]:
    """The indices of a split file, one integer a line (blank lines skipped)."""
    if not path.is_file():
        raise InputError("split file not found (the Brandenburg tree needs split/train.txt, val.txt and test.txt)",
                         path)
    indices = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            indices.append(int(line.strip()))
        except ValueError:
            raise InputError(f"line {number} is {line.strip()!r}, not an index", path) from None
    return indices


def _pair(images: Path, labels: Path, split_file: Path, index: int, listings: tuple[list[str], list[str]]
          ) -> tuple[Path, Path]:
    image_names, label_names = listings
    if not 0 <= index < len(image_names):
        raise InputError(f"index {index} is out of range: {images.name} holds {len(image_names)} entries", split_file)
    if index >= len(label_names):
        raise InputError(f"index {index}: {labels.name} holds only {len(label_names)} entries, {images.name} "
                         f"{len(image_names)}", split_file)
    image, label = image_names[index], label_names[index]
    if not image.endswith(".mat"):
        raise InputError(f"index {index} is {image!r} in {images.name}, not a .mat scene", split_file)
    if image[-NAME_TAIL:] != label[-NAME_TAIL:]:
        raise InputError(f"index {index}: image {image} and label {label} do not pair (the sorted listings of "
                         f"{images.name} and {labels.name} differ at that position)", split_file)
    return images / image, labels / label


def read_distributed_tree(root: Path) -> tuple[dict[str, list[tuple[str, Path, Path]]], dict[str, InputError]]:
    """Per split, its (id, image, label) in split-file order; per split that can't be read, why."""
    splits: dict[str, list[tuple[str, Path, Path]]] = {}
    errors: dict[str, InputError] = {}
    for split, prefix in SPLIT_FOLDERS.items():
        split_file = root / "split" / f"{split}.txt"
        try:
            folders = _folders(root, prefix)
            if folders is None:
                raise InputError(f"no {prefix}_* folders for the {split} split", root)
            images, labels = folders
            indices = read_split_file(split_file)
            listings = (sorted(os.listdir(images)), sorted(os.listdir(labels)))
            pairs = [_pair(images, labels, split_file, i, listings) for i in indices]
        except InputError as exc:
            errors[split] = exc
            continue
        splits[split] = [(image.stem, image, label) for image, label in pairs]
    return splits, errors


def tree_kind(root: Path, labels: list[Path]) -> str:
    """``brandenburg`` (S1, 2017-2018) or ``brandenburg-s2``: the second period's tree (``label_s2_*`` files,
    or a root named ``s2_*``), which the reference normalises with its own statistics."""
    second = root.name.lower().startswith("s2_") or any(p.name.startswith("label_s2") for p in labels[:1])
    return "brandenburg-s2" if second else "brandenburg"


__all__ = ["CLASS_NAMES", "SPLIT_FOLDERS", "is_distributed_tree", "read_distributed_tree", "read_split_file",
           "tree_kind"]
