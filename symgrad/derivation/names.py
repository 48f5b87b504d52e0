"""Display names and forward values of the nodes of an expression.

Derivations, their views and their pictures name nodes through :func:`node_names` and show
numbers from :func:`numeric_values`, so every view agrees on ``u_1`` and on ``-8``.

>>> import sympy as sp
>>> x = sp.Symbol("x")
>>> node_names(sp.sin(x) * x)
{x: 'x', sin(x): 'u_1', x*sin(x): 'f'}
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Mapping

import sympy as sp

from ..graph import topo_order

__all__ = ["TARGET_NAMES", "node_names", "numeric_values"]


#: Names tried, in order, for an unlabelled target.
TARGET_NAMES = ("f", "g", "h", "F", "L", "y")


def node_names(
    expr: sp.Expr,
    labels: Mapping[sp.Basic, str] | None = None,
    prefix: str = "u",
) -> dict[sp.Basic, str]:
    """Readable names for the nodes of ``expr``: labels first, then ``u_1, u_2, ...``.

    Leaves are named by their symbol names. Every other non-atomic node gets its label when it
    has one, else a generated name numbered in topological order (children first), skipping
    names already used. The target gets its label or the first free name of
    :data:`TARGET_NAMES`. Derivations and graph drawings use this one function so their names
    agree.

    Args:
        expr: the target expression.
        labels: optional names for nodes (e.g. from ``Value`` labels).
        prefix: the stem of generated names.

    Returns:
        A dict from node to name (numbers are not named).

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> node_names(sp.exp(x * y) + x)
    {x: 'x', y: 'y', x*y: 'u_1', exp(x*y): 'u_2', x + exp(x*y): 'f'}
    """
    labels = dict(labels or {})
    order = topo_order([expr])
    root = order[-1]  # the node equal to expr, found by position (no deep comparison)
    taken = {s.name for s in order if isinstance(s, sp.Symbol)} | set(labels.values())
    names: dict[sp.Basic, str] = {}
    counter = 0
    for node in order:
        if isinstance(node, sp.Symbol):
            names[node] = labels.get(node, node.name) if node is not expr else node.name
        elif node.is_Atom or not isinstance(node, sp.Expr):
            continue  # numbers, and Piecewise's (expr, cond) pairs and conditions
        elif labels.get(node):
            names[node] = labels[node]
        elif node is root:
            names[node] = next((n for n in TARGET_NAMES if n not in taken), f"{prefix}_0")
        else:
            counter += 1
            while f"{prefix}_{counter}" in taken:
                counter += 1
            names[node] = f"{prefix}_{counter}"
    return names


def numeric_values(
    exprs: Iterable[sp.Basic], leaves: Mapping[sp.Symbol, float]
) -> dict[sp.Basic, float]:
    """The real value of every node of ``exprs`` that has one, with leaf symbols set to numbers.

    Used by derivations and graph drawings (the forward values a backward pass shows).

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> numeric_values([sp.exp(x) + x], {x: 0.0})
    {x: 0.0, exp(x): 1.0, x + exp(x): 1.0}
    """
    # Bottom-up over the DAG of all the expressions at once: each node evaluated from its
    # arguments' numbers, so the cost is linear in the number of unique nodes.
    memo: dict[sp.Basic, sp.Basic] = {}
    out: dict[sp.Basic, float] = {}
    for node in topo_order(exprs):
        if isinstance(node, sp.Symbol):
            value: sp.Basic = sp.Float(leaves[node])
        elif not node.args:
            value = node
        else:
            args = [memo.get(a) for a in node.args]
            if any(a is None for a in args):
                continue
            try:
                if (node.is_Add or node.is_Mul) and all(a.is_Number for a in args):
                    # what Add/Mul's flatten does with numbers (the same SymPy Number
                    # arithmetic, left to right) without its bookkeeping: 3x on Value chains
                    value = functools.reduce(operator.add if node.is_Add else operator.mul, args)
                else:
                    value = node.func(*args)
            except (TypeError, ValueError, ArithmeticError):
                continue  # no number here (e.g. a domain error): the view shows none
        memo[node] = value
        if isinstance(value, sp.Expr) and value.is_number and value.is_extended_real:
            out[node] = float(value)
    return out
