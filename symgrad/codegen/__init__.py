"""Compiling expressions into fast numeric functions: the planner, printers and targets.

:func:`lambdify` and :func:`value_and_grad` (in :mod:`symgrad.codegen.compile`) turn outputs
over arguments into a :class:`CompiledFunction`; :mod:`~symgrad.codegen.printers` prints one
node over its arguments' names, :mod:`~symgrad.codegen.fuse` groups products,
:mod:`~symgrad.codegen.runtime` is what generated code calls, and :mod:`~symgrad.codegen.c`
is the native target.

>>> import sympy as sp
>>> x = sp.Symbol("x")
>>> float(lambdify(x**2, [x])(3.0))
9.0
"""

from .compile import BACKENDS, CompiledFunction, lambdify, value_and_grad

__all__ = ["BACKENDS", "CompiledFunction", "lambdify", "value_and_grad"]
