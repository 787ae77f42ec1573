"""The fused recurrence primitive behind the RNN, LSTM and GRU layers."""
from __future__ import annotations

from .._primitive import Primitive, apply
from .._tensor import Tensor


# One primitive runs a whole layer in one direction over precomputed input projections
# xs = x W_ih^T + b_ih (T, B, G*H). Composed from ops, each step would record ~15 nodes whose
# backward allocates a zero (B, G*H) array per gate slice; fused, a step is one GEMM plus the
# pointwise gate maths, the backward walks the steps once, and the hidden-weight gradient is ONE
# GEMM over all steps: dW_hh = dA^T @ H_prev with dA (T*B, G*H), H_prev (T*B, H).
# Output: (T, B, H) of hidden states, or for LSTM (T, B, 2H) = [h_t | c_t].
# The step maths is written once against an array namespace (Array API names that TensorNamespace
# also has), so under create_graph the VJP recomputes the forward from its Tensor inputs and walks
# the same backward on Tensors: gradients of any order.
# Gate equations (PyTorch's): LSTM  i,f,g,o = s(a_i), s(a_f), tanh(a_g), s(a_o); c' = f c + i g;
#                                   h' = o tanh(c')
#                             GRU   r = s(x_r + h_r); z = s(x_z + h_z); n = tanh(x_n + r h_n);
#                                   h' = n + z (h - n)      with h_* = h W_h*^T + b_h*
#                             RNN   h' = tanh(x + h W^T + b) (or relu)
# Backward, with dh, dc flowing in from later steps and the output:
#   LSTM  dc~ = dc + dh o (1 - tanh(c')^2);  da = [dc~ g i(1-i), dc~ c f(1-f), dc~ i (1-g^2),
#         dh tanh(c') o(1-o)];  dc_prev = dc~ f;  dh_prev = da W_hh
#   GRU   dn = dh (1 - z) (1 - n^2); dz = dh (h - n) z(1-z); dr = dn h_n r(1-r);
#         dx = [dr, dz, dn]; dhg = [dr, dz, dn r];  dh_prev = dh z + dhg W_hh
#   RNN   da = dh (1 - h'^2) (tanh) or dh [h' > 0] (relu);  dh_prev = da W_hh
def _sig(xp, a):
    # 1 / (1 + e^-a); the exponent is capped so it cannot overflow (sigmoid(-80) ~ 1.8e-35).
    # (NumPy's exp is about twice as fast as its tanh, so this also beats 0.5 tanh(a/2) + 0.5.)
    return 1.0 / (1.0 + xp.exp(xp.minimum(-a, 80.0)))


def _stack0(xp, items):
    return xp.stack(items, axis=0)


def _steps(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def _previous(xp, S, s0, reverse):
    """States stacked by time (T, B, H) -> the state each step started from: s0, then S shifted by
    one step in the direction of the walk."""
    T = S.shape[0]
    s0e = xp.expand_dims(s0, axis=0)
    return xp.concat([S[1:T, ...], s0e], axis=0) if reverse else xp.concat([s0e, S[0:T - 1, ...]], axis=0)


def _recur_forward(xp, xs, h0, c0, w_hh, b_hh, mode, reverse):
    """-> (hs, cs, acts): per-step states and gate activations, indexed by time; for LSTM
    acts[t] = ([s(a_i), s(a_f), tanh(a_g), s(a_o)], tanh(c_t)) (Backend.lstm_forward's ACT, TC)."""
    T = xs.shape[0]
    H = h0.shape[-1]
    wT = xp.row_major(xp.matrix_transpose(w_hh))  # one copy, T fast products (Backend.row_major)
    hs, cs, acts = [None] * T, [None] * T, [None] * T
    h, c = h0, c0
    if b_hh is not None and mode != "GRU":      # (GRU's b_hn sits inside r * (...): keep it per step)
        xs, b_hh = xs + b_hh, None
    for t in _steps(T, reverse):
        hg = xp.matmul(h, wT)
        if b_hh is not None:
            hg = hg + b_hh
        xg = xs[t, ...]
        if mode == "LSTM":
            a = hg
            a += xg                              # (in place on the fresh product)
            S = _sig(xp, a)                      # all four blocks at once; i, f, o are used
            g = xp.tanh(a[:, 2 * H:3 * H])
            c = S[:, H:2 * H] * c + S[:, 0:H] * g
            tc = xp.tanh(c)
            h = S[:, 3 * H:4 * H] * tc
            acts[t] = (xp.concat([S[:, 0:2 * H], g, S[:, 3 * H:4 * H]], axis=1), tc)
        elif mode == "GRU":
            r = _sig(xp, xg[:, 0:H] + hg[:, 0:H])
            z = _sig(xp, xg[:, H:2 * H] + hg[:, H:2 * H])
            hn = hg[:, 2 * H:3 * H]
            n = xp.tanh(xg[:, 2 * H:3 * H] + r * hn)
            h = n + z * (h - n)
            acts[t] = (r, z, n, hn)
        elif mode == "RNN_TANH":
            h = xp.tanh(xg + hg)
        else:
            h = xp.maximum(xg + hg, 0.0)
        hs[t], cs[t] = h, c
    return hs, cs, acts


def _recur_fwd(xp, xs, h0, c0, w_hh, b_hh=None, *, mode, reverse):
    if mode == "LSTM":
        if b_hh is not None:
            xs, b_hh = xs + b_hh, None
        fast = getattr(xp, "lstm_forward", None)
        r = NotImplemented if fast is None else fast(xs, h0, c0, w_hh, reverse)
        if r is not NotImplemented:
            Y, ACT, TC = r
            return Y, (ACT, TC)
    hs, cs, acts = _recur_forward(xp, xs, h0, c0, w_hh, b_hh, mode, reverse)
    if mode == "LSTM":
        return (xp.concat([_stack0(xp, hs), _stack0(xp, cs)], axis=2),
                (_stack0(xp, [a[0] for a in acts]), _stack0(xp, [a[1] for a in acts])))
    return _stack0(xp, hs), acts


def _hidden_weight_grad(xp, dA, H_all, h0, reverse):
    """dW_hh = sum_t da_t^T h_prev_t, with dA (T, B, G) and H_all (T, B, H) stacked by time: the
    steps whose previous state is in H_all as ONE GEMM over them, plus the first step's (from h0),
    so no time-shifted copy of H_all is made."""
    T, B, H = H_all.shape[0], H_all.shape[1], H_all.shape[2]
    first = T - 1 if reverse else 0
    gw = xp.matmul(xp.matrix_transpose(dA[first, ...]), h0)
    if T > 1:
        a, hp = (dA[0:T - 1, ...], H_all[1:T, ...]) if reverse else (dA[1:T, ...], H_all[0:T - 1, ...])
        n = (T - 1) * B
        gw = gw + xp.matmul(xp.matrix_transpose(xp.reshape(a, (n, -1))), xp.reshape(hp, (n, H)))
    return gw


def _recur_vjp(c, g):
    xp = c.xp
    xs, h0, c0, w_hh, b_hh = c.ins
    mode, reverse = c.p["mode"], c.p["reverse"]
    T, B = xs.shape[0], xs.shape[1]
    H = h0.shape[-1]
    lstm = mode == "LSTM"
    if isinstance(g, Tensor):          # create_graph: states as functions of the Tensor inputs
        hs, cs, acts = _recur_forward(xp, xs, h0, c0, w_hh, b_hh, mode, reverse)
        H_all = _stack0(xp, hs)
        if lstm:
            Y, C = None, _stack0(xp, cs)
            ACT, TC = _stack0(xp, [a[0] for a in acts]), _stack0(xp, [a[1] for a in acts])
    else:
        acts = c.res
        H_all = c.out[:, :, 0:H] if lstm else c.out
        hs = None if lstm else [H_all[t, ...] for t in range(T)]   # (the LSTM reads H_all, C stacked)
        if lstm:
            Y, C = c.out, c.out[:, :, H:2 * H]
            ACT, TC = acts
    prev = (lambda t: t + 1) if reverse else (lambda t: t - 1)
    first = T - 1 if reverse else 0
    if lstm:
        fast = None if Y is None else getattr(xp, "lstm_backward", None)
        r = NotImplemented if fast is None else fast(g, Y, ACT, TC, c0, w_hh, reverse)
        if r is NotImplemented:
            r = _lstm_backward(xp, g, ACT, TC, c0, C, w_hh, reverse)
        dA, dh, dc = r                 # dA (T, B, 4H): the gradient of xs, and what dW_hh needs
    else:
        dh, dc = g[first, ...] * 0.0, None
        dxs, dhg = [None] * T, [None] * T
        for t in _steps(T, not reverse):
            dh = dh + g[t, ...]
            if mode == "GRU":
                h_prev = h0 if t == first else hs[prev(t)]
                r, z, n, hn = acts[t]
                dn = dh * (1.0 - z) * (1.0 - n * n)
                dr = dn * hn * r * (1.0 - r)
                dz = dh * (h_prev - n) * z * (1.0 - z)
                dxs[t] = xp.concat([dr, dz, dn], axis=1)
                dhg[t] = xp.concat([dr, dz, dn * r], axis=1)
                dh = dh * z + xp.matmul(dhg[t], w_hh)
            else:
                h = hs[t]
                da = dh * (1.0 - h * h) if mode == "RNN_TANH" else xp.where(h > 0, dh, 0.0)
                dxs[t] = dhg[t] = da
                dh = xp.matmul(da, w_hh)
        # dA: the gradient of the pre-activations the hidden weight saw (RNN: the same as that
        # of xs, stacked once when both need it; GRU: the n block differs, scaled by r)
        wants = c.needs[3] or (b_hh is not None and c.needs[4])
        gx_all = _stack0(xp, dxs) if c.needs[0] or (wants and dhg is dxs) else None
        dA = gx_all if dhg is dxs else (_stack0(xp, dhg) if wants else None)
    gxs = (dA if lstm else gx_all) if c.needs[0] else None
    gw = gb = None
    if c.needs[3]:
        gw = _hidden_weight_grad(xp, dA, H_all, h0, reverse)
    if b_hh is not None and c.needs[4]:
        gb = xp.sum(xp.reshape(dA, (T * B, -1)), axis=0)
    return (gxs, dh if c.needs[1] else None, dc if lstm and c.needs[2] else None, gw, gb)


def _lstm_backward(xp, g, ACT, TC, c0, C, w_hh, reverse):
    """The LSTM steps' backward (the portable body of Backend.lstm_backward). Everything that does
    not depend on the incoming dh, dc (the gates' derivatives and their products with the saved
    states) is computed once over all T steps as (T, B, .) arrays, which leaves ~9 small ops per
    step instead of ~22: on a small LSTM the per-call cost of those ops is most of the step.
    g (T, B, 2H) = [dh_t | dc_t]; ACT (T, B, 4H) = [i, f, tanh(a_g), o] and TC (T, B, H) = tanh(c_t)
    of the forward; C (T, B, H) the cell states. -> (dA (T, B, 4H), dh_prev, dc_prev) of the
    first step."""
    T, B, H = C.shape[0], C.shape[1], C.shape[2]
    C_prev = _previous(xp, C, c0, reverse)
    I, F, G, O = ACT[:, :, 0:H], ACT[:, :, H:2 * H], ACT[:, :, 2 * H:3 * H], ACT[:, :, 3 * H:4 * H]
    OD = O * (1.0 - TC * TC)                               # d c_t / d h_t through h = o tanh(c)
    # da = [dct gi', dct c_prev f', dct i (1-g^2) | dh tanh(c) o']: the factors of dct as
    # (T, B, 3, H) (one broadcast product per step), the factor of dh as (T, B, H)
    A = xp.stack([G * (I * (1.0 - I)), C_prev * (F * (1.0 - F)), I * (1.0 - G * G)], axis=2)
    A_o = TC * (O * (1.0 - O))
    dH, dC = g[:, :, 0:H], g[:, :, H:2 * H]
    das = [None] * T
    dh = dc = None
    for t in _steps(T, not reverse):
        dh = dH[t, ...] if dh is None else dh + dH[t, ...]
        dct = dh * OD[t, ...] + dC[t, ...]
        if dc is not None:
            dct = dct + dc
        da = xp.concat([xp.reshape(xp.expand_dims(dct, axis=1) * A[t, ...], (B, 3 * H)),
                        dh * A_o[t, ...]], axis=1)
        das[t] = da
        dc = dct * F[t, ...]
        dh = xp.matmul(da, w_hh)
    return _stack0(xp, das), dh, dc


recurrence_p = Primitive("recurrence", _recur_fwd, _recur_vjp, save="in,out", res=True)


def recurrence(mode, xs, h0, c0, w_hh, b_hh=None, reverse=False):
    """Run one recurrent layer in one direction.

    mode: "RNN_TANH", "RNN_RELU", "LSTM" or "GRU". xs (T, B, G*H): the input projections
    x_t W_ih^T + b_ih of every step; h0 (B, H); c0 (B, H) for LSTM, else None; w_hh (G*H, H);
    b_hh (G*H,) or None. reverse: walk t = T-1 .. 0. Returns (T, B, H) hidden states indexed by
    time, or (T, B, 2H) = [h_t | c_t] for LSTM.
    """
    if mode not in ("RNN_TANH", "RNN_RELU", "LSTM", "GRU"):
        raise ValueError(f"recurrence: unknown mode {mode!r}")
    if (mode == "LSTM") != (c0 is not None):
        raise ValueError("recurrence: c0 is needed for (and only for) LSTM")
    return apply(recurrence_p, (xs, h0, c0, w_hh, b_hh), {"mode": mode, "reverse": bool(reverse)})
