"""The second wave of layers and functions against PyTorch 2.13 (values and input gradients, on
every device): activations, distances, padding modes, interpolate, pixel shuffle, unfold/fold,
Bilinear, Conv3d, ConvTranspose1d, 1-D/3-D and adaptive pools, instance and local-response norm,
the new losses and CTC, grid_sample and affine_grid; modules with PyTorch's state-dict layout; dropout variants' structure;
gradcheck in float64 for the composites with index maps (padding, resampling, CTC)."""
import numpy as np
import pytest

import xbp
import xbp.nn as nn
import xbp.nn.functional as F
from xbp.autograd import gradcheck

from conftest import to_np

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _check(device, fx, ft, arrays, atol=1e-10, ints=()):
    """fx on xbp tensors and ft on torch tensors of the same float64 arrays: outputs and the
    gradients of a random weighting of them agree."""
    xs = [xbp.tensor(a, device=device, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    yx, yt = fx(*xs), ft(*ts)
    np.testing.assert_allclose(to_np(yx), yt.detach().numpy(), atol=atol, rtol=1e-7)
    w = np.random.default_rng(99).standard_normal(tuple(yt.shape))
    (yx * xbp.tensor(w, device=device)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    for x, t in zip(xs, ts):
        if x.grad is None:           # no path from this input (e.g. the grid of nearest sampling)
            assert not t.grad.numpy().any()
            continue
        np.testing.assert_allclose(to_np(x.grad), t.grad.numpy(), atol=atol, rtol=1e-6)


R = np.random.default_rng(0)
X4 = R.standard_normal((2, 4, 5, 3))

ACTIVATIONS = ["relu6", "hardtanh", "hardswish", "hardsigmoid", "mish", "softsign", "selu", "logsigmoid",
               "tanhshrink", "softshrink", "hardshrink"]


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations(device, name):
    _check(device, getattr(F, name), getattr(TF, name), [X4], atol=1e-7)


def test_parameterised_activations(device):
    _check(device, lambda a: F.celu(a, 0.7), lambda a: TF.celu(a, 0.7), [X4], atol=1e-7)
    _check(device, lambda a: F.glu(a, 1), lambda a: TF.glu(a, 1), [X4])
    _check(device, lambda a: F.threshold(a, 0.1, -2.0), lambda a: TF.threshold(a, 0.1, -2.0), [X4])
    _check(device, F.prelu, TF.prelu, [X4, R.standard_normal(4)])
    _check(device, lambda a: F.softmin(a, 1), lambda a: TF.softmin(a, 1), [X4])
    with pytest.raises(RuntimeError, match="even"):
        F.glu(xbp.randn(3, 5, device=device))


def test_distances(device):
    _check(device, lambda a: F.normalize(a, dim=2), lambda a: TF.normalize(a, dim=2), [X4])
    _check(device, lambda a: F.normalize(a, p=1, dim=-1), lambda a: TF.normalize(a, p=1, dim=-1), [X4])
    _check(device, F.cosine_similarity, TF.cosine_similarity, [X4, R.standard_normal((1, 4, 5, 3))])
    _check(device, F.pairwise_distance, TF.pairwise_distance, [X4[0, 0], X4[1, 0]])
    _check(device, lambda a, b: F.pairwise_distance(a, b, 3.0, keepdim=True),
           lambda a, b: TF.pairwise_distance(a, b, 3.0, keepdim=True), [X4[0, 0], X4[1, 0]])
    _check(device, F.pdist, TF.pdist, [X4[0, 0]])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "constant"])
def test_pad_modes(device, mode):
    kw = {"value": 2.5} if mode == "constant" else {}
    _check(device, lambda a: F.pad(a, (1, 2, 2, 1), mode, **kw), lambda a: TF.pad(a, (1, 2, 2, 1), mode=mode, **kw),
           [X4])
    if mode == "reflect":
        with pytest.raises(ValueError, match="less than"):
            F.pad(xbp.randn(1, 2, 3, device=device), (3, 0), "reflect")


@pytest.mark.parametrize("kw", [dict(size=(7, 2)), dict(scale_factor=2), dict(scale_factor=1.7)])
@pytest.mark.parametrize("mode,ac", [("nearest", None), ("nearest-exact", None), ("bilinear", False),
                                     ("bilinear", True), ("bicubic", False), ("bicubic", True)])
def test_interpolate(device, kw, mode, ac):
    _check(device, lambda a: F.interpolate(a, mode=mode, align_corners=ac, **kw),
           lambda a: TF.interpolate(a, mode=mode, align_corners=ac, **kw), [X4[:, :2]])


def test_interpolate_linear_trilinear_and_upsample_modules(device):
    _check(device, lambda a: F.interpolate(a, scale_factor=2.5, mode="linear"),
           lambda a: TF.interpolate(a, scale_factor=2.5, mode="linear"), [X4[0]])
    _check(device, lambda a: F.interpolate(a, size=(3, 4, 5), mode="trilinear", align_corners=True),
           lambda a: TF.interpolate(a, size=(3, 4, 5), mode="trilinear", align_corners=True), [X4[None][:, :, :2]])
    for xm, tm in [(nn.Upsample(scale_factor=2, mode="bilinear"), torch.nn.Upsample(scale_factor=2, mode="bilinear")),
                   (nn.UpsamplingBilinear2d(size=(3, 7)), torch.nn.UpsamplingBilinear2d(size=(3, 7))),
                   (nn.UpsamplingNearest2d(scale_factor=3), torch.nn.UpsamplingNearest2d(scale_factor=3))]:
        _check(device, xm, tm, [X4[:1, :2]])
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(xbp.randn(1, 1, 2, 2, device=device), scale_factor=2, align_corners=True)


def test_pixel_shuffle_unfold_fold(device):
    _check(device, nn.PixelShuffle(2), torch.nn.PixelShuffle(2), [R.standard_normal((2, 8, 3, 2))])
    _check(device, nn.PixelUnshuffle(2), torch.nn.PixelUnshuffle(2), [R.standard_normal((2, 2, 4, 6))])
    _check(device, nn.Unfold((2, 3), dilation=(1, 2), padding=1, stride=(2, 1)),
           torch.nn.Unfold((2, 3), dilation=(1, 2), padding=1, stride=(2, 1)), [X4])
    _check(device, nn.Fold((5, 6), (2, 2), padding=1, stride=2), torch.nn.Fold((5, 6), (2, 2), padding=1, stride=2),
           [R.standard_normal((2, 12, 12))])


def test_conv_and_pool_variants(device):
    _check(device, lambda a, w, b: F.conv3d(a, w, b, stride=(2, 1, 1), padding=(1, 0, 1), dilation=(1, 1, 2),
                                            groups=2),
           lambda a, w, b: TF.conv3d(a, w, b, stride=(2, 1, 1), padding=(1, 0, 1), dilation=(1, 1, 2), groups=2),
           [R.standard_normal((2, 4, 4, 3, 5)), R.standard_normal((4, 2, 3, 2, 2)), R.standard_normal(4)], atol=1e-9)
    _check(device, lambda a, w, b: F.conv_transpose1d(a, w, b, stride=2, padding=1, output_padding=1, dilation=2),
           lambda a, w, b: TF.conv_transpose1d(a, w, b, stride=2, padding=1, output_padding=1, dilation=2),
           [R.standard_normal((2, 4, 5)), R.standard_normal((4, 3, 3)), R.standard_normal(3)], atol=1e-9)
    x3 = X4[0]
    _check(device, nn.MaxPool1d(3, 2, 1), torch.nn.MaxPool1d(3, 2, 1), [x3])
    _check(device, nn.AvgPool1d(3, 2, 1, count_include_pad=False), torch.nn.AvgPool1d(3, 2, 1, count_include_pad=False),
           [x3])
    _check(device, nn.AdaptiveAvgPool1d(2), torch.nn.AdaptiveAvgPool1d(2), [x3])
    _check(device, nn.AdaptiveMaxPool1d(2), torch.nn.AdaptiveMaxPool1d(2), [x3])
    _check(device, nn.AdaptiveMaxPool2d((3, 2)), torch.nn.AdaptiveMaxPool2d((3, 2)), [X4])
    _check(device, nn.MaxPool3d((2, 3, 2), (1, 2, 1), (1, 1, 0)), torch.nn.MaxPool3d((2, 3, 2), (1, 2, 1), (1, 1, 0)),
           [R.standard_normal((1, 2, 3, 5, 4))])


def _copy_module(tm, xm, device):
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(xm.state_dict()) == list(sd)
    xm.double().load_state_dict(sd)
    return xm.to(device)


@pytest.mark.parametrize("make", [
    lambda m: m.Conv3d(4, 6, (2, 3, 2), stride=(1, 2, 1), padding=1, groups=2, dtype=torch_or_none(m)),
    lambda m: m.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1, dtype=torch_or_none(m)),
    lambda m: m.PReLU(4, dtype=torch_or_none(m)),
    lambda m: m.InstanceNorm1d(4, affine=True, dtype=torch_or_none(m)),
    lambda m: m.LocalResponseNorm(3, alpha=0.2),
])
def test_modules_with_pytorch_weights(device, make):
    torch.manual_seed(0)
    tm = make(torch.nn).double()
    xm = _copy_module(tm, make(nn), device)
    shape = {"Conv3d": (2, 4, 3, 5, 4)}.get(type(tm).__name__, (2, 4, 6))
    _check(device, xm, tm, [R.standard_normal(shape)], atol=1e-9)
    if type(tm).__name__ != "LocalResponseNorm":
        p = dict(xm.named_parameters())
        for name, tp in tm.named_parameters():
            np.testing.assert_allclose(to_np(p[name].grad), tp.grad.numpy(), atol=1e-9, err_msg=name)


def torch_or_none(m):
    return torch.float64 if m is torch.nn else None


def test_bilinear_module(device):
    torch.manual_seed(1)
    tm = torch.nn.Bilinear(3, 4, 2).double()
    xm = _copy_module(tm, nn.Bilinear(3, 4, 2), device)
    _check(device, xm, tm, [R.standard_normal((5, 3)), R.standard_normal((5, 4))])
    assert repr(xm) == repr(tm)


def test_instance_norm_running_stats(device):
    tm = torch.nn.InstanceNorm2d(3, affine=True, track_running_stats=True).double()
    xm = nn.InstanceNorm2d(3, affine=True, track_running_stats=True, dtype=np.float64, device=device)
    x = R.standard_normal((2, 3, 4, 5))
    tm(torch.tensor(x))
    xm(xbp.tensor(x, device=device))
    np.testing.assert_allclose(to_np(xm.running_mean), tm.running_mean.numpy(), atol=1e-12)
    np.testing.assert_allclose(to_np(xm.running_var), tm.running_var.numpy(), atol=1e-12)
    tm.eval()
    xm.eval()
    _check(device, xm, tm, [x])
    # unbatched (C, H, W)
    _check(device, xm, tm, [x[0]])


def test_unflatten_and_parameter_containers(device):
    x = xbp.randn(2, 12, device=device)
    assert nn.Unflatten(1, (3, 4))(x).shape == (2, 3, 4)
    pl = nn.ParameterList([xbp.randn(2, device=device), nn.Parameter(xbp.randn(3, device=device))])
    pl.append(xbp.zeros(1, device=device))
    assert len(pl) == 3 and all(isinstance(p, nn.Parameter) for p in pl)
    assert list(pl.state_dict()) == list(torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(1))] * 3)
                                         .state_dict()) == ["0", "1", "2"]
    pd = nn.ParameterDict({"a": xbp.randn(2, device=device)})
    pd["b"] = xbp.ones(3, device=device)
    assert list(pd.keys()) == ["a", "b"] and "b" in pd and isinstance(pd["b"], nn.Parameter)

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.pl, self.pd = pl, pd

    assert [n for n, _ in Holder().named_parameters()] == ["pl.0", "pl.1", "pl.2", "pd.a", "pd.b"]


def test_dropout_variants_structure(device):
    x = xbp.ones(4, 6, 3, 2, device=device)
    y = to_np(F.dropout2d(x, 0.5, True))
    per_channel = y.reshape(4, 6, -1)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))       # whole channels
    assert 0 < (per_channel[..., 0] == 0).sum() < 24
    y1 = to_np(nn.Dropout1d(0.5)(xbp.ones(3, 5, 4, device=device)))
    assert np.all((y1 == 0).all(-1) | (y1 == 2.0).all(-1))
    m = nn.Dropout2d(0.5).eval()
    assert m(x) is x
    # alpha dropout: kept values a*x + b', dropped a*(-alpha') + b'  (PyTorch's constants)
    p, alpha = 0.3, 1.7580993408473766
    a = 1.0 / np.sqrt((alpha * alpha * p + 1) * (1 - p))
    xv = np.random.default_rng(3).standard_normal((50, 20))
    ya = to_np(nn.AlphaDropout(p)(xbp.tensor(xv, device=device)))
    kept = np.isclose(ya, a * xv + alpha * a * p)
    dropped = np.isclose(ya, -alpha * a + alpha * a * p)
    assert np.all(kept | dropped) and 0.2 < dropped.mean() < 0.4
    assert nn.AlphaDropout(p).eval()(xbp.tensor(xv, device=device)) is not None


def test_losses(device):
    t1 = np.array([1.0, -1.0, 1.0])
    a, b, c = R.standard_normal((3, 4)), R.standard_normal((3, 4)), R.standard_normal((3, 4))
    T = lambda v: xbp.tensor(v, device=device)  # noqa: E731
    _check(device, lambda u, v: nn.CosineEmbeddingLoss(0.1)(u, v, T(t1)),
           lambda u, v: torch.nn.CosineEmbeddingLoss(0.1)(u, v, torch.tensor(t1)), [a, b])
    _check(device, lambda u, v: nn.MarginRankingLoss(0.2, reduction="sum")(u, v, T(t1)),
           lambda u, v: torch.nn.MarginRankingLoss(0.2, reduction="sum")(u, v, torch.tensor(t1)), [a[:, 0], b[:, 0]])
    _check(device, nn.TripletMarginLoss(swap=True, reduction="none"),
           torch.nn.TripletMarginLoss(swap=True, reduction="none"), [a, b, c])
    _check(device, nn.TripletMarginLoss(p=1.0, margin=2.0), torch.nn.TripletMarginLoss(p=1.0, margin=2.0), [a, b, c])
    _check(device, lambda u: nn.HingeEmbeddingLoss()(u, T(t1)), lambda u: torch.nn.HingeEmbeddingLoss()(u, torch.tensor(t1)),
           [a[:, 0]])
    _check(device, lambda u: nn.SoftMarginLoss()(u, T(t1)), lambda u: torch.nn.SoftMarginLoss()(u, torch.tensor(t1)),
           [a[:, 0]])
    tp = R.poisson(2.0, (3, 4)).astype(np.float64)
    _check(device, lambda u: nn.PoissonNLLLoss(full=True)(u, T(tp)),
           lambda u: torch.nn.PoissonNLLLoss(full=True)(u, torch.tensor(tp)), [a])
    _check(device, lambda u: nn.PoissonNLLLoss(log_input=False, reduction="sum")(u, T(tp)),
           lambda u: torch.nn.PoissonNLLLoss(log_input=False, reduction="sum")(u, torch.tensor(tp)),
           [np.abs(a) + 0.1])
    var = np.abs(b) + 0.1
    var[0, 0] = 1e-9                                     # clamped at eps, gradient still flows
    _check(device, lambda u, v: nn.GaussianNLLLoss(full=True)(u, T(tp), v),
           lambda u, v: torch.nn.GaussianNLLLoss(full=True)(u, torch.tensor(tp), v), [a, var], atol=1e-8)
    _check(device, lambda u, v: nn.GaussianNLLLoss(reduction="none")(u, T(tp), v),
           lambda u, v: torch.nn.GaussianNLLLoss(reduction="none")(u, torch.tensor(tp), v), [a, var[:, :1]])
    with pytest.raises(ValueError, match="negative"):
        F.gaussian_nll_loss(T(a), T(tp), T(-var))
    assert nn.MSELoss(size_average=False).reduction == "sum"        # PyTorch's legacy arguments


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ctc_matches_pytorch_through_log_softmax(device, reduction):
    # PyTorch's CTC gradient with respect to log_probs is exp(lp) - posterior (valid only through a
    # log_softmax); the exact one is -posterior. Through log_softmax both agree: compare there.
    T_, C = 6, 5
    tg = np.array([[1, 2, 2], [3, 1, 0], [4, 0, 0]])
    il, tl = np.array([6, 5, 3]), np.array([3, 2, 1])
    _check(device, lambda z: nn.CTCLoss(reduction=reduction)(F.log_softmax(z, 2), xbp.tensor(tg, device=device),
                                                             xbp.tensor(il, device=device),
                                                             xbp.tensor(tl, device=device)),
           lambda z: torch.nn.CTCLoss(reduction=reduction)(TF.log_softmax(z, 2), torch.tensor(tg), torch.tensor(il),
                                                           torch.tensor(tl)),
           [R.standard_normal((T_, 3, C))])


def test_ctc_concatenated_targets_blank_and_infinity(device):
    T_, C = 6, 5
    flat = np.array([1, 0, 0, 3, 1, 4])                                # blank = 2
    il, tl = (6, 5, 3), (3, 2, 1)
    _check(device, lambda z: F.ctc_loss(F.log_softmax(z, 2), xbp.tensor(flat, device=device), il, tl, blank=2,
                                        reduction="none"),
           lambda z: TF.ctc_loss(TF.log_softmax(z, 2), torch.tensor(flat), il, tl, blank=2, reduction="none"),
           [R.standard_normal((T_, 3, C))])
    tg = np.array([[1, 1, 1, 1], [1, 2, 0, 0]])                        # 4 repeats need 7 frames: impossible
    z = R.standard_normal((4, 2, C))
    lp = F.log_softmax(xbp.tensor(z, device=device), 2)
    loss = to_np(F.ctc_loss(lp, xbp.tensor(tg, device=device), (4, 3), (4, 0), reduction="none"))
    want = TF.ctc_loss(TF.log_softmax(torch.tensor(z), 2), torch.tensor(tg), (4, 3), (4, 0), reduction="none")
    np.testing.assert_allclose(loss, want.numpy(), atol=1e-10)
    assert np.isinf(loss[0])
    _check(device, lambda u: F.ctc_loss(F.log_softmax(u, 2), xbp.tensor(tg, device=device), (4, 3), (4, 0),
                                        zero_infinity=True),
           lambda u: TF.ctc_loss(TF.log_softmax(u, 2), torch.tensor(tg), (4, 3), (4, 0), zero_infinity=True), [z])
    with pytest.raises(ValueError, match="blank"):
        F.ctc_loss(lp[:, :1], xbp.tensor(np.array([[0, 1]]), device=device), (4,), (2,))


def test_gradcheck_composites(device):
    def t(shape, seed):
        return xbp.tensor(np.random.default_rng(seed).standard_normal(shape), device=device, requires_grad=True)
    assert gradcheck(lambda a: F.pad(a, (2, 1, 1, 2), "reflect"), (t((1, 1, 3, 4), 1),))
    assert gradcheck(lambda a: F.interpolate(a, scale_factor=1.5, mode="bilinear", align_corners=False),
                     (t((1, 1, 3, 3), 2),))
    lp_raw = t((4, 1, 3), 3)
    assert gradcheck(lambda z: F.ctc_loss(z, xbp.tensor(np.array([[1, 2]]), device=device), (4,), (2,)), (lp_raw,))
    assert gradcheck(lambda a, b: F.cosine_similarity(a, b), (t((2, 3), 4), t((2, 3), 5)))


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample(device, mode, padding_mode, align_corners):
    x = R.standard_normal((1, 2, 3, 4))
    g = np.random.default_rng(5).uniform(-1.3, 1.3, (1, 2, 3, 2))           # some points outside
    _check(device, lambda a, b: F.grid_sample(a, b, mode, padding_mode, align_corners),
           lambda a, b: TF.grid_sample(a, b, mode, padding_mode, align_corners), [x, g], atol=1e-12)


def test_affine_grid(device):
    th = R.standard_normal((2, 2, 3))
    for ac in (False, True):
        _check(device, lambda t: F.affine_grid(t, (2, 1, 3, 4), align_corners=ac),
               lambda t: TF.affine_grid(t, (2, 1, 3, 4), align_corners=ac), [th])


def test_third_wave_layers(device):
    x5 = R.standard_normal((1, 2, 4, 5, 4))
    for kw in [dict(), dict(stride=(1, 2, 1), padding=(1, 0, 1)), dict(padding=1, count_include_pad=False),
               dict(divisor_override=3)]:
        _check(device, nn.AvgPool3d((2, 3, 2), **kw), torch.nn.AvgPool3d((2, 3, 2), **kw), [x5])
    _check(device, nn.LPPool1d(2, 3, 2), torch.nn.LPPool1d(2, 3, 2), [X4[0]])
    _check(device, nn.LPPool2d(3, (2, 2)), torch.nn.LPPool2d(3, (2, 2)), [np.abs(X4) + 0.1])
    _check(device, nn.ChannelShuffle(2), torch.nn.ChannelShuffle(2), [X4])
    _check(device, nn.Softmax2d(), torch.nn.Softmax2d(), [X4])
    _check(device, nn.RReLU().eval(), torch.nn.RReLU().eval(), [X4])
    y = to_np(nn.RReLU(0.1, 0.3)(xbp.tensor(-np.ones((200,)), device=device)))
    assert np.all((y <= -0.1) & (y >= -0.3)) and y.std() > 0.03
    torch.manual_seed(0)
    tm = torch.nn.RMSNorm((5, 3)).double()
    xm = _copy_module(tm, nn.RMSNorm((5, 3)), device)
    _check(device, xm, tm, [X4])
    _check(device, lambda a: F.rms_norm(a, 3, eps=0.1), lambda a: TF.rms_norm(a, (3,), eps=0.1), [X4])
    tb = torch.nn.BatchNorm3d(2).double()
    xb = _copy_module(tb, nn.BatchNorm3d(2), device)
    _check(device, xb, tb, [x5])
    np.testing.assert_allclose(to_np(xb.running_var), tb.running_var.numpy(), atol=1e-12)


def test_third_wave_losses(device):
    a, b, c = R.standard_normal((3, 4)), R.standard_normal((3, 4)), R.standard_normal((3, 4))
    T = lambda v: xbp.tensor(v, device=device)  # noqa: E731
    tgt = (R.random((3, 4)) > 0.5).astype(np.float64)
    w = R.uniform(0.5, 1.5, 4)
    _check(device, lambda u: nn.MultiLabelSoftMarginLoss(weight=T(w))(u, T(tgt)),
           lambda u: torch.nn.MultiLabelSoftMarginLoss(weight=torch.tensor(w))(u, torch.tensor(tgt)), [a])
    cls = np.array([1, 3, 0])
    for kw in [dict(), dict(p=2, margin=0.5), dict(reduction="none")]:
        _check(device, lambda u: nn.MultiMarginLoss(**kw)(u, T(cls)),
               lambda u: torch.nn.MultiMarginLoss(**kw)(u, torch.tensor(cls)), [a])
    _check(device, lambda u: nn.MultiMarginLoss(weight=T(w))(u, T(cls)),
           lambda u: torch.nn.MultiMarginLoss(weight=torch.tensor(w))(u, torch.tensor(cls)), [a])
    dist = lambda u, v: 1.0 - F.cosine_similarity(u, v)  # noqa: E731
    tdist = lambda u, v: 1.0 - TF.cosine_similarity(u, v)  # noqa: E731
    _check(device, nn.TripletMarginWithDistanceLoss(distance_function=dist, swap=True),
           torch.nn.TripletMarginWithDistanceLoss(distance_function=tdist, swap=True), [a, b, c])
    _check(device, nn.TripletMarginWithDistanceLoss(), torch.nn.TripletMarginWithDistanceLoss(), [a, b, c])


def test_adaptive_3d(device):
    x = R.standard_normal((1, 2, 5, 3, 4))
    _check(device, nn.AdaptiveAvgPool3d((2, 3, 3)), torch.nn.AdaptiveAvgPool3d((2, 3, 3)), [x])
    _check(device, nn.AdaptiveMaxPool3d((3, None, 2)), torch.nn.AdaptiveMaxPool3d((3, None, 2)), [x])


@pytest.mark.parametrize("kw", [dict(), dict(stride=(2, 1, 2), padding=(1, 0, 1), output_padding=(1, 0, 1)),
                                dict(dilation=(2, 1, 1), groups=2, stride=(3, 1, 1), padding=1,
                                     output_padding=(2, 0, 0))])
def test_conv_transpose3d(device, kw):
    groups = kw.get("groups", 1)
    torch.manual_seed(0)
    tm = torch.nn.ConvTranspose3d(4, 3 * groups, (2, 2, 3), **kw).double()
    xm = _copy_module(tm, nn.ConvTranspose3d(4, 3 * groups, (2, 2, 3), **kw), device)
    _check(device, xm, tm, [R.standard_normal((2, 4, 3, 2, 3))], atol=1e-9)


def test_pad_negative_crops_and_interpolate_area(device):
    _check(device, lambda a: F.pad(a, (-1, 2, 1, -2), value=0.5), lambda a: TF.pad(a, (-1, 2, 1, -2), value=0.5), [X4])
    for kw in [dict(size=(2, 2)), dict(scale_factor=0.5)]:
        _check(device, lambda a: F.interpolate(a, mode="area", **kw), lambda a: TF.interpolate(a, mode="area", **kw),
               [X4])
    _check(device, lambda a: F.interpolate(a, size=3, mode="area"), lambda a: TF.interpolate(a, size=3, mode="area"),
           [X4[0]])


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag(device, mode):
    W = R.standard_normal((10, 3))
    ids, off = np.array([1, 2, 4, 5, 4, 3, 2, 9]), np.array([0, 2, 2, 5])      # bag 1 is empty
    _check(device, lambda w: F.embedding_bag(xbp.tensor(ids, device=device), w, xbp.tensor(off, device=device),
                                             mode=mode, padding_idx=2),
           lambda w: TF.embedding_bag(torch.tensor(ids), w, torch.tensor(off), mode=mode, padding_idx=2), [W])
    torch.manual_seed(0)
    tm = torch.nn.EmbeddingBag(10, 3, mode=mode).double()
    xm = _copy_module(tm, nn.EmbeddingBag(10, 3, mode=mode), device)
    _check(device, lambda w: xm(xbp.tensor(ids.reshape(2, 4), device=device)) * w.sum(),
           lambda w: tm(torch.tensor(ids.reshape(2, 4))) * w.sum(), [np.ones(1)])
    if mode == "sum":
        psw = R.standard_normal(8)
        _check(device, lambda w, p: F.embedding_bag(xbp.tensor(ids, device=device), w,
                                                    xbp.tensor(np.array([0, 3, 8]), device=device), mode="sum",
                                                    per_sample_weights=p, include_last_offset=True),
               lambda w, p: TF.embedding_bag(torch.tensor(ids), w, torch.tensor(np.array([0, 3, 8])), mode="sum",
                                             per_sample_weights=p, include_last_offset=True), [W, psw])


def test_multilabel_margin_and_gumbel_softmax(device):
    t = np.array([[3, 0, -1, 1, 1], [1, 2, 3, 4, -1], [-1, 0, 0, 0, 0]])
    for red in ("mean", "none"):
        _check(device, lambda u: nn.MultiLabelMarginLoss(reduction=red)(u, xbp.tensor(t, device=device)),
               lambda u: torch.nn.MultiLabelMarginLoss(reduction=red)(u, torch.tensor(t)), [R.standard_normal((3, 5))])
    logits = xbp.tensor(R.standard_normal((4, 6)), device=device, requires_grad=True)
    soft = F.gumbel_softmax(logits, tau=0.5)
    np.testing.assert_allclose(to_np(soft).sum(-1), 1.0, atol=1e-12)
    hard = F.gumbel_softmax(logits, tau=0.5, hard=True)
    h = to_np(hard)
    assert set(np.unique(h)) <= {0.0, 1.0} and (h.sum(-1) == 1).all()
    (hard * xbp.tensor(R.standard_normal((4, 6)), device=device)).sum().backward()
    assert logits.grad is not None and np.abs(to_np(logits.grad)).sum() > 0      # straight-through


def test_max_unpool1d(device):
    x = X4[0]
    pool_t, unpool_t = torch.nn.MaxPool1d(2, 2, return_indices=True), torch.nn.MaxUnpool1d(2, 2)
    pool_x, unpool_x = nn.MaxPool1d(2, 2, return_indices=True), nn.MaxUnpool1d(2, 2)

    def fx(a):
        y, i = pool_x(a)
        return unpool_x(y, i, output_size=(4, 5, 3))

    def ft(a):
        y, i = pool_t(a)
        return unpool_t(y, i, output_size=(4, 5, 3))
    _check(device, fx, ft, [x])
