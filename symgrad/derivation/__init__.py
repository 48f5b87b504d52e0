"""Derivations: the chain-rule steps of a backward pass as data, and their views.

:func:`derive` (in :mod:`symgrad.derivation.derive`) records the steps;
:mod:`~symgrad.derivation.views` prints them as text, LaTeX and Markdown through the SymPy
printer subclasses of :mod:`~symgrad.derivation.printers`.

>>> import sympy as sp
>>> x = sp.Symbol("x")
>>> derive(x**2, at={x: 3}).gradients[x]
2*x
"""

from .derive import TARGET_NAMES, Derivation, derive, node_names

__all__ = ["TARGET_NAMES", "Derivation", "derive", "node_names"]
