"""Cheap constructors that keep the DAG's sharing.

SymPy's evaluated ``Mul``/``Add`` flatten nested products and sums. On a gradient that is fatal:
the adjoint of node k in a chain is ``adjoint(k+1) * local(k)``, and flattening copies all k
factors again at every level (quadratic size, and the generated code recomputes every product).
So the reverse sweep builds with these helpers:

* numbers are folded, ``0`` terms and ``1`` factors dropped (never emit ``+ 0`` or ``* 1``);
* when every operand is small (a bounded tree), SymPy's evaluated constructor is used, so small
  results are canonical (``6*x - 4``);
* otherwise the node is built unevaluated, a binary product or an n-ary sum over shared nodes.

>>> import sympy as sp
>>> x = sp.Symbol("x")
>>> mul(sp.Integer(2), sp.Integer(3), x)
6*x
>>> add([sp.Integer(0), x, x])
2*x
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import sympy as sp
from mpmath.libmp import finf, fnan, fninf

from .errors import InputTypeError
from .graph import lattice_from_args, tree_size, unevaluated

__all__ = [
    "SMALL",
    "add",
    "apply",
    "is_small",
    "is_zero",
    "maximum",
    "mul",
    "normalised_sum",
    "power",
    "sum_of",
    "times_symbol",
]

#: Operands up to this tree size are combined by SymPy's evaluating constructors.
SMALL = 16

# a Float's infinities and NaN as mpmath values (float(coeff) costs a conversion per product)
_NOT_FINITE = (finf, fninf, fnan)


def _s(e: sp.Expr | int) -> sp.Expr:
    # Python ints in rule code (``power(u, 2)``) become SymPy integers; nothing else is converted.
    return sp.Integer(e) if isinstance(e, int) else e


def is_small(*exprs: sp.Basic) -> bool:
    """True when all ``exprs`` together have at most :data:`SMALL` tree nodes.

    >>> import sympy as sp
    >>> is_small(sp.Symbol("x"), sp.Integer(2))
    True
    """
    budget = SMALL
    for e in exprs:
        budget -= tree_size(e, budget)
        if budget < 0:
            return False
    return True


def mul(*factors: sp.Expr, small: bool | None = None) -> sp.Expr:
    """Product of ``factors`` with numbers folded and sharing kept for large operands.

    Args:
        factors: SymPy expressions.
        small: whether the non-number factors are small (see :func:`is_small`), when the
            caller already knows; ``None`` (default) measures them.

    Returns:
        The product; ``0`` if a factor is zero, the lone factor if only one is left.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> mul(sp.Integer(1), x)
    x
    >>> mul(sp.Integer(0), sp.exp(x))
    0
    """
    if len(factors) == 2:
        a, b = factors
        if small is False:
            # the reverse sweep's common case (adjoint times local partial, both large): no scan
            if b is sp.S.One:
                return a
            if (
                isinstance(a, sp.Expr)
                and isinstance(b, sp.Expr)
                and not (a.is_Number or b.is_Number)
            ):
                return _unevaluated(sp.Mul, [a, b])
        elif (
            small is None
            and isinstance(a, sp.Number)
            and a  # not zero
            and a is not sp.S.One
            and isinstance(b, sp.Expr)
            and not b.is_Number
            and (not b.args or tree_size(b, SMALL) <= SMALL)
        ):
            # a number times one small factor (a power's partial 2*p, a number adjoint times
            # it): what the scan below does, without it
            return _small_product(a, [b])
    coeff: sp.Expr = sp.S.One
    rest: list[sp.Expr] = []
    for f in map(_s, factors):
        if f.is_Number:
            if f is not sp.S.One:
                coeff = f if coeff is sp.S.One else coeff * f
        else:
            rest.append(f)
    if not rest or is_zero(coeff):
        return coeff
    if is_small(*rest) if small is None else small:
        return _small_product(coeff, rest)
    if coeff is not sp.S.One:
        rest.insert(0, coeff)
    return rest[0] if len(rest) == 1 else _unevaluated(sp.Mul, rest)


def is_zero(e: sp.Basic) -> bool:
    """True when ``e`` is a number equal to zero, decided without SymPy's assumption system.

    ``e.is_zero`` on a freshly built number runs SymPy's fact deduction (tens of microseconds);
    a number's truth value is its own comparison with zero.

    >>> import sympy as sp
    >>> is_zero(sp.Float(0.0)), is_zero(sp.Integer(3)), is_zero(sp.Symbol("x"))
    (True, False, False)
    """
    return e.is_Number and not e


def _small_product(coeff: sp.Expr, rest: list[sp.Expr]) -> sp.Expr:
    # ``coeff * f`` for one factor that SymPy's Mul would not rewrite (not a sum it distributes
    # over, not a product whose coefficient it merges, not a power of a number it combines with
    # the coefficient) is canonical as the pair (coeff, f): build it directly. Evaluating it
    # costs ~100 us of assumption deductions on the fresh objects; this costs ~1 us.
    if len(rest) == 1:
        f = rest[0]
        fa = f.args
        if f.is_Mul and len(fa) == 2 and fa[0].is_Number:
            # c * (d * g): the local partial ``2*x`` of ``x**2`` times a numeric adjoint
            coeff, f = _times(coeff, fa[0]), fa[1]
            rest = [f]  # the fallback below multiplies what is left, not the original product
            if is_zero(coeff):
                return coeff
        if coeff is sp.S.One:
            return f
        if (
            not (f.is_Add or f.is_Mul or (f.is_Pow and f.base.is_Number))
            and (coeff.is_Rational or (coeff.is_Float and coeff._mpf_ not in _NOT_FINITE))
            and f.is_commutative is True
        ):
            return sp.Mul._from_args((coeff, f), True)
    elif len(rest) == 2 and coeff is sp.S.One:
        # f*g of two distinct plain factors (a weight times an input): Mul would only order
        # them, by Basic.compare, as done here
        f, g = rest
        if _plain(f) and _plain(g) and f.is_commutative is True and g.is_commutative is True:
            c = _compare(f, g)
            if c:  # equal factors are a power
                return sp.Mul._from_args((f, g) if c < 0 else (g, f), True)
    return sp.Mul(coeff, *rest)


# (class, class) -> Basic.compare of two objects of differently named classes, which depends
# on the classes alone (their names' places in SymPy's ordering_of_classes)
_CLASS_ORDER: dict[tuple[type, type], int] = {}


def _compare(f: sp.Basic, g: sp.Basic) -> int:
    # f.compare(g): SymPy's canonical order, remembered per pair of classes where it can be
    tf, tg = type(f), type(g)
    if tf is tg or tf.__name__ == tg.__name__:
        return f.compare(g)
    c = _CLASS_ORDER.get((tf, tg))
    if c is None:
        c = _CLASS_ORDER[(tf, tg)] = f.compare(g)
    return c


# (id(a), id(b)) -> (a, b, a*b): a sweep multiplies the same two numbers once per parameter
# (the L2 term's adjoint ``alpha`` by each partial ``2*p``); the operands are kept so that
# their ids stay theirs, and one product object is shared (its hash computed once downstream)
_PRODUCTS: dict[tuple[int, int], tuple[sp.Expr, sp.Expr, sp.Expr]] = {}
_PRODUCTS_MAX = 1024


def _times(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    # the product of two SymPy numbers
    key = (id(a), id(b))
    hit = _PRODUCTS.get(key)
    if hit is not None:
        return hit[2]
    if len(_PRODUCTS) >= _PRODUCTS_MAX:
        _PRODUCTS.clear()
    product = a * b
    _PRODUCTS[key] = (a, b, product)
    return product


def times_symbol(x: sp.Expr) -> Callable[[sp.Symbol], sp.Expr]:
    """``lambda w: mul(w, x)`` for many symbols ``w`` (a layer's weights on one input), with the
    work that depends on ``x`` alone (its size, its place in SymPy's order) done once.

    >>> import sympy as sp
    >>> x, w = sp.symbols("x w")
    >>> times_symbol(sp.exp(x))(w) == mul(w, sp.exp(x))
    True
    """
    if not isinstance(x, sp.Expr) or x.is_Number or x.is_commutative is not True:
        return lambda w: mul(w, x)
    if tree_size(x, SMALL - 1) > SMALL - 1:
        pair = "as given"  # too large to evaluate: the unevaluated pair (w, x)
    elif _plain(x) and type(x).__name__ != "Symbol":
        # SymPy orders two plain factors of differently named classes by the classes alone
        pair = "as given" if _compare(_PROBE, x) < 0 else "swapped"
    else:
        return lambda w: mul(w, x)

    def product(w: sp.Symbol) -> sp.Expr:
        if type(w) is not sp.Symbol or w.is_commutative is not True:
            return mul(w, x)
        return sp.Mul._from_args((w, x) if pair == "as given" else (x, w), True)

    return product


_PROBE = sp.Symbol("_probe")


def _plain(f: sp.Basic) -> bool:
    # a factor that SymPy's Mul keeps as it is next to another one (no flattening, no merging
    # of powers or coefficients)
    return not (f.is_Add or f.is_Mul or f.is_Pow or f.is_Number or isinstance(f, sp.exp))


def add(terms: Iterable[sp.Expr], small: bool | None = None) -> sp.Expr:
    """Sum of ``terms`` (collected in one go: adding one at a time re-flattens, quadratic).

    Args:
        terms: SymPy expressions.
        small: whether the non-number terms are small, when the caller already knows;
            ``None`` (default) measures them.

    Returns:
        The sum; ``0`` when there are no non-zero terms, the lone term if only one is left.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> add([sp.Integer(1), sp.Integer(2)])
    3
    >>> add([])
    0
    """
    const: sp.Expr = sp.S.Zero
    rest: list[sp.Expr] = []
    for t in map(_s, terms):
        if t.is_Number:
            const = t if const is sp.S.Zero else const + t
        else:
            rest.append(t)
    if not rest:
        return const
    if len(rest) == 1 and is_zero(const):
        return rest[0]
    if is_small(*rest) if small is None else small:
        return sp.Add(const, *rest)
    if not is_zero(const):
        rest.append(const)
    return rest[0] if len(rest) == 1 else _unevaluated(sp.Add, rest)


def normalised_sum(terms: list[sp.Expr]) -> sp.Expr | None:
    """``sum_i F*x_i/S`` as ``F`` when ``S = x_1 + ... + x_n`` holds exactly those ``x_i``
    (``S/S = 1``, as SymPy cancels ``x/x``), else None.

    Weights normalised by their own sum add up to one: the adjoint a max-shifted
    log-sum-exp sends back to its shift, ``1 - sum_i exp(s_i - m)/S``, is then exactly zero,
    and the shift's (Max's) subgradient is never built. Linear in the terms' factors.

    >>> import sympy as sp
    >>> x, y, c = sp.symbols("x y c")
    >>> s = x + sp.exp(y)
    >>> normalised_sum([c * x / s, c * sp.exp(y) / s])
    c
    >>> normalised_sum([x / s, y / s]) is None
    True
    """
    n = len(terms)
    if n < 2:
        return None
    for p in _reciprocal_sums(terms[0], n):
        parts = p.base.args
        wanted = Counter(parts)
        common: Counter | None = None
        for t in terms:
            factors = _factors(t)
            if factors is None:
                break
            rest = Counter(factors)
            if rest[p] < 1:
                break
            rest[p] -= 1
            x = next((f for f in rest if rest[f] and wanted[f] > 0), None)
            if x is None:
                break
            wanted[x] -= 1
            rest[x] -= 1
            rest = +rest  # drop the factors counted down to zero
            if common is None:
                common = rest
            elif rest != common:
                break
        else:
            if common is not None and not +wanted:
                return mul(*common.elements())
    return None


def _reciprocal_sums(t: sp.Expr, n: int):
    # the factors 1/S of t with S a sum of n terms, in t's product and the products directly in
    # it (a sweep's pairs): the cheap first look (most adjoint sums have none)
    for a in t.args if t.is_Mul else (t,):
        for f in a.args if a.is_Mul else (a,):
            if f.is_Pow and f.exp is sp.S.NegativeOne and f.base.is_Add and len(f.base.args) == n:
                yield f


#: normalised_sum looks at products of at most this many factors (a sweep's adjoints are
#: chains of unevaluated products as long as the path to the output: never flattened whole)
NORMALISED_FACTORS = 8


def _factors(t: sp.Expr) -> list[sp.Expr] | None:
    # a product's factors, nested unevaluated products flattened (a sweep's pairs); None
    # beyond NORMALISED_FACTORS
    if not t.is_Mul:
        return [t]
    out: list[sp.Expr] = []
    stack = [t]
    while stack:
        e = stack.pop()
        if e.is_Mul:
            if len(stack) + len(e.args) + len(out) > NORMALISED_FACTORS:
                return None
            stack.extend(e.args)
        else:
            out.append(e)
    return out


def sum_of(terms: list[sp.Expr]) -> sp.Expr:
    """The unevaluated sum of two or more terms, none a number, as given: what :func:`add`
    builds from large terms, without scanning them.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> sum_of([y, x]).args
    (y, x)
    """
    return _unevaluated(sp.Add, terms)


def _unevaluated(cls: type[sp.Add] | type[sp.Mul], args: list[sp.Expr]) -> sp.Expr:
    # _from_args is what Add/Mul(..., evaluate=False) end in, minus re-sympifying the (already
    # SymPy) operands and the matrix postprocessors: half the cost of a sweep's products.
    # Commutativity is passed when every operand is known commutative (SymPy would ask each
    # operand again through fuzzy_and); otherwise SymPy works it out.
    for a in args:
        if a.is_commutative is not True:
            return cls._from_args(args)
    return cls._from_args(args, True)


def power(base: sp.Expr, exponent: sp.Expr) -> sp.Expr:
    """``base ** exponent``, evaluated only when both are small.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> power(x, sp.Integer(1))
    x
    >>> power(x, sp.Integer(0))
    1
    """
    base, exponent = _s(base), _s(exponent)
    if is_zero(exponent):
        return sp.S.One
    if exponent is sp.S.One or (exponent.is_Number and exponent == 1):
        return base
    if is_small(base, exponent):
        return sp.Pow(base, exponent)
    return sp.Pow(base, exponent, evaluate=False)


def apply(func: type[sp.Function], *args: sp.Expr) -> sp.Expr:
    """``func(*args)``, evaluated only when the arguments are small.

    Evaluating a function of a huge unevaluated argument can walk all of it (sign extraction,
    coefficient matching); leaving it unevaluated keeps the sweep linear.

    >>> import sympy as sp
    >>> apply(sp.cos, sp.Integer(0))
    1
    """
    if is_small(*args):
        return func(*args)
    return unevaluated(func, *args)


def maximum(*args: sp.Expr) -> sp.Expr:
    """``Max(*args)`` built as given: no evaluation, no sorting of the arguments.

    ``sympy.Max(..., evaluate=False)`` still sorts its arguments by SymPy's sort key, which
    walks every argument's whole subtree (seconds on a network's outputs). Repeated arguments
    are dropped (the first occurrence is kept); one argument is returned as it is.

    Raises:
        InputTypeError: no arguments.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> maximum(sp.S.Zero, x)
    Max(0, x)
    >>> maximum(x, x)
    x
    """
    unique = list(dict.fromkeys(map(_s, args)))
    if not unique:
        raise InputTypeError("maximum needs at least one argument")
    if len(unique) == 1:
        return unique[0]
    return lattice_from_args(sp.Max, unique)
