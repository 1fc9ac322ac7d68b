"""Equivalence with the reference implementation's logits (fixture in ../shared/fixtures/reference)."""

from pathlib import Path

import pytest
import torch

import models
from models.reference import ReferenceCheckpointError, infer_config, load_reference_state

REF = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "reference"
CHECKPOINT = REF / "slovenia_tiny_checkpoint.pth"
IO = REF / "slovenia_tiny_io.pt"

pytestmark = pytest.mark.skipif(not CHECKPOINT.exists(), reason="reference fixtures not beside the checkout")


@pytest.fixture(scope="module")
def fixture_io():
    return torch.load(IO, map_location="cpu", weights_only=False)


def test_logits_match_reference(fixture_io):
    model = models.from_reference_checkpoint(CHECKPOINT)
    assert not model.training
    with torch.no_grad():
        out = model(fixture_io["input"])
    assert (out - fixture_io["logits"]).abs().max() <= 1e-4


def test_explicit_reference_options(fixture_io):
    cfg = fixture_io["config"]
    model = models.from_reference_checkpoint(
        CHECKPOINT, flag=1, num_heads=cfg["num_heads"], wss_lst=cfg["wss_lst"], dss_lst=cfg["dss_lst"], topk_div=1
    )
    with torch.no_grad():
        assert (model(fixture_io["input"]) - fixture_io["logits"]).abs().max() <= 1e-4


def test_topk_sparsity_changes_the_output(fixture_io):
    dense = models.from_reference_checkpoint(CHECKPOINT)
    sparse = models.from_reference_checkpoint(CHECKPOINT, topk_div=2)
    with torch.no_grad():
        assert (dense(fixture_io["input"]) - sparse(fixture_io["input"])).abs().max() > 5e-4


def test_weights_imply_the_architecture():
    state, _ = load_reference_state(CHECKPOINT)
    inferred = infer_config(state)
    assert inferred["embed_dims"] == [24, 48, 96, 192]
    assert inferred["depths"] == [2, 2, 2, 2]
    assert (inferred["in_chans"], inferred["num_classes"], inferred["stem"]) == (2, 8, "slovenia")


def test_unused_reference_weights_are_not_built():
    model = models.from_reference_checkpoint(CHECKPOINT)
    names = [n for n, _ in model.named_parameters()]
    assert not any("abs_pos_embeds" in n or ".conv_down.conv." in n or "decode_head" in n for n in names)


def test_contradicting_options_are_rejected():
    with pytest.raises(ReferenceCheckpointError, match="embed_dims"):
        models.from_reference_checkpoint(CHECKPOINT, embed_dims=[32, 64, 128, 256])


def test_brandenburg_style_reference_round_trip(tmp_path):
    """A flag-2 reference checkpoint (temporal kernel 9, 48 frames, 15 classes, non-square input) loads and
    computes exactly what the network built from the same weights computes."""
    torch.manual_seed(0)
    net = models.create_model(
        "paper-brandenburg", embed_dims=(24, 48, 96, 192), depths=(2, 2, 2, 2), num_heads=(3, 3, 6, 6),
        stcrb=True, drop_path=0.0, topk_div=2,
    ).eval()
    state = {f"backbone.{k}": v for k, v in net.state_dict().items()}
    state["backbone.abs_pos_embeds.0"] = torch.zeros(1, 4, 24)
    state["decode_head.conv_seg.weight"] = torch.zeros(15, 8, 1, 1)
    path = tmp_path / "brandenburg.pth"
    torch.save({"meta": {}, "state_dict": state}, path)
    loaded = models.from_reference_checkpoint(path, num_heads=[3, 3, 6, 6], topk_div=2)
    assert loaded.config["stem"] == "brandenburg" and loaded.temporal_length == 48
    assert loaded.num_classes == 15
    x = torch.randn(1, 2, 41, 64, 96)
    net_ref = models.create_model(**{"name": "paper-brandenburg"}, **{k: v for k, v in loaded.config.items()})
    net_ref.load_state_dict({k: v for k, v in net.state_dict().items() if ".conv_down.conv." not in k})
    with torch.no_grad():
        assert torch.allclose(loaded(x), net_ref.eval()(x), atol=1e-5)


def test_not_a_reference_checkpoint(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ReferenceCheckpointError):
        models.from_reference_checkpoint(bad)
    other = tmp_path / "other.pth"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, other)
    with pytest.raises(ReferenceCheckpointError, match="backbone"):
        models.from_reference_checkpoint(other)
