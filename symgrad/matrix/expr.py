"""Matrix expressions: SymPy's matrix nodes plus the few that SymPy lacks, built with shape checks.

The IR is SymPy's own ``MatrixExpr`` tree (``MatrixSymbol``, ``MatMul``, ``MatAdd``,
``Transpose``, ``HadamardProduct``, ``HadamardPower``, ``Inverse``, ``Trace``, ``Determinant``,
``Identity``, ``OneMatrix``) with five small additions defined here:

* :class:`Map`: an elementwise scalar function applied to same-shaped matrices (``tanh.(X)``);
* :class:`SumAxis` / :class:`SumAll`: sums over one axis (keeping it, like ``keepdims=True``)
  or over all entries (a scalar);
* :class:`Broadcast`: a scalar, column or row repeated to a full shape (``b 1^T``);
* :class:`Softmax`, :class:`LogSumExp`, :class:`LogDet`: first-class nodes so that code
  generation can emit the numerically stable forms.

The constructors below (:func:`matmul`, :func:`add`, :func:`hadamard`, ...) check shapes at every
step and raise :class:`~symgrad.errors.ShapeError` naming the mismatch; they also apply a few
cheap identities (``(A^T)^T = A``, ``1 ⊙ A = A``, ``A + A = 2A``) so that gradients come out in the
form a textbook writes. Shapes may be symbolic (e.g. a batch size ``B``).

>>> import sympy as sp
>>> B = sp.Symbol("B", integer=True, positive=True)
>>> W, X = sp.MatrixSymbol("W", 3, 2), sp.MatrixSymbol("X", 2, B)
>>> tanh(matmul(W, X)).shape
(3, B)
>>> matmul(X, W)
Traceback (most recent call last):
...
symgrad.errors.ShapeError: matmul: X has shape (2, B) and W has shape (3, 2); ...
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
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
    MatrixSymbol,
    Trace,
    Transpose,
    ZeroMatrix,
)
from sympy.matrices.expressions.blockmatrix import BlockMatrix
from sympy.matrices.expressions.diagonal import DiagMatrix
from sympy.matrices.expressions.special import OneMatrix

from ..errors import ArgumentError, InputTypeError, OptionError, ShapeError
from ..functions import relu as _relu
from ..functions import sigmoid as _sigmoid
from ..graph import post_order, topo_order
from ..inputs import describe

__all__ = [
    "Broadcast",
    "Commutation",
    "LogDet",
    "LogSumExp",
    "Map",
    "Softmax",
    "Softplus",
    "SumAll",
    "SumAxis",
    "add",
    "broadcast",
    "det",
    "elementwise",
    "exp",
    "hadamard",
    "inverse",
    "log",
    "logdet",
    "logsumexp",
    "matmul",
    "mean",
    "operands",
    "relu",
    "scale",
    "shape_of",
    "sigmoid",
    "softmax",
    "softplus",
    "sub",
    "sum",
    "sumsq",
    "tanh",
    "trace",
    "transpose",
    "value_nodes",
]

# Canonical bound variables of Map bodies: fixed symbols, so equal maps are equal and hash equal.
_VARS = tuple(sp.Symbol(f"u{i}") for i in range(8))


# ----------------------------------------------------------------------------- new nodes
class Map(MatrixExpr):
    """A scalar function applied entrywise: ``Map(Lambda((u, v), f), A, B)[i,j] = f(A[i,j], ...)``.

    Build it with :func:`elementwise` (or :func:`tanh`, :func:`exp`, ...), which checks shapes.

    >>> import sympy as sp
    >>> X = sp.MatrixSymbol("X", 2, 3)
    >>> elementwise(sp.sin, X).shape
    (2, 3)
    """

    @property
    def lam(self) -> sp.Lambda:
        """The scalar function (a SymPy ``Lambda`` over canonical variables)."""
        return self.args[0]

    @property
    def mats(self) -> tuple[MatrixExpr, ...]:
        """The matrix operands, one per variable of :attr:`lam`."""
        return self.args[1:]

    @functools.cached_property
    def shape(self):
        # Cached: SymPy computes shapes recursively (MatMul -> MatAdd -> ...); caching at every
        # activation keeps that walk one layer deep, so deep networks never hit the recursion limit.
        return self.args[1].shape


class SumAxis(MatrixExpr):
    """Sum over one axis keeping it: ``axis=0`` gives a row ``(1, n)``, ``axis=1`` a column.

    >>> X = sp.MatrixSymbol("X", 2, 3)
    >>> sum(X, axis=0).shape, sum(X, axis=1).shape
    ((1, 3), (2, 1))
    """

    @property
    def axis(self) -> int:
        """0 (sum of the rows) or 1 (sum of the columns)."""
        return int(self.args[1])

    @property
    def shape(self):
        m, n = self.args[0].shape
        return (sp.S.One, n) if self.axis == 0 else (m, sp.S.One)


class SumAll(sp.Expr):
    """The sum of all entries of a matrix: a scalar.

    >>> SumAll(sp.MatrixSymbol("X", 2, 3)).is_commutative
    True
    """

    is_commutative = True

    @property
    def arg(self) -> MatrixExpr:
        """The summed matrix."""
        return self.args[0]


class Broadcast(MatrixExpr):
    """A scalar, ``(m, 1)`` column or ``(1, n)`` row repeated to shape ``(m, n)``.

    >>> b = sp.MatrixSymbol("b", 3, 1)
    >>> broadcast(b, (3, 5)).shape
    (3, 5)
    """

    @property
    def arg(self) -> sp.Basic:
        """The repeated scalar or vector."""
        return self.args[0]

    @property
    def shape(self):
        return (self.args[1], self.args[2])


class Softmax(MatrixExpr):
    """Softmax along an axis (``axis=0``: each column sums to 1); computed stably.

    >>> softmax(sp.MatrixSymbol("Z", 10, 4)).shape
    (10, 4)
    """

    @property
    def axis(self) -> int:
        """The normalised axis."""
        return int(self.args[1])

    @property
    def shape(self):
        return self.args[0].shape


class LogSumExp(MatrixExpr):
    """``log(sum(exp(A), axis))`` keeping the axis (computed stably, max shifted out).

    >>> logsumexp(sp.MatrixSymbol("Z", 10, 4)).shape
    (1, 4)
    """

    @property
    def axis(self) -> int:
        """The reduced axis."""
        return int(self.args[1])

    @property
    def shape(self):
        m, n = self.args[0].shape
        return (sp.S.One, n) if self.axis == 0 else (m, sp.S.One)


class LogDet(sp.Expr):
    """``log det A`` of a square matrix with positive determinant (a scalar).

    >>> logdet(sp.MatrixSymbol("A", 3, 3))
    LogDet(A)
    """

    is_commutative = True

    @property
    def arg(self) -> MatrixExpr:
        """The matrix."""
        return self.args[0]


class Commutation(MatrixExpr):
    """The commutation matrix ``K`` with ``K vec(Y) = vec(Y^T)`` for ``Y`` of shape ``(p, q)``.

    Used by Hessians with respect to matrices (``vec(A Y^T B)``); row-major ``vec``.

    >>> Commutation(2, 3).shape
    (6, 6)
    """

    @property
    def shape(self):
        p, q = self.args
        return (p * q, p * q)

    def _latex(self, printer):
        p, q = (printer._print(a) for a in self.args)
        return rf"K_{{{p},{q}}}"


class Softplus(sp.Function):
    r"""The scalar function ``softplus(x) = log(1 + e^x)``, whose derivative is ``sigmoid(x)``.

    Compiles to ``numpy.logaddexp(0, x)`` (no overflow); :func:`softplus` applies it entrywise.

    >>> Softplus(sp.Symbol("x")).diff(sp.Symbol("x"))
    sigmoid(x)
    """

    nargs = 1

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        return _sigmoid(self.args[0])

    def _eval_rewrite_as_log(self, arg, **kwargs):
        return sp.log(1 + sp.exp(arg))

    def _latex(self, printer, exp=None):
        tex = rf"\operatorname{{softplus}}\left({printer._print(self.args[0])}\right)"
        return tex if exp is None else rf"{tex}^{{{exp}}}"

    def _numpycode(self, printer):
        return f"{printer._module_format('numpy.logaddexp')}(0, {printer._print(self.args[0])})"


# ----------------------------------------------------------------------------- shapes
def shape_of(e: sp.Basic) -> tuple:
    """``e.shape`` for a matrix expression, ``()`` for a scalar.

    >>> shape_of(sp.MatrixSymbol("A", 2, 3)), shape_of(sp.Symbol("x"))
    ((2, 3), ())
    """
    return tuple(e.shape) if isinstance(e, MatrixExpr) else ()


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _name(e: sp.Basic) -> str:
    text = str(e)
    return text if len(text) <= 40 else text[:37] + "..."


def _matrix(e: Any, what: str) -> MatrixExpr:
    if not isinstance(e, MatrixExpr):
        raise InputTypeError(
            f"{what} needs a SymPy matrix expression (e.g. sympy.MatrixSymbol('W', 3, 2)), "
            f"got {type(e).__name__}: {e!r}"
        )
    return e


def _scalar(e: Any, what: str) -> sp.Expr:
    if isinstance(e, MatrixExpr):
        raise ShapeError(
            f"{what} needs a scalar, got the matrix {_name(e)} of shape {_fmt(e.shape)}"
        )
    if isinstance(e, (int, float)) and not isinstance(e, bool):
        return sp.Integer(e) if isinstance(e, int) else sp.Float(e)
    if not isinstance(e, sp.Expr):
        raise InputTypeError(f"{what} needs a number or scalar SymPy expression, got {e!r}")
    return e


def _operand(e: Any, what: str) -> sp.Basic:
    """``e`` as a matrix or scalar expression (Python numbers become SymPy numbers)."""
    return e if isinstance(e, MatrixExpr) else _scalar(e, what)


def _operands(e: Any, what: str) -> list[sp.Basic]:
    """One expression, or a list/tuple of them, as a list of matrix or scalar expressions."""
    if isinstance(e, (list, tuple)):
        return [_operand(item, f"{what}[{i}]") for i, item in enumerate(e)]
    return [_operand(e, what)]


def _names(names: Any, what: str) -> dict[sp.Basic, sp.Basic]:
    """``names`` (``None`` or a mapping from subexpressions to the symbols shown for them)."""
    if names is None:
        return {}
    if not isinstance(names, Mapping) or not all(
        isinstance(k, sp.Basic) and isinstance(v, (sp.Symbol, MatrixSymbol))
        for k, v in names.items()
    ):
        raise InputTypeError(
            f"{what} must be a dict {{subexpression: Symbol or MatrixSymbol}} (e.g. "
            f"{{tanh(W x): MatrixSymbol('h', 3, 1)}}), got {describe(names)}"
        )
    return dict(names)


def _dimension(d: Any, what: str) -> sp.Expr:
    """A matrix dimension: an integer >= 0 or a symbol (``B`` for the batch size)."""
    if isinstance(d, int) and not isinstance(d, bool) and d >= 0:
        return sp.Integer(d)
    if (isinstance(d, sp.Expr) and not isinstance(d, MatrixExpr)) and (
        not d.is_number or (d.is_Integer and d >= 0)
    ):
        return d
    raise ShapeError(
        f"{what}: a dimension must be an integer >= 0 or a symbol such as sympy.Symbol('B'), "
        f"got {describe(d)}"
    )


def _same_shape(op: str, items: Sequence[MatrixExpr]) -> tuple:
    first = items[0]
    for other in items[1:]:
        if tuple(other.shape) != tuple(first.shape):
            raise ShapeError(
                f"{op}: {_name(first)} has shape {_fmt(first.shape)} but {_name(other)} has shape "
                f"{_fmt(other.shape)}; use broadcast() to repeat a vector along an axis"
            )
    return tuple(first.shape)


def _axis(axis: object) -> int:
    if axis not in (0, 1) or isinstance(axis, bool):
        raise OptionError(f"axis must be 0 (down the rows) or 1 (along the columns), got {axis!r}")
    return int(axis)  # type: ignore[call-overload]


# ----------------------------------------------------------------------------- constructors
def _split(term: MatrixExpr) -> tuple[sp.Expr, MatrixExpr]:
    """``c * M`` as ``(c, M)`` (``c`` a scalar coefficient)."""
    if isinstance(term, MatMul):
        coeff, mats = term.as_coeff_matrices()
        if coeff != 1:
            return coeff, (mats[0] if len(mats) == 1 else MatMul(*mats))
    return sp.S.One, term


def _squared(arg: MatrixExpr) -> MatrixExpr | None:
    """``X`` when ``arg`` is ``X ⊙ X`` (so ``sum(arg)`` prints as a squared norm), else None."""
    if isinstance(arg, HadamardProduct) and len(arg.args) == 2 and arg.args[0] == arg.args[1]:
        return arg.args[0]
    return None


def scale(c: Any, A: MatrixExpr) -> MatrixExpr:
    """``c * A`` for a scalar ``c`` (folded into an existing coefficient).

    >>> A = sp.MatrixSymbol("A", 2, 2)
    >>> scale(2, scale(3, A))
    6*A
    """
    c, A = _scalar(c, "scale"), _matrix(A, "scale")
    if c == 1:
        return A
    if c == 0:
        return ZeroMatrix(*A.shape)
    c0, base = _split(A)
    if isinstance(base, ZeroMatrix):
        return base
    c = c * c0
    if c == 1:
        return base
    return MatMul(c, *base.args) if isinstance(base, MatMul) else MatMul(c, base)


def matmul(*factors: MatrixExpr) -> MatrixExpr:
    """The matrix product ``A @ B @ ...``; inner dimensions must agree.

    >>> A, x = sp.MatrixSymbol("A", 2, 3), sp.MatrixSymbol("x", 3, 1)
    >>> matmul(A, x).shape
    (2, 1)
    """
    if not factors:
        raise ArgumentError("matmul needs at least one matrix")
    coeff, mats = sp.S.One, []
    for f in factors:
        c, base = _split(_matrix(f, "matmul"))
        coeff *= c
        mats.extend(base.args if isinstance(base, MatMul) else [base])
    if len(mats) > 1:  # a 1x1 "matrix of c" between matrices is the scalar c: A x [c] = c A x
        kept = []
        for m in mats:
            ones = _ones_coeff(m) if tuple(m.shape) == (1, 1) else None
            if ones is None:
                kept.append(m)
            else:
                coeff *= ones
        mats = kept or [Identity(1)]
    for left, right in itertools.pairwise(mats):
        if left.shape[1] != right.shape[0]:
            raise ShapeError(
                f"matmul: {_name(left)} has shape {_fmt(left.shape)} and {_name(right)} has shape "
                f"{_fmt(right.shape)}; inner dimensions {left.shape[1]} and {right.shape[0]} differ"
            )
    if any(isinstance(m, ZeroMatrix) for m in mats):
        return ZeroMatrix(mats[0].shape[0], mats[-1].shape[1])
    mats = [m for m in mats if not isinstance(m, Identity)] or [mats[0]]
    return scale(coeff, mats[0] if len(mats) == 1 else MatMul(*mats))


def add(*terms: MatrixExpr) -> MatrixExpr:
    """The sum of same-shaped matrices; equal terms are collected (``A + A = 2A``).

    >>> A, B = sp.MatrixSymbol("A", 2, 2), sp.MatrixSymbol("B", 2, 2)
    >>> add(A, B, A)
    2*A + B
    """
    if not terms:
        raise ArgumentError("add needs at least one matrix")
    items = [_matrix(t, "add") for t in terms]
    shape = _same_shape("add", items)
    coeffs: dict[MatrixExpr, sp.Expr] = {}
    for t in items:  # not flattened: a sum inside a term stays one factor, as written
        c, base = _split(t)
        if isinstance(base, ZeroMatrix):
            continue
        coeffs[base] = coeffs.get(base, sp.S.Zero) + c
    nonzero = [(base, c) for base, c in coeffs.items() if c != 0]
    if not nonzero:
        return ZeroMatrix(*shape)
    if len(nonzero) == 1:
        return scale(nonzero[0][1], nonzero[0][0])
    # a common factor is pulled out: c A - c B = c (A - B) (fewer operations, textbook form)
    common = nonzero[0][1]
    if common.could_extract_minus_sign():
        common = -common
    ratios = [c / common for _, c in nonzero]
    if common != 1 and all(r in (1, -1) for r in ratios):
        terms = [scale(r, base) for (base, _), r in zip(nonzero, ratios, strict=True)]
        return scale(common, MatAdd(*terms))
    return MatAdd(*[scale(c, base) for base, c in nonzero])


def sub(A: MatrixExpr, B: MatrixExpr) -> MatrixExpr:
    """``A - B``.

    >>> A, B = sp.MatrixSymbol("A", 2, 2), sp.MatrixSymbol("B", 2, 2)
    >>> sub(A, B)
    A - B
    """
    return add(A, scale(-1, _matrix(B, "sub")))


def transpose(A: MatrixExpr) -> MatrixExpr:
    """``A^T`` (``(A^T)^T = A``; a product is transposed factor by factor).

    >>> A, x = sp.MatrixSymbol("A", 2, 3), sp.MatrixSymbol("x", 3, 1)
    >>> transpose(matmul(A, x))
    x.T*A.T
    """
    A = _matrix(A, "transpose")
    c, base = _split(A)
    if isinstance(base, Transpose):
        out = base.arg
    elif isinstance(base, MatMul):
        out = matmul(*[transpose(f) for f in reversed(base.args)])
    elif isinstance(base, DiagMatrix):
        out = base
    elif isinstance(base, KroneckerProduct):
        out = KroneckerProduct(*[transpose(a) for a in base.args])
    elif isinstance(base, (Identity, ZeroMatrix, OneMatrix)):
        out = type(base)(*reversed(base.shape)) if not isinstance(base, Identity) else base
    elif isinstance(base, Broadcast) and isinstance(base.arg, MatrixExpr):
        out = Broadcast(transpose(base.arg), base.shape[1], base.shape[0])
    elif isinstance(base, Broadcast):
        out = Broadcast(base.arg, base.shape[1], base.shape[0])
    else:
        out = Transpose(base)
    return scale(c, out)


def _ones_coeff(A: MatrixExpr) -> sp.Expr | None:
    """The scalar c if A is c times a matrix of ones (a broadcast scalar), else None."""
    c, base = _split(A)
    if isinstance(base, OneMatrix):
        return c
    if isinstance(base, Broadcast) and not isinstance(base.arg, MatrixExpr):
        return c * base.arg
    return None


def hadamard(*factors: MatrixExpr) -> MatrixExpr:
    """The entrywise product ``A ⊙ B ⊙ ...`` of same-shaped matrices (ones drop out).

    >>> A, B = sp.MatrixSymbol("A", 2, 2), sp.MatrixSymbol("B", 2, 2)
    >>> hadamard(A, B)
    HadamardProduct(A, B)
    """
    if not factors:
        raise ArgumentError("hadamard needs at least one matrix")
    items = [_matrix(f, "hadamard") for f in factors]
    shape = _same_shape("hadamard", items)
    coeff, mats = sp.S.One, []
    for f in items:
        ones = _ones_coeff(f)
        if ones is not None:
            coeff *= ones
            continue
        c, base = _split(f)
        coeff *= c
        if isinstance(base, ZeroMatrix):
            return ZeroMatrix(*shape)
        mats.extend(base.args if isinstance(base, HadamardProduct) else [base])
    if not mats:
        return scale(coeff, OneMatrix(*shape))
    return scale(coeff, mats[0] if len(mats) == 1 else HadamardProduct(*mats))


def broadcast(A: Any, shape: Sequence[Any]) -> MatrixExpr:
    """Repeat a scalar, a column ``(m, 1)`` or a row ``(1, n)`` to ``shape`` (``b 1^T``).

    >>> b = sp.MatrixSymbol("b", 3, 1)
    >>> broadcast(b, (3, 4))
    Broadcast(b, 3, 4)
    >>> broadcast(b, (2, 4))
    Traceback (most recent call last):
    ...
    symgrad.errors.ShapeError: broadcast: b has shape (3, 1), which cannot be repeated to (2, 4)
    """
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ShapeError(f"broadcast needs a 2-D target shape (rows, cols), got {describe(shape)}")
    m, n = (_dimension(d, "broadcast") for d in shape)
    if isinstance(A, MatrixExpr):
        rows, cols = A.shape
        if (rows, cols) == (m, n):
            return A
        if not ((rows == m and cols == 1) or (rows == 1 and cols == n) or (rows, cols) == (1, 1)):
            raise ShapeError(
                f"broadcast: {_name(A)} has shape {_fmt(A.shape)}, which cannot be repeated to "
                f"{_fmt((m, n))}"
            )
        if isinstance(A, Broadcast):
            A = A.arg
    else:
        A = _scalar(A, "broadcast")
    return Broadcast(A, m, n)


def _body(fn: Any, k: int) -> sp.Expr:
    if isinstance(fn, sp.Lambda):
        if len(fn.variables) != k:
            raise ShapeError(
                f"elementwise: the Lambda takes {len(fn.variables)} arguments, got {k}"
            )
        return fn(*_VARS[:k])
    if not callable(fn):
        raise InputTypeError(
            f"elementwise needs a scalar function (e.g. sympy.tanh or lambda u: u**2), got {fn!r}"
        )
    body = fn(*_VARS[:k])
    if isinstance(body, MatrixExpr) or not isinstance(body, sp.Expr):
        raise InputTypeError(f"elementwise: {fn!r} must return a scalar SymPy expression")
    return body


def elementwise(fn: Any, *mats: MatrixExpr) -> MatrixExpr:
    """Apply a scalar function entrywise to one or more same-shaped matrices.

    Args:
        fn: a SymPy function class (``sympy.tanh``), a ``Lambda`` or a Python callable that
            takes SymPy symbols and returns a scalar expression (e.g. ``lambda u: u**2``).
        *mats: the matrix operands (all of one shape).

    Returns:
        A :class:`Map` (or the operand itself if ``fn`` is the identity).

    Raises:
        ShapeError: the operands differ in shape.
        InputTypeError: ``fn`` is not a scalar function or an operand is not a matrix.

    >>> X = sp.MatrixSymbol("X", 2, 3)
    >>> elementwise(lambda u: u**3, X)
    Map(Lambda(u0, u0**3), X)
    """
    if not mats or len(mats) > len(_VARS):
        raise ArgumentError(f"elementwise takes 1 to {len(_VARS)} matrices, got {len(mats)}")
    items = [_matrix(m, "elementwise") for m in mats]
    _same_shape("elementwise", items)
    body = _body(fn, len(items))
    return _map(body, items)


def _map(body: sp.Expr, mats: Sequence[MatrixExpr]) -> MatrixExpr:
    """Map over only the variables the body uses, renumbered; the identity map is its operand."""
    used = [i for i in range(len(mats)) if body.has(_VARS[i])]
    if not used:  # a constant body: a broadcast scalar
        return broadcast(body, mats[0].shape)
    body = body.xreplace({_VARS[i]: _VARS[j] for j, i in enumerate(used)})
    if body == _VARS[0]:
        return mats[used[0]]
    return Map(sp.Lambda(tuple(_VARS[: len(used)]), body), *[mats[i] for i in used])


def from_scalar(body: sp.Expr, mats: Sequence[MatrixExpr]) -> MatrixExpr:
    """The entrywise function ``body(u0, u1, ...)`` of ``mats`` as matrix algebra where possible.

    Sums become ``MatAdd``, products ``⊙``, squares ``A ⊙ A``, numbers scalar multiples or
    broadcast constants; what is left (functions) becomes :class:`Map` nodes. This is what turns
    the partial ``1 - tanh(u)^2`` into the textbook ``1 - h ⊙ h``. Iterative (no recursion).

    >>> H = sp.MatrixSymbol("H", 2, 3)
    >>> u0 = _VARS[0]
    >>> from_scalar(1 - u0**2, [H])
    -(HadamardProduct(H, H)) + 1
    """
    shape = tuple(mats[0].shape)
    done: dict[sp.Basic, Any] = {}
    for node in topo_order([body]):
        if node in done:
            continue
        if node in _VARS[: len(mats)]:
            done[node] = mats[_VARS.index(node)]
        elif not node.has(*_VARS[: len(mats)]):
            done[node] = node  # a scalar constant (kept scalar until combined with a matrix)
        elif isinstance(node, sp.Add):
            parts = [done[a] for a in node.args]
            consts = [p for p in parts if not isinstance(p, MatrixExpr)]
            terms = [p for p in parts if isinstance(p, MatrixExpr)]
            if consts:
                terms.append(scale(sp.Add(*consts), OneMatrix(*shape)))
            done[node] = add(*terms)
        elif isinstance(node, sp.Mul):
            parts = [done[a] for a in node.args]
            c = sp.Mul(*[p for p in parts if not isinstance(p, MatrixExpr)])
            done[node] = scale(c, hadamard(*[p for p in parts if isinstance(p, MatrixExpr)]))
        elif (
            isinstance(node, sp.Pow)
            and node.exp.is_Integer
            and node.exp > 0
            and isinstance(done[node.base], MatrixExpr)
        ):
            base, p = done[node.base], int(node.exp)
            done[node] = hadamard(base, base) if p == 2 else HadamardPower(base, p)
        elif isinstance(node, (sp.Function, sp.Pow)) and all(
            isinstance(done[a], MatrixExpr) or not a.has(*_VARS[: len(mats)]) for a in node.args
        ):
            # f(g(u)): a Map of f over the matrix already built for g(u), so e^{y z} inside
            # 1 / (e^{y z} + 1)^2 is computed once
            inner = [done[a] for a in node.args if isinstance(done[a], MatrixExpr)]
            it = iter(_VARS)
            outer = node.func(
                *[next(it) if isinstance(done[a], MatrixExpr) else a for a in node.args]
            )
            done[node] = _map(outer, inner)
        else:  # a function of the variables: one Map over the original operands
            done[node] = _map(node, mats)
    out = done[body]
    return out if isinstance(out, MatrixExpr) else broadcast(out, shape)


def tanh(X: MatrixExpr) -> MatrixExpr:
    """Entrywise ``tanh``.

    >>> tanh(sp.MatrixSymbol("X", 2, 2))
    Map(Lambda(u0, tanh(u0)), X)
    """
    return elementwise(sp.tanh, X)


def exp(X: MatrixExpr) -> MatrixExpr:
    """Entrywise ``exp``.

    >>> exp(sp.MatrixSymbol("X", 2, 2)).shape
    (2, 2)
    """
    return elementwise(sp.exp, X)


def log(X: MatrixExpr) -> MatrixExpr:
    """Entrywise natural logarithm.

    >>> log(sp.MatrixSymbol("X", 2, 2)).shape
    (2, 2)
    """
    return elementwise(sp.log, X)


def sigmoid(X: MatrixExpr) -> MatrixExpr:
    """Entrywise logistic sigmoid ``1 / (1 + e^{-x})``.

    >>> sigmoid(sp.MatrixSymbol("X", 2, 2))
    Map(Lambda(u0, sigmoid(u0)), X)
    """
    return elementwise(_sigmoid, X)


def softplus(X: MatrixExpr) -> MatrixExpr:
    """Entrywise ``log(1 + e^x)`` (stable; its derivative is the entrywise sigmoid).

    >>> softplus(sp.MatrixSymbol("X", 2, 2))
    Map(Lambda(u0, Softplus(u0)), X)
    """
    return elementwise(Softplus, X)


def relu(X: MatrixExpr) -> MatrixExpr:
    """Entrywise ``max(0, x)`` (derivative 0 at 0, like PyTorch).

    >>> relu(sp.MatrixSymbol("X", 2, 2))
    Map(Lambda(u0, Max(0, u0)), X)
    """
    return elementwise(_relu, X)


def sum(X: MatrixExpr, axis: int | None = None) -> Any:
    """Sum of all entries (a scalar), or over ``axis`` keeping it (``(1, n)`` or ``(m, 1)``).

    >>> X = sp.MatrixSymbol("X", 2, 3)
    >>> sum(X), sum(X, axis=1)
    (SumAll(X), SumAxis(X, 1))
    """
    X = _matrix(X, "sum")
    c, base = _split(X)
    if axis is None:
        if isinstance(base, Broadcast):
            m, n = base.shape
            inner = base.arg
            if isinstance(inner, MatrixExpr):
                rm, rn = inner.shape
                return c * (m / rm) * (n / rn) * sum(inner)
            return c * m * n * inner
        if isinstance(base, ZeroMatrix):
            return sp.S.Zero
        return c * SumAll(base)
    axis = _axis(axis)
    if isinstance(base, Broadcast):
        inner = base.arg
        count = base.shape[axis]
        if not isinstance(inner, MatrixExpr) or inner.shape[axis] == 1:
            target = (sp.S.One, base.shape[1]) if axis == 0 else (base.shape[0], sp.S.One)
            return scale(c * count, broadcast(inner, target))
    if X.shape[axis] == 1:
        return X
    return scale(c, SumAxis(base, sp.Integer(axis)))


def mean(X: MatrixExpr, axis: int | None = None) -> Any:
    """Mean of all entries, or over ``axis`` keeping it.

    >>> X = sp.MatrixSymbol("X", 2, 3)
    >>> mean(X)
    SumAll(X)/6
    """
    X = _matrix(X, "mean")
    m, n = X.shape
    if axis is None:
        return sum(X) / (m * n)
    return scale(1 / X.shape[_axis(axis)], sum(X, axis))


def sumsq(X: MatrixExpr) -> sp.Expr:
    """The squared Frobenius norm ``||X||^2 = sum(X ⊙ X)``.

    >>> sumsq(sp.MatrixSymbol("r", 3, 1))
    SumAll(HadamardProduct(r, r))
    """
    X = _matrix(X, "sumsq")
    return sum(hadamard(X, X))


def trace(X: MatrixExpr) -> sp.Expr:
    """The trace of a square matrix.

    >>> trace(sp.MatrixSymbol("X", 3, 3))
    Trace(X)
    """
    X = _square(X, "trace")
    return Trace(X)


def _square(X: Any, what: str) -> MatrixExpr:
    X = _matrix(X, what)
    if X.shape[0] != X.shape[1]:
        raise ShapeError(f"{what} needs a square matrix, got {_name(X)} of shape {_fmt(X.shape)}")
    return X


def inverse(X: MatrixExpr) -> MatrixExpr:
    """The inverse of a square matrix.

    >>> inverse(sp.MatrixSymbol("X", 3, 3))
    X**(-1)
    """
    X = _square(X, "inverse")
    return X.arg if isinstance(X, Inverse) else Inverse(X)


def det(X: MatrixExpr) -> sp.Expr:
    """The determinant of a square matrix.

    >>> det(sp.MatrixSymbol("X", 3, 3))
    Determinant(X)
    """
    return Determinant(_square(X, "det"))


def logdet(X: MatrixExpr) -> sp.Expr:
    """``log det X`` (for matrices with positive determinant, e.g. covariance matrices).

    >>> logdet(sp.MatrixSymbol("X", 3, 3))
    LogDet(X)
    """
    return LogDet(_square(X, "logdet"))


def softmax(X: MatrixExpr, axis: int = 0) -> MatrixExpr:
    """Softmax along ``axis`` (default 0: over the rows of each column, i.e. per sample).

    >>> softmax(sp.MatrixSymbol("Z", 10, 5)).axis
    0
    """
    return Softmax(_matrix(X, "softmax"), sp.Integer(_axis(axis)))


def logsumexp(X: MatrixExpr, axis: int = 0) -> MatrixExpr:
    """``log(sum(exp(X), axis))`` keeping the axis.

    >>> logsumexp(sp.MatrixSymbol("Z", 10, 5), axis=1).shape
    (10, 1)
    """
    return LogSumExp(_matrix(X, "logsumexp"), sp.Integer(_axis(axis)))


# ----------------------------------------------------------------------------- graph views
_LEAVES = (MatrixSymbol, Identity, ZeroMatrix, OneMatrix, sp.Symbol, sp.Number, sp.NumberSymbol)


def operands(node: sp.Basic) -> tuple[sp.Basic, ...]:
    """The value operands of a node (shape arguments, axes and Map's Lambda are not operands).

    >>> X = sp.MatrixSymbol("X", 2, 3)
    >>> operands(tanh(X)), operands(X), operands(sum(X, axis=0))
    ((X,), (), (X,))
    """
    if isinstance(node, _LEAVES):
        return ()
    if isinstance(node, Map):
        return node.mats
    if isinstance(node, Inverse):
        return (node.arg,)
    if isinstance(node, (SumAxis, Broadcast, Softmax, LogSumExp)):
        return (node.args[0],)
    if isinstance(node, BlockMatrix):
        return tuple(node.blocks)
    return node.args


def value_nodes(roots: Iterable[sp.Basic]) -> list[sp.Basic]:
    """Unique value nodes reachable from ``roots``, children first (iterative DFS).

    >>> X = sp.MatrixSymbol("X", 2, 2)
    >>> value_nodes([trace(tanh(X))])
    [X, Map(Lambda(u0, tanh(u0)), X), Trace(Map(Lambda(u0, tanh(u0)), X))]
    """
    return post_order(roots, operands, key=lambda n: n)


def _textbook_latex(self: sp.Basic, printer: Any) -> str:
    """SymPy's ``_latex`` hook: any LaTeX printer (a notebook's ``_repr_latex_`` too) shows this
    node in textbook notation (``\\tanh(W x)``, ``\\mathbf{1}^T Z``), never its internal form."""
    from .latex import MatrixLatexPrinter

    own = printer if isinstance(printer, MatrixLatexPrinter) else MatrixLatexPrinter()
    return getattr(own, f"_print_{type(self).__name__}")(self)


for _cls in (Map, SumAxis, SumAll, Broadcast, Softmax, LogSumExp, LogDet):
    _cls._latex = _textbook_latex
