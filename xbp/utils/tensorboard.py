"""``xbp.utils.tensorboard.SummaryWriter``: PyTorch's TensorBoard logger for xbp tensors.

Built on tensorboardX's event-file writer (an optional extra: ``pip install tensorboardX``, or
``pip install 'xbp[tensorboard]'``); view the logs with ``tensorboard --logdir runs``. Values may be
xbp Tensors (on any device: they are read back to the host), NumPy arrays or Python numbers.

    writer = SummaryWriter("runs/digits")
    writer.add_scalar("loss/train", loss, epoch)
    writer.add_histogram("fc1.weight", model[0].weight, epoch)
    writer.add_text("config", "lr 2e-3, batch 32", 0)
    writer.add_graph(model, x)              # the graph as Graphviz DOT text (xbp.viz.to_dot)
    writer.close()
"""
from __future__ import annotations

import numpy as np

__all__ = ["SummaryWriter", "INSTALL_HINT"]

INSTALL_HINT = ("xbp.utils.tensorboard needs the tensorboardX package (its event-file writer): "
                "pip install tensorboardX (or pip install 'xbp[tensorboard]')")


def _tensorboardx():
    try:
        import tensorboardX
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return tensorboardX


def _host(v, what):
    """A NumPy array (or Python number) for `v`: Tensors are detached and copied to the host."""
    from .._tensor import Tensor
    if isinstance(v, Tensor):
        return v.detach().numpy()
    if isinstance(v, (int, float, np.number, np.ndarray, np.bool_)):
        return v
    if isinstance(v, (list, tuple)):
        return np.asarray(v)
    raise TypeError(f"SummaryWriter.{what}: expected a Tensor, NumPy array or number, got {type(v).__name__}")


def _scalar(v, what) -> float:
    a = _host(v, what)
    if isinstance(a, np.ndarray):
        if a.size != 1:
            raise ValueError(f"SummaryWriter.{what}: a scalar needs one value, got shape {a.shape}")
        a = a.reshape(())[()]
    return float(a)


def _step(step, what):
    if step is None:
        return None
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        from .._tensor import Tensor
        if isinstance(step, Tensor) and step.ndim == 0 and not step.is_floating_point():
            return int(step.item())
        raise TypeError(f"SummaryWriter.{what}: global_step must be an integer, got {type(step).__name__}")
    return int(step)


class SummaryWriter:
    """``SummaryWriter(log_dir=None, comment="", purge_step=None, max_queue=10, flush_secs=120,
    filename_suffix="")``: writes TensorBoard event files under `log_dir` (default
    ``runs/<date>_<host><comment>``), as ``torch.utils.tensorboard.SummaryWriter`` does."""

    def __init__(self, log_dir=None, comment="", purge_step=None, max_queue=10, flush_secs=120,
                 filename_suffix=""):
        tbx = _tensorboardx()
        self._writer = tbx.SummaryWriter(logdir=log_dir, comment=comment, purge_step=purge_step,
                                         max_queue=max_queue, flush_secs=flush_secs,
                                         filename_suffix=filename_suffix)
        self.log_dir = self._writer.logdir

    def get_logdir(self) -> str:
        return self.log_dir

    def add_scalar(self, tag: str, scalar_value, global_step=None, walltime=None, new_style=False,
                   double_precision=False) -> None:
        """One value of the curve `tag` at `global_step` (a 0-d/1-element Tensor, or a number),
        stored as TensorBoard's float32 simple value (`new_style` is accepted and changes nothing
        TensorBoard shows; ``double_precision=True`` is refused: the writer stores float32)."""
        if double_precision:
            raise NotImplementedError("SummaryWriter.add_scalar(double_precision=True): the tensorboardX writer "
                                      "stores scalars as float32; log the value at float32 precision")
        self._writer.add_scalar(tag, _scalar(scalar_value, "add_scalar"), _step(global_step, "add_scalar"),
                                walltime=walltime)

    def add_scalars(self, main_tag: str, tag_scalar_dict: dict, global_step=None, walltime=None) -> None:
        """Several curves on one chart: ``{"train": loss_a, "test": loss_b}``."""
        values = {k: _scalar(v, "add_scalars") for k, v in tag_scalar_dict.items()}
        self._writer.add_scalars(main_tag, values, _step(global_step, "add_scalars"), walltime=walltime)

    def add_histogram(self, tag: str, values, global_step=None, bins="tensorflow", walltime=None,
                      max_bins=None) -> None:
        """The distribution of `values` (any shape; e.g. a weight or its gradient) at `global_step`."""
        a = np.asarray(_host(values, "add_histogram"), dtype=np.float64)
        if a.size == 0:
            raise ValueError(f"SummaryWriter.add_histogram: {tag!r} has no values")
        if not np.isfinite(a).all():
            raise ValueError(f"SummaryWriter.add_histogram: {tag!r} holds NaN or inf; a histogram needs finite values")
        self._writer.add_histogram(tag, a, _step(global_step, "add_histogram"), bins=bins, walltime=walltime,
                                   max_bins=max_bins)

    def add_text(self, tag: str, text_string: str, global_step=None, walltime=None) -> None:
        """Text (Markdown) shown in TensorBoard's text tab."""
        if not isinstance(text_string, str):
            raise TypeError(f"SummaryWriter.add_text: expected a str, got {type(text_string).__name__}")
        self._writer.add_text(tag, text_string, _step(global_step, "add_text"), walltime=walltime)

    def add_graph(self, model, input_to_model=None, verbose=False, use_strict_trace=True) -> str:
        """Run `model` on `input_to_model` (a Tensor or a tuple of them) and log its graph as
        Graphviz DOT text (xbp.viz.to_dot, grouped by module) under the tag ``graph``; TensorBoard's
        graph tab reads only TensorFlow/ONNX graphs, so the DOT goes to the text tab (render it with
        ``dot -Tsvg``). Returns the DOT text."""
        from .. import viz
        from ..autograd import enable_grad
        if input_to_model is None:
            raise ValueError("SummaryWriter.add_graph: pass input_to_model (the graph is recorded by running the model)")
        args = input_to_model if isinstance(input_to_model, (tuple, list)) else (input_to_model,)
        with enable_grad(), viz.record(grads=False):
            out = model(*args)
        dot = viz.to_dot(out, params=model, group_by_module=True)
        self._writer.add_text("graph", "```\n" + dot + "\n```", 0)
        if verbose:
            print(dot)
        return dot

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
