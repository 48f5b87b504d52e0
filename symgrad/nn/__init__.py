"""Neural networks: micrograd's modules, dense networks, and one training stack for both.

``Neuron``, ``Layer`` and ``MLP`` behave like micrograd's on :class:`~symgrad.Value` inputs;
:class:`Dense` is a fully connected network of matrices. One :class:`Trainer` differentiates
either symbolically and trains it vectorised (samples as rows), with the same optimisers
(:class:`SGD`, :class:`Adam`: in-place updates of arrays, with schedules; PyTorch-shaped
``step()``/``zero_grad()`` for ``Value`` parameters), :class:`History`, health monitor and
persistence.

>>> import random
>>> from symgrad.nn import MLP
>>> random.seed(1337)
>>> model = MLP(2, [16, 16, 1])
>>> round(model([1.0, -1.0]).data, 6)
-0.924517
"""

from .dense import Dense
from .health import HealthMonitor, LayerStats, TrainingWarning
from .losses import hinge, l2, logistic, softmax_cross_entropy, squared_error
from .modules import ACTIVATIONS, INITS, MLP, Layer, Module, Neuron
from .optim import SGD, Adam, Optimizer, linear_schedule
from .persist import load_parameters, save_parameters
from .train import History, Trainer

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "MLP",
    "SGD",
    "Adam",
    "Dense",
    "HealthMonitor",
    "History",
    "Layer",
    "LayerStats",
    "Module",
    "Neuron",
    "Optimizer",
    "Trainer",
    "TrainingWarning",
    "hinge",
    "l2",
    "linear_schedule",
    "load_parameters",
    "logistic",
    "save_parameters",
    "softmax_cross_entropy",
    "squared_error",
]
