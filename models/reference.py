"""Loading published SL-GT2Net reference checkpoints (mmsegmentation 0.30 files) into :class:`SLGT2Net`.

What the weights imply (widths, depths, input channels, classes, stem style, qkv bias, MLP ratio) is read
from them; what they cannot tell (heads, windows, ``topk_div``, temporal length) comes from keyword arguments,
then from the checkpoint's stored config, then from the paper's Slovenia model. Parameters the reference
stores but never uses (absolute position embeddings, the untrained STCRB weights, the mmseg decode head) are
read and dropped, not built.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.mmseg_config import ReferenceCheckpointError, backbone_of, load_mmseg_file, parse_config_text
from models.presets import PRESETS
from models.slgt2net import SLGT2Net

UNUSED = (
    re.compile(r"^abs_pos_embeds"),
    re.compile(r"^patch_embeds\.\d+\.conv_down\.conv\."),  # STCRB: built by the reference, never applied
    re.compile(r"^decode_head\."),
)
# reference (backbone) argument name -> SLGT2Net argument name
REFERENCE_NAMES = {
    "in_chans": "in_chans",
    "num_classes": "num_classes",
    "embed_dims": "embed_dims",
    "depths": "depths",
    "num_heads": "num_heads",
    "wss_lst": "window_sizes",
    "dss_lst": "window_depths",
    "topk_div": "topk_div",
    "qkv_bias": "qkv_bias",
    "drop_path_rate": "drop_path",
}
FLAG_LENGTHS = {1: 16, 2: 48, 3: 80}
"""The reference's ``flag`` -> the temporal length its configs pad to (Slovenia, Brandenburg, 80-date series)."""


@dataclass(frozen=True)
class ReferenceFile:
    """What an mmseg checkpoint holds: backbone weights (prefix stripped), ``meta``, the parsed config."""

    state: dict[str, torch.Tensor]
    meta: dict[str, Any]
    config: dict[str, Any]

    @property
    def backbone(self) -> dict[str, Any]:
        """The stored backbone options (reference names), or {} when the file stores no config."""
        return backbone_of(self.config)


def load_reference(path: str | Path) -> ReferenceFile:
    """Read a reference checkpoint safely (see :func:`models.mmseg_config.load_mmseg_file`)."""
    raw = load_mmseg_file(path)
    if not isinstance(raw, Mapping):
        raise ReferenceCheckpointError("not a checkpoint dictionary")
    state = raw.get("state_dict", raw)
    if not isinstance(state, Mapping) or not any(str(k).startswith("backbone.") for k in state):
        raise ReferenceCheckpointError("holds no 'backbone.' weights: not an SL-GT2Net reference checkpoint")
    backbone = {k[len("backbone."):]: v for k, v in state.items() if str(k).startswith("backbone.")}
    bad = [k for k, v in backbone.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ReferenceCheckpointError(f"weight {bad[0]!r} is not a tensor: not an SL-GT2Net reference checkpoint")
    meta = raw.get("meta") if isinstance(raw.get("meta"), Mapping) else {}
    text = meta.get("config")
    config = parse_config_text(text) if isinstance(text, str) else {}
    return ReferenceFile(backbone, dict(meta), config)


def load_reference_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The backbone state dict (prefix stripped) and the backbone options stored in the file, if any."""
    ref = load_reference(path)
    return ref.state, ref.backbone


def infer_config(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The configuration the weights themselves imply."""
    try:
        stages = sorted({int(k.split(".")[1]) for k in state if k.startswith("layers.")})
        dims = [int(state[f"layers.{i}.blocks.0.norm1.weight"].shape[0]) for i in stages]
        depths = [len({k.split(".")[3] for k in state if k.startswith(f"layers.{i}.blocks.")}) for i in stages]
        stem_w = state["patch_embeds.0.proj.weight"]
        head_w = state["seg_head.0.weight"]
        reduction = state["patch_embeds.0.conv_down.reduction.weight"]
        fc1 = state["layers.0.blocks.0.mlp.fc1.weight"]
    except KeyError as exc:
        raise ReferenceCheckpointError(f"missing weight {exc}: not an SL-GT2Net reference checkpoint") from None
    return dict(
        embed_dims=dims,
        depths=depths,
        in_chans=int(stem_w.shape[1]),
        num_classes=int(head_w.shape[0]),
        stem="brandenburg" if reduction.shape[2] == 9 else "slovenia",
        qkv_bias="layers.0.blocks.0.attn.qkv.bias" in state,
        mlp_ratio=fc1.shape[0] / fc1.shape[1],
    )


def reference_model_config(state: Mapping[str, torch.Tensor], stored: Mapping[str, Any], **kwargs: Any) -> dict:
    """Resolve SLGT2Net arguments: explicit kwargs > weights > stored config > the paper's defaults."""
    unknown = set(kwargs) - set(REFERENCE_NAMES) - {"flag", "mlp_ratios", "temporal_length", "norm_eps"}
    if unknown:
        raise TypeError(f"unknown reference options: {', '.join(sorted(unknown))}")
    given = {**{k: v for k, v in stored.items() if k in REFERENCE_NAMES or k in ("flag", "mlp_ratios")}, **kwargs}
    inferred = infer_config(state)
    try:
        flag = int(given.get("flag", 2 if inferred["stem"] == "brandenburg" else 1))
    except (TypeError, ValueError):
        raise ReferenceCheckpointError(f"flag {given.get('flag')!r} is not 1, 2 or 3") from None
    if flag not in FLAG_LENGTHS:
        raise ReferenceCheckpointError(f"flag {flag} is not one the reference knows (1 Slovenia, 2 Brandenburg, "
                                       "3 for 80 dates)")
    base = dict(PRESETS["paper" if flag == 1 else "paper-brandenburg"])
    config: dict[str, Any] = {**base, "drop_path": 0.0}
    for ref, ours in REFERENCE_NAMES.items():
        if ref in given:
            config[ours] = given[ref]
    if "mlp_ratios" in given:
        config["mlp_ratio"] = float(_as_list(given["mlp_ratios"])[0])
    config.update(inferred)
    for ref, ours in (("embed_dims", "embed_dims"), ("depths", "depths"), ("in_chans", "in_chans"),
                      ("num_classes", "num_classes")):
        if ref in kwargs and list(_as_list(kwargs[ref])) != list(_as_list(inferred[ours])):
            raise ReferenceCheckpointError(f"{ref}={kwargs[ref]} disagrees with the weights ({inferred[ours]})")
    if flag == 2 and inferred["stem"] != "brandenburg":
        raise ReferenceCheckpointError("flag=2 asks for the Brandenburg stem but the weights have a temporal kernel of 3")
    config["temporal_length"] = int(kwargs.get("temporal_length", _stored_length(stored) or FLAG_LENGTHS[flag]))
    config["norm_eps"] = float(kwargs.get("norm_eps", 1e-5))
    config["stcrb"] = False  # the reference never applies it
    return config


def _stored_length(backbone: Mapping[str, Any]) -> int | None:
    """The temporal length of the stored backbone config: ``img_size = [T, H, W]``."""
    size = backbone.get("img_size")
    if isinstance(size, (list, tuple)) and len(size) == 3 and isinstance(size[0], int) and size[0] > 0:
        return int(size[0])
    return None


def _as_list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def from_reference_checkpoint(path: str | Path, **kwargs: Any) -> SLGT2Net:
    """An eval-mode SLGT2Net computing what the reference computes with the weights in ``path``.

    ``kwargs`` take the reference backbone's names (``flag``, ``embed_dims``, ``depths``, ``num_heads``,
    ``wss_lst``, ``dss_lst``, ``topk_div``, ``in_chans``, ``num_classes``, ``qkv_bias``, ``mlp_ratios``).
    """
    return build_reference_model(load_reference(path), **kwargs)


def build_reference_model(ref: ReferenceFile, **kwargs: Any) -> SLGT2Net:
    """The eval-mode network of an already loaded reference file (see :func:`from_reference_checkpoint`)."""
    state = ref.state
    config = reference_model_config(state, ref.backbone, **kwargs)
    model = SLGT2Net(**config)
    used = {k: v for k, v in state.items() if not any(p.match(k) for p in UNUSED)}
    missing, unexpected = model.load_state_dict(used, strict=False)
    if missing or unexpected:
        raise ReferenceCheckpointError(
            f"weights do not fit the configuration (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.eval()
