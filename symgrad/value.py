"""A micrograd-compatible scalar ``Value`` whose derivatives come from the rule table.

``Value`` behaves like Karpathy's micrograd ``Value``: ``.data``, ``.grad`` (starts at 0),
``_prev``, ``_op``, ``label``, the arithmetic operators with numbers on either side, ``tanh``,
``exp``, ``log``, ``relu``, ``sigmoid`` and an accumulating ``backward()``. Two things are new:

* the local derivatives used by ``backward()`` are not hand-written closures: each operation is
  mapped to a SymPy head, its partials are taken once from :mod:`symgrad.rules` (the single
  source of derivative maths), compiled, and evaluated per node with numbers;
* ``.expr`` is the SymPy expression behind any node (built on demand), so the same graph can be
  differentiated symbolically, explained and compiled.

Numbers follow IEEE 754 as NumPy and PyTorch compute them, in the forward pass and in
``backward()``: nothing raises ``OverflowError`` or ``ZeroDivisionError``. ``exp`` of a huge
number is ``inf``, ``0 ** -1`` is ``inf``, ``log(0)`` is ``-inf``, ``log(-1)`` and a negative
base to a non-integer power are ``nan``, and ``Value(1e-310).log().backward()`` gives the
gradient ``inf``. At the edges of ``**`` the gradients follow PyTorch: the derivative of
``x**0`` is 0 (also at ``x = 0``), and the derivative in a ``Value`` exponent is 0 where the
base is 0 and the exponent >= 0. micrograd itself raises at several of these points;
docs/conventions.md lists them. Operands that are not real numbers raise
:class:`~symgrad.errors.InputTypeError`.

>>> a = Value(-4.0, label="a")
>>> b = Value(2.0, label="b")
>>> c = a * b + b**3
>>> c.backward()
>>> c.data, a.grad, b.grad
(0.0, 2.0, 8.0)
>>> c.expr
a*b + b**3
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
from collections.abc import Callable, Iterable

import numpy as np
import sympy as sp

from . import rules
from .codegen import lambdify
from .errors import InputTypeError
from .functions import sigmoid as _sigmoid_head
from .graph import post_order
from .inputs import describe, float_of

__all__ = ["Value"]

# Placeholders for the operands (u, v) and the node's own value (out) in compiled partials.
_U, _V, _OUT = sp.symbols("u v out")

# op kind -> (builder of the SymPy head over placeholders, number of operands)
_HEADS: dict[str, tuple[Callable[..., sp.Expr], int]] = {
    "add": (lambda u, v: sp.Add(u, v, evaluate=False), 2),
    "mul": (lambda u, v: sp.Mul(u, v, evaluate=False), 2),
    "pow": (lambda u, v: sp.Pow(u, v, evaluate=False), 2),
    "tanh": (lambda u: sp.tanh(u, evaluate=False), 1),
    "exp": (lambda u: sp.exp(u, evaluate=False), 1),
    "log": (lambda u: sp.log(u, evaluate=False), 1),
    "relu": (lambda u: sp.Max(sp.S.Zero, u, evaluate=False), 1),
    "sigmoid": (lambda u: _sigmoid_head(u, evaluate=False), 1),
}


def _template(kind: str) -> sp.Expr:
    build, arity = _HEADS[kind]
    return build(*(_U, _V)[:arity])


# A local partial and how to apply it: _PLAIN (a constant or an operand: multiply), _COMPILED
# (evaluate at IEEE semantics, then multiply) or _RECIPROCAL (``fn`` gives d of a partial 1/d).
_PLAIN, _COMPILED, _RECIPROCAL = 0, 1, 2
Partial = tuple[Callable[..., float], int]


@functools.cache
def _compiled_partials(kind: str, rule: rules.Rule) -> tuple[Partial, ...]:
    """Numeric local partials of op ``kind`` w.r.t. each operand, as functions of (u, v, out).

    Keyed by the rule too, so ``rules.override`` takes effect. The partials are written through
    the node itself where the rule does so (``1 - tanh(u)**2``); replacing the node by ``out``
    reuses the forward value, exactly as micrograd's ``1 - t**2``. A partial ``1/d`` (``log``)
    is kept as ``d``: the sweep divides the adjoint by it, as PyTorch does (``1/1e-310``
    overflows to inf where ``adjoint/1e-310`` may be finite).
    """
    node = _template(kind)
    partials = rule.partials(node)
    out = []
    for operand in (_U, _V)[: _HEADS[kind][1]]:
        # SymPy may order args canonically: find each operand's position in node.args
        index = node.args.index(operand)
        expr = partials[index].xreplace({node: _OUT})
        if expr.is_Pow and expr.exp == -1:
            expr, mode = expr.base, _RECIPROCAL
        else:
            mode = _PLAIN if expr.is_Number or expr in (_U, _V, _OUT) else _COMPILED
        out.append((_evaluator(expr, kind), mode))
    return tuple(out)


def _evaluator(expr: sp.Expr, kind: str) -> Callable[..., float]:
    """A fast numeric function of (u, v, out) for one local partial.

    The common cases (a constant, as for ``+``; an operand, as for ``*``) become plain lambdas;
    anything else is compiled by :func:`symgrad.codegen.lambdify`.
    """
    if expr.is_Number:
        c = float(expr)
        return lambda u, v, out: c
    if expr == _U:
        return lambda u, v, out: u
    if expr == _V:
        return lambda u, v, out: v
    if expr == _OUT:
        return lambda u, v, out: out
    return lambdify(expr, [_U, _V, _OUT], name=f"d_{kind}")


def _partials_for(kind: str) -> tuple[Partial, ...]:
    return _compiled_partials(kind, rules.lookup(_template(kind)))


def _as_number(x: object, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        hint = ""
        if isinstance(x, numbers.Complex):
            hint = "; Value holds real numbers only (use two Values for real and imaginary parts)"
        elif isinstance(x, str):
            hint = "; convert text with float(text) first"
        raise InputTypeError(f"{what} must be a real number, got {describe(x)}{hint}")
    return float_of(x)


def _exact(c: float | int) -> sp.Expr:
    """A Python number as a SymPy number, keeping ints exact."""
    if isinstance(c, numbers.Integral):
        return sp.Integer(int(c))
    return sp.Float(float(c))


def _safe_exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf  # IEEE: exp of a large number overflows to inf


def _ieee_pow(b: float, e: float) -> float:
    # NumPy's power ufunc (the arrays' answer, as PyTorch's): Python's ** raises on 0**-1 and on
    # overflow, gives a complex number for a negative base to a fractional power, and
    # (-inf)**0.5 = inf where NumPy's sqrt shortcut gives nan. They agree on a positive base
    # and on a finite negative base to an integer power.
    if b > 0 or (b < 0 and b != -math.inf and float(e).is_integer()):
        try:
            return b**e
        except OverflowError:
            pass
    with np.errstate(all="ignore"):
        return float(np.power(np.float64(b), np.float64(e)))


def _ieee_log(x: float) -> float:
    if x > 0:
        return math.log(x)  # exact for subnormals too
    return -math.inf if x == 0 else math.nan  # log(+-0) = -inf; negative or nan: nan


def _ieee_div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:  # IEEE: +-inf, or nan for 0/0
        with np.errstate(all="ignore"):
            return float(np.float64(a) / np.float64(b))


def _ieee(fn: Callable[..., float], u: float, v: float, out: float) -> float:
    # A compiled partial with NumPy's answer. On ordinary numbers (finite, a nonzero operand) the
    # float fast path agrees with NumPy wherever it answers with a float; at 0, inf and nan,
    # or where Python raises or goes complex (1/1e-310, log(-1), (-2)**0.5), the partial is
    # evaluated by NumPy on one-element arrays (the array path: ufuncs, not scalar methods;
    # the exponent v stays a scalar, so u**(v-1) takes NumPy's sqrt shortcut for v = 1.5 as
    # the forward u**v does for v = 0.5).
    if u != 0 and math.isfinite(u) and math.isfinite(v) and math.isfinite(out):
        try:
            r = fn(u, v, out)
            if type(r) is float:
                return r
            if not isinstance(r, complex):
                return float(r)
        except (ArithmeticError, ValueError):
            pass
    r = fn(np.array([u]), v, np.array([out]))
    return float(np.asarray(r).ravel()[0])


def _sigmoid(x: float) -> float:
    # two forms so that exp never overflows
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


_operands = operator.attrgetter("_children")


class Value:
    """A scalar in a computation graph, with micrograd's semantics and a SymPy view.

    Args:
        data: a real number (``int``, ``float`` or a NumPy real scalar).
        label: a name for the node. A leaf's label is its symbol name in ``.expr``; unlabelled
            leaves get generated names (``v1``, ``v2``, ...).

    Attributes:
        data: the value (a ``float``; optimisers may assign to it).
        grad: d(output)/d(this node) after ``backward()``; starts at 0 and accumulates.
        label: the node's name (may be assigned later, as in the lecture).

    Raises:
        InputTypeError: ``data`` is not a real number (a string, ``None``, a complex number) or
            ``label`` is not a string.

    >>> x = Value(3.0, label="x")
    >>> y = 2 * x**2 - x / 3 + 1
    >>> y.backward()
    >>> y.data, round(x.grad, 12)
    (18.0, 11.666666666667)
    >>> Value("3")
    Traceback (most recent call last):
    ...
    symgrad.errors.InputTypeError: Value data must be a real number, got str '3'; convert text \
with float(text) first
    """

    __slots__ = ("_children", "_const", "_exponent", "_kind", "_op", "data", "grad", "label")

    def __init__(self, data: float, label: str = "", _children: tuple = (), _op: str = "") -> None:
        if not isinstance(label, str):
            raise InputTypeError(f"Value label must be a string, got {describe(label)}")
        self.data = data if type(data) is float else _as_number(data, "Value data")
        self.grad = 0.0
        self.label = label
        self._children: tuple[Value, ...] = tuple(_children)
        self._op = _op
        self._kind = ""  # key into _HEADS for nodes made by an operation
        self._const: float | int | None = None  # the Python number for wrapped constants
        self._exponent: float | int | None = None  # a number exponent (op '**k')

    # ------------------------------------------------------------------ micrograd's interface
    @property
    def _prev(self) -> set[Value]:
        """The node's operands as a set (micrograd's ``_prev``)."""
        return set(self._children)

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"

    @staticmethod
    def _wrap(other: object) -> Value:
        if isinstance(other, Value):
            return other
        if isinstance(other, bool) or not isinstance(other, numbers.Real):
            _as_number(other, "the other operand")  # raises with a helpful message
        v = Value(other)
        v._const = int(other) if isinstance(other, numbers.Integral) else float(other)
        return v

    def _make(self, data: float, children: tuple, op: str, kind: str) -> Value:
        out = Value(data, _children=children, _op=op)
        out._kind = kind
        return out

    def __add__(self, other: object) -> Value:
        other = self._wrap(other)
        return self._make(self.data + other.data, (self, other), "+", "add")

    def __mul__(self, other: object) -> Value:
        other = self._wrap(other)
        return self._make(self.data * other.data, (self, other), "*", "mul")

    def __pow__(self, other: object) -> Value:
        if isinstance(other, Value):
            out = self._make(_ieee_pow(self.data, other.data), (self, other), "**", "pow")
            return out
        k = _as_number(other, "the exponent")
        out = self._make(_ieee_pow(self.data, k), (self,), f"**{other}", "pow")
        out._exponent = int(other) if isinstance(other, numbers.Integral) else k
        return out

    def __rpow__(self, other: object) -> Value:  # other ** self
        return self._wrap(other) ** self

    def relu(self) -> Value:
        """``max(0, x)``; its gradient at 0 is 0 (as in micrograd and PyTorch).

        >>> x = Value(0.0)
        >>> y = x.relu()
        >>> y.backward()
        >>> y.data, x.grad
        (0.0, 0.0)
        """
        d = self.data
        # as micrograd and torch.relu: nan and -0.0 pass unchanged (max(0.0, nan) would be 0.0)
        return self._make(0.0 if d < 0 else d, (self,), "ReLU", "relu")

    def tanh(self) -> Value:
        """The hyperbolic tangent.

        >>> round(Value(0.8814).tanh().data, 4)
        0.7071
        """
        return self._make(math.tanh(self.data), (self,), "tanh", "tanh")

    def exp(self) -> Value:
        """``e**x`` (``inf`` when it overflows, as IEEE arithmetic gives).

        >>> Value(0.0).exp().data
        1.0
        """
        return self._make(_safe_exp(self.data), (self,), "exp", "exp")

    def log(self) -> Value:
        """The natural logarithm: ``-inf`` at 0 and ``nan`` below 0 (IEEE, as NumPy and PyTorch).

        >>> Value(1.0).log().data
        0.0
        >>> Value(0.0).log().data, Value(-1.0).log().data
        (-inf, nan)
        """
        return self._make(_ieee_log(self.data), (self,), "log", "log")

    def sigmoid(self) -> Value:
        """The logistic function ``1 / (1 + exp(-x))``, computed without overflow.

        >>> Value(0.0).sigmoid().data
        0.5
        """
        return self._make(_sigmoid(self.data), (self,), "sigmoid", "sigmoid")

    # Like micrograd, the other operators are built from + * ** so graphs (and numbers) match.
    def __neg__(self) -> Value:  # -self
        return self * -1

    def __radd__(self, other: object) -> Value:  # other + self
        return self + other

    def __sub__(self, other: object) -> Value:  # self - other
        return self + (-self._wrap(other))

    def __rsub__(self, other: object) -> Value:  # other - self
        return self._wrap(other) + (-self)

    def __rmul__(self, other: object) -> Value:  # other * self
        return self * other

    def __truediv__(self, other: object) -> Value:  # self / other
        return self * self._wrap(other) ** -1

    def __rtruediv__(self, other: object) -> Value:  # other / self
        return self._wrap(other) * self**-1

    # ------------------------------------------------------------------ backward
    def _topo(self) -> list[Value]:
        """Nodes reachable from ``self``, children first (iterative post-order DFS)."""
        return post_order([self], _operands)

    def backward(self) -> None:
        """Fill ``.grad`` of every node in the graph with d(self)/d(node), accumulating.

        As in micrograd, ``self.grad`` is set to 1 and every other node *adds* its
        contributions, so call ``zero_grad()`` (or reset ``.grad``) between steps. The local
        partials come from :mod:`symgrad.rules`; no recursion, so deep graphs work.

        >>> a = Value(3.0)
        >>> b = a + a
        >>> b.backward()
        >>> a.grad
        2.0
        """
        topo = self._topo()
        fns = {kind: _partials_for(kind) for kind in {n._kind for n in topo if n._kind}}
        self.grad = 1.0
        with np.errstate(all="ignore"):  # nan/inf follow IEEE here, never a warning
            for node in reversed(topo):
                # a zero adjoint is sent too: 0 * inf is nan, as in PyTorch and micrograd
                if node._kind:
                    node._send(fns[node._kind])

    def _send(self, partials: tuple[Partial, ...]) -> None:
        # chain rule: d out / d child += (local partial from the rule table) * d out / d self
        ch = self._children
        u = ch[0].data
        v = ch[1].data if len(ch) > 1 else self._exponent
        v = 0.0 if v is None else float(v)
        g = self.grad
        for i, (child, (fn, mode)) in enumerate(zip(ch, partials, strict=False)):
            if mode == _PLAIN:  # a constant or an operand: a float already
                child.grad += fn(u, v, self.data) * g
                continue
            if self._kind == "pow" and (v == 0 if i == 0 else u == 0 and v >= 0):
                # PyTorch's values where e b^(e-1) or b^e log b is 0 * inf: d(b^0)/db = 0 (b^0
                # is the constant 1), and d(b^e)/de -> 0 as b -> 0+ for e > 0 (0 at e = 0).
                # As PyTorch's pow_backward_self/_exponent: the base gets nothing at all (even
                # for a nan adjoint), the exponent 0 * adjoint.
                if i == 0:
                    continue
                partial = 0.0
            else:
                partial = _ieee(fn, u, v, self.data)
            if mode == _RECIPROCAL:
                child.grad += _ieee_div(g, partial)
            elif partial == 0 and self._kind == "relu":
                continue  # relu selects (PyTorch's where): a blocked inf adjoint is 0, not nan
            else:
                child.grad += partial * g

    def _backward(self) -> None:
        """Propagate this node's ``.grad`` to its operands only (the lecture's manual step).

        >>> a, b = Value(2.0), Value(-3.0)
        >>> c = a * b
        >>> c.grad = 1.0
        >>> c._backward()
        >>> a.grad, b.grad
        (-3.0, 2.0)
        """
        if self._kind:
            with np.errstate(all="ignore"):
                self._send(_partials_for(self._kind))

    # ------------------------------------------------------------------ the symbolic view
    def _symgrad_graph(self) -> tuple[sp.Expr, dict[sp.Basic, str], dict[sp.Symbol, float]]:
        """``(expr, labels, values)``: the SymPy expression of this node and its side data.

        ``labels`` maps the SymPy node of every labelled ``Value`` (leaves and intermediates)
        to its label; ``values`` maps every leaf symbol to the leaf's ``data``. Leaves with the
        same label but different identity get distinct symbols (``x``, ``x_2``).

        >>> a = Value(2.0, label="a")
        >>> b = Value(-3.0, label="b")
        >>> e = a * b; e.label = "e"
        >>> expr, labels, values = (e + 1)._symgrad_graph()
        >>> expr
        a*b + 1
        >>> sorted(labels.values()), values
        (['a', 'b', 'e'], {a: 2.0, b: -3.0})
        """
        topo = self._topo()
        used = {n.label for n in topo if not n._children and n.label and n._const is None}
        taken: set[str] = set()
        exprs: dict[int, sp.Expr] = {}
        labels: dict[sp.Basic, str] = {}
        values: dict[sp.Symbol, float] = {}
        for node in topo:
            if node._const is not None:
                e: sp.Expr = _exact(node._const)
            elif not node._children:
                name = node.label
                if not name or name in taken:
                    base = name or "v"
                    k = 2 if name else 1
                    while True:  # names are chosen per graph, never from global state
                        candidate = f"{base}_{k}" if name else f"v{k}"
                        if candidate not in used and candidate not in taken:
                            break
                        k += 1
                    name = candidate
                taken.add(name)
                e = sp.Symbol(name)
                values[e] = node.data
            else:
                args = [exprs[id(c)] for c in node._children]
                if node._exponent is not None:
                    args.append(_exact(node._exponent))
                e = _HEADS[node._kind][0](*args)
                if all(a.is_Number for a in args):
                    e = e.func(*e.args)  # fold constants (micrograd's ``1 * -1`` in ``e - 1``)
            hash(e)  # fill SymPy's cached hash and assumption bottom-up (no deep recursion later)
            e.is_commutative  # noqa: B018
            exprs[id(node)] = e
            if node.label and node._const is None:
                labels.setdefault(e, node.label)
        return exprs[id(self)], labels, values

    @property
    def expr(self) -> sp.Expr:
        """The SymPy expression of this node over its leaves' symbols (built on demand).

        The expression mirrors the graph (unevaluated, so ``a - b`` shows as micrograd builds
        it, ``a + b*(-1)``) and works for deep graphs.

        >>> x = Value(1.0, label="x")
        >>> (x * x).tanh().expr
        tanh(x*x)
        """
        return self._symgrad_graph()[0]

    def _sympy_(self) -> sp.Expr:
        """SymPy's conversion hook: ``sympify(value)`` and symgrad functions use ``.expr``."""
        return self.expr

    @staticmethod
    def sum(values: Iterable[Value | float]) -> Value:
        """Sum many values left to right (like the built-in ``sum``, with no 0 leaf).

        >>> Value.sum([Value(1.0), 2.0, Value(3.0)]).data
        6.0
        """
        items = list(values)
        if not items:
            raise InputTypeError("Value.sum needs at least one value")
        total = Value._wrap(items[0])
        for v in items[1:]:
            total = total + v
        return total
