"""A Brandenburg-style reference checkpoint and test split (the tree as distributed), built here from the
documented procedure.

flag 2 (temporal kernel 9), 41 dates reflect-padded to 48, float dB in a ``data`` field, labels in ``label``,
the *test* pipeline's own mean/std (which differ from the train/val ones), a slide crop/stride taken from the
stored config. What slgt2 computes (`convert-checkpoint` with no options, then `predict` and `evaluate`) is
compared with the reference's procedure written out directly below on ``models.from_reference_checkpoint``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import rasterio
import scipy.io
import torch
from typer.testing import CliRunner

import models
from slgt2_cli.checkpoint.format import load_checkpoint
from slgt2_cli.cli.app import app

runner = CliRunner()
K, T, L = 15, 41, 48
H, W = 96, 120  # = the config's img_scale, so the reference's Resize(keep_ratio) is the identity
CROP, STRIDE = 64, 48
TRAIN_MEAN, TRAIN_STD = [-16.37, -10.59], [3.12, 3.20]
TEST_MEAN, TEST_STD = [-16.37, -10.58], [3.12, 3.21]
NAMES = tuple(f"crop type {i}" for i in range(1, K + 1))

CONFIG = f"""model = dict(
    type='EncoderDecoder',
    pretrained=None,
    backbone=dict(
        type='SLGT2',
        img_size=[48, {CROP}, {CROP}],
        in_chans=2,
        num_classes={K},
        wss_lst=[[7, 14, 21], [7, 14, 21], [7, 14, 14], [7, 7, 7]],
        dss_lst=[[8, 4, 2], [8, 4, 2], [4, 4, 2], [2, 2, 2]],
        topk_div=1,
        num_heads=[3, 3, 3, 3],
        embed_dims=[12, 24, 48, 96],
        mlp_ratios=[4, 4, 4, 4],
        qkv_bias=True,
        qk_scale=None,
        drop_path_rate=0.1,
        norm_layer='nn.LayerNorm',
        depths=[2, 2, 2, 2],
        ape=False,
        flag=2),
    decode_head=dict(type='PseudoHead', num_classes={K}, ignore_index=255))
train_cfg = dict()
test_cfg = dict(mode='slide', crop_size=({CROP}, {CROP}), stride=({STRIDE}, {STRIDE}))
dataset_type = 'BrandenburgDataset'
data_root = 'data/brandenburg'
img_norm_cfg = dict(mean={TRAIN_MEAN}, std={TRAIN_STD}, to_rgb=False)
num_bands = 48
img_scale = ({W}, {H})
test_pipeline = [
    dict(type='LoadDataFromFile'),
    dict(
        type='MultiScaleFlipAug',
        img_scale=({W}, {H}),
        flip=False,
        transforms=[
            dict(type='Resize', keep_ratio=True),
            dict(type='RandomFlip'),
            dict(type='Normalize', mean={TEST_MEAN}, std={TEST_STD}, to_rgb=False),
            dict(type='Pad', size=({CROP}, {CROP}), pad_val=0, seg_pad_val=255, num_bands=48),
            dict(type='ImageToTensor', keys=['img']),
            dict(type='Collect', keys=['img'])
        ])
]
data = dict(
    samples_per_gpu=2,
    train=dict(type='BrandenburgDataset', data_root='data/brandenburg', img_dir='s1/train', ann_dir='label/train',
               pipeline=[dict(type='LoadDataFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
                         dict(type='Normalize', mean={TRAIN_MEAN}, std={TRAIN_STD}, to_rgb=False),
                         dict(type='Pad', size=({CROP}, {CROP}), pad_val=0, seg_pad_val=255, num_bands=48,
                              mode='constant')],
               reduce_zero_label=True),
    test=dict(
        type='BrandenburgDataset',
        data_root='data/brandenburg',
        img_dir='s1/test',
        ann_dir='label/test',
        pipeline=[
            dict(type='LoadDataFromFile'),
            dict(
                type='MultiScaleFlipAug',
                img_scale=({W}, {H}),
                flip=False,
                transforms=[
                    dict(type='Resize', keep_ratio=True),
                    dict(type='RandomFlip'),
                    dict(type='Normalize', mean={TEST_MEAN}, std={TEST_STD}, to_rgb=False),
                    dict(type='Pad', size=({CROP}, {CROP}), pad_val=0, seg_pad_val=255, num_bands=48),
                    dict(type='ImageToTensor', keys=['img']),
                    dict(type='Collect', keys=['img'])
                ])
        ],
        test_mode=True,
        ignore_index=255,
        reduce_zero_label=True))
optimizer = dict(type='AdamW', lr=0.0001, weight_decay=1e-05)
runner = dict(type='IterBasedRunner', max_iters=40000)
work_dir = './work_dirs/slgt2_brandenburg'
gpu_ids = range(0, 1)
"""


def _normalised_window(data: np.ndarray) -> torch.Tensor:
    """(1, C, L, CROP, CROP): the first window of a scene, prepared as the reference does."""
    x = (data[:, :CROP, :CROP].astype(np.float32) - np.array(TEST_MEAN, np.float32)) / np.array(TEST_STD, np.float32)
    front = (L - T) // 2
    x = np.pad(x, ((front, L - T - front), (0, 0), (0, 0), (0, 0)), mode="reflect")
    return torch.from_numpy(np.ascontiguousarray(x.transpose(3, 0, 1, 2)))[None]


def _mmseg_checkpoint(path: Path, window: torch.Tensor) -> None:
    """A small random flag-2 model, saved as mmcv's save_checkpoint does (numpy scalar in meta included).

    As in the pipeline fixture, 1-D parameters are moved from their initial values and the classifier is rescaled
    per class so that on one window every class's logit has mean 0 and spread 2 (else one class wins everywhere).
    """
    torch.manual_seed(7)
    net = models.create_model("paper-brandenburg", embed_dims=(12, 24, 48, 96), depths=(2, 2, 2, 2),
                              num_heads=(3, 3, 3, 3), stcrb=True, drop_path=0.0).eval()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim == 1:
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
        logits = net(window)[0]
        mean, spread = logits.mean(dim=(1, 2)), logits.std(dim=(1, 2))
        head = net.seg_head[0]
        head.weight.mul_((2 / spread).view(-1, 1, 1, 1, 1))
        head.bias.copy_((head.bias - mean) * 2 / spread)
    state = OrderedDict((f"backbone.{k}", v.clone()) for k, v in net.state_dict().items())
    state["backbone.abs_pos_embeds.0"] = torch.zeros(1, 4, 12)
    state["decode_head.conv_seg.weight"] = torch.zeros(K, 8, 1, 1)
    state["decode_head.conv_seg.bias"] = torch.zeros(K)
    meta = {"config": CONFIG, "CLASSES": NAMES, "PALETTE": [[10 * i, 5 * i, 255 - 10 * i] for i in range(K)],
            "mmseg_version": "0.30.0", "iter": 40000,
            "hook_msgs": {"best_score": np.float64(0.25), "last_ckpt": "iter_40000.pth"}}
    torch.save({"meta": meta, "state_dict": state}, path)


def _dataset(root: Path) -> list[str]:
    """The test split of the tree as distributed (``test_vhvv/VHVV_*.mat``, ``test_label/label_s1_*.mat``,
    ``split/test.txt``); the split file skips the middle scene and lists the others out of order. Class 15 is
    absent from the labels, so the fork's 0/0 convention matters. Returns the ids the split file selects."""
    rng = np.random.default_rng(5)
    for i, sid in enumerate(["0001", "0002", "0003"]):
        yy, xx = np.mgrid[0:H, 0:W]
        parcels = (yy // 24) * 7 + (xx // 30)
        base = np.stack([-16.4 + 2.5 * np.sin(parcels), -10.6 + 2.0 * np.cos(parcels)], axis=-1)
        seasonal = np.sin(np.linspace(0, 2 * np.pi, T))[:, None, None, None] * (parcels % 3)[None, :, :, None]
        data = (base[None] + seasonal + rng.normal(0, 1.0, (T, H, W, 2))).astype(np.float32)
        label = ((parcels * 5 + i) % (K + 1)).astype(np.uint8)  # 0 = background, ignored
        label[label == K] = 0
        if i == 2:  # a no-data corner: zeros in every date and channel, background label
            data[:, :20, :25] = 0.0
            label[:20, :25] = 0
        (root / "test_vhvv").mkdir(parents=True, exist_ok=True)
        (root / "test_label").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(root / "test_vhvv" / f"VHVV_{sid}.mat", {"data": data}, do_compression=True)
        scipy.io.savemat(root / "test_label" / f"label_s1_{sid}.mat", {"label": label}, do_compression=True)
    (root / "split").mkdir(exist_ok=True)
    (root / "split" / "test.txt").write_text("2\n0\n")
    return ["VHVV_0003", "VHVV_0001"]


def _label_path(root: Path, sid: str) -> Path:
    return root / "test_label" / f"{sid.replace('VHVV', 'label_s1')}.mat"


def _reference_logits(model: torch.nn.Module, data: np.ndarray) -> np.ndarray:
    """The reference's test procedure for one scene, step by step (pipeline README): normalise with the test
    mean/std, reflect-pad time, mmseg slide_inference (sum of raw logits / count)."""
    mean, std = np.array(TEST_MEAN, np.float32), np.array(TEST_STD, np.float64)
    x = (data.astype(np.float32) - mean) * (1 / std).astype(np.float32)  # (T, H, W, C)
    front = (L - T) // 2
    x = np.pad(x, ((front, L - T - front), (0, 0), (0, 0), (0, 0)), mode="reflect")
    img = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 0, 1, 2)))[None]  # (1, C, L, H, W)
    h_grids = max(H - CROP + STRIDE - 1, 0) // STRIDE + 1
    w_grids = max(W - CROP + STRIDE - 1, 0) // STRIDE + 1
    preds = torch.zeros(1, K, H, W)
    count = torch.zeros(1, 1, H, W)
    with torch.no_grad():
        for hi in range(h_grids):
            for wi in range(w_grids):
                y1, x1 = hi * STRIDE, wi * STRIDE
                y2, x2 = min(y1 + CROP, H), min(x1 + CROP, W)
                y1, x1 = max(y2 - CROP, 0), max(x2 - CROP, 0)
                preds[:, :, y1:y2, x1:x2] += model(img[..., y1:y2, x1:x2])
                count[:, :, y1:y2, x1:x2] += 1
    return (preds / count)[0].numpy()


def _fork_metrics(preds: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    inter, area_p, area_l = np.zeros(K), np.zeros(K), np.zeros(K)
    for p, lab in zip(preds, labels):
        gt = lab.astype(np.int64) - 1  # reduce_zero_label: 0 -> ignored
        keep = gt >= 0
        p, gt = p[keep], gt[keep]
        inter += np.bincount(p[p == gt], minlength=K)
        area_p += np.bincount(p, minlength=K)
        area_l += np.bincount(gt, minlength=K)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou, acc = inter / (area_p + area_l - inter), inter / area_l
        prec = inter / area_p
        f1 = 2 * acc * prec / (acc + prec)
    assert np.isnan(acc).any()  # a class absent from the labels: the conventions differ
    means = {"aAcc": inter.sum() / area_l.sum(), "mIoU": np.nan_to_num(iou).mean(), "mAcc": np.nan_to_num(acc).mean(),
             "mPrecision": np.nan_to_num(prec).mean(), "mF1score": np.nan_to_num(f1).mean()}
    return means, np.nan_to_num(iou), float(np.nanmean(iou))  # the fork's (0/0 -> 0, all K), upstream's mIoU


@pytest.fixture(scope="module")
def brandenburg(tmp_path_factory):
    root = tmp_path_factory.mktemp("brandenburg")
    ids = _dataset(root / "data")
    first = scipy.io.loadmat(root / "data" / "test_vhvv" / f"{ids[0]}.mat")["data"]
    _mmseg_checkpoint(root / "ref.pth", _normalised_window(first))
    result = runner.invoke(app, ["convert-checkpoint", str(root / "ref.pth"), str(root / "native.pt")])
    assert result.exit_code == 0, result.output
    model = models.from_reference_checkpoint(root / "ref.pth")
    direct = {}
    for sid in ids:
        data = scipy.io.loadmat(root / "data" / "test_vhvv" / f"{sid}.mat")["data"]
        label = scipy.io.loadmat(_label_path(root / "data", sid))["label"]
        logits = _reference_logits(model, data)
        top2 = np.sort(logits, axis=0)[-2:]
        direct[sid] = {"pred": logits.argmax(0), "label": label, "tie": (top2[1] - top2[0]) < 1e-3}
    return root, direct


def test_convert_reads_the_brandenburg_config(brandenburg):
    root, _ = brandenburg
    ck = load_checkpoint(root / "native.pt")
    assert ck.normalization.to_dict() == {"mean": TEST_MEAN, "std": TEST_STD}  # the test pipeline's, not img_norm_cfg
    assert (ck.temporal.mode, ck.temporal.length) == ("reference", 48)
    assert ck.model_config["stem"] == "brandenburg" and ck.model_config["num_heads"] == [3, 3, 3, 3]
    assert (ck.patch_size, ck.stride, ck.blend, ck.units) == (CROP, STRIDE, "average", "db")
    assert ck.bands == ["VH", "VV"]
    assert [c.name for c in ck.classes.classes] == list(NAMES) and ck.classes.values.tolist() == list(range(1, 16))


def test_predict_equals_the_reference_procedure(brandenburg, tmp_path):
    root, direct = brandenburg
    classes_seen = set()
    for sid, ref in direct.items():
        out = tmp_path / f"{sid}.tif"
        result = runner.invoke(app, ["predict", str(root / "native.pt"), str(root / "data" / "test_vhvv" /
                                                                            f"{sid}.mat"), str(out), "-q"])
        assert result.exit_code == 0, result.output
        with rasterio.open(out) as src:
            ours, nodata = src.read(1), src.nodata
        expected = ref["pred"] + 1  # label values
        assert (ours != nodata).all()  # the no-data corner is classified too, as the reference does
        differ = ~ref["tie"] & (ours != expected)
        assert differ.sum() == 0, f"{sid}: {differ.sum()} pixels differ"
        classes_seen |= set(np.unique(expected).tolist())
    assert len(classes_seen) >= 5  # a map, not one class everywhere


def test_evaluate_gives_the_reference_metrics(brandenburg, tmp_path):
    root, direct = brandenburg
    out = tmp_path / "out.json"
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(root / "native.pt"), "--dataset",
                                 str(root / "data"), "--split", "test", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["source"]["blend"] == "average"
    ours = report["reference"]
    expected, per_class, upstream_miou = _fork_metrics([d["pred"] for d in direct.values()],
                                                       [d["label"] for d in direct.values()])
    for key, value in expected.items():
        assert abs(ours[key] - value) <= 1e-4, key
    assert [round(ours["per_class"][name]["IoU"], 4) for name in NAMES] == [round(v, 4) for v in per_class]
    assert abs(report["miou"] - upstream_miou) <= 1e-4  # classes absent from labels and prediction left out
    assert report["source"]["scenes"] == list(direct)  # as split/test.txt selects them: VHVV_0002 skipped
