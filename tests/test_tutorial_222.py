"""The classic 2-2-2 network from Matt Mazur's "A Step by Step Backpropagation Example", written
with core functions only: forward output, loss, and one SGD step against the published numbers."""
import numpy as np
import pytest

import xbp

# published values (https://mattmazur.com/2015/03/17/a-step-by-step-backpropagation-example/)
OUT = [0.75136507, 0.772928465]
LOSS = 0.298371109
W_AFTER = {"w1": 0.149780716, "w2": 0.19956143, "w3": 0.24975114, "w4": 0.29950229,
           "w5": 0.35891648, "w6": 0.408666186, "w7": 0.511301270, "w8": 0.561370121}


def _net(device, dtype):
    t = lambda v, g=True: xbp.tensor(v, dtype=dtype, device=device, requires_grad=g)  # noqa: E731
    # rows are output units: h1 = w1 i1 + w2 i2 + b1, h2 = w3 i1 + w4 i2 + b1
    W1 = t([[0.15, 0.20], [0.25, 0.30]])
    W2 = t([[0.40, 0.45], [0.50, 0.55]])
    b1, b2 = 0.35, 0.60               # the tutorial keeps the biases fixed
    x = t([0.05, 0.10], False)
    target = t([0.01, 0.99], False)
    return W1, W2, b1, b2, x, target


def _forward(W1, W2, b1, b2, x, target):
    h = xbp.sigmoid(xbp.linear(x, W1) + b1)
    out = xbp.sigmoid(h @ W2.T + b2)
    loss = ((out - target) ** 2).sum() / 2
    return out, loss


@pytest.mark.parametrize("dtype", [xbp.float64, xbp.float32])
def test_mazur_222_forward_backward_and_sgd_step(device, dtype):
    W1, W2, b1, b2, x, target = _net(device, dtype)
    out, loss = _forward(W1, W2, b1, b2, x, target)
    tol = 1e-8 if dtype == xbp.float64 else 1e-6
    np.testing.assert_allclose(out.detach().numpy(), OUT, atol=tol)
    np.testing.assert_allclose(loss.item(), LOSS, atol=tol)
    assert out.dtype == dtype and loss.dtype == dtype

    loss.backward()
    assert W1.grad.shape == (2, 2) and W2.grad.shape == (2, 2) and W1.grad.dtype == dtype
    # dE/dw5 published as 0.082167041
    np.testing.assert_allclose(W2.grad[0, 0].item(), 0.082167041, atol=tol)
    with xbp.no_grad():
        for W in (W1, W2):
            W -= 0.5 * W.grad
    w = W1.detach().numpy().reshape(-1).tolist() + W2.detach().numpy().reshape(-1).tolist()
    got = dict(zip(["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"], w))
    for k, v in W_AFTER.items():
        assert abs(got[k] - v) < (2e-8 if dtype == xbp.float64 else 1e-6), (k, got[k], v)
    assert W1.is_leaf and W1.requires_grad and W1.dtype == dtype


def test_mazur_222_with_xbp_grad_and_elementwise_ops(device):
    # the same network with the weights as separate scalars, as in the post
    t = lambda v: xbp.tensor(v, dtype=xbp.float64, device=device, requires_grad=True)  # noqa: E731
    w = [t(v) for v in (0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55)]
    i1, i2 = 0.05, 0.10
    h1 = (w[0] * i1 + w[1] * i2 + 0.35).sigmoid()
    h2 = (w[2] * i1 + w[3] * i2 + 0.35).sigmoid()
    o1 = (w[4] * h1 + w[5] * h2 + 0.60).sigmoid()
    o2 = (w[6] * h1 + w[7] * h2 + 0.60).sigmoid()
    loss = 0.5 * (0.01 - o1) ** 2 + 0.5 * (0.99 - o2) ** 2
    assert abs(o1.item() - OUT[0]) < 1e-8 and abs(o2.item() - OUT[1]) < 1e-8
    assert abs(loss.item() - LOSS) < 1e-8
    grads = xbp.grad(loss, w)
    new = [wi.item() - 0.5 * gi.item() for wi, gi in zip(w, grads)]
    for k, v in zip(["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"], new):
        assert abs(v - W_AFTER[k]) < 2e-8, (k, v)
