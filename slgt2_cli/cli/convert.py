"""`slgt2 convert-checkpoint REFERENCE.pth OUTPUT.pt`: published reference weights -> native checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from slgt2_cli.cli.options import OverwriteOpt, classes_option
from slgt2_cli.errors import InputError


def _ints(text: str | None, name: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"{name} takes integers separated by commas, e.g. 3,6,12,24 (got {text!r})") from None


def _nested(text: str | None, name: str) -> list[list[int]] | None:
    if text is None:
        return None
    return [_ints(part, name) for part in text.split(";")]  # type: ignore[misc]


def _floats(text: str | None, name: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"{name} takes numbers separated by commas (got {text!r})") from None


def convert_checkpoint(
    reference: Annotated[Path, typer.Argument(help="Reference (mmseg) checkpoint, e.g. the paper's published .pth.")],
    output: Annotated[Path, typer.Argument(help="Native checkpoint to write (.pt).")],
    flag: Annotated[Optional[int], typer.Option("--flag", help="Reference stem style: 1 Slovenia, 2 Brandenburg.", show_default="from the weights")] = None,
    num_heads: Annotated[Optional[str], typer.Option("--num-heads", help="Heads per stage, e.g. 3,6,12,24.", show_default="stored config, else the paper's")] = None,
    wss: Annotated[Optional[str], typer.Option("--wss", help="Window sizes per stage and group, e.g. '7,14,21;7,14,21;7,14,14;7,7,7'.", show_default="stored config, else the paper's")] = None,
    dss: Annotated[Optional[str], typer.Option("--dss", help="Window depths per stage and group, e.g. '8,4,2;4,4,2;2,2,2;1,1,1'.", show_default="stored config, else the paper's")] = None,
    topk_div: Annotated[Optional[int], typer.Option("--topk-div", min=1, help="Top-k divisor of the sparse attention.", show_default="stored config, else 1")] = None,
    temporal_length: Annotated[Optional[int], typer.Option("--temporal-length", help="Frames the input is padded to.", show_default="stored config, else 16, or 48 for flag 2")] = None,
    classes: Annotated[Optional[Path], classes_option("The model's classes", "the MTS12 legend, else class 1..K")] = None,
    bands: Annotated[Optional[str], typer.Option("--bands", help="Input band names, e.g. VV,VH.", show_default="VV,VH")] = None,
    mean: Annotated[Optional[str], typer.Option("--mean", help="Per-channel normalisation mean.", show_default="the stored config's test pipeline")] = None,
    std: Annotated[Optional[str], typer.Option("--std", help="Per-channel normalisation std.", show_default="the stored config's test pipeline")] = None,
    patch_size: Annotated[Optional[int], typer.Option("--patch-size", min=1, help="Inference tile default stored in the checkpoint.", show_default="the stored config's slide crop, else 224")] = None,
    stride: Annotated[Optional[int], typer.Option("--stride", min=1, help="Inference stride default stored in the checkpoint.", show_default="the stored config's slide stride, else 200")] = None,
    units: Annotated[Optional[str], typer.Option("--units", help="The model's input units: scaled (MTS12 0..255 integers) or db.", show_default="from the stored config")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Convert a published SL-GT2Net reference checkpoint into a native one that `slgt2 predict` accepts.

    What the weights imply (widths, depths, channels, classes, stem) is read from them; everything else
    (heads, windows, top-k, time length and padding, normalisation, tile and stride, class names and colours)
    from the mmseg config stored in the checkpoint, which is parsed, never executed. Options override it. The
    result predicts like the reference's test procedure (reflect time padding, plain average of logits).

    Example:  slgt2 convert-checkpoint slgt2_224x224_40k_slovenia.pth slovenia.pt
    """
    from slgt2_cli.checkpoint.convert import ConvertConfig, convert_reference

    options = {"flag": flag, "num_heads": _ints(num_heads, "--num-heads"), "wss_lst": _nested(wss, "--wss"),
               "dss_lst": _nested(dss, "--dss"), "topk_div": topk_div, "temporal_length": temporal_length}
    config = ConvertConfig(reference, output, {k: v for k, v in options.items() if v is not None}, classes,
                           bands.split(",") if bands else None, _floats(mean, "--mean"), _floats(std, "--std"),
                           patch_size, stride, overwrite, units)
    ck = convert_reference(config)
    cfg = ck.model_config
    typer.echo(f"wrote {output}: {cfg['stem']} stem, dims {cfg['embed_dims']}, depths {cfg['depths']}, "
               f"heads {cfg['num_heads']}, {cfg['num_classes']} classes, topk_div {cfg['topk_div']}, "
               f"{cfg['temporal_length']} frames (reflect), mean {[round(m, 2) for m in ck.normalization.mean]} std "
               f"{[round(s, 2) for s in ck.normalization.std]} ({ck.units}), tile {ck.patch_size}/{ck.stride} averaged")
