"""Optimizers (PyTorch's algorithms and formulas) and learning-rate schedulers.

Each algorithm is a class that validates and keeps state, plus a pure array function that does
the maths (`sgd_update`, `adam_update`, `rmsprop_update`, `adagrad_update`, `nadam_update`,
`radam_update`, `adamax_update`, `asgd_update`, `rprop_update`; LBFGS: `lbfgs_direction`,
`strong_wolfe`). Every algorithm but LBFGS steps through one multi-tensor path
(`Optimizer._multi_tensor_step`), calling its `*_update_multi` function once per device and dtype
with lists of arrays; a Backend may replace that loop with a fused kernel
(`Backend.fused_optimizer_step`)."""
from .optimizer import Optimizer
from .sgd import SGD, sgd_update, sgd_update_multi
from .adam import Adam, AdamW, adam_update, adam_update_multi
from .rmsprop import RMSprop, rmsprop_update, rmsprop_update_multi
from .adagrad import Adagrad, adagrad_update, adagrad_update_multi
from .nadam import NAdam, nadam_update, nadam_update_multi
from .radam import RAdam, radam_update, radam_update_multi
from .adamax import Adamax, adamax_update, adamax_update_multi
from .asgd import ASGD, asgd_update, asgd_update_multi
from .rprop import Rprop, rprop_update, rprop_update_multi
from .lbfgs import LBFGS, lbfgs_direction, strong_wolfe
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "NAdam", "RAdam", "Adamax", "ASGD",
           "Rprop", "LBFGS", "lr_scheduler",
           "sgd_update", "adam_update", "rmsprop_update", "adagrad_update", "nadam_update", "radam_update",
           "adamax_update", "asgd_update", "rprop_update", "lbfgs_direction", "strong_wolfe",
           "sgd_update_multi", "adam_update_multi", "rmsprop_update_multi", "adagrad_update_multi",
           "nadam_update_multi", "radam_update_multi", "adamax_update_multi", "asgd_update_multi",
           "rprop_update_multi"]
