"""The one table of local partial derivatives, keyed by SymPy head.

For a node ``n = f(a_1, ..., a_k)`` a rule returns ``[dn/da_1, ..., dn/da_k]``: the local
partials that the reverse sweep multiplies by the incoming adjoint. This is the only place in
symgrad where derivative maths is written; ``grad``, derivations and ``Value.backward`` all read
it. Partials are written through the node itself where possible (``d tanh(u) = 1 - tanh(u)^2``)
so gradients share the forward pass's values.

Functions without a rule here fall back to SymPy's own ``fdiff`` (``erf``, ``gamma``, Bessel
functions, undefined functions, ...), asked only for the arguments that depend on the variables
(:meth:`Rule.needed`): ``besselj(1, x)`` never asks for the derivative in the order. Where SymPy
has no derivative for a needed argument (``fdiff`` raises, returns ``None`` or an unevaluated
``Derivative``) :class:`~symgrad.errors.UnsupportedFunctionError` names the function and the
argument.

Every formula here equals SymPy's own derivative on the whole complex plane, branch cuts
included (``acosh'(u) = 1/(sqrt(u - 1) sqrt(u + 1))``, not ``1/sqrt(u**2 - 1)``, which has the
wrong sign on ``u < -1``); ``tests/test_rules_table.py`` checks this at 30 digits. Functions
that are not analytic (``Abs``, ``sign``, ``Max``, ``floor``, ...) have their real derivative
almost everywhere, with the conventions of docs/conventions.md at the kinks.

>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> local_partials(sp.tanh(x))
[1 - tanh(x)**2]
>>> lookup(x * y).name
'product'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair

from .construct import add, apply, mul, power
from .errors import UnsupportedFunctionError
from .functions import sigmoid
from .graph import heaviside

__all__ = ["Rule", "local_partials", "lookup", "override", "register", "registered_heads"]

Partials = Callable[[sp.Basic], Sequence[sp.Expr]]
#: Which arguments need a partial: a flag, or for a tuple argument a nested tuple of flags.
Wanted = bool | tuple
#: A partial: an expression, ``None`` (not wanted), or nested tuples of them (tuple arguments).
Local = sp.Expr | None | tuple

ZERO, ONE, HALF = sp.S.Zero, sp.S.One, sp.S.Half


@dataclass(frozen=True)
class Rule:
    """A derivative rule: a readable ``name`` and the function giving the local partials.

    Attributes:
        name: the rule name shown in derivations.
        partials: ``node -> [d node / d arg for arg in node.args]``.
        partial: ``(node, i) -> d node / d args[i]`` for rules that can give one partial at a
            time (SymPy's ``fdiff``); :meth:`needed` then asks only for the wanted ones.

    >>> import sympy as sp
    >>> rule = lookup(sp.exp(sp.Symbol("x")))
    >>> rule.name, rule.partials(sp.exp(sp.Symbol("x")))
    ('exp', [exp(x)])
    """

    name: str
    partials: Partials
    partial: Callable[[sp.Basic, int, Wanted], Local] | None = None

    def needed(self, node: sp.Basic, wanted: Sequence[Wanted]) -> list[Local]:
        """The partials of ``node`` in the arguments flagged in ``wanted`` (``None`` elsewhere).

        Arguments that do not depend on the variables are never differentiated, so a constant
        order (``besselj(1, x)``) or index (``zeta(2, x)``) never reaches SymPy's ``fdiff``.
        For a rule that differentiates one argument at a time (SymPy's), a tuple argument
        (``hyper``'s and ``meijerg``'s parameters) is flagged element by element with a nested
        tuple of flags, and its partial is the nested tuple of partials in those elements.

        Raises:
            UnsupportedFunctionError: SymPy has no derivative in a wanted argument.

        >>> import sympy as sp
        >>> x = sp.Symbol("x")
        >>> lookup(sp.besselj(1, x)).needed(sp.besselj(1, x), [False, True])
        [None, besselj(0, x)/2 - besselj(2, x)/2]
        """
        if self.partial is not None:
            return [self.partial(node, i, w) if w else None for i, w in enumerate(wanted)]
        return [p if w else None for p, w in zip(self.partials(node), wanted, strict=True)]


_RULES: dict[type, Rule] = {}


def register(head: type, name: str | None = None) -> Callable[[Partials], Partials]:
    """Decorator registering the local partials of ``head`` (a SymPy class).

    Args:
        head: the SymPy class, e.g. ``sympy.tanh``.
        name: the readable rule name used in derivations; default the class name.

    Returns:
        The decorator; it returns the function unchanged.

    >>> import sympy as sp
    >>> class cube(sp.Function):
    ...     pass
    >>> @register(cube)
    ... def _cube(n):
    ...     return [3 * n.args[0] ** 2]
    >>> local_partials(cube(sp.Symbol("x")))
    [3*x**2]
    >>> del _RULES[cube]  # keep the doctest free of side effects
    """

    def deco(fn: Partials) -> Partials:
        _RULES[head] = Rule(name or head.__name__, fn)
        return fn

    return deco


@contextmanager
def override(head: type, partials: Partials, name: str | None = None) -> Iterator[None]:
    """Temporarily replace the rule for ``head`` (for experiments and for testing checkers).

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> with override(sp.sin, lambda n: [2 * sp.cos(n.args[0])]):
    ...     local_partials(sp.sin(x))
    [2*cos(x)]
    >>> local_partials(sp.sin(x))
    [cos(x)]
    """
    old = _RULES.get(head)
    _RULES[head] = Rule(name or head.__name__, partials)
    try:
        yield
    finally:
        if old is None:
            del _RULES[head]
        else:
            _RULES[head] = old


def registered_heads() -> tuple[type, ...]:
    """The SymPy classes that have a rule of their own (the fdiff fallback not counted).

    >>> import sympy as sp
    >>> sp.tanh in registered_heads()
    True
    """
    return tuple(_RULES)


def lookup(node: sp.Basic) -> Rule:
    """The rule for ``node``'s head: its own, a base class's, or SymPy's ``fdiff``.

    Raises:
        UnsupportedFunctionError: when the head has no rule and SymPy cannot differentiate it.

    >>> import sympy as sp
    >>> lookup(sp.erf(sp.Symbol("x"))).name
    'erf'
    """
    head = type(node)
    rule = _RULES.get(head)
    if rule is not None:
        return rule
    for base in head.__mro__[1:]:
        if base in _RULES:
            return _RULES[base]
    if isinstance(node, sp.Function):
        return Rule(head.__name__, _fdiff_partials, _fdiff_partial)
    raise UnsupportedFunctionError(
        head.__name__,
        f"symgrad has no derivative rule for {head.__name__} (in {_short(node)}); register one "
        "with symgrad.rules.register, or rewrite the expression with supported functions",
    )


def local_partials(node: sp.Basic) -> list[sp.Expr]:
    """``[d node / d arg for arg in node.args]`` by the registered rule.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> local_partials(x**y)
    [x**(y - 1)*y, x**y*log(x)]
    """
    return list(lookup(node).partials(node))


def _short(node: sp.Basic, limit: int = 60) -> str:
    text = sp.sstr(node) if len(node.args) < 20 else f"{type(node).__name__}(...)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fdiff_partials(node: sp.Basic) -> list[sp.Expr]:
    return [_fdiff_partial(node, i) for i in range(len(node.args))]


def _fdiff_partial(node: sp.Basic, i: int, wanted: Wanted = True) -> Local:
    # SymPy signals "no derivative" in many ways: ArgumentIndexError, NotImplementedError,
    # IndexError (zeta, polylog), TypeError (meijerg's tuple arguments), ValueError (appellf1),
    # None (SingularityFunction with a symbolic exponent) or an unevaluated Derivative/Subs.
    name = type(node).__name__
    arg = _short(node.args[i])
    where = f"{name} (in {_short(node)}) with respect to its argument {i + 1}, {arg}"
    if isinstance(wanted, tuple):
        return _tuple_partials(node, i, wanted, where)
    try:
        d = node.fdiff(i + 1)
    except Exception as exc:  # every failure means "no derivative"
        raise UnsupportedFunctionError(
            name,
            f"SymPy cannot differentiate {where} ({_reason(exc)}); "
            "register a rule with symgrad.rules.register to supply one",
            argument=i + 1,
        ) from exc
    return _checked(node, d, where, i)


def _checked(node: sp.Basic, d: object, where: str, i: int) -> sp.Expr:
    unknown = not isinstance(d, sp.Expr) or (
        # A *known* function answered with an unevaluated Derivative: SymPy does not know it.
        not isinstance(node, sp.core.function.AppliedUndef) and d.has(sp.Derivative, sp.Subs)
    )
    if unknown:
        raise UnsupportedFunctionError(
            type(node).__name__,
            f"SymPy has no derivative of {where}; "
            "register a rule with symgrad.rules.register to supply one",
            argument=i + 1,
        )
    return d


def _tuple_partials(node: sp.Basic, i: int, wanted: tuple, where: str) -> tuple:
    # d node / d e for each wanted element e of a (nested) tuple argument: SymPy's own diff with
    # e replaced by a dummy (meijerg differentiates in its parameters this way; fdiff cannot)
    def walk(t: sp.Tuple, mask: tuple, rebuild: Callable[[sp.Basic], sp.Basic]) -> tuple:
        out: list[Local] = []
        for k, (e, w) in enumerate(zip(t.args, mask, strict=True)):

            def put(new: sp.Basic, k: int = k) -> sp.Basic:
                return rebuild(type(t)(*t.args[:k], new, *t.args[k + 1 :]))

            if isinstance(w, tuple):
                out.append(walk(e, w, put))
            elif not w:
                out.append(None)
            else:
                d = sp.Dummy("e")
                try:
                    r = sp.diff(put(d), d).xreplace({d: e})
                except Exception as exc:  # every failure means "no derivative"
                    raise UnsupportedFunctionError(
                        type(node).__name__,
                        f"SymPy cannot differentiate {where} in its element {_short(e)} "
                        f"({_reason(exc)}); register a rule with symgrad.rules.register",
                        argument=i + 1,
                    ) from exc
                out.append(_checked(node, r, f"{where} in its element {_short(e)}", i))
        return tuple(out)

    args = node.args
    return walk(args[i], wanted, lambda new: node.func(*args[:i], new, *args[i + 1 :]))


def _reason(exc: BaseException) -> str:
    try:  # some SymPy exceptions fail in __str__ (a bare ArgumentIndexError)
        text = str(exc)
    except Exception:
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _arg(node: sp.Basic) -> sp.Expr:
    return node.args[0]


def _neg(e: sp.Expr) -> sp.Expr:
    return mul(-ONE, e)


def _recip(e: sp.Expr) -> sp.Expr:
    return power(e, -ONE)


def _one_minus_sq(e: sp.Expr) -> sp.Expr:
    return add([ONE, _neg(power(e, sp.Integer(2)))])


def _one_plus_sq(e: sp.Expr) -> sp.Expr:
    return add([ONE, power(e, sp.Integer(2))])


# ---------------------------------------------------------------------------------------------
# arithmetic
# ---------------------------------------------------------------------------------------------


@register(sp.Add, "sum")
def _add(n):
    return [ONE] * len(n.args)


@register(sp.Mul, "product")
def _mul(n):
    # d(prod a)/da_j = prod_{i != j} a_i (never n / a_j, which fails where a_j = 0)
    a = n.args
    if len(a) == 2:
        return [a[1], a[0]]
    if len(a) <= 4:
        return [mul(*a[:j], *a[j + 1 :]) for j in range(len(a))]
    # prefix/suffix products: O(k) nodes instead of O(k^2) for a k-factor product
    pre = [ONE]
    for f in a[:-1]:
        pre.append(mul(pre[-1], f))
    suf = [ONE]
    for f in reversed(a[1:]):
        suf.append(mul(f, suf[-1]))
    suf.reverse()
    return [mul(pre[j], suf[j]) for j in range(len(a))]


@register(sp.Pow, "power")
def _pow(n):
    b, e = n.args
    if e.is_Number:
        # d b^e / db = e b^(e-1); the exponent is a constant
        return [mul(e, power(b, e - 1)), ZERO]
    # symbolic exponent: d/db = e b^(e-1), d/de = b^e log b
    return [mul(e, power(b, add([e, -ONE]))), mul(n, apply(sp.log, b))]


# ---------------------------------------------------------------------------------------------
# exponential and logarithm
# ---------------------------------------------------------------------------------------------


@register(sp.exp, "exp")
def _exp(n):
    return [n]


@register(sp.log, "log")
def _log(n):
    if len(n.args) == 1:
        return [_recip(_arg(n))]
    # log(u, b) = log u / log b
    u, b = n.args
    lb = apply(sp.log, b)
    return [_recip(mul(u, lb)), _neg(mul(apply(sp.log, u), _recip(mul(b, power(lb, 2)))))]


# ---------------------------------------------------------------------------------------------
# trigonometric
# ---------------------------------------------------------------------------------------------


@register(sp.sin, "sin")
def _sin(n):
    return [apply(sp.cos, _arg(n))]


@register(sp.cos, "cos")
def _cos(n):
    return [_neg(apply(sp.sin, _arg(n)))]


@register(sp.tan, "tan")
def _tan(n):
    return [_one_plus_sq(n)]  # tan' = 1 + tan^2


@register(sp.cot, "cot")
def _cot(n):
    return [_neg(_one_plus_sq(n))]  # cot' = -(1 + cot^2)


@register(sp.sec, "sec")
def _sec(n):
    return [mul(n, apply(sp.tan, _arg(n)))]


@register(sp.csc, "csc")
def _csc(n):
    return [_neg(mul(n, apply(sp.cot, _arg(n))))]


@register(sp.asin, "asin")
def _asin(n):
    return [power(_one_minus_sq(_arg(n)), -HALF)]


@register(sp.acos, "acos")
def _acos(n):
    return [_neg(power(_one_minus_sq(_arg(n)), -HALF))]


@register(sp.atan, "atan")
def _atan(n):
    return [_recip(_one_plus_sq(_arg(n)))]


@register(sp.acot, "acot")
def _acot(n):
    return [_neg(_recip(_one_plus_sq(_arg(n))))]


@register(sp.asec, "asec")
def _asec(n):
    # asec'(u) = 1 / (u^2 sqrt(1 - 1/u^2))
    u = _arg(n)
    return [_recip(mul(power(u, 2), power(add([ONE, _neg(power(u, -2))]), HALF)))]


@register(sp.acsc, "acsc")
def _acsc(n):
    u = _arg(n)
    return [_neg(_recip(mul(power(u, 2), power(add([ONE, _neg(power(u, -2))]), HALF))))]


@register(sp.atan2, "atan2")
def _atan2(n):
    # atan2(y, x): d/dy = x / (x^2 + y^2), d/dx = -y / (x^2 + y^2)
    y, x = n.args
    r2 = _recip(add([power(x, 2), power(y, 2)]))
    return [mul(x, r2), _neg(mul(y, r2))]


# ---------------------------------------------------------------------------------------------
# hyperbolic
# ---------------------------------------------------------------------------------------------


@register(sp.sinh, "sinh")
def _sinh(n):
    return [apply(sp.cosh, _arg(n))]


@register(sp.cosh, "cosh")
def _cosh(n):
    return [apply(sp.sinh, _arg(n))]


@register(sp.tanh, "tanh")
def _tanh(n):
    return [_one_minus_sq(n)]  # tanh' = 1 - tanh^2


@register(sp.coth, "coth")
def _coth(n):
    return [_one_minus_sq(n)]  # coth' = 1 - coth^2


@register(sp.sech, "sech")
def _sech(n):
    return [_neg(mul(n, apply(sp.tanh, _arg(n))))]


@register(sp.csch, "csch")
def _csch(n):
    return [_neg(mul(n, apply(sp.coth, _arg(n))))]


@register(sp.asinh, "asinh")
def _asinh(n):
    return [power(_one_plus_sq(_arg(n)), -HALF)]


@register(sp.acosh, "acosh")
def _acosh(n):
    # 1/(sqrt(u - 1) sqrt(u + 1)), as SymPy: it equals 1/sqrt(u^2 - 1) only for Re u > 0 (at
    # u = -2 it is -1/sqrt(3), the slope of acosh's principal branch there)
    u = _arg(n)
    return [mul(power(add([u, -ONE]), -HALF), power(add([u, ONE]), -HALF))]


@register(sp.atanh, "atanh")
def _atanh(n):
    return [_recip(_one_minus_sq(_arg(n)))]


@register(sp.acoth, "acoth")
def _acoth(n):
    return [_recip(_one_minus_sq(_arg(n)))]


@register(sp.asech, "asech")
def _asech(n):
    u = _arg(n)
    return [_neg(_recip(mul(u, power(_one_minus_sq(u), HALF))))]


@register(sp.acsch, "acsch")
def _acsch(n):
    # acsch'(u) = -1 / (u^2 sqrt(1 + 1/u^2))
    u = _arg(n)
    return [_neg(_recip(mul(power(u, 2), power(add([ONE, power(u, -2)]), HALF))))]


@register(sigmoid, "sigmoid")
def _sigmoid(n):
    return [mul(n, add([ONE, _neg(n)]))]  # sigma' = sigma (1 - sigma)


# ---------------------------------------------------------------------------------------------
# piecewise: derivatives almost everywhere, with PyTorch's conventions at the kinks
# ---------------------------------------------------------------------------------------------


@register(sp.Abs, "abs")
def _abs(n):
    return [apply(sp.sign, _arg(n))]  # sign(0) = 0, as torch.abs


@register(sp.sign, "sign")
def _sign(n):
    return [ZERO]


@register(sp.Heaviside, "Heaviside")
def _heaviside(n):
    return [ZERO] * len(n.args)


@register(sp.floor, "floor")
def _floor(n):
    return [ZERO]


@register(sp.ceiling, "ceiling")
def _ceiling(n):
    return [ZERO]


@register(sp.Mod, "mod")
def _mod(n):
    # Mod(p, q) = p - q floor(p/q) (Python's and NumPy's sign convention): slope 1 in p and
    # -floor(p/q) in q between the jumps, as torch.remainder
    p, q = n.args
    return [ONE, _neg(apply(sp.floor, mul(p, _recip(q))))]


#: Max/Min with more arguments than this get partials of linear total size (see _select_wide).
PAIRWISE_MAX_ARGS = 4


def _select(n: sp.Basic, winner: Callable[[sp.Expr, sp.Expr], sp.Expr]) -> list[sp.Expr]:
    # d max(a)/da_i = prod_{j != i} [a_i beats a_j]. At a tie between two variable arguments each
    # gets 1/2 (as torch.maximum); against a constant the variable must win strictly, so
    # relu = Max(0, x) has derivative 0 at 0, as in PyTorch and micrograd.
    a = n.args
    if len(a) > PAIRWISE_MAX_ARGS:
        return _select_wide(n, winner)
    out = []
    for i, ai in enumerate(a):
        factors = []
        for j, aj in enumerate(a):
            if j != i:
                h0 = ZERO if aj.is_number else HALF
                # unevaluated: evaluating Heaviside queries the sign of its argument (slow)
                factors.append(heaviside(winner(ai, aj), h0))
        out.append(mul(*factors))
    return out


def _select_wide(n: sp.Basic, winner: Callable[[sp.Expr, sp.Expr], sp.Expr]) -> list[sp.Expr]:
    # The pairwise product has n*(n-1) factors: quadratic. Instead d max(a)/da_i =
    # [a_i beats M_i], M_i = max(prefix_{i-1}, suffix_{i+1}) the best of the others, where the
    # prefix and suffix extremes are chains shared by all i: 3n nodes in all. A tie with M_i
    # gives 1/2 when M_i can vary, 0 against constants only (as in the pairwise form).
    # (built with _from_args: unevaluated and unsorted, as sorting walks the whole chain)
    a, head = n.args, n.func._from_args
    prefix, suffix = [a[0]], [a[-1]]
    for arg in a[1:-1]:
        prefix.append(head((prefix[-1], arg)))
    for arg in reversed(a[1:-1]):
        suffix.append(head((arg, suffix[-1])))
    suffix.reverse()  # suffix[k] = best of a[k+1:]
    out = []
    for i, ai in enumerate(a):
        if i == 0:
            best = suffix[0]
        elif i == len(a) - 1:
            best = prefix[-1]
        else:
            best = head((prefix[i - 1], suffix[i]))
        h0 = ZERO if all(aj.is_number for j, aj in enumerate(a) if j != i) else HALF
        out.append(heaviside(winner(ai, best), h0))
    return out


@register(sp.Max, "max")
def _max(n):
    return _select(n, lambda ai, aj: add([ai, _neg(aj)]))


@register(sp.Min, "min")
def _min(n):
    return _select(n, lambda ai, aj: add([aj, _neg(ai)]))


@register(sp.Piecewise, "piecewise")
def _piecewise(n):
    # d/d(branch i) = 1 where branch i is the one selected, else 0
    conds = [pair.cond for pair in n.args]
    out = []
    for i in range(len(conds)):
        pieces = [(ZERO, c) for c in conds[:i]] + [(ONE, conds[i])]
        if conds[i] is not sp.true:
            pieces.append((ZERO, sp.true))
        out.append(sp.Piecewise(*pieces))
    return out


@register(ExprCondPair, "branch")
def _branch(n):
    return [ONE, ZERO]  # the condition is piecewise constant
