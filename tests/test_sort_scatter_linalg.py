"""Sorting, scatter and linear algebra against PyTorch 2.13: values and gradients (ties, repeated
scatter indices, include_self), the in-place forms, and the errors for bad indices and dims."""
import types
import warnings

import numpy as np
import pytest

import xbp
from xbp.ops.decompositions import backend_linalg
from conftest import raises_checked

torch = pytest.importorskip("torch")

TIES = np.array([[3.0, 1.0, 2.0, 1.0, 3.0, 0.5], [2.0, 2.0, 2.0, 0.0, 1.0, 1.0]])


def both(a, device, requires_grad=True):
    return xbp.tensor(a, device=device, requires_grad=requires_grad), torch.tensor(a, requires_grad=requires_grad)


def weights(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape)


def backward_both(y, ty, device, seed=1):
    """Backpropagate the same random weighting of both outputs."""
    w = weights(tuple(ty.shape), seed)
    (y * xbp.tensor(w, device=device)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()


def close(x, t, **kw):
    np.testing.assert_allclose(x.detach().numpy(), t.detach().numpy(), **kw)


# --- sorting -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_with_ties_is_stable_and_routes_gradients_like_torch(device, dim, descending):
    x, t = both(TIES, device)
    v, i = xbp.sort(x, dim, descending=descending)
    tv, ti = torch.sort(t, dim=dim, descending=descending, stable=True)
    close(v, tv)
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    assert i.dtype == xbp.int64 and not i.requires_grad
    backward_both(v, tv, device)
    close(x.grad, t.grad)
    np.testing.assert_array_equal(x.argsort(dim, descending=descending).numpy(), ti.numpy())


def test_sort_puts_nan_last_ascending_and_first_descending(device):
    a = np.array([1.0, np.nan, -np.inf, 2.0, np.inf, np.nan])
    x = xbp.tensor(a, device=device)
    for desc in (False, True):
        v, i = x.sort(descending=desc)
        tv, ti = torch.tensor(a).sort(descending=desc, stable=True)
        np.testing.assert_array_equal(v.numpy(), tv.numpy())
        np.testing.assert_array_equal(i.numpy(), ti.numpy())


def test_topk_kthvalue_msort(device):
    a = np.random.default_rng(0).normal(size=(3, 5))
    x, t = both(a, device)
    for largest in (True, False):
        v, i = x.topk(3, 1, largest=largest)
        tv, ti = t.topk(3, 1, largest=largest)
        close(v, tv)
        np.testing.assert_array_equal(i.numpy(), ti.numpy())
    v, i = xbp.kthvalue(x, 2, 0, keepdim=True)
    tv, ti = torch.kthvalue(t, 2, 0, keepdim=True)
    close(v, tv)
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    backward_both(v, tv, device)
    close(x.grad, t.grad)
    close(xbp.msort(x), torch.msort(t))
    with pytest.raises(IndexError, match="topk"):
        x.topk(6)
    with pytest.raises(IndexError, match="kthvalue"):
        x.kthvalue(0)


def test_median_lower_rule_ties_and_nan(device):
    x, t = both(TIES, device)
    m = x.median()                       # even count: the lower of the two middle values
    tm = t.median()
    close(m, tm)
    m.backward()
    tm.backward()
    close(x.grad, t.grad)                # shared evenly among the entries equal to the median
    assert (x.grad.numpy() > 0).sum() > 1
    x, t = both(TIES, device)
    v, i = x.median(1)
    tv, ti = t.median(1)
    close(v, tv)
    backward_both(v, tv, device)
    close(x.grad, t.grad)
    a = TIES.copy()
    a[0, 2] = np.nan
    v, i = xbp.tensor(a, device=device).median(1)
    tv, ti = torch.tensor(a).median(1)
    np.testing.assert_array_equal(v.numpy(), tv.numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    v, i = xbp.tensor(a, device=device).nanmedian(1)
    tv, ti = torch.tensor(a).nanmedian(1)
    np.testing.assert_array_equal(v.numpy(), tv.numpy())
    assert np.isnan(xbp.tensor(a, device=device).median().item())
    assert xbp.tensor(a, device=device).nanmedian().item() == torch.tensor(a).nanmedian().item()


@pytest.mark.parametrize("interpolation", ["linear", "lower", "higher", "midpoint", "nearest"])
def test_quantile_matches_torch(device, interpolation):
    a = np.random.default_rng(0).normal(size=(3, 5))
    x, t = both(a, device)
    q = [0.0, 0.25, 0.5, 0.9, 1.0]
    y = xbp.quantile(x, xbp.tensor(q, dtype=xbp.float64, device=device), dim=1, keepdim=True,
                     interpolation=interpolation)
    ty = torch.quantile(t, torch.tensor(q, dtype=torch.float64), dim=1, keepdim=True, interpolation=interpolation)
    assert y.shape == tuple(ty.shape)
    close(y, ty, rtol=1e-12, atol=1e-12)
    backward_both(y, ty, device)
    close(x.grad, t.grad, rtol=1e-12, atol=1e-12)
    close(x.quantile(0.3), t.quantile(0.3))
    with pytest.raises(ValueError, match="quantile"):
        x.quantile(1.5)


def test_mode_unique_nonzero_searchsorted(device):
    b = np.array([[1.0, 2.0, 2.0, 3.0, 3.0, 0.0], [5.0, 5.0, 4.0, 4.0, 4.0, 4.0]])
    x, t = both(b, device)
    v, i = x.mode(1)
    tv, ti = t.mode(1)
    close(v, tv)
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    backward_both(v, tv, device)
    close(x.grad, t.grad)
    u, inv, cnt = xbp.unique(x.detach(), return_inverse=True, return_counts=True)
    tu, tinv, tcnt = torch.unique(t.detach(), return_inverse=True, return_counts=True)
    for a, b_ in ((u, tu), (inv, tinv), (cnt, tcnt)):
        np.testing.assert_array_equal(a.numpy(), b_.numpy())
    ud = xbp.unique(x.detach(), dim=1)
    np.testing.assert_array_equal(ud.numpy(), torch.unique(t.detach(), dim=1).numpy())
    m = x.detach() > 2
    np.testing.assert_array_equal(m.nonzero().numpy(), (t.detach() > 2).nonzero().numpy())
    for got, want in zip(xbp.nonzero(m, as_tuple=True), torch.nonzero(t.detach() > 2, as_tuple=True)):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(xbp.argwhere(m).numpy(), torch.argwhere(t.detach() > 2).numpy())
    seq = np.array([[1.0, 2.0, 2.0, 5.0], [0.0, 1.0, 3.0, 3.0]])
    vals = np.array([[2.0, 6.0], [3.0, -1.0]])
    for right in (False, True):
        got = xbp.searchsorted(xbp.tensor(seq, device=device), xbp.tensor(vals, device=device), right=right)
        np.testing.assert_array_equal(got.numpy(), torch.searchsorted(torch.tensor(seq), torch.tensor(vals),
                                                                      right=right).numpy())
        got = xbp.bucketize(xbp.tensor(vals, device=device), xbp.tensor(seq[0], device=device), right=right)
        np.testing.assert_array_equal(got.numpy(), torch.bucketize(torch.tensor(vals), torch.tensor(seq[0]),
                                                                   right=right).numpy())
    got = xbp.searchsorted(xbp.tensor(seq[0], device=device), xbp.tensor(vals, device=device), side="right",
                           out_int32=True)
    assert got.dtype == xbp.int32
    with pytest.raises(RuntimeError, match="searchsorted"):
        xbp.searchsorted(xbp.tensor(seq, device=device), xbp.tensor([1.0], device=device))


@pytest.mark.parametrize("op", ["sort", "argsort", "topk", "kthvalue", "median", "mode", "quantile"])
def test_sorting_dims_out_of_range_raise_index_error(device, op):
    x = xbp.tensor(TIES, device=device)
    calls = {"sort": lambda: x.sort(2), "argsort": lambda: x.argsort(-3), "topk": lambda: x.topk(1, 5),
             "kthvalue": lambda: x.kthvalue(1, 2), "median": lambda: x.median(2), "mode": lambda: x.mode(-3),
             "quantile": lambda: x.quantile(0.5, 2)}
    with pytest.raises(IndexError, match="Dimension out of range"):
        calls[op]()
    assert xbp.sort(x, axis=0).values.shape == x.shape


# --- scatter family ---------------------------------------------------------------------------------
DUP = np.array([[0, 1, 2, 0], [2, 2, 0, 0]])        # repeated targets within each column


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_with_repeated_indices_matches_torch(device, reduce, include_self):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4))
    s = rng.normal(size=(2, 4))
    s[1, 3] = s[0, 3]                       # a tie for amax/amin in one target
    a[1, 1] = 0.0                           # a zero for prod
    x, t = both(a, device)
    sx, st = both(s, device)
    y = x.scatter_reduce(0, xbp.tensor(DUP, device=device), sx, reduce, include_self=include_self)
    ty = t.scatter_reduce(0, torch.tensor(DUP), st, reduce, include_self=include_self)
    close(y, ty, rtol=1e-12)
    backward_both(y, ty, device)
    close(x.grad, t.grad, rtol=1e-12)
    close(sx.grad, st.grad, rtol=1e-12)


def test_scatter_add_duplicates_and_gradients(device):
    rng = np.random.default_rng(0)
    x, t = both(rng.normal(size=(3, 4)), device)
    sx, st = both(rng.normal(size=(2, 4)), device)
    y = xbp.scatter_add(x, 0, xbp.tensor(DUP, device=device), sx)
    ty = torch.scatter_add(t, 0, torch.tensor(DUP), st)
    close(y, ty)
    backward_both(y, ty, device)
    close(x.grad, t.grad)
    close(sx.grad, st.grad)


def test_scatter_with_repeated_index_takes_the_last_source(device):
    a = np.zeros((2, 3))
    src = np.array([[1.0, 2.0, 3.0]])
    x = xbp.tensor(a, device=device, requires_grad=True)
    s = xbp.tensor(src, device=device, requires_grad=True)
    y = x.scatter(1, xbp.tensor([[0, 0, 2]], device=device), s)
    np.testing.assert_array_equal(y.detach().numpy(), [[2.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    y.sum().backward()
    np.testing.assert_array_equal(s.grad.numpy(), [[0.0, 1.0, 1.0]])     # the overwritten entry gets none
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    # unique indices: values and gradients as torch
    x, t = both(np.arange(6.0).reshape(2, 3), device)
    sx, st = both(src, device)
    idx = np.array([[2, 0, 1]])
    y = x.scatter(1, xbp.tensor(idx, device=device), sx)
    ty = t.scatter(1, torch.tensor(idx), st)
    close(y, ty)
    backward_both(y, ty, device)
    close(x.grad, t.grad)
    close(sx.grad, st.grad)
    close(x.detach().scatter(1, xbp.tensor(idx, device=device), 7.5), t.detach().scatter(1, torch.tensor(idx), 7.5))
    with warnings.catch_warnings():               # torch deprecates reduce= on scatter; xbp keeps it
        warnings.simplefilter("ignore", UserWarning)
        want = t.detach().scatter(0, torch.tensor([[1, 1, 1]]), st.detach(), reduce="add")
    close(x.detach().scatter(0, xbp.tensor([[1, 1, 1]], device=device), sx.detach(), reduce="add"), want)


def test_index_add_copy_fill_masked_scatter_match_torch(device):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4))
    src = rng.normal(size=(3, 3))
    idx = np.array([3, 0, 3])                       # a repeated index: index_add sums both
    x, t = both(a, device)
    sx, st = both(src, device)
    y = xbp.index_add(x, 1, xbp.tensor(idx, device=device), sx, alpha=-2.0)
    ty = torch.index_add(t, 1, torch.tensor(idx), st, alpha=-2.0)
    close(y, ty)
    backward_both(y, ty, device)
    close(x.grad, t.grad)
    close(sx.grad, st.grad)
    uidx = np.array([3, 0, 1])
    x, t = both(a, device)
    sx, st = both(src, device)
    y = x.index_copy(1, xbp.tensor(uidx, device=device), sx) * 1.0 + x.index_fill(0, xbp.tensor([2], device=device), -1.0)
    ty = t.index_copy(1, torch.tensor(uidx), st) * 1.0 + t.index_fill(0, torch.tensor([2]), -1.0)
    close(y, ty)
    backward_both(y, ty, device)
    close(x.grad, t.grad)
    close(sx.grad, st.grad)
    x, t = both(a, device)
    sx, st = both(rng.normal(size=(12,)), device)
    mask = a > 0
    y = x.masked_scatter(xbp.tensor(mask, device=device), sx)
    ty = t.masked_scatter(torch.tensor(mask), st)
    close(y, ty)
    backward_both(y, ty, device)
    close(x.grad, t.grad)
    close(sx.grad, st.grad)


def test_in_place_scatter_forms_bump_the_version_and_stay_on_the_graph(device):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4))
    src = rng.normal(size=(2, 4))
    x, t = both(a, device)
    sx, st = both(src, device)
    y, ty = x * 1.0, t * 1.0
    v0 = y._version[0]
    out = y.scatter_add_(0, xbp.tensor(DUP, device=device), sx)
    assert out is y and y._version[0] == v0 + 1
    ty.scatter_add_(0, torch.tensor(DUP), st)
    y.index_add_(1, xbp.tensor([1, 1], device=device), sx[:, :3].mT, alpha=0.5)
    ty.index_add_(1, torch.tensor([1, 1]), st[:, :3].mT, alpha=0.5)
    y.scatter_(1, xbp.tensor([[3], [0], [1]], device=device), 2.0)
    ty.scatter_(1, torch.tensor([[3], [0], [1]]), 2.0)
    y.index_fill_(0, xbp.tensor([1], device=device), 0.25)
    ty.index_fill_(0, torch.tensor([1]), 0.25)
    close(y, ty)
    backward_both(y, ty, device)
    close(x.grad, t.grad)
    close(sx.grad, st.grad)
    leaf = xbp.tensor(a, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        leaf.scatter_add_(0, xbp.tensor(DUP, device=device), sx)
    # a tensor saved for backward and then scattered into in place is caught
    z = x * 1.0
    w = z * z
    z.index_fill_(0, xbp.tensor([0], device=device), 1.0)
    with pytest.raises(RuntimeError, match="modified by an in-place"):
        w.sum().backward()


@pytest.mark.parametrize("bad", [[[0, -1, 2, 0]], [[0, 3, 2, 0]]])
@pytest.mark.parametrize("op", ["scatter", "scatter_add", "scatter_reduce", "index_add", "index_copy", "index_fill"])
def test_bad_indices_are_refused_with_an_index_error_naming_the_op(device, op, bad):
    x = xbp.tensor(np.zeros((3, 4)), device=device)
    src = xbp.tensor(np.ones((1, 4)), device=device)
    idx = xbp.tensor(np.array(bad), device=device)
    idx1 = xbp.tensor(np.array(bad[0][:3]) if bad[0][1] < 0 else np.array([0, 4, 1]), device=device)
    calls = {"scatter": lambda: x.scatter(0, idx, src), "scatter_add": lambda: x.scatter_add(0, idx, src),
             "scatter_reduce": lambda: x.scatter_reduce(0, idx, src, "amax"),
             "index_add": lambda: x.index_add(1, idx1, xbp.tensor(np.ones((3, 3)), device=device)),
             "index_copy": lambda: x.index_copy(1, idx1, xbp.tensor(np.ones((3, 3)), device=device)),
             "index_fill": lambda: x.index_fill(1, idx1, 1.0)}
    with raises_checked(IndexError, match=op):
        calls[op]()


def test_scatter_argument_errors(device):
    x = xbp.tensor(np.zeros((3, 4)), device=device)
    src = xbp.tensor(np.ones((2, 4)), device=device)
    with pytest.raises(TypeError, match="integer"):
        x.scatter_add(0, xbp.tensor(np.zeros((2, 4)), device=device), src)
    with pytest.raises(RuntimeError, match="same number of dims"):
        x.scatter_add(0, xbp.tensor([0, 1], device=device), src)
    with pytest.raises(RuntimeError, match="dtype"):
        x.scatter_add(0, xbp.tensor(DUP, device=device), src.to(xbp.float32))
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.scatter_add(2, xbp.tensor(DUP, device=device), src)
    with pytest.raises(RuntimeError, match="reduce"):
        x.scatter_reduce(0, xbp.tensor(DUP, device=device), src, "max")
    with pytest.raises(RuntimeError, match="masked_scatter"):
        x.masked_scatter(xbp.tensor(np.ones((3, 4), dtype=bool), device=device), src)


# --- matrices ---------------------------------------------------------------------------------------
def _weighted(outs, device=None):
    """sum_k sum(out_k * w_k) with fixed random weights w_k (one scalar to backpropagate)."""
    total = 0.0
    for k, o in enumerate(outs):
        w = weights(tuple(o.shape), seed=10 + k)
        total = total + (o * (xbp.tensor(w, device=device) if device else torch.tensor(w))).sum()
    return total


def test_matrix_helpers_match_torch(device):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 3, 4))
    b = rng.normal(size=(2, 4, 3))

    def outs(L, x, bx):
        return [x.tril(-1), x.triu(2), L.diag_embed(x[..., 0, :], 1, 0, 2), L.diagonal(x, 1, 2, 1), L.diag(x[0]),
                L.diag(x[0, 0], -1), x[0].trace(), L.baddbmm(x[:, :, :3], x, bx, beta=0.5, alpha=2.0),
                L.addmm(x[0, :, :3], x[1], bx[0]), L.kron(x[0, :1, :2], bx[1, :1]), L.cdist(x[0], bx[1].mT),
                L.cdist(x[0], bx[1].mT, p=1), L.mv(x[0], bx[0, :, 0]), L.dot(x[0, 0], x[1, 1]),
                L.bmm(x, bx), L.mm(x[0], bx[1]), L.addmv(x[0, :, 0], x[1], bx[0, :, 1], alpha=3.0)]
    x, t = both(a, device)
    bx, bt = both(b, device)
    ys, tys = outs(xbp, x, bx), outs(torch, t, bt)
    for y, ty in zip(ys, tys):
        close(y, ty)
    _weighted(ys, device).backward()
    _weighted(tys).backward()
    close(x.grad, t.grad)
    close(bx.grad, bt.grad)
    y = xbp.cross(x[..., :3], bx[:, :3], dim=-1)
    ty = torch.linalg.cross(t[..., :3], bt[:, :3], dim=-1)
    close(y, ty)
    close(x.detach().narrow(2, -3, 2), t.detach().narrow(2, -3, 2))
    with pytest.raises(RuntimeError, match="mm"):
        xbp.mm(x[0], x[0])
    with pytest.raises(IndexError, match="Dimension out of range"):
        xbp.diagonal(x, 0, 0, 3)


def test_cdist_gradient_at_zero_distance_is_finite_like_torch(device):
    a = np.array([[0.0, 1.0], [2.0, -1.0]])
    for p in (1.0, 2.0):
        x, t = both(a, device)
        xbp.cdist(x, x, p=p).sum().backward()
        torch.cdist(t, t, p=p).sum().backward()
        assert np.isfinite(x.grad.numpy()).all()
        close(x.grad, t.grad)


# --- linear algebra ---------------------------------------------------------------------------------
def _spd(t):
    eye = torch.eye(t.shape[-1], dtype=t.dtype) if isinstance(t, torch.Tensor) else \
        xbp.eye(t.shape[-1], dtype=t.dtype, device=t.device)
    return t @ t.mT + 3.0 * eye


LINALG = {
    "det": (lambda L, a: L.det(a), (2, 3, 3)),
    "slogdet": (lambda L, a: L.slogdet(a)[1], (3, 3)),
    "inv": (lambda L, a: L.inv(a), (2, 3, 3)),
    "solve": (lambda L, a: L.solve(a, a[..., :2].mT.mT @ a[..., :2].mT[..., :2]), (2, 3, 3)),
    "cholesky": (lambda L, a: L.cholesky(_spd(a)), (2, 3, 3)),
    "qr": (lambda L, a: sum(f.sum() * (k + 1) for k, f in enumerate(L.qr(a))), (4, 3)),
    "svd": (lambda L, a: (lambda u, s, vh: (u * u) @ s + (vh * vh)[..., :2, :].sum())(*L.svd(a, full_matrices=False)),
            (4, 3)),
    "svdvals": (lambda L, a: L.svdvals(a), (3, 4)),
    "eigh": (lambda L, a: (lambda w, v: w.sum() + ((v * v) * w[None]).sum())(*L.eigh(a + a.mT)), (3, 3)),
    "eigvalsh": (lambda L, a: L.eigvalsh(a + a.mT), (2, 3, 3)),
    "matrix_norm_nuc": (lambda L, a: L.matrix_norm(a, "nuc"), (3, 4)),
    "matrix_norm_2": (lambda L, a: L.matrix_norm(a, 2, dim=(0, 2)), (3, 2, 4)),
    "matrix_norm_-1": (lambda L, a: L.matrix_norm(a, -1), (3, 4)),
    "vector_norm_inf": (lambda L, a: L.vector_norm(a, float("inf"), dim=1), (3, 4)),
    "norm": (lambda L, a: L.norm(a, dim=(0, 1)), (3, 4)),
    "pinv": (lambda L, a: L.pinv(a), (4, 3)),
    "solve_triangular": (lambda L, a: L.solve_triangular(a + 3 * _eye_like(a), a[..., :2] * 1.0, upper=True), (3, 3)),
    "solve_triangular_unit_right": (lambda L, a: L.solve_triangular(a, a[..., :2, :] * 1.0, upper=False, left=False,
                                                                      unitriangular=True), (3, 3)),
    "lstsq": (lambda L, a: L.lstsq(a, a[..., :2] ** 2).solution, (4, 3)),
    "cond": (lambda L, a: L.cond(a), (3, 3)),
    "matrix_exp": (lambda L, a: L.matrix_exp(a * 3.0), (2, 3, 3)),
}


def _eye_like(a):
    if isinstance(a, torch.Tensor):
        return torch.eye(a.shape[-1], dtype=a.dtype)
    return xbp.eye(a.shape[-1], dtype=a.dtype, device=a.device)


@pytest.mark.parametrize("name", list(LINALG))
def test_linalg_values_and_gradients_match_torch(device, name):
    f, shape = LINALG[name]
    a = np.random.default_rng(0).normal(size=shape)
    x, t = both(a, device)
    y, ty = f(xbp.linalg, x), f(torch.linalg, t)
    close(y, ty, rtol=1e-9, atol=1e-10)
    backward_both(y, ty, device)
    close(x.grad, t.grad, rtol=1e-8, atol=1e-10)


def test_linalg_second_order_matches_torch(device):
    a = np.random.default_rng(0).normal(size=(3, 3))
    x, t = both(a, device)
    (g,) = xbp.grad(xbp.linalg.det(x) + xbp.linalg.inv(x).sum() + xbp.linalg.cholesky(_spd(x)).sum(), [x],
                    create_graph=True)
    (tg,) = torch.autograd.grad(torch.linalg.det(t) + torch.linalg.inv(t).sum() + torch.linalg.cholesky(_spd(t)).sum(),
                                [t], create_graph=True)
    close(g, tg)
    (g * g).sum().backward()
    (tg * tg).sum().backward()
    close(x.grad, t.grad, rtol=1e-8)


def test_top_level_torch_spellings(device):
    a = np.random.default_rng(0).normal(size=(3, 3))
    x, t = both(a, device, requires_grad=False)
    close(xbp.det(x), torch.det(t))
    close(xbp.logdet(_spd(x)), torch.logdet(_spd(t)))
    close(x.inverse(), t.inverse())
    close(xbp.slogdet(x).logabsdet, torch.slogdet(t).logabsdet)
    close(xbp.slogdet(x).sign, torch.slogdet(t).sign)
    u, s, v = xbp.svd(x)
    tu, ts, tv = torch.svd(t)
    close(s, ts)
    close((u * s) @ v.mT, (tu * ts) @ tv.mT)
    q, r = x.qr()
    close(q @ r, t)
    assert np.isnan(xbp.logdet(-_spd(x)).item())
    close(xbp.linalg.matrix_rank(x[:2].mT @ x[:2]), torch.linalg.matrix_rank(t[:2].mT @ t[:2]))
    close(xbp.linalg.matrix_power(x, -2), torch.linalg.matrix_power(t, -2))


def test_linalg_errors(device):
    x = xbp.tensor(np.ones((2, 3)), device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="square"):
        xbp.linalg.det(x)
    with pytest.raises(RuntimeError, match="floating-point"):
        xbp.linalg.inv(xbp.tensor([[1, 2], [3, 4]], device=device))
    with pytest.raises(RuntimeError, match="not differentiable"):
        xbp.linalg.qr(x.mT, mode="complete")
    with pytest.raises(RuntimeError, match="solve"):
        xbp.linalg.solve(xbp.tensor(np.eye(3), device=device), xbp.tensor(np.ones((2, 2)), device=device))
    x = xbp.tensor(np.random.default_rng(0).normal(size=(2, 3)), device=device, requires_grad=True)
    u, s, vh = xbp.linalg.svd(x)                   # full_matrices=True with m != n: Vh is (3, 3)
    (s.sum() + (u * u).sum() + (vh[:2] ** 2).sum()).backward()     # fine: nothing flows into Vh's last row
    with pytest.raises(RuntimeError, match="full_matrices"):
        xbp.linalg.svd(x)[2].sum().backward()


def test_a_backend_without_linalg_gets_a_clear_error():
    bare = types.SimpleNamespace(ns=types.SimpleNamespace(), device="bare")
    with pytest.raises(RuntimeError, match="no Array API linalg extension"):
        backend_linalg("det", bare)


def test_axis_and_keepdims_aliases(device):
    a = np.random.default_rng(0).normal(size=(3, 4))
    x = xbp.tensor(a, device=device)
    idx = xbp.tensor([[0, 1, 2, 0]], device=device)
    np.testing.assert_array_equal(x.scatter_add(axis=0, index=idx, src=x[:1]).numpy(),
                                  x.scatter_add(0, idx, x[:1]).numpy())
    np.testing.assert_array_equal(xbp.index_fill(x, axis=1, index=xbp.tensor([1], device=device), value=0.0).numpy(),
                                  x.index_fill(1, xbp.tensor([1], device=device), 0.0).numpy())
    assert x.median(axis=1, keepdims=True).values.shape == (3, 1)
    assert x.kthvalue(2, axis=0, keepdims=True).values.shape == (1, 4)
    assert x.narrow(axis=1, start=1, length=2).shape == (3, 2)
    assert xbp.linalg.vector_norm(x, axis=0, keepdims=True).shape == (1, 4)
    assert xbp.linalg.matrix_norm(x, axis=(0, 1), keepdims=True).shape == (1, 1)
    assert xbp.quantile(x, 0.5, axis=0, keepdims=True).shape == (1, 4)
    with pytest.raises(TypeError, match="dim"):                   # dim given twice
        x.scatter_add(0, idx, x[:1], axis=0)
    with pytest.raises(TypeError, match="not both"):
        xbp.scatter_add(x, dim=0, index=idx, src=x[:1], axis=0)


def test_nanquantile_tri_indices_block_diag(device):
    a = np.random.default_rng(0).normal(size=(3, 5))
    a[0, 1] = np.nan
    a[2, :] = np.nan
    x, t = both(a, device)
    y = xbp.nanquantile(x, [0.1, 0.5], dim=1)
    ty = torch.nanquantile(t, torch.tensor([0.1, 0.5], dtype=torch.float64), dim=1)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
    keep = np.isfinite(ty.detach().numpy())
    w = np.where(keep, weights(tuple(ty.shape)), 0.0)
    (xbp.where(xbp.tensor(keep, device=device), y, 0.0) * xbp.tensor(w, device=device)).sum().backward()
    (torch.where(torch.tensor(keep), ty, 0.0) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.nan_to_num(t.grad.numpy()), rtol=1e-12)
    for args in ((3, 4), (4, 3, 1), (3, 3, -1), (0, 2)):
        np.testing.assert_array_equal(xbp.tril_indices(*args, device=device).numpy(), torch.tril_indices(*args).numpy())
        np.testing.assert_array_equal(xbp.triu_indices(*args, device=device).numpy(), torch.triu_indices(*args).numpy())
    parts = [np.array(2.0), np.arange(3.0), np.ones((2, 2))]
    xs = [xbp.tensor(p, device=device, requires_grad=True) for p in parts]
    ts = [torch.tensor(p, requires_grad=True) for p in parts]
    y, ty = xbp.block_diag(*xs), torch.block_diag(*ts)
    close(y, ty)
    backward_both(y, ty, device)
    for a_, b_ in zip(xs, ts):
        close(a_.grad, b_.grad)


def _cofactors(a):
    n = a.shape[0]
    c = np.zeros_like(a)
    for i in range(n):
        for j in range(n):
            minor = np.delete(np.delete(a, i, 0), j, 1)
            c[i, j] = (-1) ** (i + j) * np.linalg.det(minor)
    return c


def test_det_gradient_of_singular_matrices_is_the_cofactor_matrix(device):
    # d det / dA = cof(A), also for a singular A of rank n-1 (PyTorch 2.13 returns 0 for this one;
    # det(A + eps E_00) = 4 eps shows the cofactor is right)
    a = np.array([[[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]], [[1.0, 2.0, 0.0], [3.0, 1.0, 1.0], [0.0, 1.0, 2.0]]])
    x = xbp.tensor(a, device=device, requires_grad=True)
    xbp.linalg.det(x).sum().backward()
    for k in range(2):
        np.testing.assert_allclose(x.grad.numpy()[k], _cofactors(a[k]), atol=1e-12)
    eps = 1e-7
    bumped = a[0].copy()
    bumped[0, 0] += eps
    assert abs((np.linalg.det(bumped) - np.linalg.det(a[0])) / eps - 4.0) < 1e-5


def test_singular_and_indefinite_inputs_get_errors_naming_the_op(device):
    s = xbp.tensor(np.array([[1.0, 2.0], [2.0, 4.0]]), device=device)
    with pytest.raises(RuntimeError, match="inv: the matrix .* is singular"):
        xbp.linalg.inv(s)
    with pytest.raises(RuntimeError, match="solve: the matrix .* is singular"):
        xbp.linalg.solve(s, s)
    with pytest.raises(RuntimeError, match="cholesky: .* not symmetric positive-definite"):
        xbp.linalg.cholesky(-xbp.eye(2, dtype=xbp.float64, device=device))


def _program(T, X, Y, labels, device=None):
    """One PyTorch-style program, run unchanged with T = torch or T = xbp: k-nearest-neighbour votes
    (cdist, topk, gather, mode), a segment mean (scatter_reduce), a Gaussian log-likelihood
    (cholesky, solve_triangular, diagonal) and a robust scale (median, quantile). Returns a scalar
    loss and the votes."""
    kw = {} if T is torch else {"device": device}
    d = T.cdist(X, Y)                                            # (n, m)
    near = d.topk(3, dim=1, largest=False)
    votes = T.gather(labels.expand(X.shape[0], -1), 1, near.indices).mode(dim=1).values
    counts = T.zeros(3, dtype=X.dtype, **kw).scatter_add(0, labels, T.ones(labels.shape[0], dtype=X.dtype, **kw))
    centroid = T.zeros(3, Y.shape[1], dtype=X.dtype, **kw).scatter_reduce(
        0, labels[:, None].expand(-1, Y.shape[1]), Y, reduce="mean", include_self=False)
    cov = Y.mT @ Y / Y.shape[0] + 0.5 * T.eye(Y.shape[1], dtype=X.dtype, **kw)
    L = T.linalg.cholesky(cov)
    z = T.linalg.solve_triangular(L, (X - centroid[0]).mT, upper=False)
    loglik = -0.5 * (z * z).sum() - X.shape[0] * T.log(T.diagonal(L)).sum()
    scale = (X - X.median(dim=0).values).abs().quantile(0.75, dim=0).sum()
    loss = -loglik + near.values.sum() + scale + (centroid * counts[:, None]).sum() + T.linalg.det(cov).log()
    return loss, votes


def test_a_pytorch_program_runs_unchanged_with_the_same_results(device):
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(5, 2)), rng.normal(size=(6, 2))
    lab = np.array([0, 1, 2, 1, 0, 2])
    x, t = both(X, device)
    y, ty = both(Y, device)
    loss, votes = _program(xbp, x, y, xbp.tensor(lab, device=device), device)
    tloss, tvotes = _program(torch, t, ty, torch.tensor(lab))
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-10)
    np.testing.assert_array_equal(votes.numpy(), tvotes.numpy())
    loss.backward()
    tloss.backward()
    close(x.grad, t.grad, rtol=1e-9, atol=1e-12)
    close(y.grad, ty.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put_take_put_match_torch(device, accumulate):
    rng = np.random.default_rng(0)
    a, v = rng.normal(size=(3, 4)), rng.normal(size=(3,))
    i0, i1 = np.array([0, 2, 0]), np.array([1, 3, 2])          # repeats only with accumulate below
    if accumulate:
        i1 = np.array([1, 3, 1])
    x, t = both(a, device)
    vx, vt = both(v, device)
    y = x.index_put((xbp.tensor(i0, device=device), xbp.tensor(i1, device=device)), vx, accumulate=accumulate)
    ty = t.index_put((torch.tensor(i0), torch.tensor(i1)), vt, accumulate=accumulate)
    close(y, ty)
    backward_both(y, ty, device)
    close(x.grad, t.grad)
    close(vx.grad, vt.grad)
    idx = np.array([[0, -1], [5, 5]])
    x, t = both(a, device)
    y, ty = xbp.take(x, xbp.tensor(idx, device=device)), torch.take(t, torch.tensor(idx))
    close(y, ty)
    backward_both(y, ty, device)
    close(x.grad, t.grad)
    src = rng.normal(size=(2, 2))
    uidx = idx if accumulate else np.array([[0, -1], [5, 6]])
    got = xbp.tensor(a, device=device).put(xbp.tensor(uidx, device=device), xbp.tensor(src, device=device),
                                           accumulate=accumulate)
    close(got, torch.tensor(a).put(torch.tensor(uidx), torch.tensor(src), accumulate=accumulate))
    with raises_checked(IndexError, match="take"):
        xbp.take(xbp.tensor(a, device=device), xbp.tensor([12], device=device))
    with raises_checked(IndexError, match="index"):
        x.detach().index_put((xbp.tensor([3], device=device),), vx.detach()[:1])


@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_solve_and_inverse_match_torch(device, upper):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 3, 2))
    x, t = both(a, device)
    bx, bt = both(b, device)
    L, tL = xbp.linalg.cholesky(_spd(x), upper=upper), torch.linalg.cholesky(_spd(t), upper=upper)
    ys = [xbp.cholesky_solve(bx, L, upper=upper), L.cholesky_inverse(upper=upper)]
    tys = [torch.cholesky_solve(bt, tL, upper=upper), torch.cholesky_inverse(tL, upper=upper)]
    for y, ty in zip(ys, tys):
        close(y, ty, rtol=1e-10, atol=1e-12)
    _weighted(ys, device).backward()
    _weighted(tys).backward()
    close(x.grad, t.grad, rtol=1e-8, atol=1e-12)
    close(bx.grad, bt.grad, rtol=1e-8, atol=1e-12)


def test_unique_consecutive_matches_torch(device):
    a = np.array([[1, 1, 2, 2, 2, 3, 1, 1], [0, 0, 2, 2, 2, 3, 1, 1]])
    x, t = xbp.tensor(a, device=device), torch.tensor(a)
    for dim in (None, 1):
        got = x.unique_consecutive(return_inverse=True, return_counts=True, dim=dim)
        want = t.unique_consecutive(return_inverse=True, return_counts=True, dim=dim)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.numpy(), w.numpy())
    np.testing.assert_array_equal(xbp.unique_consecutive(x).numpy(), torch.unique_consecutive(t).numpy())
    np.testing.assert_array_equal(xbp.unique(x, sorted=True, return_counts=True)[1].numpy(),
                                  torch.unique(t, return_counts=True)[1].numpy())


def test_searchsorted_sorter_and_scalar_values(device):
    seq = np.array([5.0, 1.0, 3.0, 2.0])
    sorter = np.argsort(seq, kind="stable")
    vals = np.array([[2.5, 0.0, 5.0]])
    got = xbp.searchsorted(xbp.tensor(seq, device=device), xbp.tensor(vals, device=device),
                           sorter=xbp.tensor(sorter, device=device), side="right")
    want = torch.searchsorted(torch.tensor(seq), torch.tensor(vals), sorter=torch.tensor(sorter), side="right")
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    b = xbp.tensor([1.0, 2.0, 4.0], device=device)
    assert xbp.bucketize(3.0, b).item() == torch.bucketize(3.0, torch.tensor([1.0, 2.0, 4.0])).item() == 2
    with pytest.raises(RuntimeError, match="bucketize"):
        xbp.bucketize(xbp.tensor([1.0], device=device), xbp.tensor([[1.0]], device=device))
    with pytest.raises(RuntimeError, match="contradict"):
        xbp.searchsorted(b, b, right=True, side="left")
