"""Why the network learnt slowly: the same pre-drawn training patches, in-process, per initialisation and lr.

Trains the tiny preset for STEPS steps (batch 8, the preset's patch size, poly schedule with 20 warm-up steps) on
patches drawn once from DATASET exactly as `slgt2 train` draws them, for each variant, and prints the training
loss in five bins and the mIoU on the run's validation windows. A per-pixel MLP (two 1×1 convolutions over the
same input) shows what the pixels alone allow. docs/training.md, "The cause of slow learning", has the figures.

    python benchmarks/init_diagnosis.py DATASET --steps 120 --variants pixel@1e-2 torch@3e-3 slgt2@3e-3
    variants: NAME@LR with NAME one of pixel, torch, affine (identity up-sampling affines, PyTorch's
    convolutions), slgt2 (the default init), reference; a "+cw" suffix adds the automatic class weights.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import SLGT2Net  # noqa: E402
from models.blocks import ChannelAffine  # noqa: E402
from slgt2_cli.data.patches import PatchDataset  # noqa: E402
from slgt2_cli.data.windows import WindowSample  # noqa: E402
from slgt2_cli.io.classes import IGNORE_INDEX  # noqa: E402
from slgt2_cli.scoring.metrics import ConfusionMatrix, compute_metrics  # noqa: E402
from slgt2_cli.train.config import Init, resolve_config  # noqa: E402
from slgt2_cli.train.recipe import initialise, label_weights, poly_lambda  # noqa: E402
from slgt2_cli.train.setup import prepare_run  # noqa: E402


class PixelNet(torch.nn.Module):
    """Two 1×1 convolutions over each pixel's C·L values."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(channels, 64, 1), torch.nn.GELU(), torch.nn.Conv2d(64, classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1, 2))


def build(name: str, model_config: dict, classes: int) -> torch.nn.Module:
    if name == "pixel":
        return PixelNet(model_config["in_chans"] * model_config["temporal_length"], classes)
    model = SLGT2Net(**model_config)
    if name == "affine":
        for m in model.modules():
            if isinstance(m, ChannelAffine):
                torch.nn.init.ones_(m.weight)
                torch.nn.init.zeros_(m.bias)
    else:
        initialise(model, Init(name))
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--variants", nargs="+", default=["pixel@1e-2", "torch@3e-3", "affine@3e-3", "slgt2@3e-3"])
    args = ap.parse_args()
    torch.set_num_threads(2)
    config = resolve_config(args.dataset, Path("/tmp/slgt2-init-diagnosis"), None, preset="tiny",
                            iterations=args.steps, overwrite=True)
    setup = prepare_run(config)
    k, batch = len(setup.spec.classes), 8
    patches = PatchDataset(setup.train, setup.spec.classes, setup.rule, setup.norm, config.patch_size,
                           length=args.steps * batch, scale_range=setup.scale_range, shapes=setup.shapes)
    drawn = [patches[i] for i in range(args.steps * batch)]
    val = list(WindowSample.of(setup.val, setup.val_shapes, config.patch_size, config.val_pixels)
               .batches(setup.rule, setup.norm, setup.spec.classes, 16))
    for variant in args.variants:
        name, _, lr = variant.partition("@")
        weighted = name.endswith("+cw")
        name = name.removesuffix("+cw")
        torch.manual_seed(0)
        model = build(name, dict(setup.model_config), k)
        weight = label_weights(setup.class_counts) if weighted else None
        opt = torch.optim.AdamW(model.parameters(), lr=float(lr or 3e-3), weight_decay=config.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, poly_lambda(args.steps, config.poly_power, 20))
        start, losses = time.perf_counter(), []
        for step in range(args.steps):
            x = torch.stack([drawn[step * batch + j][0] for j in range(batch)])
            y = torch.stack([drawn[step * batch + j][1] for j in range(batch)])
            loss = torch.nn.functional.cross_entropy(model(x), y, weight=weight, ignore_index=IGNORE_INDEX)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            losses.append(loss.item())
        model.eval()
        cm = ConfusionMatrix(k)
        with torch.no_grad():
            for x, y in val:
                cm.update(model(torch.from_numpy(x)).argmax(1).numpy(), y)
        bins = [round(float(np.mean(b)), 3) for b in np.array_split(losses, 5)]
        print(f"{variant:16s} loss {bins}  val mIoU {compute_metrics(cm, setup.spec.classes)['miou']:.4f}  "
              f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
