"""Optimizers (PyTorch's algorithms and formulas) and learning-rate schedulers.

Each algorithm is a class that validates and keeps state, plus a pure array function that does
the maths (`sgd_update`, `adam_update`, `rmsprop_update`, `adagrad_update`)."""
from .optimizer import Optimizer
from .sgd import SGD, sgd_update
from .adam import Adam, AdamW, adam_update
from .rmsprop import RMSprop, rmsprop_update
from .adagrad import Adagrad, adagrad_update
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler",
           "sgd_update", "adam_update", "rmsprop_update", "adagrad_update"]
