"""symgrad: exact gradients by the chain rule over SymPy expression DAGs.

The public surface is deliberately small; everything here is a re-export.

>>> import sympy as sp
>>> import symgrad
>>> x = sp.Symbol("x")
>>> symgrad.grad(3 * x**2 - 4 * x + 5, x)
6*x - 4
"""

from . import numerical
from ._version import __version__ as __version__
from .autodiff import grad, hessian, jacobian
from .check import GradCheckReport, check_grad, check_grad_fn
from .codegen import CompiledFunction, lambdify, value_and_grad
from .derivation import Derivation, derive
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

# Loaded on first use: most programs (and every `symgrad` command but --matrix and graph) never
# need the matrix calculus or the Graphviz drawing, and importing them is a good part of
# `import symgrad` (benchmarks/bench_hardening.py measures it).
_LAZY = {"matrix": ("symgrad.matrix", None), "draw_dot": ("symgrad.derivation.dot", "draw_dot")}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'symgrad' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    value = importlib.import_module(module_name)
    value = value if attribute is None else getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
