"""The passes of xbp/_compile_passes.py: each on a small program written here (before/after, the
replay's result against NumPy written in the test), the backend's direct-call table against the
wrappers it replaces, buffer reuse never aliasing a returned or live value, and the inlined
optimizer steps against eager xbp (float64: bit for bit) with schedulers and hand-set learning
rates."""
import types

import numpy as np
import pytest

import xbp
import xbp.nn as nn
import xbp.nn.functional as F
from xbp import _compile_passes as P
from xbp._backend import _DIRECT_CALLS, NumpyBackend, get_backend
from xbp._compile import _Plan
from xbp._compile_passes import _S
from xbp._pyguards import PythonState

XP = get_backend("cpu")


def _recording(entries, values, inputs=(), consts=None, written=()):
    """A stand-in for a `_Recorder` after a recording: the entries and the arrays of each slot."""
    consts = dict(consts or {})
    keep = list(values.values()) + list(consts.values())
    slot_of = {id(v): s for s, v in values.items()}
    slot_of.update({id(v): s for s, v in consts.items()})
    return types.SimpleNamespace(entries=entries, consts=consts, written=set(written),
                                 input_slots={s: k for k, s in enumerate(inputs)}, clean_ext={},
                                 keep=keep, slot_of=slot_of, py_state=PythonState(None))


def _plan(entries, values, out, inputs=(0,), passes=(), consts=None, written=()):
    rec = _recording(entries, values, inputs, consts, written)
    return _Plan(rec, out, passes=list(passes))


def _run(plan, *arrays):
    return plan.run([xbp.tensor(a) for a in arrays])


def _out(slot):
    return ("tensor", slot, XP)


# --- drop_noop_views ------------------------------------------------------------------------------------
def test_drop_noop_views_drops_a_reshape_to_the_same_shape_and_keeps_a_real_one():
    x = np.arange(6.0).reshape(2, 3)
    same, flat = x.reshape(2, 3), x.reshape(6)
    y = np.exp(same)
    z = np.add(y, flat.reshape(2, 3))
    entries = [("input", 0, 0),
               ("call", NumpyBackend.reshape, (_S(0), (2, 3)), {}, _S(1)),
               ("call", np.exp, (_S(1),), {}, _S(2)),
               ("call", NumpyBackend.reshape, (_S(0), (6,)), {}, _S(3)),
               ("call", NumpyBackend.reshape, (_S(3), (2, 3)), {}, _S(4)),
               ("call", np.add, (_S(2), _S(4)), {}, _S(5))]
    values = {0: x, 1: same, 2: y, 3: flat, 4: flat.reshape(2, 3), 5: z}
    plan = _plan(entries, values, _out(5), passes=[P.drop_noop_views])
    assert plan.changes == {"drop_noop_views": 1}
    assert "(s0, (2, 3, ))" not in plan.source and "(s0, (6, ))" in plan.source
    xs = np.linspace(-1, 1, 6).reshape(2, 3)
    np.testing.assert_array_equal(_run(plan, xs).numpy(), np.exp(xs) + xs)


def test_drop_noop_views_keeps_a_same_dtype_astype_that_copies():
    x = np.arange(4.0)
    c = x.astype(np.float64)              # copy=True: a new array, which a later write must not reach x through
    entries = [("input", 0, 0), ("call", NumpyBackend.astype, (_S(0), np.dtype("float64")), {}, _S(1)),
               ("call", np.multiply, (_S(1), 2.0), {"out": (_S(1),)}, _S(1))]
    plan = _plan(entries, {0: x, 1: c}, _out(1), passes=[P.drop_noop_views], written={1})
    assert plan.changes == {}
    xs = np.arange(4.0)
    np.testing.assert_array_equal(_run(plan, xs).numpy(), xs * 2)
    np.testing.assert_array_equal(xs, np.arange(4.0))        # the input was not written


# --- fold_constants -------------------------------------------------------------------------------------
def test_fold_constants_folds_calls_on_constants_only():
    one = np.ones((), np.float32)
    scale = np.asarray(one / np.float32(64.0))        # 0-d results are arrays in a recording
    neg = np.asarray(-scale)
    x = np.arange(3, dtype=np.float32)
    entries = [("input", 0, 0),
               ("call", XP.ones, ((), ), {"dtype": np.dtype("float32")}, _S(1)),
               ("call", np.divide, (_S(1), 64.0), {}, _S(2)),
               ("call", np.negative, (_S(2),), {}, _S(3)),
               ("call", np.multiply, (_S(0), _S(3)), {}, _S(4))]
    values = {0: x, 1: one, 2: scale, 3: neg, 4: x * neg}
    plan = _plan(entries, values, _out(4), passes=[P.fold_constants, P.eliminate_dead_code])
    assert plan.changes["fold_constants"] == 3
    assert "ones" not in plan.source and "negative" not in plan.source
    xs = np.array([1.0, -2.0, 64.0], np.float32)
    np.testing.assert_array_equal(_run(plan, xs).numpy(), xs * -(np.float32(1) / np.float32(64)))


def test_fold_constants_leaves_returned_values_and_random_draws():
    z = np.zeros(3)
    r = np.random.default_rng(0).random(3)
    entries = [("call", XP.zeros, ((3,),), {}, _S(0)),
               ("call", XP.random_uniform, ((3,), np.dtype("float64")), {}, _S(1)),
               ("call", np.add, (_S(0), _S(1)), {}, _S(2))]
    plan = _plan(entries, {0: z, 1: r, 2: z + r}, ("seq", tuple, (_out(0), _out(2))), inputs=(),
                 passes=[P.fold_constants])
    assert plan.changes == {}                    # zeros is returned; the draw is random
    a, b = plan.run([])
    a.numpy()[:] = 5.0                           # the caller may write into what a call returns
    a2, b2 = plan.run([])
    np.testing.assert_array_equal(a2.numpy(), np.zeros(3))
    assert not np.array_equal(b.numpy(), b2.numpy())   # fresh numbers on every replay


# --- direct_calls -----------------------------------------------------------------------------------------
def _samples():
    rng = np.random.default_rng(1)
    m = rng.standard_normal((3, 4)).astype(np.float32)
    return {
        "sum": [((m,), {}), ((m, 1), {}), ((m,), {"axis": 0, "keepdims": True}), ((m, None, np.float64), {}),
                ((m,), {"axis": (0, 1)})],
        "max": [((m, 1), {}), ((m,), {"axis": None, "keepdims": True}), ((m,), {"axis": -1})],
        "min": [((m, 0), {}), ((m,), {"axis": 1, "keepdims": True})],
        "reshape": [((m, (4, 3)), {}), ((m, (-1,)), {}), ((m.T, (12,)), {})],
        "permute_dims": [((m, (1, 0)), {}), ((m[None], (2, 0, 1)), {})],
        "astype": [((m, np.float64), {}), ((m, np.float32), {"copy": False}), ((m, np.int32), {"copy": True})],
        "zeros": [(((2, 3),), {}), (((2,), np.float32), {}), ((3,), {"dtype": np.int64})],
        "ones": [(((2, 3),), {}), ((4,), {"dtype": np.float32})],
        "empty": [(((2, 3),), {"dtype": np.float32})],
        "full": [(((2,), 1.5), {}), (((3,), 2), {"dtype": np.float32})],
    }


@pytest.mark.parametrize("name", sorted(_samples()))
def test_each_direct_call_agrees_with_the_wrapper_it_replaces(name):
    wrapper = getattr(XP, name)
    key = wrapper.__func__ if getattr(wrapper, "__self__", None) is XP else wrapper
    assert key in _DIRECT_CALLS, name
    for args, kw in _samples()[name]:
        direct = XP.compile_direct_call(wrapper, len(args), tuple(kw))
        want = wrapper(*args, **kw)
        if direct is None:                   # the table refuses this call's form: the wrapper stays
            assert name in ("sum", "max", "min") and len(args) < 2 and "axis" not in kw
            continue
        got = direct(*args, **kw)
        assert type(got) is type(want) and got.dtype == want.dtype and got.shape == want.shape, (name, args, kw)
        if name != "empty":
            np.testing.assert_array_equal(got, want)
        if name in ("reshape", "permute_dims"):
            assert np.shares_memory(got, args[0]) == np.shares_memory(want, args[0])
        if name == "astype":
            assert (got is args[0]) == (want is args[0])


def test_every_table_entry_has_samples():
    names = {getattr(f, "__name__", None) for f in _DIRECT_CALLS}
    assert names == set(_samples())


def test_direct_calls_refuses_reductions_without_an_axis():
    # ufunc.reduce's default axis is 0; the wrappers' is None (everything)
    assert XP.compile_direct_call(XP.sum, 1, ()) is None
    assert XP.compile_direct_call(XP.sum, 1, ("axis",)) == np.add.reduce
    assert XP.compile_direct_call(XP.reshape, 2, ("copy",)) is None
    assert XP.compile_direct_call(np.exp, 1, ()) is None
    assert get_backend("strict").compile_direct_call(XP.sum, 2, ()) is None     # the portable answer


# --- eliminate_common_calls ---------------------------------------------------------------------------------
def test_eliminate_common_calls_reuses_an_equal_pure_call():
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    t1, t2 = x.T, x.T
    e1, e2 = np.exp(t1), np.exp(t2)
    r = np.add(e1, e2)
    entries = [("input", 0, 0), ("call", np.ndarray.transpose, (_S(0),), {}, _S(1)),
               ("call", np.exp, (_S(1),), {}, _S(2)),
               ("call", np.ndarray.transpose, (_S(0),), {}, _S(3)),
               ("call", np.exp, (_S(3),), {}, _S(4)),
               ("call", np.add, (_S(2), _S(4)), {}, _S(5))]
    plan = _plan(entries, {0: x, 1: t1, 2: e1, 3: t2, 4: e2, 5: r}, _out(5), passes=[P.eliminate_common_calls])
    assert plan.changes == {"eliminate_common_calls": 2}
    assert plan.source.count("_k1(") == 1 and "s4" not in plan.source
    xs = np.linspace(0, 2, 6).reshape(2, 3)
    np.testing.assert_array_equal(_run(plan, xs).numpy(), 2 * np.exp(xs.T))


def test_eliminate_common_calls_respects_writes_escapes_and_signed_zeros():
    x = np.linspace(-1, 1, 4)
    values = {0: x, 1: np.exp(x), 2: np.exp(x), 3: np.exp(x), 4: np.exp(x), 5: np.exp(x),
              6: x + 0.0, 7: x + -0.0, 8: np.exp(x)}
    entries = [("input", 0, 0),
               ("call", np.exp, (_S(0),), {}, _S(1)),
               ("call", np.multiply, (_S(0), 2.0), {"out": (_S(0),)}, _S(0)),   # x changes in between
               ("call", np.exp, (_S(0),), {}, _S(2)),
               ("call", np.exp, (_S(0),), {}, _S(3)),                            # s2's twin, but s3 is written
               ("call", np.add, (_S(3), 1.0), {"out": (_S(3),)}, _S(3)),
               ("call", np.exp, (_S(0),), {}, _S(4)),                            # s2's twin: merged
               ("call", np.add, (_S(0), 0.0), {}, _S(6)),
               ("call", np.add, (_S(0), -0.0), {}, _S(7)),                       # another constant
               ("call", np.exp, (_S(0),), {}, _S(8)),                            # returned: kept apart
               ("call", np.add, (_S(1), _S(4)), {}, _S(5))]
    tmpl = ("seq", tuple, tuple(_out(i) for i in (5, 3, 6, 7, 8)))
    plan = _plan(entries, values, tmpl, passes=[P.eliminate_common_calls], written={0, 3})
    assert plan.changes == {"eliminate_common_calls": 1}
    xs = np.array([-0.0, 0.5, 1.0, 2.0])
    got = [t.numpy() for t in _run(plan, xs)]
    x2 = xs * 2.0
    want = [np.exp(xs) + np.exp(x2), np.exp(x2) + 1.0, x2 + 0.0, x2 + -0.0, np.exp(x2)]
    for g, w in zip(got, want):
        assert g.tobytes() == w.tobytes()
    assert "s4" not in plan.source and "s3 = " in plan.source and "s7 = " in plan.source and "s8 = " in plan.source


def test_eliminate_common_calls_recomputes_a_result_too_large_to_keep(monkeypatch):
    monkeypatch.setattr(P, "_COMMON_CALL_BYTES", 40)
    x = np.linspace(-1, 1, 6)
    entries = [("input", 0, 0), ("call", np.exp, (_S(0),), {}, _S(1)),
               ("call", np.exp, (_S(0),), {}, _S(2)),
               ("call", np.add, (_S(1), _S(2)), {}, _S(3))]
    plan = _plan(entries, {0: x, 1: np.exp(x), 2: np.exp(x), 3: 2 * np.exp(x)}, _out(3),
                 passes=[P.eliminate_common_calls])
    assert plan.changes == {}                 # 48 bytes each: both computed


def test_conv_padding_is_one_backend_call_and_matches_numpy():
    from xbp._backend import Backend
    x = np.random.RandomState(0).standard_normal((2, 3, 4)).astype(np.float32)
    got = Backend.padded(XP, x, ((0, 0), (1, 2), (2, 0)), -np.inf)
    np.testing.assert_array_equal(got, np.pad(x, ((0, 0), (1, 2), (2, 0)), constant_values=-np.inf))
    assert got.dtype == x.dtype


def test_eliminate_common_calls_never_merges_random_draws():
    from xbp._backend import get_backend
    be = get_backend("cpu")
    x = np.zeros(3)
    entries = [("input", 0, 0), ("call", be.random_uniform, ((3,), np.dtype("float64")), {}, _S(1)),
               ("call", be.random_uniform, ((3,), np.dtype("float64")), {}, _S(2)),
               ("call", np.subtract, (_S(1), _S(2)), {}, _S(3))]
    plan = _plan(entries, {0: x, 1: np.ones(3), 2: np.ones(3), 3: np.zeros(3)}, _out(3),
                 passes=[P.eliminate_common_calls])
    assert plan.changes == {}


# --- scalar_operands_as_arrays ----------------------------------------------------------------------------
_SPECIAL = np.array([np.nan, -np.nan, 0.0, -0.0, np.inf, -np.inf, 1e-40, -1e-40, 0.5, -0.5, 3.0, -3.0])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("fn", [np.maximum, np.minimum, np.fmax, np.fmin])
def test_a_scalar_operand_and_an_array_of_it_give_the_same_bits(fn, dtype):
    """The NumPy property the pass rests on (and checks again on probe values when it runs)."""
    with np.errstate(all="ignore"):
        x = np.concatenate([_SPECIAL, np.random.RandomState(0).standard_normal(301)]).astype(dtype)
        for c in (0, 0.0, -0.0, 0.5, -100.0, 1e-12, 6):
            for k in (0, 1):
                full = np.full(x.shape, c, dtype)
                want = fn(x, c) if k == 0 else fn(c, x)
                got = fn(x, full) if k == 0 else fn(full, x)
                assert want.dtype == got.dtype == dtype
                assert want.tobytes() == got.tobytes(), (c, k)
                assert P._same_bits(fn, k, np.dtype(dtype), c)


def test_scalar_operands_as_arrays_rewrites_maximum_and_minimum_with_a_number():
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    r = np.maximum(x, 0)
    q = np.minimum(0.5, r)
    n = np.maximum(x, x)                       # two arrays: left alone
    entries = [("input", 0, 0), ("call", np.maximum, (_S(0), 0), {}, _S(1)),
               ("call", np.minimum, (0.5, _S(1)), {}, _S(2)),
               ("call", np.maximum, (_S(2), _S(0)), {}, _S(3))]
    values = {0: x, 1: r, 2: q, 3: n}
    plan = _plan(entries, values, _out(3), passes=[P.scalar_operands_as_arrays])
    assert plan.changes == {"scalar_operands_as_arrays": 2}
    assert "s0, 0)" not in plan.source and "(0.5, s1)" not in plan.source
    xs = np.concatenate([_SPECIAL, [7.0, -7.0]]).reshape(2, 7)[:, :6].reshape(3, 4)
    with np.errstate(all="ignore"):
        want = np.maximum(np.minimum(0.5, np.maximum(xs, 0)), xs)
    got = _run(plan, xs).numpy()
    assert got.tobytes() == want.tobytes()


def test_scalar_operands_as_arrays_leaves_integers_and_numpy_scalars():
    x = np.arange(6).reshape(2, 3)
    xf = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    entries = [("input", 0, 0), ("input", 1, 1), ("call", np.maximum, (_S(0), 2), {}, _S(2)),
               # a NumPy float64 scalar is not a weak Python number: it makes the result float64
               ("call", np.maximum, (_S(1), np.float64(0.25)), {}, _S(3))]
    values = {0: x, 1: xf, 2: np.maximum(x, 2), 3: np.maximum(xf, np.float64(0.25))}
    plan = _plan(entries, values, ("seq", tuple, (_out(2), _out(3))), inputs=(0, 1),
                 passes=[P.scalar_operands_as_arrays])
    assert plan.changes == {}


def test_scalar_operands_as_arrays_broadcasts_a_large_constant_over_the_leading_axis():
    x = np.random.RandomState(1).standard_normal((5, 8, 600)).astype(np.float32)
    entries = [("input", 0, 0), ("call", np.maximum, (_S(0), 0), {}, _S(1))]
    plan = _plan(entries, {0: x, 1: np.maximum(x, 0)}, _out(1), passes=[P.scalar_operands_as_arrays])
    assert [c.shape for c in plan.consts.values()] == [(1, 8, 600)]
    xs = np.random.RandomState(2).standard_normal((5, 8, 600)).astype(np.float32)
    xs[0, 0, :4] = [np.nan, -0.0, np.inf, -np.inf]
    assert _run(plan, xs).numpy().tobytes() == np.maximum(xs, 0).tobytes()


def test_scalar_operands_as_arrays_keeps_the_result_layout_of_a_transposed_input():
    """maximum(x.T, 0) comes out in x's memory order; so must the rewritten call: a later sum over
    axes runs in memory order, and another layout rounds differently (LeNet's conv bias)."""
    x = np.random.RandomState(3).standard_normal((6, 5, 7, 4)).astype(np.float32)
    xt = x.transpose(3, 0, 1, 2)
    r = np.maximum(xt, 0)
    s = np.add.reduce(r, axis=(0, 2, 3))
    entries = [("input", 0, 0), ("call", np.ndarray.transpose, (_S(0), (3, 0, 1, 2)), {}, _S(1)),
               ("call", np.maximum, (_S(1), 0), {}, _S(2)),
               ("call", np.add.reduce, (_S(2),), {"axis": (0, 2, 3)}, _S(3))]
    plan = _plan(entries, {0: x, 1: xt, 2: r, 3: s}, _out(3), passes=[P.scalar_operands_as_arrays])
    assert plan.changes == {"scalar_operands_as_arrays": 1}
    c = next(iter(plan.consts.values()))
    assert c.strides == np.empty_like(xt).strides
    xs = np.random.RandomState(4).standard_normal((6, 5, 7, 4)).astype(np.float32) * 1e3
    want = np.add.reduce(np.maximum(xs.transpose(3, 0, 1, 2), 0), axis=(0, 2, 3))
    assert _run(plan, xs).numpy().tobytes() == want.tobytes()


# --- eliminate_dead_code ---------------------------------------------------------------------------------
def test_eliminate_dead_code_drops_unread_pure_calls_only():
    x = np.arange(3.0)
    rnd = np.random.default_rng(0).random(3)
    buf = np.zeros(3)
    entries = [("input", 0, 0),
               ("call", np.exp, (_S(0),), {}, _S(1)),                       # never read: dropped
               ("call", np.log, (_S(1),), {}, _S(2)),                       # never read: dropped
               ("call", XP.random_uniform, ((3,), np.dtype("float64")), {}, _S(3)),   # random: stays
               ("call", XP.zeros, ((3,),), {}, _S(4)),
               ("call", np.add, (_S(0), 1.0), {"out": (_S(4),)}, _S(4)),   # writes: stays
               ("call", np.multiply, (_S(0), 2.0), {}, _S(5))]
    values = {0: x, 1: np.exp(x), 2: x, 3: rnd, 4: buf, 5: x * 2}
    plan = _plan(entries, values, ("seq", tuple, (_out(4), _out(5))), passes=[P.eliminate_dead_code])
    assert plan.changes == {"eliminate_dead_code": 2}
    assert "exp" not in plan.source and "log" not in plan.source and "random_uniform" not in plan.source
    assert any(k == XP.random_uniform for k in plan.K if callable(k))
    xs = np.array([0.5, 1.0, 2.0])
    a, b = plan.run([xbp.tensor(xs)])
    np.testing.assert_array_equal(a.numpy(), xs + 1.0)
    np.testing.assert_array_equal(b.numpy(), xs * 2.0)


# --- reuse_buffers -----------------------------------------------------------------------------------------
def _chain():
    """y = exp(x); a = y * 2 (y dead); b = a + 1 (a dead); c = b * b; returns (c, b)."""
    x = np.linspace(0, 1, 6).reshape(2, 3)
    y = np.exp(x)
    a = y * 2.0
    b = a + 1.0
    c = b * b
    entries = [("input", 0, 0), ("call", np.exp, (_S(0),), {}, _S(1)),
               ("call", np.multiply, (_S(1), 2.0), {}, _S(2)),
               ("call", np.add, (_S(2), 1.0), {}, _S(3)),
               ("call", np.multiply, (_S(3), _S(3)), {}, _S(4))]
    return entries, {0: x, 1: y, 2: a, 3: b, 4: c}


def test_reuse_buffers_writes_into_dead_temporaries_and_never_a_returned_value():
    entries, values = _chain()
    plan = _plan(entries, values, ("seq", tuple, (_out(4), _out(3))), passes=[P.reuse_buffers])
    assert plan.changes == {"reuse_buffers": 2}          # b into y's array, c into a's (b is returned)
    assert "out=(s1, )" in plan.source
    assert "out=(s2, )" in plan.source and "out=(s3" not in plan.source
    xs = np.linspace(-1, 1, 6).reshape(2, 3)
    want_c, want_b = (np.exp(xs) * 2 + 1) ** 2, np.exp(xs) * 2 + 1
    c1, b1 = plan.run([xbp.tensor(xs)])
    c2, b2 = plan.run([xbp.tensor(xs)])
    for got in (c1, c2):
        np.testing.assert_allclose(got.numpy(), want_c, rtol=1e-15)
    for got in (b1, b2):                                  # the returned intermediate, too
        np.testing.assert_allclose(got.numpy(), want_b, rtol=1e-15)
    arrays = [c1.numpy(), b1.numpy(), c2.numpy(), b2.numpy()]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.shares_memory(arrays[i], arrays[j])
    c1.numpy()[:] = -7.0                                  # writing into one call's results ...
    b1.numpy()[:] = -7.0
    c3, b3 = plan.run([xbp.tensor(xs)])
    np.testing.assert_allclose(c3.numpy(), want_c, rtol=1e-15)   # ... changes no later call's
    np.testing.assert_array_equal(c2.numpy(), c3.numpy())
    np.testing.assert_array_equal(b2.numpy(), b3.numpy())


def test_reuse_buffers_skips_a_buffer_a_live_view_still_reads():
    x = np.arange(6.0)
    y = np.exp(x)
    v = y.reshape(2, 3)                  # a view of y, read at the end
    a = x * 3.0                          # could take y's memory if views were ignored
    s = a.reshape(2, 3) + v
    entries = [("input", 0, 0), ("call", np.exp, (_S(0),), {}, _S(1)),
               ("call", NumpyBackend.reshape, (_S(1), (2, 3)), {}, _S(2)),
               ("call", np.multiply, (_S(0), 3.0), {}, _S(3)),
               ("call", NumpyBackend.reshape, (_S(3), (2, 3)), {}, _S(4)),
               ("call", np.add, (_S(4), _S(2)), {}, _S(5))]
    plan = _plan(entries, {0: x, 1: y, 2: v, 3: a, 4: a.reshape(2, 3), 5: s}, _out(5), passes=[P.reuse_buffers])
    assert "out=" not in plan.source
    xs = np.linspace(0, 1, 6)
    np.testing.assert_array_equal(_run(plan, xs).numpy(), (xs * 3.0).reshape(2, 3) + np.exp(xs).reshape(2, 3))


def test_reuse_buffers_never_takes_an_input_or_constant():
    x = np.ones(4)
    k = np.full(4, 2.0)
    entries = [("input", 0, 0), ("const", 1), ("call", np.add, (_S(0), _S(1)), {}, _S(2)),
               ("call", np.multiply, (_S(2), 3.0), {}, _S(3))]
    plan = _plan(entries, {0: x, 2: x + k, 3: (x + k) * 3}, _out(3), consts={1: k}, passes=[P.reuse_buffers])
    assert "out=(s0" not in plan.source and "out=(s1" not in plan.source
    xs = np.arange(4.0)
    np.testing.assert_array_equal(_run(plan, xs).numpy(), (xs + 2.0) * 3.0)
    np.testing.assert_array_equal(xs, np.arange(4.0))
    np.testing.assert_array_equal(k, np.full(4, 2.0))


# --- whole steps: every pass, and the inlined optimizer steps ----------------------------------------------
def _mlp(dtype=xbp.float64):
    xbp.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).to(dtype=dtype)


def _ce_step(m, opt):
    """The training step these tests compile: zero_grad, cross-entropy, backward, optimizer step."""
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def _batches(n, dtype=np.float64):
    rng = np.random.default_rng(0)
    return [(xbp.tensor(rng.standard_normal((12, 8)).astype(dtype)), xbp.tensor(np.arange(12) % 4))
            for _ in range(n)]


OPTS = {
    "sgd": lambda p: xbp.optim.SGD(p, lr=0.1),
    "sgd_wd_maximize": lambda p: xbp.optim.SGD(p, lr=0.05, weight_decay=1e-2, maximize=True),
    "adam": lambda p: xbp.optim.Adam(p, lr=1e-2),
    "adam_wd": lambda p: xbp.optim.Adam(p, lr=1e-2, weight_decay=1e-2),
    "adamw": lambda p: xbp.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    "adam_maximize": lambda p: xbp.optim.Adam(p, lr=1e-3, maximize=True),
}


def _train(opt_name, compiled, steps=25, between=None, dtype=np.float64):
    m = _mlp(xbp.float64 if dtype == np.float64 else xbp.float32)
    opt = OPTS[opt_name](m.parameters())
    sched = xbp.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)

    step = _ce_step(m, opt)
    f = xbp.compile(step) if compiled else step
    losses = []
    for i, (x, y) in enumerate(_batches(steps, dtype)):
        losses.append(f(x, y).numpy().copy())
        sched.step()
        if i == 13:
            for g in opt.param_groups:       # a learning rate set by hand, between calls
                g["lr"] = g["lr"] * 3.0
        if between is not None:
            between(i, m, opt)
    state = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    return losses, state, f, opt


@pytest.mark.parametrize("opt_name", sorted(OPTS))
def test_inlined_optimizer_step_is_eager_bit_for_bit_with_a_scheduler(opt_name):
    el, es, _, eopt = _train(opt_name, False)
    cl, cs, f, copt = _train(opt_name, True)
    assert f.stats["replayed"] >= 20 and f.stats["eager"] == 0, f.stats
    plan = next(v for v in f.cache.values() if isinstance(v, _Plan))
    assert plan.changes.get("inline_optimizer_steps") == 1, plan.changes
    assert ".step()" in plan.source                         # the fallback branch is there ...
    for a, b in zip(el, cl):
        np.testing.assert_array_equal(a, b)
    for k in es:
        np.testing.assert_array_equal(es[k], cs[k], err_msg=k)
    assert eopt.param_groups[0]["lr"] == copt.param_groups[0]["lr"]
    if "adam" in opt_name:
        for pe, pc in zip(eopt.param_groups[0]["params"], copt.param_groups[0]["params"]):
            se, sc = eopt.state[pe], copt.state[pc]
            assert se["step"] == sc["step"] == 25
            np.testing.assert_array_equal(se["exp_avg_sq"].numpy(), sc["exp_avg_sq"].numpy())


def _flat_path_used(f):
    """Whether the last replay of each plan of `f` took the flat Adam form (its state arrays are
    still the views the plan checks)."""
    plans = [v for v in f.cache.values() if isinstance(v, _Plan)]
    return plans and all("axis=None, out=" in p.source for p in plans)


@pytest.mark.parametrize("opt_name", ["adam", "adamw"])
def test_flat_adam_is_eager_bit_for_bit_and_keeps_the_state_the_optimizers(opt_name):
    el, es, _, eopt = _train(opt_name, False)
    cl, cs, f, copt = _train(opt_name, True)
    assert _flat_path_used(f)
    for a, b in zip(el, cl):
        np.testing.assert_array_equal(a, b)
    for k in es:
        np.testing.assert_array_equal(es[k], cs[k], err_msg=k)
    bases = set()
    for pe, pc in zip(eopt.param_groups[0]["params"], copt.param_groups[0]["params"]):
        se, sc = eopt.state[pe], copt.state[pc]
        assert se["step"] == sc["step"]
        for n in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(se[n].numpy(), sc[n].numpy())
            assert sc[n].shape == pc.shape
            bases.add(id(sc[n].numpy().base))
    assert len(bases) == 2                    # exp_avg and exp_avg_sq: one flat array each
    sd = copt.state_dict()["state"][0]["exp_avg"].numpy()
    np.testing.assert_array_equal(sd, eopt.state_dict()["state"][0]["exp_avg"].numpy())


@pytest.mark.parametrize("change", ["state_tensor_replaced", "step_count_set", "moments_written"])
def test_flat_adam_falls_back_per_parameter_when_the_state_changes_by_hand(change):
    """A state tensor replaced (not the flat view any more) or one parameter's step count set by
    hand (the flat form needs one count per group): that replay takes the per-parameter form,
    still bit for bit with eager; moments written in place stay flat and are read as written."""
    def between(i, m, opt):
        if i == 8:
            p = opt.param_groups[0]["params"][1]
            st = opt.state[p]
            if change == "state_tensor_replaced":
                st["exp_avg"] = st["exp_avg"].clone()
            elif change == "step_count_set":
                st["step"] = st["step"] + 7
            else:
                with xbp.no_grad():
                    st["exp_avg_sq"].mul_(2.0)
    el, es, _, _ = _train("adam", False, between=between)
    cl, cs, f, _ = _train("adam", True, between=between)
    assert f.stats["eager"] == 0 and f.stats["replayed"] >= 20
    for a, b in zip(el, cl):
        np.testing.assert_array_equal(a, b)
    for k in es:
        np.testing.assert_array_equal(es[k], cs[k], err_msg=k)


def test_flat_adam_layout_is_shared_by_the_plans_of_two_signatures():
    """Batches of two sizes: two plans inline the same Adam; the second finds the state already
    flat and uses the same arrays, so both replay the flat form (and match eager)."""
    def run(compiled):
        m = _mlp()
        opt = xbp.optim.Adam(m.parameters(), lr=1e-2)

        step = _ce_step(m, opt)
        f = xbp.compile(step) if compiled else step
        out = []
        for i, (x, y) in enumerate(_batches(24)):
            if i % 2:
                x, y = x[:6], y[:6]
            out.append(f(x, y).numpy().copy())
        return out, m, f
    el, em, _ = run(False)
    cl, cm, f = run(True)
    plans = [v for v in f.cache.values() if isinstance(v, _Plan)]
    assert len(plans) == 2 and _flat_path_used(f)
    for a, b in zip(el, cl):
        np.testing.assert_array_equal(a, b)
    for pe, pc in zip(em.parameters(), cm.parameters()):
        np.testing.assert_array_equal(pe.detach().numpy(), pc.detach().numpy())
    views = [[k for k in p.K if isinstance(k, np.ndarray) and k.ndim == 1 and k.size == 212] for p in plans]
    assert any(a is b for a in views[0] for b in views[1])      # the same flat moments


def test_inlined_step_falls_back_to_step_when_the_formula_changes():
    """Momentum switched on between calls (not the recorded formula): that replay calls the real
    ``step()``, which creates the momentum buffers as eager does."""
    def between(i, m, opt):
        if i == 9:
            opt.param_groups[0]["momentum"] = 0.9
    el, es, _, _ = _train("sgd", False, between=between)
    cl, cs, f, copt = _train("sgd", True, between=between)
    assert f.stats["eager"] == 0
    for a, b in zip(el, cl):
        np.testing.assert_array_equal(a, b)
    for k in es:
        np.testing.assert_array_equal(es[k], cs[k], err_msg=k)
    assert all("momentum_buffer" in copt.state[p] for p in copt.param_groups[0]["params"])


def test_inlined_adam_honours_a_loaded_optimizer_state():
    saved = {}

    def between(i, m, opt):
        if i == 5:
            saved["sd"] = {k: (v if k != "state" else {j: dict(s) for j, s in v.items()})
                           for k, v in opt.state_dict().items()}
            saved["sd"] = {"state": {j: {n: (x.clone() if hasattr(x, "clone") else x) for n, x in s.items()}
                                     for j, s in opt.state_dict()["state"].items()},
                           "param_groups": opt.state_dict()["param_groups"]}
        if i == 11:
            opt.load_state_dict(saved["sd"])   # back to step 6's moments and counts
    el, es, _, _ = _train("adam", False, between=between)
    cl, cs, f, _ = _train("adam", True, between=between)
    for a, b in zip(el, cl):
        np.testing.assert_array_equal(a, b)
    for k in es:
        np.testing.assert_array_equal(es[k], cs[k], err_msg=k)


def test_inlined_adam_notices_a_parameter_state_replaced_by_hand():
    """``opt.state[p] = {...}`` between calls (a fresh state for one parameter): the replay must
    update the new dict, as eager does, not the one it recorded."""
    def between(i, m, opt):
        if i == 7:
            p = opt.param_groups[0]["params"][0]
            old = opt.state[p]
            opt.state[p] = {"step": 0, "exp_avg": xbp.zeros_like(old["exp_avg"]),
                            "exp_avg_sq": xbp.zeros_like(old["exp_avg_sq"])}
    el, es, _, eopt = _train("adam", False, between=between)
    cl, cs, f, copt = _train("adam", True, between=between)
    assert f.stats["eager"] == 0
    for a, b in zip(el, cl):
        np.testing.assert_array_equal(a, b)
    for k in es:
        np.testing.assert_array_equal(es[k], cs[k], err_msg=k)
    pe, pc = eopt.param_groups[0]["params"][0], copt.param_groups[0]["params"][0]
    assert eopt.state[pe]["step"] == copt.state[pc]["step"] == 25 - 8


def test_all_passes_on_an_mlp_step_float32_match_eager_and_numpy():
    """The digits-like step through every pass: the plan's rewrites are all used, and its losses
    match eager xbp (bit for bit) and a NumPy forward written here (first step)."""
    el, es, _, _ = _train("sgd", False, steps=8, dtype=np.float32)
    cl, cs, f, _ = _train("sgd", True, steps=8, dtype=np.float32)
    plan = next(v for v in f.cache.values() if isinstance(v, _Plan))
    for name in ("inline_optimizer_steps", "drop_noop_views", "fold_constants", "direct_calls",
                 "scalar_operands_as_arrays", "reuse_buffers"):
        assert plan.changes.get(name, 0) >= 1, (name, plan.changes)
    for a, b in zip(el, cl):
        np.testing.assert_array_equal(a, b)
    for k in es:
        np.testing.assert_array_equal(es[k], cs[k])
    m = _mlp(xbp.float32)
    W1, b1, W2, b2 = (p.detach().numpy() for p in m.parameters())
    x, y = _batches(1, np.float32)[0]
    h = np.maximum(x.numpy() @ W1.T + b1, 0) @ W2.T + b2
    lse = np.log(np.exp(h - h.max(1, keepdims=True)).sum(1)) + h.max(1)
    np.testing.assert_allclose(el[0], np.mean(lse - h[np.arange(12), y.numpy()]), rtol=1e-6)


def test_a_parameter_replaced_by_another_shape_runs_eagerly():
    m = _mlp()
    opt = xbp.optim.SGD(m.parameters(), lr=0.1)

    def step(x):
        opt.zero_grad()
        loss = m(x).sum()
        loss.backward()
        opt.step()
        return loss.detach()
    f = xbp.compile(step)
    x = _batches(1)[0][0]
    for _ in range(4):
        f(x)
    assert f.stats["replayed"] >= 1
    with xbp.no_grad():
        m[2].weight.data = xbp.zeros(4, 16, dtype=xbp.float64)[:, :16]       # same shape: replays
    f(x)
    assert f.stats["guard_failures"] == 0
    m[2].weight = nn.Parameter(xbp.zeros(4, 16, dtype=xbp.float64))         # a new tensor: not the recorded one
    want_calls = f.stats["eager"]
    f(x)
    assert f.stats["eager"] >= want_calls


def test_a_gradient_renamed_by_a_later_pass_reaches_an_emitted_entry():
    """drop_noop_views runs after inline_optimizer_steps: the slots an emitted entry (an inlined
    step) reads are renamed with the rest of the plan, and its source is written from them."""
    x = np.arange(6.0).reshape(2, 3)
    g = np.exp(x)
    seen = []

    def emit(const, expr, deref, slots):
        seen.append(slots)
        return [f"_keep = s{slots[0]} * 1.0"]
    entries = [("input", 0, 0), ("call", np.exp, (_S(0),), {}, _S(1)),
               ("call", NumpyBackend.reshape, (_S(1), (2, 3)), {}, _S(2)),
               ("emit", emit, (2,))]
    plan = _plan(entries, {0: x, 1: g, 2: g.reshape(2, 3)}, ("value", None), passes=[P.drop_noop_views])
    assert plan.changes == {"drop_noop_views": 1} and seen == [(1,)]
    assert "_keep = s1 * 1.0" in plan.source and "s2" not in plan.source
    assert plan.run([xbp.tensor(x)]) is None


def test_a_replay_frees_its_temporaries_as_it_goes():
    """Each slot's local is deleted after its last reader: a replay's peak memory stays near the
    eager step's (one Python function would otherwise hold every temporary until it returns)."""
    import tracemalloc
    xbp.manual_seed(0)
    layers = []
    for _ in range(8):
        layers += [nn.Linear(128, 128), nn.Tanh()]
    m = nn.Sequential(*layers, nn.Linear(128, 4)).to(dtype=xbp.float64)
    opt = xbp.optim.SGD(m.parameters(), lr=1e-3)
    x = xbp.randn(256, 128, dtype=xbp.float64)
    y = xbp.tensor(np.arange(256) % 4)

    step = _ce_step(m, opt)
    f = xbp.compile(step)

    def peak(fn):
        fn(x, y)
        tracemalloc.start()
        try:
            fn(x, y)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    while f.stats["replayed"] == 0 and f.stats["recorded"] < 5:
        f(x, y)
    assert f.stats["replayed"] >= 1
    compiled, eager = peak(f), peak(step)
    assert f.stats["eager"] == 0
    assert compiled < 1.25 * eager, (compiled, eager)
    plan = next(v for v in f.cache.values() if isinstance(v, _Plan))
    assert "del s" in plan.source
