"""The registry of source targets: each prints a :class:`~symgrad.codegen.plan.Program`.

Adding a target is one emitter module and one line in :data:`TARGETS`.

>>> import sympy as sp
>>> x = sp.Symbol("x")
>>> print(source(sp.exp(sp.sin(x)), [x], "python", "f"))
def f(_a0):
    return math.exp(math.sin(_a0))
<BLANKLINE>
"""

from __future__ import annotations

from typing import Any

from ..errors import OptionError
from . import jax, js, numpy, pyfloat
from .compile import check_name
from .plan import plan

__all__ = ["TARGETS", "source"]

#: target name -> ``emit(program, name) -> source text``
TARGETS = {
    "numpy": numpy.emit,
    "python": pyfloat.emit_module_function,
    "javascript": js.emit_program,
    "jax": jax.emit,
}


def source(outputs: Any, args: Any, target: str = "numpy", name: str = "symgrad_fn") -> str:
    """The source text of a function ``name`` computing ``outputs`` over ``args`` for ``target``.

    Raises:
        OptionError: an unknown target or an unsafe name.
        UnsupportedFunctionError: the target cannot print an output.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> "Math.exp(a0)" in source(sp.exp(x), [x], "javascript")
    True
    """
    emit = TARGETS.get(target)
    if emit is None:
        raise OptionError(f"unknown target {target!r}; targets: {', '.join(TARGETS)}")
    return emit(plan(outputs, args), check_name(name))
