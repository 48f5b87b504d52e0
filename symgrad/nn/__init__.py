"""Neural networks: micrograd's modules, and training compiled once into NumPy.

``Neuron``, ``Layer`` and ``MLP`` behave like micrograd's on :class:`~symgrad.Value` inputs;
:class:`Trainer` differentiates the same network symbolically and trains it vectorised.

>>> import random
>>> from symgrad.nn import MLP
>>> random.seed(1337)
>>> model = MLP(2, [16, 16, 1])
>>> round(model([1.0, -1.0]).data, 6)
-0.924517
"""

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
