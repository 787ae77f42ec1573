"""Optimizers (PyTorch's algorithms and formulas) and learning-rate schedulers.

Each algorithm is a class that validates and keeps state, plus a pure array function that does
the maths (`sgd_update`, `adam_update`, `rmsprop_update`, `adagrad_update`, `nadam_update`,
`radam_update`, `adamax_update`, `asgd_update`, `rprop_update`; LBFGS: `lbfgs_direction`,
`strong_wolfe`)."""
from .optimizer import Optimizer
from .sgd import SGD, sgd_update
from .adam import Adam, AdamW, adam_update
from .rmsprop import RMSprop, rmsprop_update
from .adagrad import Adagrad, adagrad_update
from .nadam import NAdam, nadam_update
from .radam import RAdam, radam_update
from .adamax import Adamax, adamax_update
from .asgd import ASGD, asgd_update
from .rprop import Rprop, rprop_update
from .lbfgs import LBFGS, lbfgs_direction, strong_wolfe
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "NAdam", "RAdam", "Adamax", "ASGD",
           "Rprop", "LBFGS", "lr_scheduler",
           "sgd_update", "adam_update", "rmsprop_update", "adagrad_update", "nadam_update", "radam_update",
           "adamax_update", "asgd_update", "rprop_update", "lbfgs_direction", "strong_wolfe"]
