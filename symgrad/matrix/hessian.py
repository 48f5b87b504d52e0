r"""Second derivatives and Jacobians in closed form: Hessian-vector products, Hessians, Jacobians.

A Hessian-vector product is the gradient of ``<grad f, V>`` (reverse over reverse). It is linear
in the direction ``V``; :func:`linear_map` reads the matrix ``L`` with ``vec(expr) = L vec(V)``
off the expression, using row-major ``vec`` (NumPy's ``ravel()``) and the identity
``vec(A Y B) = (A ⊗ B^T) vec(Y)``. So the Hessian of ``||T - U V^T||^2`` with respect to ``U``
is ``2 I ⊗ V^T V``, and for logistic regression it is ``X^T diag(s) X``. A Jacobian is read off
the vector-Jacobian product the same way (``J = L^T``).

>>> import sympy as sp
>>> from symgrad.matrix import expr as mx
>>> T, U, V = (sp.MatrixSymbol(n, *s) for n, s in [("T", (4, 3)), ("U", (4, 2)), ("V", (3, 2))])
>>> hessian(mx.sumsq(mx.sub(T, mx.matmul(U, V.T))), U)
2*(KroneckerProduct(I, V.T*V))
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions import (
    HadamardPower,
    HadamardProduct,
    Identity,
    KroneckerProduct,
    MatAdd,
    MatMul,
    MatrixExpr,
    MatrixSymbol,
    Transpose,
    ZeroMatrix,
)
from sympy.matrices.expressions.blockmatrix import BlockMatrix
from sympy.matrices.expressions.diagonal import DiagMatrix
from sympy.matrices.expressions.special import OneMatrix

from ..errors import InputTypeError, ShapeError, UnsupportedFunctionError
from ..graph import post_order
from . import expr as mx
from .expr import _VARS, Broadcast, Commutation, Map
from .simplify import simplify
from .vjp import grad, vjp

__all__ = ["fuse", "hessian", "hvp", "jacobian", "linear_map"]


def _size(e: MatrixExpr) -> Any:
    return e.shape[0] * e.shape[1]


def _kron(A: MatrixExpr, B: MatrixExpr) -> MatrixExpr:
    """``A ⊗ B`` with 1x1 identities dropped (``A ⊗ I_1 = A``)."""
    if A.shape == (1, 1) and isinstance(A, Identity):
        return B
    if B.shape == (1, 1) and isinstance(B, Identity):
        return A
    return KroneckerProduct(A, B)


def _vec_column(e: MatrixExpr) -> MatrixExpr | None:
    """``vec(e)`` as an expression when it is one without reshaping (a column or a row)."""
    if e.shape[1] == 1:
        return e
    if e.shape[0] == 1:
        return mx.transpose(e)
    return None


def linear_map(expr: Any, v: MatrixSymbol) -> MatrixExpr:
    """The matrix ``L`` with ``vec(expr) = L vec(v)``, for ``expr`` linear in ``v`` (row-major vec).

    Iterative over the DAG. A term that does not depend on ``v`` (an affine part) is an error;
    an ``expr`` free of ``v`` gives a zero matrix.

    Raises:
        UnsupportedFunctionError: a form this reading does not handle (use :func:`hvp`).

    >>> A, v = sp.MatrixSymbol("A", 2, 3), sp.MatrixSymbol("v", 3, 1)
    >>> linear_map(mx.matmul(A, v), v)
    A
    """
    rows = _size(expr) if isinstance(expr, MatrixExpr) else 1
    lin: dict[sp.Basic, MatrixExpr] = {}

    def fail(node: sp.Basic) -> UnsupportedFunctionError:
        return UnsupportedFunctionError(
            type(node).__name__,
            f"closed form: cannot write {mx._name(node)} as a matrix times vec({v}); use hvp",
        )

    for node in mx.value_nodes([expr]):
        deps = [a for a in mx.operands(node) if a in lin]
        if node == v:
            lin[node] = Identity(_size(v))
        elif not deps:
            continue
        elif isinstance(node, (MatAdd, sp.Add)):
            if len(deps) != len(node.args):
                raise fail(node)  # an affine, not linear, term
            lin[node] = mx.add(*[lin[a] for a in node.args])
        elif isinstance(node, MatMul):
            lin[node] = _product(node, deps, lin, fail)
        elif isinstance(node, HadamardProduct) and len(deps) == 1:
            others = mx.hadamard(*[a for a in node.args if a != deps[0]])
            col = _vec_column(others)
            if col is None or node.args.count(deps[0]) != 1:
                raise fail(node)
            lin[node] = mx.matmul(DiagMatrix(col), lin[deps[0]])
        elif isinstance(node, Transpose):
            Y = node.arg
            K = Identity(_size(Y)) if 1 in Y.shape else Commutation(*Y.shape)
            lin[node] = mx.matmul(K, lin[Y])
        elif isinstance(node, mx.SumAll):  # sum(Y) = 1^T vec(Y)
            lin[node] = mx.sum(lin[node.arg], axis=0)
        elif isinstance(node, sp.Mul) and len(deps) == 1 and node.args.count(deps[0]) == 1:
            lin[node] = mx.scale(sp.Mul(*[a for a in node.args if a != deps[0]]), lin[deps[0]])
        else:
            raise fail(node)
    if expr not in lin:
        return ZeroMatrix(rows, _size(v))
    return _tidy(simplify(lin[expr]))


def _tidy(L: MatrixExpr) -> MatrixExpr:
    """``c A diag(d) B`` as ``A diag(c d) B`` with ``c d`` simplified as one entrywise formula.

    The weights of a Hessian ``X^T diag(d) X`` come out of the chain rule as a sum of entrywise
    terms; written as one scalar function of their operands and simplified (``factor`` of
    ``together``), logistic regression's become ``y^2 e^{yz} / (e^{yz} + 1)^2``.
    """
    c, base = mx._split(L)
    mats = list(base.args) if isinstance(base, MatMul) else [base]
    diags = [i for i, m in enumerate(mats) if isinstance(m, DiagMatrix)]
    if len(diags) != 1:
        return L
    i = diags[0]
    weights = mx.scale(c, mats[i].args[0])
    fused = fuse(weights)
    if fused == weights:
        return L
    mats[i] = DiagMatrix(fused)
    return mx.matmul(*mats)


_ENTRYWISE = (Map, HadamardProduct, MatAdd, OneMatrix, HadamardPower)


def fuse(e: MatrixExpr) -> MatrixExpr:
    """An entrywise expression rewritten as one simplified scalar function of its operands.

    Operands are the largest subexpressions that are not entrywise (products, symbols, ...).
    The result is kept only if it is no larger than the input.

    >>> a, b, c = (sp.MatrixSymbol(n, 3, 1) for n in "abc")
    >>> fuse(mx.add(mx.hadamard(a, b), mx.hadamard(a, c)))
    HadamardProduct(a, b + c)
    """
    leaves: dict[sp.Basic, sp.Symbol] = {}
    body: dict[sp.Basic, sp.Expr] = {}
    shape = tuple(e.shape)

    def entrywise(n: sp.Basic) -> bool:
        if not isinstance(n, MatrixExpr) or tuple(n.shape) != shape:
            return False
        c, base = mx._split(n)
        return (
            isinstance(base, _ENTRYWISE)
            or (isinstance(base, Broadcast) and not isinstance(base.arg, MatrixExpr))
            or (c != 1 and isinstance(base, _ENTRYWISE))
        )

    kids = lambda n: _entrywise_operands(n) if entrywise(n) else ()  # noqa: E731
    for n in post_order([e], kids, key=lambda n: n):  # children first, iterative
        if not entrywise(n):
            if len(leaves) >= len(_VARS):
                return e
            leaves[n] = _VARS[len(leaves)]
        else:
            body[n] = _scalar_body(n, {**leaves, **body})
    if len(leaves) > len(_VARS) or not leaves:
        return e
    total = body[e] if e in body else leaves[e]
    simpler = sp.factor(sp.together(total))
    if sp.count_ops(simpler) > sp.count_ops(total):
        return e
    return mx.from_scalar(simpler, list(leaves))


def _entrywise_operands(n: MatrixExpr) -> list:
    c, base = mx._split(n)
    if c != 1:
        return [base]
    if isinstance(base, Map):
        return list(base.mats)
    if isinstance(base, (HadamardProduct, MatAdd)):
        return list(base.args)
    if isinstance(base, HadamardPower):
        return [base.args[0]]
    return []


def _scalar_body(n: MatrixExpr, known: dict) -> sp.Expr:
    c, base = mx._split(n)
    if c != 1:
        return c * known[base]
    if isinstance(base, Map):
        return base.lam.expr.xreplace(
            {v: known[m] for v, m in zip(base.lam.variables, base.mats, strict=True)}
        )
    if isinstance(base, HadamardProduct):
        return sp.Mul(*[known[a] for a in base.args])
    if isinstance(base, MatAdd):
        return sp.Add(*[known[a] for a in base.args])
    if isinstance(base, HadamardPower):
        return known[base.args[0]] ** base.args[1]
    if isinstance(base, OneMatrix):
        return sp.S.One
    return base.arg  # a broadcast scalar


def _product(node: MatMul, deps: list, lin: dict, fail: Any) -> MatrixExpr:
    coeff, mats = node.as_coeff_matrices()
    mats = list(mats)
    if len(deps) != 1:
        raise fail(node)
    Y = deps[0]
    if Y not in mats:  # the coefficient depends on v: c(v) M, with M a column or row
        col = _vec_column(mx.matmul(*mats))
        if col is None:
            raise fail(node)
        rest = sp.Mul(*[a for a in node.args if not isinstance(a, MatrixExpr) and a != Y])
        return mx.scale(rest, mx.matmul(col, lin[Y]))
    if mats.count(Y) != 1:
        raise fail(node)
    i = mats.index(Y)
    left = mx.matmul(*mats[:i]) if i else Identity(Y.shape[0])
    right = mx.transpose(mx.matmul(*mats[i + 1 :])) if i + 1 < len(mats) else Identity(Y.shape[1])
    return mx.scale(coeff, mx.matmul(_kron(left, right), lin[Y]))


def _params(wrt: Any, what: str) -> list[MatrixSymbol]:
    items = list(wrt) if isinstance(wrt, (list, tuple)) else [wrt]
    if not items or not all(isinstance(w, MatrixSymbol) for w in items):
        raise InputTypeError(
            f"{what} needs MatrixSymbol parameters (a scalar p is MatrixSymbol('p', 1, 1)), "
            f"got {wrt!r}"
        )
    return items


def hvp(f: Any, wrt: Any, v: Any) -> Any:
    """Hessian-vector product ``H v`` of a scalar ``f`` in direction ``v`` (``wrt``'s shapes).

    Computed as the gradient of ``sum_j <grad_j f, v_j>`` (reverse over reverse), in closed form.
    With a list of parameters, ``v`` is a list of directions and the result a list of blocks.

    Raises:
        ShapeError: a direction's shape differs from its parameter's.

    >>> w, v = sp.MatrixSymbol("w", 3, 1), sp.MatrixSymbol("v", 3, 1)
    >>> hvp(mx.sumsq(w), w, v)
    2*v
    """
    many = isinstance(wrt, (list, tuple))
    params = _params(wrt, "hvp")
    dirs = list(v) if many else [v]
    if len(dirs) != len(params):
        raise ShapeError(f"hvp: {len(params)} parameters but {len(dirs)} directions")
    for w, d in zip(params, dirs, strict=True):
        if mx.shape_of(d) != mx.shape_of(w):
            raise ShapeError(f"hvp: v has shape {mx.shape_of(d)} but {w} has {mx.shape_of(w)}")
    grads = grad(f, params)
    inner = sp.Add(*[mx.sum(mx.hadamard(g, d)) for g, d in zip(grads, dirs, strict=True)])
    out = grad(inner, params)
    return out if many else out[0]


def hessian(f: Any, wrt: Any) -> MatrixExpr:
    """The Hessian of a scalar ``f``: ``d^2 f / d vec(w_i) d vec(w_j)^T`` in closed form.

    ``wrt`` is one ``MatrixSymbol`` (column vector, row or matrix; ``vec`` is row-major, like
    NumPy's ``ravel()``) or a list of them (a block matrix, block ``(i, j)`` for the pair
    ``(w_i, w_j)``). The Hessian-vector product is linear in the direction; the matrix is read
    off it (:func:`linear_map`), so logistic regression gives ``X^T diag(s) X`` and
    ``||T - U V^T||^2`` gives ``2 I ⊗ V^T V`` for ``U``. A zero Hessian is a zero matrix.

    Raises:
        InputTypeError: ``wrt`` is not ``MatrixSymbol`` objects.
        UnsupportedFunctionError: the HVP has a form the reading does not handle (use hvp).

    >>> w, A = sp.MatrixSymbol("w", 3, 1), sp.MatrixSymbol("A", 3, 3)
    >>> hessian(mx.sumsq(mx.matmul(A, w)), w)
    2*A.T*A
    >>> hessian(mx.sum(mx.relu(w)), w)
    0
    """
    params = _params(wrt, "hessian")
    dirs = [MatrixSymbol(f"_hessian_direction_{i}", *w.shape) for i, w in enumerate(params)]
    grads = grad(f, params)
    blocks = []
    for j, (g, d) in enumerate(zip(grads, dirs, strict=True)):
        column = grad(mx.sum(mx.hadamard(g, d)), params)
        row = [linear_map(column[i], dirs[j]) for i in range(len(params))]
        if isinstance(row[j], Transpose):  # a diagonal block is symmetric: (A + A^T)^T = A + A^T
            row[j] = row[j].arg
        blocks.append(row)
    if len(params) == 1:
        return blocks[0][0]
    # blocks[j][i] is d/dw_i of <g_j, v_j>: block (i, j) of the symmetric Hessian
    return BlockMatrix([[blocks[j][i] for j in range(len(params))] for i in range(len(params))])


def jacobian(y: Any, wrt: MatrixSymbol) -> MatrixExpr:
    r"""The Jacobian ``d vec(y) / d vec(wrt)^T`` of a matrix expression (row-major ``vec``).

    Read off the vector-Jacobian product ``vjp(y, wrt, C) = J^T vec(C)``.

    >>> W, x = sp.MatrixSymbol("W", 2, 3), sp.MatrixSymbol("x", 3, 1)
    >>> from symgrad.matrix.latex import latex
    >>> h = mx.tanh(mx.matmul(W, x))
    >>> print(latex(jacobian(h, x), {h: sp.MatrixSymbol("h", 2, 1)}))
    \operatorname{diag}\left(\mathbf{1} - h \odot h\right) W
    """
    (w,) = _params(wrt, "jacobian")
    if not isinstance(y, MatrixExpr):
        if not isinstance(y, sp.Expr):
            raise InputTypeError(f"jacobian needs a matrix expression, got {y!r}")
        return mx.transpose(_as_column(grad(y, w)))
    C = MatrixSymbol("_jacobian_cotangent", *y.shape)
    return simplify(mx.transpose(linear_map(vjp(y, w, C), C)))


def _as_column(g: MatrixExpr) -> MatrixExpr:
    col = _vec_column(g)
    if col is None:
        raise ShapeError(f"the gradient of shape {g.shape} is a matrix; its vec is not a column")
    return col
