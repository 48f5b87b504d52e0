"""symgrad: exact gradients by the chain rule over SymPy expression DAGs.

The public surface is deliberately small; everything here is a re-export.

>>> import sympy as sp
>>> import symgrad
>>> x = sp.Symbol("x")
>>> symgrad.grad(3 * x**2 - 4 * x + 5, x)
6*x - 4
"""

from . import matrix, numerical
from ._version import __version__ as __version__
from .autodiff import grad, hessian, jacobian
from .check import GradCheckReport, check_grad, check_grad_fn
from .codegen import CompiledFunction, lambdify, value_and_grad
from .derivation import Derivation, derive
from .derivation.dot import draw_dot
from .errors import SymgradError
from .functions import relu, sigmoid
from .parse import parse
from .value import Value

__all__ = [
    "CompiledFunction",
    "Derivation",
    "GradCheckReport",
    "SymgradError",
    "Value",
    "check_grad",
    "check_grad_fn",
    "derive",
    "draw_dot",
    "grad",
    "hessian",
    "jacobian",
    "lambdify",
    "matrix",
    "numerical",
    "parse",
    "relu",
    "sigmoid",
    "value_and_grad",
]
