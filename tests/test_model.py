"""SL-GT2Net: shapes, numerics, gradients, persistence, top-k sparsity."""

import io

import pytest
import torch
import torch.nn.functional as F

import models
from models.attention import sparse_attention
from models.blocks import ChannelAffine, ShuffleConvTranspose3d, TemporalMeanHead
from models.depthwise import DepthwiseConv3d
from models.head import upsample_and_classify
from models.slgt2net import pad_time


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return models.create_model("tiny", num_classes=5).eval()


@pytest.mark.parametrize("t", [1, 5, 12, 16, 41])
def test_any_dates_and_odd_sizes(tiny, t):
    x = torch.randn(2, 2, t, 45, 70)
    with torch.no_grad():
        y = tiny(x)
    assert y.shape == (2, 5, 45, 70)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("t", [1, 41])
def test_brandenburg_stem_runs_on_any_dates(t):
    torch.manual_seed(0)
    net = models.create_model("tiny", stem="brandenburg", temporal_length=48,
                              window_depths=((8, 4, 2), (8, 4, 2), (4, 4, 2), (2, 2, 2))).eval()
    with torch.no_grad():
        y = net(torch.randn(1, 2, t, 33, 31))
    assert y.shape == (1, 8, 33, 31) and torch.isfinite(y).all()


def test_temporal_padding_is_symmetric():
    x = torch.ones(1, 1, 12, 2, 2)
    padded = pad_time(x, 16)
    assert padded[0, 0, :, 0, 0].tolist() == [0, 0] + [1] * 12 + [0, 0]
    cropped = pad_time(torch.arange(20.0).view(1, 1, 20, 1, 1), 16)
    assert cropped.flatten().tolist() == list(range(2, 18))


def test_bad_temporal_length_is_rejected():
    with pytest.raises(ValueError, match="temporal_length"):
        models.create_model("tiny", temporal_length=12)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    net = models.create_model("tiny", num_classes=4, topk_div=2).train()
    x = torch.randn(2, 2, 16, 64, 64)
    y = torch.randint(0, 4, (2, 64, 64))
    F.cross_entropy(net(x), y).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    zero = [n for n, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() == 0]
    assert not missing and not zero, (missing, zero)


def test_stcrb_can_be_turned_off():
    on = models.create_model("tiny")
    off = models.create_model("tiny", stcrb=False)
    n_on = sum(p.numel() for p in on.parameters())
    n_off = sum(p.numel() for p in off.parameters())
    assert n_on > n_off
    assert not any(".conv_down.conv." in n for n, _ in off.named_parameters())


def test_save_load_round_trip(tiny):
    buf = io.BytesIO()
    torch.save({"config": tiny.config, "state_dict": tiny.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    clone = models.SLGT2Net(**saved["config"]).eval()
    clone.load_state_dict(saved["state_dict"])
    x = torch.randn(1, 2, 16, 64, 64)
    with torch.no_grad():
        assert torch.equal(tiny(x), clone(x))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_forward(tiny, dtype):
    if dtype == torch.float16:
        pytest.importorskip("torch.cuda")
        if not torch.cuda.is_available():
            pytest.skip("fp16 convolutions need a GPU")
        net, x = tiny.cuda(), torch.randn(1, 2, 16, 64, 64, device="cuda")
        ctx = torch.autocast("cuda", dtype=dtype)
    else:
        net, x = tiny, torch.randn(1, 2, 16, 64, 64)
        ctx = torch.autocast("cpu", dtype=dtype)
    with torch.no_grad(), ctx:
        y = net(x)
    assert y.shape == (1, 5, 64, 64) and torch.isfinite(y.float()).all()


def test_topk_keeps_exactly_n_over_div_keys():
    torch.manual_seed(0)
    nq, nk = 10, 12
    q = torch.randn(2, 3, nq, 8)
    k = torch.randn(2, 3, nk, 8)
    k[..., -4:, :] = 0  # padded keys: four tied logits of exactly 0
    v = torch.eye(nk).expand(2, 3, nk, nk)  # the output rows are then the attention probabilities
    probs = sparse_attention(q, k, v, keep=nk // 2, scale=8**-0.5)
    assert ((probs > 0).sum(-1) == nk // 2).all()
    assert torch.allclose(probs.sum(-1), torch.ones(2, 3, nq))
    # the same as masking all but the top-k logits with -inf before the softmax
    logits = (q * 8**-0.5) @ k.transpose(-2, -1)
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, logits.topk(nk // 2, dim=-1).indices, True)
    expected = logits.masked_fill(~keep, float("-inf")).softmax(-1)
    assert torch.allclose(probs, expected, atol=1e-6)


def test_fast_layers_equal_the_convolutions_they_replace():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 3, 5, 7).to(memory_format=torch.channels_last_3d)
    up = ShuffleConvTranspose3d(6, 4, (1, 2, 2), stride=(1, 2, 2))
    assert torch.allclose(up(x), F.conv_transpose3d(x, up.weight, up.bias, stride=(1, 2, 2)), atol=1e-5)
    up2 = ShuffleConvTranspose3d(6, 4, 2, stride=2)
    assert torch.allclose(up2(x), F.conv_transpose3d(x, up2.weight, up2.bias, stride=2), atol=1e-5)
    aff = ChannelAffine(6, 6, 1, groups=6)
    assert torch.allclose(aff(x), F.conv3d(x, aff.weight, aff.bias, groups=6), atol=1e-6)
    head = TemporalMeanHead(6, 3, 1)
    assert torch.allclose(head(x), F.conv3d(x, head.weight, head.bias).mean(2), atol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
def test_depthwise_convolution_gradients_equal_the_library_convolution(bias):
    """The input gradient is computed as a convolution with the flipped kernel (faster on CPU): the same
    gradients as nn.Conv3d for the input, the weight and the bias."""
    torch.manual_seed(0)
    conv = DepthwiseConv3d(6, 3, bias=bias)
    x = torch.randn(2, 6, 4, 5, 7).to(memory_format=torch.channels_last_3d).requires_grad_(True)
    grad = torch.randn(2, 6, 4, 5, 7)
    params = [x, *conv.parameters()]
    got = torch.autograd.grad(conv(x), params, grad)
    expected = torch.autograd.grad(F.conv3d(x, conv.weight, conv.bias, padding=1, groups=6), params, grad)
    assert len(got) == (3 if bias else 2)
    for a, e in zip(got, expected):
        assert torch.allclose(a, e, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 4, 7, 9), (3, 2, 5, 6)])
def test_fused_full_resolution_head_equals_its_modules_with_gradients(shape, monkeypatch):
    """The network computes seg_head(up_x4(x)) without full-size copies, in row blocks (made tiny here so that a
    small map spans several): same logits and same gradients for the input and every parameter."""
    monkeypatch.setattr("models.head.BLOCK_ELEMENTS", 2000)
    torch.manual_seed(0)
    net = models.create_model("tiny", num_classes=5).train()
    b, t, h, w = shape
    x = torch.randn(b, net.up_x4[0].in_channels, t, h, w).to(memory_format=torch.channels_last_3d)
    x.requires_grad_(True)
    params = [x, *net.up_x4.parameters(), *net.seg_head.parameters()]
    expected = net.seg_head(net.up_x4(x))
    grad = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, params, grad)
    got = upsample_and_classify(net.up_x4, net.seg_head, x)
    got_grads = torch.autograd.grad(got, params, grad)
    assert got.shape == (b, 5, 4 * h, 4 * w)
    assert torch.allclose(got, expected, atol=1e-5)
    for a, e in zip(got_grads, expected_grads):
        assert torch.allclose(a, e, atol=1e-5, rtol=1e-4)


def test_temporal_crop_of_an_odd_excess_takes_the_larger_half_in_front():
    """As the reference: front padding (L - T) // 2 is -2 for T = 19, L = 16, so 2 frames go in front, 1 behind."""
    cropped = pad_time(torch.arange(19.0).view(1, 1, 19, 1, 1), 16)
    assert cropped.flatten().tolist() == list(range(2, 18))
    assert pad_time(torch.arange(17.0).view(1, 1, 17, 1, 1), 16).flatten().tolist() == list(range(1, 17))


def test_decoder_stages_reuse_the_encoder_drop_path_rates_in_order():
    net = models.create_model("tiny", depths=(2, 2, 2, 2), drop_path=0.1)
    rates = [[b.drop_path.p for b in stage.blocks] for stage in net.layers]
    assert rates[0][0] == 0.0 and rates[-1][-1] == pytest.approx(0.1)
    # layers_up runs deepest first: it holds encoder stages 2, 1, 0
    up = [[b.drop_path.p for b in stage.blocks] for stage in net.layers_up]
    assert up == [rates[2], rates[1], rates[0]]
