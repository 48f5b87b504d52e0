"""Training health: per-layer gradient statistics and warnings.

At every step :class:`HealthMonitor` records, for each parameter group (a layer), the gradient
norm, the weight norm and the update-to-weight ratio ``||delta theta|| / ||theta||`` (a healthy
network trained by SGD sits around 1e-3; far below, the layer is not learning; near or above 1,
the step is larger than the weights themselves). It warns with :class:`TrainingWarning`, once
per problem and layer, when gradients vanish, explode or turn NaN.

>>> import numpy as np, warnings
>>> monitor = HealthMonitor([("layer 0", np.array([0, 1]))])
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     stats = monitor.observe(0, np.array([1e-12, 0.0]), np.ones(2), np.ones(2))
>>> stats[0].grad_norm, caught[0].category.__name__
(1e-12, 'TrainingWarning')
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputTypeError, OptionError, SymgradWarning
from ..inputs import describe, float_of

__all__ = ["HealthMonitor", "LayerStats", "TrainingWarning"]


class TrainingWarning(SymgradWarning):
    """Training looks unhealthy: vanishing, exploding or NaN gradients, or a NaN loss.

    >>> issubclass(TrainingWarning, SymgradWarning)
    True
    """


@dataclass(frozen=True)
class LayerStats:
    """One layer's statistics at one step.

    Attributes:
        step: the step number.
        layer: the group's name.
        grad_norm: the Euclidean norm of the layer's gradient.
        weight_norm: the norm of the layer's parameters before the update.
        update_ratio: ``||update|| / ||weights||`` (``inf`` when the weights are all 0).

    >>> s = LayerStats(step=0, layer="L0", grad_norm=0.5, weight_norm=2.0, update_ratio=0.025)
    >>> s.update_ratio < 1e-1
    True
    """

    step: int
    layer: str
    grad_norm: float
    weight_norm: float
    update_ratio: float


def _indices(idx: object) -> np.ndarray:
    # integer positions only: casting floats (nan) to int is silent truncation or a warning
    arr = np.asarray(idx)
    if arr.size == 0:
        return arr.astype(int).reshape(0)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise ValueError(idx)
    return arr.astype(int)


class HealthMonitor:
    """Watches per-layer gradients and updates during training.

    Args:
        groups: ``(name, indices)`` pairs: which entries of the parameter vector form a layer.
        vanish: a layer's gradient norm below this counts as vanished.
        explode: a layer's gradient norm above this counts as exploded.
        max_ratio: an update-to-weight ratio above this counts as exploding.

    >>> import numpy as np
    >>> m = HealthMonitor([("all", np.arange(3))])
    >>> m.observe(0, np.ones(3), np.ones(3), np.zeros(3))[0].update_ratio
    1.0
    """

    def __init__(
        self,
        groups: Sequence[tuple[str, np.ndarray]],
        *,
        vanish: float = 1e-7,
        explode: float = 1e4,
        max_ratio: float = 10.0,
    ) -> None:
        for value, name in ((vanish, "vanish"), (explode, "explode"), (max_ratio, "max_ratio")):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputTypeError(f"{name} must be a number, got {describe(value)}")
        vanish, explode, max_ratio = float_of(vanish), float_of(explode), float_of(max_ratio)
        if not (0 <= vanish < explode) or not max_ratio > 0:
            raise OptionError(
                f"need 0 <= vanish < explode and max_ratio > 0, got {vanish}, {explode}, "
                f"{max_ratio}"
            )
        try:
            self.groups = [(str(name), _indices(idx)) for name, idx in groups]
        except (TypeError, ValueError, OverflowError):
            raise InputTypeError(
                f"groups must be (name, indices) pairs with 1-D integer indices into the "
                f"parameter vector, got {describe(groups)}"
            ) from None
        self.vanish = vanish
        self.explode = explode
        self.max_ratio = max_ratio
        self._warned: set[tuple[str, str]] = set()

    def _warn(self, kind: str, layer: str, message: str) -> None:
        if (kind, layer) not in self._warned:
            self._warned.add((kind, layer))
            warnings.warn(message, TrainingWarning, stacklevel=4)

    def problems(self, stats: Sequence[LayerStats]) -> list[tuple[str, str]]:
        """``(kind, layer)`` for each problem in ``stats``: kind is nan, vanishing or exploding.

        >>> HealthMonitor([]).problems([LayerStats(0, "L0", float("nan"), 1.0, 0.1)])
        [('nan', 'L0')]
        """
        out = []
        for s in stats:
            if not (math.isfinite(s.grad_norm) and math.isfinite(s.update_ratio)):
                out.append(("nan" if math.isnan(s.grad_norm) else "exploding", s.layer))
            elif s.grad_norm < self.vanish:
                out.append(("vanishing", s.layer))
            elif s.grad_norm > self.explode or s.update_ratio > self.max_ratio:
                out.append(("exploding", s.layer))
        return out

    def observe(
        self, step: int, grad: np.ndarray, before: np.ndarray, after: np.ndarray
    ) -> list[LayerStats]:
        """Statistics of one step (and warnings for any problem not reported before).

        Args:
            step: the step number.
            grad: the gradient of the whole parameter vector.
            before: the parameters before the update.
            after: the parameters after the update.

        Returns:
            One :class:`LayerStats` per group.

        >>> import numpy as np
        >>> m = HealthMonitor([("a", [0]), ("b", [1])])
        >>> [s.update_ratio for s in m.observe(3, np.ones(2), np.ones(2), np.array([0.9, 1.0]))]
        [0.09999999999999998, 0.0]
        """
        stats = []
        with np.errstate(all="ignore"):
            cached = self.__dict__.get("_selected")
            if cached is None or cached[0] is not self.groups:
                cached = self._selected = (self.groups, _selectors(self.groups))
            for name, idx in cached[1]:
                g = float(np.linalg.norm(grad[idx]))
                w = float(np.linalg.norm(before[idx]))
                u = float(np.linalg.norm(after[idx] - before[idx]))
                ratio = u / w if w > 0 else (0.0 if u == 0 else math.inf)
                stats.append(LayerStats(step, name, g, w, ratio))
        by_layer = {s.layer: s for s in stats}
        for kind, layer in self.problems(stats):
            s = by_layer[layer]
            detail = {
                "nan": "the gradient is NaN (an overflow upstream, or log/division of 0)",
                "vanishing": f"the gradient norm {s.grad_norm:.3g} is below {self.vanish:g}: "
                "this layer has stopped learning (saturated tanh/sigmoid, or dead ReLUs); try "
                "smaller initial weights (init='xavier' or 'he') or another activation",
                "exploding": f"gradient norm {s.grad_norm:.3g}, update/weight ratio "
                f"{s.update_ratio:.3g}: the steps are too large; lower the learning rate",
            }[kind]
            self._warn(kind, layer, f"step {step}, {layer}: {detail}")
        return stats


def _selectors(groups: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray | slice]]:
    # a run of consecutive indices (a dense layer) as a slice: a view, where an index array
    # would copy the layer's gradient and weights three times per step
    out: list[tuple[str, np.ndarray | slice]] = []
    for name, idx in groups:
        run = idx.size > 1 and bool(np.all(np.diff(idx) == 1))
        out.append((name, slice(int(idx[0]), int(idx[-1]) + 1) if run else idx))
    return out
