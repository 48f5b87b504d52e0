"""Per-sample losses as SymPy expressions.

Each loss takes the network's output expressions ``scores`` and target symbols ``targets`` and
returns the loss of *one* sample as a SymPy expression; the trainer averages (or sums) it over
the batch numerically. Derivatives are never written here: the trainer derives them with
:func:`symgrad.autodiff.sweep`.

>>> import sympy as sp
>>> s, t = sp.symbols("s t")
>>> hinge([s], [t])
Max(0, -s*t + 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sympy as sp

from ..errors import OptionError, ShapeError
from ..functions import sigmoid

__all__ = [
    "LOSSES",
    "hinge",
    "logistic",
    "resolve",
    "softmax_cross_entropy",
    "squared_error",
]

Loss = Callable[[Sequence[sp.Expr], Sequence[sp.Symbol]], sp.Expr]


def _same_length(scores: Sequence, targets: Sequence, what: str) -> None:
    if len(scores) != len(targets):
        raise ShapeError(f"{what}: {len(scores)} outputs but {len(targets)} targets")


def squared_error(scores: Sequence[sp.Expr], targets: Sequence[sp.Symbol]) -> sp.Expr:
    """``sum_k (score_k - target_k)**2`` (the lecture's loss, per sample).

    >>> import sympy as sp
    >>> s, t = sp.symbols("s t")
    >>> squared_error([s], [t])
    (s - t)**2
    """
    _same_length(scores, targets, "squared_error")
    return sp.Add(*[(s - t) ** 2 for s, t in zip(scores, targets, strict=True)])


def hinge(scores: Sequence[sp.Expr], targets: Sequence[sp.Symbol]) -> sp.Expr:
    """The SVM max-margin loss ``max(0, 1 - y * score)`` for labels ``y`` in {-1, +1}.

    >>> import sympy as sp
    >>> s, t = sp.symbols("s t")
    >>> hinge([s], [t]).subs({s: 0.25, t: 1})
    0.750000000000000
    """
    _same_length(scores, targets, "hinge")
    return sp.Add(
        *[
            sp.Max(sp.S.Zero, 1 - t * s, evaluate=False)
            for s, t in zip(scores, targets, strict=True)
        ]
    )


def logistic(scores: Sequence[sp.Expr], targets: Sequence[sp.Symbol]) -> sp.Expr:
    """Binary cross-entropy on logits, labels ``y`` in {0, 1}.

    ``-(y log sigmoid(s) + (1 - y) log sigmoid(-s))``; the sigmoid compiles to an overflow-free
    form, so the loss is finite for ``|s|`` up to about 700.

    >>> import sympy as sp
    >>> s, t = sp.symbols("s t")
    >>> round(float(logistic([s], [t]).subs({s: 0, t: 1})), 6)
    0.693147
    """
    _same_length(scores, targets, "logistic")
    return sp.Add(
        *[
            -(t * sp.log(sigmoid(s)) + (1 - t) * sp.log(sigmoid(-s)))
            for s, t in zip(scores, targets, strict=True)
        ]
    )


def softmax_cross_entropy(scores: Sequence[sp.Expr], targets: Sequence[sp.Symbol]) -> sp.Expr:
    """``logsumexp(scores) - sum_k t_k score_k`` with one-hot targets ``t``.

    The log-sum-exp subtracts the largest score first, so it never overflows.

    >>> import sympy as sp
    >>> a, b, t0, t1 = sp.symbols("a b t0 t1")
    >>> round(float(softmax_cross_entropy([a, b], [t0, t1]).subs({a: 0, b: 0, t0: 1, t1: 0})), 6)
    0.693147
    """
    _same_length(scores, targets, "softmax_cross_entropy")
    if len(scores) < 2:
        raise ShapeError("softmax_cross_entropy needs a network with at least 2 outputs")
    m = sp.Max(*scores, evaluate=False)
    lse = m + sp.log(sp.Add(*[sp.exp(s - m) for s in scores]))
    return lse - sp.Add(*[t * s for s, t in zip(scores, targets, strict=True)])


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
