r"""The matrix chain rule step by step: forward definitions, adjoints, the simplified gradient.

Every intermediate node of ``f`` gets a name ``v_k`` (in forward order) and its adjoint
``vbar_k = df/dv_k`` (printed :math:`\bar v_k`); the backward steps are the vector-Jacobian
products of :mod:`symgrad.matrix.vjp`, written through those names, and the last lines give
the simplified gradients.

>>> import sympy as sp
>>> from symgrad.matrix import expr as mx
>>> X, w, y = sp.MatrixSymbol("X", 5, 3), sp.MatrixSymbol("w", 3, 1), sp.MatrixSymbol("y", 5, 1)
>>> print(derive(mx.sumsq(mx.sub(mx.matmul(X, w), y)), [w]).text())
forward:
  v1 = X*w
  v2 = v1 - y
  v3 = v2 .* v2
  f = sum(v3)
backward:
  vbar3 = vector(1)
  vbar2 = 2*(v2 .* vbar3)
  vbar1 = vbar2
  wbar = X'*vbar1
gradient:
  df/dw = 2*X'*(X*w - y)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.matrices.expressions import Identity, MatrixExpr, MatrixSymbol, ZeroMatrix
from sympy.matrices.expressions.special import OneMatrix

from . import expr as mx
from .latex import latex as _latex
from .simplify import simplify
from .text import text as _text
from .vjp import Equation, _check_wrt, _sweep, grad, loss_seed

__all__ = ["MatrixDerivation", "derive"]

_LEAVES = (MatrixSymbol, sp.Symbol, sp.Number, Identity, ZeroMatrix, OneMatrix, sp.NumberSymbol)


@dataclass(frozen=True)
class MatrixDerivation:
    """A matrix derivation: forward definitions, backward steps and gradients.

    Attributes:
        forward: ``v_k = ...`` in forward order (the last one is ``f``).
        backward: ``vbar_k = ...`` in the order the backward pass computes them.
        gradients: ``df/dw = ...`` (simplified) for each parameter.

    >>> x = sp.MatrixSymbol("x", 2, 1)
    >>> len(derive(mx.sumsq(x), [x]).forward)
    2
    """

    forward: list[Equation]
    backward: list[Equation]
    gradients: list[Equation]

    def _lines(self, show: Any, arrow: str) -> list[str]:
        out = ["forward:"] + [f"  {show(e.lhs)} {arrow} {show(e.rhs)}" for e in self.forward]
        out += ["backward:"] + [f"  {show(e.lhs)} {arrow} {show(e.rhs)}" for e in self.backward]
        out += ["gradient:"] + [f"  {e.lhs} {arrow} {show(e.rhs)}" for e in self.gradients]
        return out

    def text(self) -> str:
        """Plain text in the notation of :func:`symgrad.matrix.parse`.

        >>> x = sp.MatrixSymbol("x", 2, 1)
        >>> derive(mx.sumsq(x), [x]).text().splitlines()[-1]
        '  df/dx = 2*x'
        """
        return "\n".join(self._lines(_text, "="))

    def latex(self) -> str:
        r"""LaTeX ``align*`` environment, one equation per line.

        >>> x = sp.MatrixSymbol("x", 2, 1)
        >>> derive(mx.sumsq(x), [x]).latex().splitlines()[-2]
        '\\frac{\\partial f}{\\partial x} &= 2 x'
        """
        rows = [rf"{_latex(e.lhs)} &= {_latex(e.rhs)}" for e in self.forward + self.backward]
        for e in self.gradients:
            w = str(e.lhs).removeprefix("df/d")
            name = _latex(MatrixSymbol(w, 1, 1))
            rows.append(rf"\frac{{\partial f}}{{\partial {name}}} &= {_latex(e.rhs)}")
        return "\\begin{align*}\n" + " \\\\\n".join(rows) + "\n\\end{align*}"


def _leaf(node: sp.Basic) -> bool:
    """Symbols, constants and their scalar multiples (``-y``) get no name of their own."""
    if isinstance(node, _LEAVES):
        return True
    c, base = mx._split(node) if isinstance(node, MatrixExpr) else (None, None)
    return c is not None and c != 1 and isinstance(base, _LEAVES)


def derive(f: Any, wrt: Sequence[Any]) -> MatrixDerivation:
    """The backward pass of a scalar matrix function, one named step per node.

    Args:
        f: a scalar (or 1x1) matrix expression.
        wrt: the parameters (``MatrixSymbol`` objects).

    Returns:
        A :class:`MatrixDerivation`.

    Raises:
        InputTypeError: ``f`` is not a SymPy expression or ``wrt`` not symbols.

    >>> x = sp.MatrixSymbol("x", 2, 1)
    >>> derive(mx.sumsq(x), [x]).gradients[0].rhs
    2*x
    """
    items = _check_wrt(wrt)
    f = simplify(mx._operand(f, "derive"))
    start = loss_seed(f, "derive")
    order = [n for n in mx.value_nodes([f]) if not _leaf(n) or n == f]
    names: dict[sp.Basic, sp.Basic] = {}
    bars: dict[sp.Basic, sp.Basic] = {}
    forward = []
    for k, node in enumerate(order, start=1):
        last = k == len(order)
        label = "f" if last else f"v{k}"
        rhs = node.xreplace({c: names[c] for c in mx.operands(node) if c in names})
        if isinstance(node, MatrixExpr):
            names[node] = MatrixSymbol(label, *node.shape)
            bars[node] = MatrixSymbol(f"vbar{k}", *node.shape)
        else:
            names[node] = sp.Symbol(label)
            bars[node] = sp.Symbol(f"vbar{k}")
        forward.append(Equation(names[node], rhs))
    inner = {n: b for n, b in bars.items() if n != f}
    adj, eqs = _sweep({f: start}, items, inner)
    backward = [Equation(e.lhs, e.rhs.xreplace(names)) for e in eqs]
    for w in items:  # the parameters' adjoints through the names, then in full below
        if w in adj:
            bar = (
                MatrixSymbol(f"{w}bar", *w.shape)
                if isinstance(w, MatrixExpr)
                else sp.Symbol(f"{w}bar")
            )
            backward.append(Equation(bar, adj[w].xreplace(names)))
    full = grad(f, items)
    gradients = [Equation(sp.Symbol(f"df/d{w}"), g) for w, g in zip(items, full, strict=True)]
    return MatrixDerivation(forward, backward, gradients)
