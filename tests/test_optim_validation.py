"""Hyperparameter validation: NaN/inf/negative values are refused when the optimizer or scheduler
is built (PyTorch 2.13 raises ValueError("Invalid learning rate: nan") etc.; xbp also refuses inf,
which PyTorch accepts, since an infinite step can only produce inf/NaN weights), and a state dict
of another algorithm is refused at load_state_dict."""
import math

import pytest

import xbp
from xbp.optim import SGD, Adagrad, Adam, AdamW, RMSprop
from xbp.optim import lr_scheduler as S

BAD = [math.nan, math.inf, -math.inf]


def _p():
    return [xbp.zeros(2, requires_grad=True)]


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW, RMSprop, Adagrad])
@pytest.mark.parametrize("bad", BAD + [-1.0])
def test_learning_rate(cls, bad):
    with pytest.raises(ValueError, match=r"(?i)invalid (lr|learning rate)"):
        cls(_p(), lr=bad)


@pytest.mark.parametrize("cls,key", [(SGD, "momentum"), (SGD, "weight_decay"), (SGD, "dampening"),
                                     (Adam, "eps"), (Adam, "weight_decay"), (AdamW, "eps"),
                                     (RMSprop, "alpha"), (RMSprop, "eps"), (RMSprop, "momentum"),
                                     (Adagrad, "eps"), (Adagrad, "lr_decay")])
def test_other_hyperparameters_nan_inf(cls, key):
    for bad in BAD:
        with pytest.raises(ValueError, match=f"Invalid {key}"):
            cls(_p(), lr=0.1, **{key: bad})


@pytest.mark.parametrize("betas", [(math.nan, 0.9), (0.9, 1.0), (-0.1, 0.9), (0.9, math.inf)])
def test_betas(betas):
    with pytest.raises(ValueError, match="Invalid beta"):
        Adam(_p(), betas=betas)


def test_non_numbers_are_type_errors():
    with pytest.raises(TypeError, match="lr must be a number"):
        SGD(_p(), lr="0.1")
    with pytest.raises(TypeError, match="lr must be a number"):
        Adam(_p(), lr=True)


def test_schedulers_validate():
    opt = SGD(_p(), lr=0.1)
    for make in (lambda: S.StepLR(opt, 1, gamma=math.nan), lambda: S.ExponentialLR(opt, math.inf),
                 lambda: S.MultiStepLR(opt, [1, 2], gamma=-0.5),
                 lambda: S.CosineAnnealingLR(opt, T_max=10, eta_min=math.nan)):
        with pytest.raises(ValueError, match="must be a finite number"):
            make()
    for make in (lambda: S.LinearLR(opt, start_factor=math.nan), lambda: S.LinearLR(opt, end_factor=math.nan),
                 lambda: S.ReduceLROnPlateau(opt, factor=math.nan), lambda: S.ReduceLROnPlateau(opt, min_lr=-1.0),
                 lambda: S.OneCycleLR(opt, max_lr=math.nan, total_steps=10),
                 lambda: S.OneCycleLR(opt, max_lr=0.1, total_steps=10, div_factor=math.inf)):
        with pytest.raises(ValueError):
            make()
    with pytest.raises(ValueError, match="step_size must be >= 1"):
        S.StepLR(opt, 0)
    with pytest.raises(TypeError, match="T_max must be an integer"):
        S.CosineAnnealingLR(opt, T_max=2.5)


def test_state_dict_of_another_algorithm_is_refused_at_load():
    p = _p()
    sgd = SGD(p, lr=0.1, momentum=0.9)
    p[0].grad = xbp.ones(2)
    sgd.step()
    adam = Adam(p)
    with pytest.raises(ValueError, match="saved by another optimizer"):
        adam.load_state_dict(sgd.state_dict())
    SGD(p, lr=0.1, momentum=0.9).load_state_dict(sgd.state_dict())      # the same algorithm loads


def test_against_torch_when_installed():
    torch = pytest.importorskip("torch")
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        torch.optim.Adam([w], lr=math.nan)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        Adam(_p(), lr=math.nan)
