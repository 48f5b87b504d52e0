"""Per-sample losses as SymPy expressions.

Each loss takes the network's output expressions ``scores`` and target symbols ``targets`` and
returns the loss of *one* sample as a SymPy expression; the trainer averages (or sums) it over
the batch numerically. Derivatives are never written here: the trainer derives them with
:func:`symgrad.autodiff.sweep`.

The losses are built with :mod:`symgrad.construct`'s constructors, never SymPy's evaluating
ones: a score is a whole network, and evaluating ``exp(s - m)`` or ``-s`` over it runs
SymPy's rewriting (distributing the sign over the sum, ``logcombine``, assumption queries)
through all of it. Small operands are still combined canonically.

>>> import sympy as sp
>>> s, t = sp.symbols("s t")
>>> hinge([s], [t])
Max(0, -s*t + 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import sympy as sp

from ..construct import add, apply, maximum, mul, power
from ..errors import InputTypeError, OptionError, ShapeError
from ..functions import sigmoid
from ..graph import paused_gc
from ..inputs import as_exprs

__all__ = [
    "LOSSES",
    "hinge",
    "l2",
    "logistic",
    "resolve",
    "softmax_cross_entropy",
    "squared_error",
]

Loss = Callable[[Sequence[sp.Expr], Sequence[sp.Symbol]], sp.Expr]


def _pairs(scores: object, targets: object, what: str) -> list[tuple[sp.Expr, sp.Expr]]:
    """``(score, target)`` pairs: two sequences of expressions of one length."""
    s = as_exprs(scores, f"{what}: scores")
    t = as_exprs(targets, f"{what}: targets")
    if len(s) != len(t):
        raise ShapeError(f"{what}: {len(s)} outputs but {len(t)} targets")
    return list(zip(s, t, strict=True))


def squared_error(scores: Sequence[sp.Expr], targets: Sequence[sp.Symbol]) -> sp.Expr:
    """``sum_k (score_k - target_k)**2`` (the lecture's loss, per sample).

    >>> import sympy as sp
    >>> s, t = sp.symbols("s t")
    >>> squared_error([s], [t])
    (s - t)**2
    """
    pairs = _pairs(scores, targets, "squared_error")
    return add([power(_minus(s, t), 2) for s, t in pairs])


def hinge(scores: Sequence[sp.Expr], targets: Sequence[sp.Symbol]) -> sp.Expr:
    """The SVM max-margin loss ``max(0, 1 - y * score)`` for labels ``y`` in {-1, +1}.

    >>> import sympy as sp
    >>> s, t = sp.symbols("s t")
    >>> hinge([s], [t]).subs({s: 0.25, t: 1})
    0.750000000000000
    """
    pairs = _pairs(scores, targets, "hinge")
    return add([maximum(sp.S.Zero, _minus(sp.S.One, mul(t, s))) for s, t in pairs])


def logistic(scores: Sequence[sp.Expr], targets: Sequence[sp.Symbol]) -> sp.Expr:
    """Binary cross-entropy on logits, labels ``y`` in {0, 1}.

    ``-(y log sigmoid(s) + (1 - y) log sigmoid(-s))``; the sigmoid compiles to an overflow-free
    form, so the loss is finite for ``|s|`` up to about 700.

    >>> import sympy as sp
    >>> s, t = sp.symbols("s t")
    >>> round(float(logistic([s], [t]).subs({s: 0, t: 1})), 6)
    0.693147
    """
    terms = []
    for s, t in _pairs(scores, targets, "logistic"):
        positive = mul(t, apply(sp.log, apply(sigmoid, s)))
        negative = mul(_minus(sp.S.One, t), apply(sp.log, apply(sigmoid, _negate(s))))
        terms.append(_negate(add([positive, negative])))
    return add(terms)


def softmax_cross_entropy(scores: Sequence[sp.Expr], targets: Sequence[sp.Symbol]) -> sp.Expr:
    """``logsumexp(scores) - sum_k t_k score_k`` with one-hot targets ``t``.

    The log-sum-exp subtracts the largest score first, so it never overflows.

    >>> import sympy as sp
    >>> a, b, t0, t1 = sp.symbols("a b t0 t1")
    >>> round(float(softmax_cross_entropy([a, b], [t0, t1]).subs({a: 0, b: 0, t0: 1, t1: 0})), 6)
    0.693147
    """
    pairs = _pairs(scores, targets, "softmax_cross_entropy")
    if len(pairs) < 2:
        raise ShapeError("softmax_cross_entropy needs a network with at least 2 outputs")
    m = maximum(*(s for s, _ in pairs))
    lse = add([m, apply(sp.log, add([apply(sp.exp, _minus(s, m)) for s, _ in pairs]))])
    return _minus(lse, add([mul(t, s) for s, t in pairs]))


@paused_gc()  # one square per parameter: many objects, no cycles
def l2(theta: Sequence[sp.Expr], alpha: float | sp.Expr) -> sp.Expr:
    """The L2 penalty ``alpha * sum_i theta_i**2``, to add to a loss.

    Built as one product of ``alpha`` and one sum of squares: SymPy's ``alpha * sum(...)``
    distributes a numeric ``alpha`` over every term (and re-sorts them), which is most of the
    setup of a large network.

    Args:
        theta: the parameters (symbols), e.g. ``model.parameter_symbols()``.
        alpha: the strength, a real number or a SymPy expression.

    Raises:
        InputTypeError: ``alpha`` is not a real number or an expression, or ``theta`` is empty
            or holds something that is not a SymPy expression.

    >>> import sympy as sp
    >>> a, b = sp.symbols("a b")
    >>> l2([a, b], 0.5)
    0.5*(a**2 + b**2)
    >>> float(l2([a, b], 0.5).subs({a: 1.0, b: 2.0}))
    2.5
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, sp.Expr)):
        raise InputTypeError(f"alpha must be a real number or a SymPy expression, got {alpha!r}")
    if isinstance(alpha, float) and not math.isfinite(alpha):
        raise InputTypeError(f"alpha must be finite, got {alpha!r}")
    theta = as_exprs(theta, "theta (e.g. model.parameter_symbols())")
    two = sp.Integer(2)
    squares = []
    for p in theta:
        # what Pow(p, 2, evaluate=False) builds, without its cache lookup and sympify
        square = sp.Expr.__new__(sp.Pow, p, two)
        square.is_commutative = p.is_commutative
        squares.append(square)
    total = squares[0] if len(squares) == 1 else sp.Add._from_args(squares)
    coeff = (
        alpha
        if isinstance(alpha, sp.Expr)
        else sp.Float(alpha)
        if isinstance(alpha, float)
        else sp.Integer(alpha)
    )
    return mul(coeff, total, small=False)


def _negate(e: sp.Expr) -> sp.Expr:
    return mul(sp.S.NegativeOne, e)


def _minus(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    return add([a, _negate(b)])


#: name -> (per-sample loss, default reduction over the batch)
LOSSES: dict[str, tuple[Loss, str]] = {
    "squared_error": (squared_error, "mean"),
    "mse": (squared_error, "mean"),
    "sse": (squared_error, "sum"),
    "hinge": (hinge, "mean"),
    "logistic": (logistic, "mean"),
    "softmax_cross_entropy": (softmax_cross_entropy, "mean"),
}


def resolve(loss: str | Loss, reduction: str | None) -> tuple[Loss, str, str]:
    """``(function, reduction, name)`` for a loss given by name or as a function.

    >>> resolve("sse", None)[1:]
    ('sum', 'squared_error')
    """
    if callable(loss):
        fn, default, name = loss, "mean", getattr(loss, "__name__", "custom")
    elif isinstance(loss, str) and loss in LOSSES:
        fn, default = LOSSES[loss]
        name = fn.__name__
    else:
        raise OptionError(f"loss must be one of {', '.join(LOSSES)} or a function; got {loss!r}")
    reduction = default if reduction is None else reduction
    if reduction not in ("mean", "sum"):
        raise OptionError(f"reduction must be 'mean' or 'sum'; got {reduction!r}")
    return fn, reduction, name
