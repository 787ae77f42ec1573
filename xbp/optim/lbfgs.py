"""L-BFGS (Nocedal), PyTorch's variant: a closure API, an optional strong-Wolfe line search.

The maths is on flat arrays of the parameter's Backend: `lbfgs_direction` (the two-loop
recursion) and `strong_wolfe` (bracketing and zoom with cubic interpolation, minFunc's
algorithm as PyTorch ports it); the `LBFGS` class gathers the gradients into one vector, keeps
the curvature history and applies the steps. Scalars (step sizes, curvatures, losses) are Python
floats, so the trajectory in float64 is PyTorch's."""
from __future__ import annotations

import math

from .._tensor import Tensor, _wrap
from ..autograd import enable_grad, no_grad
from .optimizer import Optimizer

__all__ = ["LBFGS", "lbfgs_direction", "strong_wolfe"]


def _dot(xp, a, b) -> float:
    return float(xp.sum(a * b))


def _amax(xp, a) -> float:
    return float(xp.max(xp.abs(a)))


def lbfgs_direction(xp, flat_grad, old_dirs, old_stps, ro, H_diag, al):
    """The two-loop recursion: ``-H g`` for the inverse-Hessian estimate built from the pairs
    ``(y_i, s_i)`` = (`old_dirs`, `old_stps`) with ``ro_i = 1 / (y_i . s_i)`` and initial scaling
    `H_diag`. `al` (a list at least as long as the history) receives the first loop's
    coefficients. Returns a new flat array, shape (n,)."""
    q = -flat_grad
    for i in range(len(old_dirs) - 1, -1, -1):
        al[i] = _dot(xp, old_stps[i], q) * ro[i]
        q = q - al[i] * old_dirs[i]
    r = q * H_diag
    for i in range(len(old_dirs)):
        be_i = _dot(xp, old_dirs[i], r) * ro[i]
        r = r + (al[i] - be_i) * old_stps[i]
    return r


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to `bounds`
    (default: the interval); its midpoint when the cubic has no minimum."""
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = math.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def strong_wolfe(xp, obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """A step `t` along direction `d` (flat array) from the parameters `x` satisfying the strong
    Wolfe conditions ``f(t) <= f + c1 t gtd`` and ``|g(t) . d| <= -c2 gtd``.

    `obj_func(x, t, d)` returns (loss, flat gradient) at ``x + t d``; `f`, `g`, `gtd` are the loss,
    gradient and directional derivative at t = 0. Returns (f_new, g_new, t, evaluations)."""
    d_norm = _amax(xp, d)
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = _dot(xp, g_new, d)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    ls_iter = 0
    # bracketing phase
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f, bracket_g = [t_prev, t], [f_prev, f_new], [g_prev, g_new]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f, bracket_g = [t_prev, t], [f_prev, f_new], [g_prev, g_new]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new, gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = _dot(xp, g_new, d)
        ls_iter += 1
    if ls_iter == max_ls:                      # reached the evaluation limit
        bracket, bracket_f, bracket_g = [0.0, t], [f, f_new], [g, g_new]
        bracket_gtd = [gtd, gtd_new]
    # zoom phase: shrink the bracket until a point satisfies the conditions
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        # keep away from the bracket's ends unless progress was already insufficient there
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) else min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = _dot(xp, g_new, d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new, gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new, gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


class LBFGS(Optimizer):
    """``LBFGS(params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
    history_size=100, line_search_fn=None)``

    The same trajectory as ``torch.optim.LBFGS``. ``step(closure)`` needs a closure that zeroes
    the gradients, computes the loss, calls ``backward()`` and returns the loss; it runs up to
    `max_iter` iterations (`max_eval` closure calls, default ``max_iter * 5 // 4``).
    ``line_search_fn="strong_wolfe"`` chooses each step by a strong-Wolfe line search; otherwise the
    step is `lr` (the first one scaled by ``min(1, 1 / |g|_1)``). One parameter group only; all
    parameters on one device. State (on the first parameter): ``func_evals``, ``n_iter``, ``d``,
    ``t``, ``old_dirs``, ``old_stps``, ``ro``, ``H_diag``, ``prev_flat_grad``, ``prev_loss``."""

    _float_keys = ("lr", "tolerance_grad", "tolerance_change")
    _state_shaped = False

    def __init__(self, params, lr=1.0, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        if max_eval is None and isinstance(max_iter, int) and not isinstance(max_iter, bool):
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]
        devices = {str(p.device) for p in self._params}
        if len(devices) > 1:
            raise ValueError(f"LBFGS: all parameters must be on one device, got {sorted(devices)}")

    def add_param_group(self, param_group):
        """Refused once there is a group: LBFGS supports a single parameter group (ValueError)."""
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    def _validate(self, g):
        if g["lr"] < 0.0:
            raise ValueError(f"Invalid learning rate: {g['lr']} (must be >= 0)")
        for k in ("max_iter", "max_eval", "history_size"):
            v = g[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Invalid {k} value: {v!r} (LBFGS needs an integer >= 1)")
        for k in ("tolerance_grad", "tolerance_change"):
            if g[k] < 0.0:
                raise ValueError(f"Invalid {k} value: {g[k]} (must be >= 0)")
        if g["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"Invalid line_search_fn: {g['line_search_fn']!r}; LBFGS supports None or 'strong_wolfe'")

    # --- flat views of the parameters and gradients -------------------------------------------
    def _gather_flat_grad(self):
        xp = self._params[0].xp
        views = []
        for p in self._params:
            a = p.array
            if p.grad is None:
                views.append(xp.zeros((math.prod(a.shape),), dtype=a.dtype))
            else:
                views.append(xp.reshape(p.grad.array, (-1,)))
        return xp.concat(views)

    def _add_grad(self, step_size, update):
        xp = self._params[0].xp
        offset = 0
        for p in self._params:
            a = p.array
            n = math.prod(a.shape)
            a += step_size * xp.reshape(update[offset:offset + n], a.shape)
            p._version[0] += 1
            offset += n

    def _clone_param(self):
        return [p.xp.asarray(p.array, copy=True) for p in self._params]

    def _set_param(self, params_data):
        for p, saved in zip(self._params, params_data):
            p.array[...] = saved
            p._version[0] += 1

    def _evaluate(self, closure) -> float:
        with enable_grad():
            loss = closure()
        return float(loss)

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        loss = self._evaluate(closure)
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    def step(self, closure=None):
        """Run up to `max_iter` L-BFGS iterations; `closure()` re-evaluates the model (zero the
        gradients, forward, ``backward()``) and returns the loss. Returns the first loss."""
        if closure is None or not callable(closure):
            raise TypeError("LBFGS.step needs a closure: step(closure) where closure() zeroes the gradients, "
                            "computes the loss, calls loss.backward() and returns the loss")
        with no_grad():
            return self._step(closure)

    def _step(self, closure):
        group = self.param_groups[0]
        lr = float(group["lr"])
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]
        xp = self._params[0].xp
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        with enable_grad():
            orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if _amax(xp, flat_grad) <= tolerance_grad:     # already optimal
            return orig_loss

        arr = (lambda v: None if v is None else v.array)
        d, t = arr(state.get("d")), state.get("t")
        old_dirs = [v.array for v in state.get("old_dirs", [])]
        old_stps = [v.array for v in state.get("old_stps", [])]
        ro = list(state.get("ro", []))
        H_diag = state.get("H_diag")
        prev_flat_grad = arr(state.get("prev_flat_grad"))
        prev_loss = state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1.0
            else:
                # update the curvature pairs (only when y.s > 0 keeps H positive definite)
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = _dot(xp, y, s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / _dot(xp, y, y)
                al = state.get("al")
                if al is None or len(al) < history_size:
                    al = state["al"] = [None] * history_size
                d = lbfgs_direction(xp, flat_grad, old_dirs, old_stps, ro, H_diag, al)
            prev_flat_grad = xp.asarray(flat_grad, copy=True)
            prev_loss = loss
            # the step size: scaled on the very first iteration, lr afterwards
            t = min(1.0, 1.0 / float(xp.sum(xp.abs(flat_grad)))) * lr if state["n_iter"] == 1 else lr
            gtd = _dot(xp, flat_grad, d)
            if gtd > -tolerance_change:                # not a descent direction (any more)
                break
            ls_func_evals = 0
            if line_search_fn is not None:
                x_init = self._clone_param()
                loss, flat_grad, t, ls_func_evals = strong_wolfe(
                    xp, lambda x, t_, d_: self._directional_evaluate(closure, x, t_, d_), x_init, t, d, loss,
                    flat_grad, gtd, max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = _amax(xp, flat_grad) <= tolerance_grad
            else:
                self._add_grad(t, d)
                opt_cond = False
                if n_iter != max_iter:
                    loss = self._evaluate(closure)
                    flat_grad = self._gather_flat_grad()
                    opt_cond = _amax(xp, flat_grad) <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals
            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if _amax(xp, d * t) <= tolerance_change:   # the step, or the loss change, is negligible
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        wrap = (lambda a: None if a is None else _wrap(a, xp))
        state["d"] = wrap(d)
        state["t"] = t
        state["old_dirs"] = [_wrap(a, xp) for a in old_dirs]
        state["old_stps"] = [_wrap(a, xp) for a in old_stps]
        state["ro"] = ro
        state["H_diag"] = H_diag
        state["prev_flat_grad"] = wrap(prev_flat_grad)
        state["prev_loss"] = prev_loss
        return orig_loss

    def _cast_state(self, v, p: Tensor, name, index):
        if isinstance(v, Tensor) and v.ndim == 0 and name in ("t", "H_diag", "prev_loss"):
            return float(v.item())
        if name in ("ro", "al") and isinstance(v, (list, tuple)):
            return [None if x is None else float(x.item() if isinstance(x, Tensor) else x) for x in v]
        return super()._cast_state(v, p, name, index)
