"""Dataset discovery: the dataset directory of the contract and the seed ``.mat`` datasets as distributed.

``open_dataset(root)`` finds the scenes of each split and the class table without reading any pixels;
``Scene.open()`` gives a Stack-like reader (``grid``, ``dates``, ``read(window)``) for GeoTIFF and .mat scenes
alike and ``Scene.open_labels(grid)`` the labels aligned onto that grid. Training patches: :class:`PatchDataset`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slgt2_cli.errors import InputError, MissingFileError
from slgt2_cli.io.classes import ClassTable
from slgt2_cli.io.grid import Grid

SPLITS = ("train", "val", "test")
MTS12_CLASSES = ["cultivated land", "forest", "grassland", "shrubland", "water", "wetland", "artificial surface",
                 "bare land"]
_RASTER = (".tif", ".tiff")
_LABEL_DIRS = {"label", "labels", "gt"}


@dataclass(frozen=True)
class Scene:
    """One scene of a dataset: an image stack and its labels (``image_field``: the array of a .mat scene)."""

    id: str
    split: str
    image: Path
    labels: Path | None
    image_field: str | None = None
    label_field: str = "label"

    @property
    def is_mat(self) -> bool:
        return self.image_field is not None

    def open(self, units: str | None = None) -> Any:
        """A Stack-like reader (context manager) of the image."""
        if self.image_field is not None:
            from slgt2_cli.io.matfiles import MatStack

            return MatStack(self.image, self.image_field, units)
        from slgt2_cli.io.stacks import open_stack

        return open_stack(self.image, units)

    @contextmanager
    def open_labels(self, grid: Grid) -> Iterator[Any]:
        """Labels seen on ``grid``: ``read(window) -> (values int64, valid bool)``."""
        if self.labels is None:
            raise InputError(f"scene {self.id!r} has no label raster", self.image)
        if self.image_field is not None:
            from slgt2_cli.io.matfiles import MatLabels

            yield MatLabels(self.labels, grid, self.label_field)
            return
        from slgt2_cli.io.labels import open_aligned_labels

        with open_aligned_labels(self.labels, grid, _resampling_for(self.labels, grid)) as labels:
            yield labels


def _resampling_for(path: Path, grid: Grid) -> str:
    """Majority when the labels are clearly finer than the grid (same CRS), else nearest."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            if src.crs is not None and grid.crs is not None and src.crs == grid.crs:
                if abs(src.transform.a) * 1.5 < abs(grid.transform.a):
                    return "majority"
    except rasterio.errors.RasterioIOError:
        pass  # open_aligned_labels reports it
    return "nearest"


@dataclass
class DatasetSpec:
    """Scenes per split, the class table and where they came from."""

    root: Path
    kind: str  # "directory" | "mts12" | "brandenburg" | "brandenburg-s2"
    classes: ClassTable
    splits: dict[str, list[Scene]]
    held_out: list[str] = field(default_factory=list)
    """Ids moved from train to val because the dataset has no val split."""
    split_errors: dict[str, InputError] = field(default_factory=dict)
    """Splits that can't be read (a missing or wrong split file), raised when the split is asked for."""

    def scenes(self, split: str) -> list[Scene]:
        if split in self.split_errors:
            raise self.split_errors[split]
        return self.splits.get(split, [])


def hold_out(scenes: list[Scene], fraction: float = 0.2) -> tuple[list[Scene], list[Scene]]:
    """Deterministically split ``scenes`` into (train, val): the ``fraction`` with the smallest CRC32 of id."""
    if len(scenes) < 2:
        return scenes, []
    n_val = max(1, round(len(scenes) * fraction))
    ranked = sorted(scenes, key=lambda s: (zlib.crc32(s.id.encode()), s.id))
    val_ids = {s.id for s in ranked[:n_val]}
    return [s for s in scenes if s.id not in val_ids], [s for s in scenes if s.id in val_ids]


def _directory_split(root: Path, split: str) -> list[Scene]:
    images = root / split / "images"
    if not images.is_dir():
        return []
    scenes = []
    for entry in sorted(images.iterdir()):
        if entry.is_dir():
            sid = entry.name
        elif entry.suffix.lower() in _RASTER:
            sid = entry.stem
        else:
            continue
        label = next((root / split / "labels" / f"{sid}{ext}" for ext in _RASTER
                      if (root / split / "labels" / f"{sid}{ext}").exists()), None)
        if label is None:
            raise InputError(f"no label raster {split}/labels/{sid}.tif for this image", entry)
        scenes.append(Scene(sid, split, entry, label))
    return scenes


def _split_of(rel: Path) -> str | None:
    return next((p for p in rel.parts if p in SPLITS), None)


def _mat_splits(root: Path) -> tuple[dict[str, list[Scene]], str]:
    """Pair image and label .mat files by split and stem; the image field tells MTS12 from Brandenburg."""
    images: dict[tuple[str, str], Path] = {}
    labels: dict[tuple[str, str], Path] = {}
    for path in sorted(root.rglob("*.mat")):
        rel = path.relative_to(root)
        split = _split_of(rel)
        if split is None:
            continue
        is_label = path.stem.endswith("_label") or any(p.lower() in _LABEL_DIRS for p in rel.parts[:-1])
        stem = path.stem[: -len("_label")] if path.stem.endswith("_label") else path.stem
        (labels if is_label else images)[(split, stem)] = path
    if not images and not labels:
        raise InputError("no dataset found: expected classes.json, train/images/ and train/labels/ "
                         "(or a seed .mat dataset with train/, val/, test/ folders)", root)
    if not images:
        raise InputError("no image .mat files under train/, val/ or test/ folders", root)
    image_field = _image_field(next(iter(images.values())))
    splits: dict[str, list[Scene]] = {}
    for (split, stem), path in images.items():
        label = labels.get((split, stem))
        if label is None:
            raise InputError(f"no label file {stem}_label.mat for this image", path)
        splits.setdefault(split, []).append(Scene(stem, split, path, label, image_field))
    return splits, "mts12" if image_field == "band" else "brandenburg"


def _tree_splits(root: Path) -> tuple[dict[str, list[Scene]], str, dict[str, InputError]]:
    """The Brandenburg tree as distributed (data/brandenburg.py): scenes by split file."""
    from slgt2_cli.data.brandenburg import read_distributed_tree, tree_kind

    pairs, errors = read_distributed_tree(root)
    if not pairs:  # every split file is missing or wrong: each split raises its own error when asked for
        return {}, "brandenburg", errors
    first = next(image for scenes in pairs.values() for _, image, _ in scenes[:1])
    image_field = _image_field(first)
    splits = {split: [Scene(sid, split, image, label, image_field) for sid, image, label in scenes]
              for split, scenes in pairs.items()}
    kind = "mts12" if image_field == "band" else tree_kind(root, [label for *_, label in next(iter(pairs.values()))])
    return splits, kind, errors


def _image_field(path: Path) -> str:
    from slgt2_cli.io.matfiles import mat_fields

    fields = mat_fields(path)
    image_field = "band" if "band" in fields else "data" if "data" in fields else None
    if image_field is None:
        raise InputError(f"neither a 'band' (MTS12) nor a 'data' (Brandenburg) field; fields: {sorted(fields)}", path)
    return image_field


def _seed_classes(kind: str) -> ClassTable:
    from slgt2_cli.data.brandenburg import CLASS_NAMES

    if kind == "mts12":
        return ClassTable.default(range(1, 9), MTS12_CLASSES)
    return ClassTable.default(range(1, len(CLASS_NAMES) + 1), list(CLASS_NAMES))


def open_dataset(root: str | Path, val_fraction: float = 0.2, require_train: bool = True) -> DatasetSpec:
    """Discover a dataset: the directory layout (``classes.json``, ``train/images``, ``train/labels``, ...), the
    Brandenburg tree as distributed (``split/*.txt`` over ``trainval_*``/``test_*``) or a seed ``.mat`` dataset.
    Without a val split, ``val_fraction`` of train is held out deterministically (not where a split file names
    val). ``require_train=False`` (scoring a split) accepts a dataset that holds only, say, its test split."""
    from slgt2_cli.data.brandenburg import is_distributed_tree

    root = Path(root)
    if not root.is_dir():
        raise (InputError if root.exists() else MissingFileError)("dataset directory not found", root)
    classes_file = root / "classes.json"
    errors: dict[str, InputError] = {}
    if (root / "train" / "images").is_dir() or (not require_train and any((root / s / "images").is_dir()
                                                                          for s in SPLITS)):
        kind = "directory"
        splits = {s: scenes for s in SPLITS if (scenes := _directory_split(root, s))}
        if not classes_file.exists():
            raise InputError("the dataset has no classes.json (a list of {value, name, color})", root)
        classes = ClassTable.load(classes_file)
    else:
        if is_distributed_tree(root):
            splits, kind, errors = _tree_splits(root)
        else:
            splits, kind = _mat_splits(root)
        classes = ClassTable.load(classes_file) if classes_file.exists() else _seed_classes(kind)
    if require_train and "train" in errors:
        raise errors["train"]
    if require_train and not splits.get("train"):
        raise InputError("the dataset has no training scenes", root)
    held: list[str] = []
    if not splits.get("val") and splits.get("train") and "val" not in errors:
        splits["train"], val = hold_out(splits["train"], val_fraction)
        if val:
            splits["val"], held = val, [s.id for s in val]
    return DatasetSpec(root, kind, classes, splits, held, errors)


def check_labels(spec: DatasetSpec, split: str = "train", rows: int = 512) -> None:
    """InputError unless some label of ``split`` has a value of the class table (e.g. a classes.json written
    for another dataset). Reads label windows only until the first matching value is found."""
    from rasterio.windows import Window

    from slgt2_cli.io.classes import LabelCensus

    census = LabelCensus(spec.classes)
    for scene in spec.scenes(split):
        with scene.open() as stack, scene.open_labels(stack.grid) as labels:
            for row in range(0, stack.grid.height, rows):
                census.add(*labels.read(Window(0, row, stack.grid.width, min(rows, stack.grid.height - row))))
                if census.known:
                    return
    table = spec.root / "classes.json"
    census.check(f"of the {split} scenes", table if table.exists() else spec.root,
                 "the class table must list the values the label rasters use")


from slgt2_cli.data.patches import PatchDataset  # noqa: E402  (re-exported: training imports it from here)

__all__ = ["DatasetSpec", "PatchDataset", "Scene", "check_labels", "hold_out", "open_dataset"]
