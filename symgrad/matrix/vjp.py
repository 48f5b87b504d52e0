"""Reverse-mode rules for matrix expressions: one table of vector-Jacobian products keyed by head.

The matrix analogue of :mod:`symgrad.rules`. For a node ``N = f(A_1, ..., A_k)`` and the adjoint
``G = dL/dN`` (same shape as ``N``), a rule returns ``[dL/dA_1, ..., dL/dA_k]`` (``None`` for a
zero contribution), each of its operand's shape. Scalar heads (``Add``, ``Mul``, ``sin``, ...)
are not repeated here: they come from :mod:`symgrad.rules`, multiplied by ``G``; elementwise
functions (:class:`~symgrad.matrix.expr.Map`) take their scalar derivative from
:func:`symgrad.autodiff.grad`, i.e. from the same scalar table. SymPy's matrix ``diff`` is never
used.

>>> import sympy as sp
>>> from symgrad.matrix import expr as mx
>>> W, x, y = sp.MatrixSymbol("W", 2, 3), sp.MatrixSymbol("x", 3, 1), sp.MatrixSymbol("y", 2, 1)
>>> grad(mx.sumsq(mx.sub(mx.matmul(W, x), y)), W)
2*(W*x - y)*x.T
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sympy as sp
from sympy.matrices.expressions import (
    Determinant,
    HadamardPower,
    HadamardProduct,
    Identity,
    Inverse,
    MatAdd,
    MatMul,
    MatrixExpr,
    MatrixSymbol,
    Trace,
    Transpose,
    ZeroMatrix,
)

from .. import autodiff, construct, rules
from ..errors import InputTypeError, ShapeError, UnsupportedFunctionError
from . import expr as mx
from .expr import (
    _VARS,
    Broadcast,
    LogDet,
    LogSumExp,
    Map,
    Softmax,
    SumAll,
    SumAxis,
    shape_of,
)
from .simplify import simplify

__all__ = [
    "Equation",
    "VJPRule",
    "backprop_equations",
    "grad",
    "lookup",
    "register_vjp",
    "registered_heads",
    "vjp",
]

Contribs = list  # one entry per operand: an expression or None (zero)
VJP = Callable[[sp.Basic, Any], Contribs]


@dataclass(frozen=True)
class VJPRule:
    """A named reverse-mode rule: ``fn(node, G)`` gives the operands' adjoint contributions.

    >>> lookup(sp.MatrixSymbol("A", 2, 2).T).name
    'transpose'
    """

    name: str
    fn: VJP


_VJPS: dict[type, VJPRule] = {}


def register_vjp(head: type, name: str | None = None) -> Callable[[VJP], VJP]:
    """Decorator registering the vector-Jacobian product of a matrix head.

    Args:
        head: the node class (e.g. ``sympy.Trace``).
        name: readable name; default the class name.

    Returns:
        The decorator (it returns the function unchanged).

    >>> "trace" in [r.name for r in map(lookup, [sp.Trace(sp.MatrixSymbol("A", 2, 2))])]
    True
    """

    def deco(fn: VJP) -> VJP:
        _VJPS[head] = VJPRule(name or head.__name__, fn)
        return fn

    return deco


def registered_heads() -> list[type]:
    """The heads that have a matrix rule (the table test has one row per head).

    >>> Trace in registered_heads()
    True
    """
    return list(_VJPS)


def lookup(node: sp.Basic) -> VJPRule:
    """The rule for ``node``: a matrix rule, or the scalar rule of :mod:`symgrad.rules`.

    Raises:
        UnsupportedFunctionError: a matrix head with no rule (e.g. ``MatPow``).

    >>> lookup(sp.Symbol("x") * sp.Symbol("y")).name
    'product'
    """
    for klass in type(node).__mro__:
        if klass in _VJPS:
            return _VJPS[klass]
    if isinstance(node, MatrixExpr):
        raise UnsupportedFunctionError(
            type(node).__name__,
            f"no matrix derivative rule for {type(node).__name__} ({mx._name(node)}); write it "
            f"with the constructors of symgrad.matrix (matmul, add, hadamard, elementwise, ...)",
        )
    scalar = rules.lookup(node)

    def via_scalar_rule(node: sp.Basic, G: Any) -> Contribs:
        return [None if p == 0 else construct.mul(G, p) for p in scalar.partials(node)]

    return VJPRule(scalar.name, via_scalar_rule)


# ----------------------------------------------------------------------------- linear algebra
@register_vjp(MatAdd, "sum")
def _matadd(node: MatAdd, G: MatrixExpr) -> Contribs:
    return [G] * len(node.args)


@register_vjp(MatMul, "matmul")
def _matmul(node: MatMul, G: MatrixExpr) -> Contribs:
    # d(c A1 ... Ak) / dAi:  c (A1..A(i-1))^T G (A(i+1)..Ak)^T ;  d/dc: sum(G ⊙ A1..Ak)
    coeff, mats = node.as_coeff_matrices()
    mats = list(mats)
    out: Contribs = []
    for arg in node.args:
        if not isinstance(arg, MatrixExpr):
            out.append(None if arg.is_number else mx.sum(mx.hadamard(G, mx.matmul(*mats))))
            continue
        i = mats.index(arg) if mats.count(arg) == 1 else _position(node, arg, mats, out)
        parts = [mx.transpose(mx.matmul(*mats[:i]))] if i else []
        parts.append(G)
        if i + 1 < len(mats):
            parts.append(mx.transpose(mx.matmul(*mats[i + 1 :])))
        out.append(mx.scale(coeff, mx.matmul(*parts)))
    return out


def _position(node: MatMul, arg: MatrixExpr, mats: list, done: Contribs) -> int:
    # A factor that occurs twice (A A^T ... A): the k-th occurrence among the operands.
    k = sum(1 for a in node.args[: len(done)] if a == arg)
    return [j for j, m in enumerate(mats) if m == arg][k]


@register_vjp(Transpose, "transpose")
def _transpose(node: Transpose, G: MatrixExpr) -> Contribs:
    return [mx.transpose(G)]


@register_vjp(HadamardProduct, "hadamard")
def _hadamard(node: HadamardProduct, G: MatrixExpr) -> Contribs:
    args = node.args
    return [mx.hadamard(*args[:i], *args[i + 1 :], G) for i in range(len(args))]


@register_vjp(HadamardPower, "hadamard_power")
def _hadamard_power(node: HadamardPower, G: MatrixExpr) -> Contribs:
    # d A^{∘p} = p A^{∘(p-1)} ⊙ dA
    base, p = node.args
    if not p.is_number:
        raise UnsupportedFunctionError(
            "HadamardPower", "only constant entrywise powers are supported"
        )
    lower = base if p == 2 else HadamardPower(base, p - 1)
    return [mx.hadamard(mx.scale(p, lower), G), None]


@register_vjp(Inverse, "inverse")
def _inverse(node: Inverse, G: MatrixExpr) -> Contribs:
    # d(A^{-1}) = -A^{-1} dA A^{-1}  =>  dL/dA = -A^{-T} G A^{-T}
    inv_t = mx.transpose(node)
    return [mx.scale(-1, mx.matmul(inv_t, G, inv_t))]


@register_vjp(Trace, "trace")
def _trace(node: Trace, G: sp.Expr) -> Contribs:
    return [mx.scale(G, Identity(node.arg.shape[0]))]


@register_vjp(Determinant, "det")
def _det(node: Determinant, G: sp.Expr) -> Contribs:
    # Jacobi's formula: d det A = det A tr(A^{-1} dA)  =>  dL/dA = G det(A) A^{-T}
    return [mx.scale(G * node, mx.transpose(mx.inverse(node.arg)))]


@register_vjp(LogDet, "logdet")
def _logdet(node: LogDet, G: sp.Expr) -> Contribs:
    return [mx.scale(G, mx.transpose(mx.inverse(node.arg)))]


# ----------------------------------------------------------------------------- reductions
@register_vjp(SumAll, "sum_all")
def _sum_all(node: SumAll, G: sp.Expr) -> Contribs:
    return [mx.broadcast(G, node.arg.shape)]


@register_vjp(SumAxis, "sum_axis")
def _sum_axis(node: SumAxis, G: MatrixExpr) -> Contribs:
    return [mx.broadcast(G, node.args[0].shape)]


@register_vjp(Broadcast, "broadcast")
def _broadcast(node: Broadcast, G: MatrixExpr) -> Contribs:
    # the adjoint of repeating is summing over the repeated axes
    arg = node.arg
    if not isinstance(arg, MatrixExpr):
        return [mx.sum(G)]
    if tuple(arg.shape) == (1, 1):
        return [mx.sum(mx.sum(G, axis=0), axis=1)]
    return [mx.sum(G, axis=0 if arg.shape[0] == 1 else 1)]


@register_vjp(Softmax, "softmax")
def _softmax(node: Softmax, G: MatrixExpr) -> Contribs:
    # J^T G = s ⊙ (G - sum(G ⊙ s, axis))
    inner = mx.broadcast(mx.sum(mx.hadamard(G, node), axis=node.axis), node.shape)
    return [mx.hadamard(node, mx.sub(G, inner))]


@register_vjp(LogSumExp, "logsumexp")
def _logsumexp(node: LogSumExp, G: MatrixExpr) -> Contribs:
    A = node.args[0]
    return [mx.hadamard(mx.softmax(A, node.axis), mx.broadcast(G, A.shape))]


# ----------------------------------------------------------------------------- elementwise
@register_vjp(Map, "elementwise")
def _map(node: Map, G: MatrixExpr) -> Contribs:
    # d f.(A1, ..., Ak) / dAi = (∂f/∂ui).(A1, ..., Ak) ⊙ G; ∂f/∂ui from the scalar rule table,
    # written through the node itself where it appears (tanh' = 1 - tanh^2 -> 1 - h ⊙ h).
    body, mats = node.lam.expr, list(node.mats)
    here = _VARS[len(mats)]
    out: Contribs = []
    for i in range(len(mats)):
        partial = autodiff.grad(body, _VARS[i], simplify=False)
        if partial == 0:
            out.append(None)
            continue
        partial = partial.xreplace({body: here})
        out.append(mx.hadamard(mx.from_scalar(partial, [*mats, node]), G))
    return out


# ----------------------------------------------------------------------------- the sweep
@dataclass(frozen=True)
class Equation:
    """One backprop equation ``lhs = rhs`` (``lhs`` a named adjoint such as ``delta_1``).

    >>> Equation(sp.Symbol("a"), sp.Symbol("b")).rhs
    b
    """

    lhs: sp.Basic
    rhs: sp.Basic

    def latex(self) -> str:
        r"""``lhs = rhs`` in textbook notation (``dL/dW`` as a partial derivative).

        >>> Equation(sp.Symbol("dL/dW"), sp.MatrixSymbol("delta", 2, 1)).latex()
        '\\frac{\\partial L}{\\partial W} = \\delta'
        """
        from .latex import latex

        name = self.lhs.name if isinstance(self.lhs, sp.Symbol) else ""
        if name.startswith("dL/d"):
            wrt = latex(sp.Symbol(name[4:]))
            lhs = rf"\frac{{\partial L}}{{\partial {wrt}}}"
        else:
            lhs = latex(self.lhs)
        return f"{lhs} = {latex(self.rhs)}"

    def _repr_latex_(self) -> str:
        return f"$${self.latex()}$$"


class Equations(NamedTuple):
    r"""``(deltas, gradients)`` from :func:`backprop_equations`; a notebook shows them as maths.

    >>> W, x = sp.MatrixSymbol("W", 2, 3), sp.MatrixSymbol("x", 3, 1)
    >>> eqs = backprop_equations(mx.sumsq(mx.matmul(W, x)), [W], {})
    >>> print(eqs._repr_latex_())
    $$\begin{aligned}\frac{\partial L}{\partial W} &= 2 W x x^{T}\end{aligned}$$
    """

    deltas: list[Equation]
    gradients: list[Equation]

    def _repr_latex_(self) -> str:
        rows = [eq.latex().replace(" = ", " &= ", 1) for eq in [*self.deltas, *self.gradients]]
        return "$$\\begin{aligned}" + " \\\\ ".join(rows) + "\\end{aligned}$$"


def _check_wrt(wrt: Any) -> list[sp.Basic]:
    # one symbol, or any collection of them (list, tuple, generator)
    many = isinstance(wrt, Iterable) and not isinstance(wrt, (sp.Basic, str))
    items = list(wrt) if many else [wrt]
    if not items:
        raise InputTypeError("wrt is empty; pass a MatrixSymbol or scalar Symbol (or a list)")
    for w in items:
        if not isinstance(w, (MatrixSymbol, sp.Symbol)):
            raise InputTypeError(
                f"wrt must be MatrixSymbol or Symbol objects, got {type(w).__name__}: {w!r}"
            )
    return items


def _sweep(
    seeds: Mapping[sp.Basic, Any],
    wrt: Sequence[sp.Basic],
    names: Mapping[sp.Basic, sp.Basic] | None = None,
) -> tuple[dict[sp.Basic, Any], list[Equation]]:
    """Adjoints of ``wrt`` given seed adjoints of output nodes; one pass in reverse topo order."""
    order = mx.value_nodes(list(seeds))
    targets = set(wrt)
    live: set[sp.Basic] = set()
    for node in order:  # prune: only nodes on a path from a wrt leaf take part
        if node in targets or any(a in live for a in mx.operands(node)):
            live.add(node)
    pending: dict[sp.Basic, list] = {k: [v] for k, v in seeds.items()}
    result: dict[sp.Basic, Any] = {}
    equations: list[Equation] = []
    for node in reversed(order):
        terms = pending.pop(node, None)
        if not terms or node not in live:
            continue
        G = mx.add(*terms) if isinstance(node, MatrixExpr) else construct.add(terms)
        if names and node in names:
            equations.append(Equation(names[node], G))
            G = names[node]
        if node in targets:
            result[node] = G
            continue
        contribs = lookup(node).fn(node, G)
        for arg, c in zip(mx.operands(node), contribs, strict=True):
            if c is None or arg not in live or (not isinstance(c, MatrixExpr) and c == 0):
                continue
            if isinstance(c, ZeroMatrix):
                continue
            if shape_of(c) != shape_of(arg):  # a wrong rule, never user input
                raise ShapeError(
                    f"internal: rule {lookup(node).name} gave shape {shape_of(c)} for an operand "
                    f"of shape {shape_of(arg)}"
                )
            pending.setdefault(arg, []).append(c)
    return result, equations


def _zero(w: sp.Basic) -> Any:
    return ZeroMatrix(*w.shape) if isinstance(w, MatrixExpr) else sp.S.Zero


def vjp(output: Any, wrt: Any, cotangent: Any) -> Any:
    """``sum(cotangent ⊙ d output / d wrt)``: the adjoint of ``wrt`` for a seed on ``output``.

    Args:
        output: a matrix or scalar expression.
        wrt: a ``MatrixSymbol``/``Symbol`` or a list of them.
        cotangent: the seed, of ``output``'s shape (a scalar for scalar outputs).

    Returns:
        One expression of ``wrt``'s shape, or a list for a list ``wrt``.

    Raises:
        ShapeError: the cotangent's shape differs from the output's.

    >>> X = sp.MatrixSymbol("X", 2, 2)
    >>> V = sp.MatrixSymbol("V", 2, 2)
    >>> h = mx.tanh(X)
    >>> vjp(h, X, V).shape
    (2, 2)
    """
    items = _check_wrt(wrt)
    output = mx._operand(output, "vjp: output")
    cotangent = mx._operand(cotangent, "vjp: cotangent")
    if shape_of(cotangent) != shape_of(output):
        raise ShapeError(
            f"vjp: the cotangent has shape {shape_of(cotangent)} but the output has shape "
            f"{shape_of(output)}"
        )
    output = simplify(output)  # indexed sums and 1x1 entries read as matrix algebra
    adj, _ = _sweep({output: cotangent}, items)
    out = simplify([adj.get(w, _zero(w)) for w in items])
    return out[0] if isinstance(wrt, sp.Basic) else out


def grad(f: Any, wrt: Any) -> Any:
    """The gradient of a scalar ``f`` with respect to matrices: same shape as each ``wrt``.

    Args:
        f: a scalar expression built from matrix expressions (e.g. ``sumsq(W x - y)``).
        wrt: a ``MatrixSymbol`` (or scalar ``Symbol``), or a list of them.

    Returns:
        The gradient expression (a list for a list ``wrt``).

    Raises:
        ShapeError: ``f`` is a matrix (use :func:`vjp` with a cotangent, or sum it).
        InputTypeError: ``wrt`` is not symbols.

    >>> X = sp.MatrixSymbol("X", 3, 3)
    >>> grad(mx.trace(X) + 1, X)
    I
    """
    f = simplify(mx._operand(f, "grad"))
    return vjp(f, wrt, loss_seed(f, "grad"))


def loss_seed(f: sp.Basic, what: str) -> sp.Basic:
    """The adjoint a backward pass of the loss ``f`` starts from: 1 (``I`` for a 1x1 matrix).

    Raises:
        ShapeError: ``f`` is a matrix larger than 1x1.

    >>> loss_seed(mx.sumsq(sp.MatrixSymbol("x", 2, 1)), "grad")
    1
    """
    if isinstance(f, MatrixExpr):
        if tuple(f.shape) != (1, 1):
            raise ShapeError(
                f"{what} needs a scalar f, got a matrix of shape {mx._fmt(f.shape)}; "
                f"reduce it (symgrad.matrix.sum / mean / sumsq) or use vjp"
            )
        return sp.Identity(1)
    return sp.S.One


def backprop_equations(
    f: sp.Expr, wrt: Iterable[sp.Basic], names: Mapping[sp.Basic, sp.Basic]
) -> Equations:
    """The backprop equations of ``f``: named deltas and the gradients written through them.

    Args:
        f: the scalar loss.
        wrt: parameters.
        names: intermediate node -> symbol standing for its adjoint (e.g. ``z1 -> delta_1``).

    Returns:
        ``(deltas, gradients)``: equations ``delta = ...`` in the order they are computed and
        ``dL/dW = ...`` for each parameter.

    >>> W, x = sp.MatrixSymbol("W", 2, 3), sp.MatrixSymbol("x", 3, 1)
    >>> z = mx.matmul(W, x)
    >>> d = sp.MatrixSymbol("delta", 2, 1)
    >>> deltas, grads = backprop_equations(mx.sumsq(z), [W], {z: d})
    >>> deltas[0].rhs, grads[0].rhs
    (2*W*x, delta*x.T)
    """
    f = mx._operand(f, "backprop_equations: f")
    items = _check_wrt(wrt)
    adj, eqs = _sweep({f: loss_seed(f, "backprop_equations")}, items, mx._names(names, "names"))
    eqs = [Equation(e.lhs, simplify(e.rhs)) for e in eqs]
    grads = [Equation(sp.Symbol(f"dL/d{w}"), simplify(adj.get(w, _zero(w)))) for w in items]
    return Equations(eqs, grads)
