r"""Rewrite rules that put matrix results in textbook form, and scalars where they cost least.

:func:`simplify` rebuilds an expression bottom-up through the shape-checked constructors of
:mod:`symgrad.matrix.expr` (which already drop identities, unit broadcasts and 1x1 wrappers) and
adds the rules that look at several terms at once:

* common factors of a sum are collected: ``A x + A^T x = (A + A^T) x``, ``P X + P Y = P (X + Y)``;
* diagonal matrices merge: ``diag(a) diag(b) = diag(a ⊙ b)``, ``diag(a) + diag(b) = diag(a + b)``,
  ``c diag(a) = diag(c a)`` inside sums, so a Hessian reads ``X^T diag(s) X``;
* an entry of a 1x1 product is its sum, ``(x^T A x)[0, 0] = sum(x^T A x)``, and SymPy's indexed
  sums (what ``(x.T*A*x)[0, 0]`` evaluates to) are read back as matrix products.

:func:`push_scalars` is the code generator's rule: a scalar factor of a product is applied to its
smallest operand (``(1/B) (D X^T)`` computes ``((1/B) D) X^T`` when ``D`` is smaller than the
result), through products, entrywise products, transposes and axis sums.

Both passes are iterative over the DAG (each unique node is rebuilt once), so shared
subexpressions stay shared.

>>> import sympy as sp
>>> from symgrad.matrix import expr as mx
>>> A, x = sp.MatrixSymbol("A", 3, 3), sp.MatrixSymbol("x", 3, 1)
>>> simplify(mx.add(mx.matmul(A, x), mx.matmul(A.T, x)))
(A + A.T)*x
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import sympy as sp
from sympy.matrices.expressions import (
    Determinant,
    HadamardPower,
    HadamardProduct,
    Identity,
    Inverse,
    KroneckerProduct,
    MatAdd,
    MatMul,
    MatrixExpr,
    Trace,
    Transpose,
)
from sympy.matrices.expressions.blockmatrix import BlockMatrix
from sympy.matrices.expressions.diagonal import DiagMatrix
from sympy.matrices.expressions.matexpr import MatrixElement

from ..errors import UnsupportedFunctionError
from . import expr as mx
from .expr import Broadcast, LogDet, LogSumExp, Map, Softmax, SumAll, SumAxis, _split

__all__ = ["from_indexed", "push_scalars", "rebuild", "simplify"]

_NOTHING: Mapping = MappingProxyType({})
# A symbolic dimension (a batch size B) counts as this many rows when sizes are compared.
_SYMBOLIC_DIM = 1000


def from_indexed(s: sp.Sum) -> sp.Basic:
    """An indexed sum read back as a matrix expression (``(x.T*A*x)[0, 0]`` evaluates to one).

    ``Sum(A[i, j] x[i, 0] x[j, 0], ...)`` becomes ``(x^T A x)[0, 0]``, which :func:`simplify`
    turns into ``sum(x^T A x)``.

    Raises:
        UnsupportedFunctionError: an indexed sum that is no matrix product.

    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> A, x = sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("x", n, 1)
    >>> from_indexed((x.T * A * x)[0, 0])
    (x.T*A*x)[0, 0]
    """
    from sympy.tensor.array.expressions import from_array_to_matrix, from_indexed_to_array

    try:
        return from_array_to_matrix.convert_array_to_matrix(
            from_indexed_to_array.convert_indexed_to_array(s)
        )
    except Exception as err:  # SymPy raises bare ValueError/NotImplementedError here
        raise UnsupportedFunctionError(
            "Sum",
            f"cannot read the indexed sum {mx._name(s)} as a matrix expression ({err}); "
            f"build it with symgrad.matrix constructors (matmul, sum, ...)",
        ) from err


def _size(e: sp.Basic) -> float:
    """Entries of a matrix (symbolic dimensions count as large), 1 for a scalar."""
    if not isinstance(e, MatrixExpr):
        return 1.0
    total = 1.0
    for d in e.shape:
        total *= float(d) if d.is_Integer else _SYMBOLIC_DIM
    return total


def _factors(term: MatrixExpr) -> tuple[sp.Expr, list[MatrixExpr]]:
    c, base = _split(term)
    return c, list(base.args) if isinstance(base, MatMul) else [base]


def _product(mats: Sequence[MatrixExpr], rows: Any) -> MatrixExpr:
    return mx.matmul(*mats) if mats else Identity(rows)


def _collect(terms: list[MatrixExpr]) -> MatrixExpr:
    """The sum of ``terms`` with common right (then left) factors pulled out, diagonals merged."""
    if len(terms) > 1 and all(isinstance(_split(t)[1], DiagMatrix) for t in terms):
        # diag(a) + c diag(b) = diag(a + c b)
        return DiagMatrix(mx.add(*[mx.scale(c, b.args[0]) for c, b in map(_split, terms)]))
    for side in (-1, 0):  # A x + B x = (A + B) x first (a matrix-vector product), then P X + P Y
        groups: dict[MatrixExpr, list[int]] = {}
        for i, t in enumerate(terms):
            _, mats = _factors(t)
            if len(mats) > 1 or any(len(_factors(u)[1]) > 1 for u in terms):
                groups.setdefault(mats[side], []).append(i)
        for factor, idx in groups.items():
            if len(idx) < 2 or isinstance(factor, Identity):
                continue
            rest = []
            for i in idx:
                c, mats = _factors(terms[i])
                rows = factor.shape[0] if side == -1 else factor.shape[1]
                rest.append(mx.scale(c, _product(mats[:-1] if side == -1 else mats[1:], rows)))
            inner = _collect(rest)
            merged = mx.matmul(inner, factor) if side == -1 else mx.matmul(factor, inner)
            others = [t for i, t in enumerate(terms) if i not in idx]
            return _collect([*others, merged]) if others else merged
    return mx.add(*terms)


def _matmul(coeff: sp.Expr, mats: list[MatrixExpr]) -> MatrixExpr:
    c, flat = _factors(mx.matmul(*mats))
    coeff, merged = coeff * c, []
    for m in flat:  # diag(a) diag(b) = diag(a ⊙ b)
        if merged and isinstance(m, DiagMatrix) and isinstance(merged[-1], DiagMatrix):
            merged[-1] = DiagMatrix(mx.hadamard(merged[-1].args[0], m.args[0]))
        else:
            merged.append(m)
    return mx.scale(coeff, mx.matmul(*merged))


def rebuild(node: sp.Basic, new: Sequence[sp.Basic]) -> sp.Basic:
    """``node`` with its value operands (:func:`~symgrad.matrix.expr.operands`) replaced.

    Rebuilt through the constructors, so the local identities apply again.

    >>> X, Y = sp.MatrixSymbol("X", 2, 2), sp.MatrixSymbol("Y", 2, 2)
    >>> rebuild(mx.tanh(X), [Y])
    Map(Lambda(u0, tanh(u0)), Y)
    """
    if isinstance(node, MatAdd):
        return _collect(list(new))
    if isinstance(node, MatMul):
        coeff = sp.Mul(*[a for a in new if not isinstance(a, MatrixExpr)])
        return _matmul(coeff, [a for a in new if isinstance(a, MatrixExpr)])
    if isinstance(node, HadamardProduct):
        return mx.hadamard(*new)
    if isinstance(node, Map):
        return mx.elementwise(node.lam, *new)
    if isinstance(node, Transpose):
        return mx.transpose(new[0])
    if isinstance(node, Inverse):
        return mx.inverse(new[0])
    if isinstance(node, SumAxis):
        return mx.sum(new[0], axis=node.axis)
    if isinstance(node, Broadcast):
        return mx.broadcast(new[0], node.shape)
    if isinstance(node, Softmax):
        return mx.softmax(new[0], node.axis)
    if isinstance(node, LogSumExp):
        return mx.logsumexp(new[0], node.axis)
    if isinstance(node, SumAll):
        return mx.sum(new[0])
    if isinstance(node, Trace):
        return mx.trace(new[0])
    if isinstance(node, Determinant):
        return mx.det(new[0])
    if isinstance(node, LogDet):
        return mx.logdet(new[0])
    if isinstance(node, MatrixElement):
        parent = new[0]
        if isinstance(parent, MatrixExpr) and tuple(parent.shape) == (1, 1):
            return mx.sum(parent)
        return parent[new[1], new[2]]
    if isinstance(node, DiagMatrix):
        return DiagMatrix(new[0])
    if isinstance(node, BlockMatrix):
        cols = node.blocks.shape[1]
        return BlockMatrix([list(new[i : i + cols]) for i in range(0, len(new), cols)])
    if isinstance(node, sp.Sum):
        return simplify(from_indexed(node))
    if isinstance(node, (HadamardPower, KroneckerProduct)) or not isinstance(node, MatrixExpr):
        return node.func(*new) if tuple(new) != node.args else node
    return node  # leaves and nodes without value operands


def simplify(e: Any) -> Any:
    """The textbook form of a matrix (or scalar) expression, or of a list of them.

    Shared subexpressions of a list stay shared (one rebuild per unique node).

    Raises:
        UnsupportedFunctionError: an indexed sum that is no matrix product.

    >>> x = sp.MatrixSymbol("x", 3, 1)
    >>> simplify(mx.matmul(x.T, x, mx.broadcast(1, (1, 1))))
    x.T*x
    """
    roots = mx._operands(e, "simplify")
    done = _rewrite_all(roots, rebuild)
    out = [done[r] for r in roots]
    return type(e)(out) if isinstance(e, (list, tuple)) else out[0]


def _rewrite_all(roots: Iterable[sp.Basic], fn: Any) -> dict[sp.Basic, sp.Basic]:
    done: dict[sp.Basic, sp.Basic] = {}
    for node in mx.value_nodes(roots):
        kids = mx.operands(node)
        if not kids:
            done[node] = node
            continue
        new = [done.get(k, k) for k in kids]
        out = node if new == list(kids) and not _local(node) else fn(node, new)
        hash(out)  # bottom-up, so hashing a deep rebuilt expression never recurses deeply
        done[node] = out
    return done


def _local(node: sp.Basic) -> bool:
    """Nodes whose own rewrite rules apply even when their operands did not change."""
    return isinstance(node, (MatAdd, MatMul, MatrixElement, sp.Sum))


def _chain(node: sp.Basic) -> list[sp.Basic]:
    """Operands through which a scalar factor of ``node`` may be applied instead."""
    if isinstance(node, (MatMul, HadamardProduct, KroneckerProduct)):
        return [a for a in node.args if isinstance(a, MatrixExpr)]
    if isinstance(node, (Transpose, SumAxis)):
        return [node.args[0]]
    return []


def _best(node: sp.Basic, best: dict, free: Mapping = _NOTHING) -> tuple[float, int]:
    """(entries, operand index or -1 for the node itself) of the cheapest place to scale.

    Nodes in ``free`` are scaled anyway (by another output, through the operand it maps to), so
    scaling there costs nothing.
    """
    stack = [node]
    while stack:  # iterative: only down chains of products, entrywise products and transposes
        n = stack[-1]
        if n in best:
            stack.pop()
            continue
        kids = _chain(n)
        missing = [k for k in kids if k not in best]
        if missing:
            stack.extend(missing)
            continue
        stack.pop()
        if n in free:
            best[n] = (0.0, free[n])
            continue
        options = [(_size(n), -1), *((best[k][0], i) for i, k in enumerate(kids))]
        best[n] = min(options, key=lambda t: t[0])
    return best[node]


def _scaled(node: MatrixExpr, c: sp.Expr, best: dict, memo: dict, free: Mapping) -> MatrixExpr:
    """``c * node`` with ``c`` applied at the cheapest operand along one chain (memoised, so
    the gradients of a deep network share one scaled chain)."""
    path: list[tuple[MatrixExpr, int]] = []
    while (node, c) not in memo and (i := _best(node, best, free)[1]) >= 0:
        path.append((node, i))
        node = _chain(node)[i]
    if (node, c) not in memo:
        memo[node, c] = mx.scale(c, node)
    out = memo[node, c]
    for parent, i in reversed(path):
        kids = list(_chain(parent))
        kids[i] = out
        # built raw: the constructors would pull the scale back out in front
        if isinstance(parent, MatMul):
            out = MatMul(*[a for a in parent.args if not isinstance(a, MatrixExpr)], *kids)
        elif isinstance(parent, (HadamardProduct, KroneckerProduct)):
            out = type(parent)(*kids)
        else:
            out = parent.func(out, *parent.args[1:])
        hash(out)  # bottom-up (a chain may be as deep as the network)
        memo[parent, c] = out
    return out


def push_scalars(roots: Sequence[sp.Basic]) -> list[sp.Basic]:
    """``roots`` with every scalar factor of a product applied to its smallest operand.

    For the code generator: ``c (A B)`` computes ``(c A) B`` when ``A`` has fewer entries than
    ``A B`` (symbolic dimensions count as large), also through entrywise products, transposes
    and axis sums. Equal scaled operands become one node, so a scale shared by several gradients
    is computed once.

    >>> D, X = sp.MatrixSymbol("D", 10, 256), sp.MatrixSymbol("X", 784, 256)
    >>> out = push_scalars([mx.scale(sp.Rational(1, 256), mx.matmul(D, X.T))])[0]
    >>> out.args[0]
    (1/256)*D
    """
    # Two passes: the first finds where each output would scale; the second treats those
    # places as free, so outputs that meet a scaled operand share it instead of scaling a
    # smaller result while the operand is computed twice (scaled and unscaled).
    done, free = _push_pass(roots, {})
    done, _ = _push_pass(roots, free)
    return [done[r] for r in roots]


def _push_pass(roots: Sequence[sp.Basic], free: dict) -> tuple[dict, dict]:
    best: dict[sp.Expr, dict] = {}
    memo: dict[tuple[sp.Basic, sp.Expr], MatrixExpr] = {}

    def fn(node: sp.Basic, new: Sequence[sp.Basic]) -> sp.Basic:
        out = rebuild(node, new) if isinstance(node, MatrixExpr) else node.func(*new)
        if not isinstance(out, MatrixExpr):
            return out
        c, base = _split(out)
        table, gratis = best.setdefault(c, {}), free.get(c, _NOTHING)
        if c == 1 or _best(base, table, gratis)[1] < 0:
            return out
        return _scaled(base, c, table, memo, gratis)

    done = _rewrite_all(roots, fn)
    used: dict[sp.Expr, dict[sp.Basic, int]] = {}
    for node, c in memo:
        used.setdefault(c, {})[node] = best[c].get(node, (0.0, -1))[1]
    return done, used
