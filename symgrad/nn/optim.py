"""Optimisers over a flat parameter vector: SGD (with a schedule and momentum), Adam.

An optimiser's ``step(theta, grad, k)`` returns the new parameter vector for step ``k``. The
learning rate may be a number or a function of the step (a schedule), e.g. micrograd's demo
``lambda k: 1.0 - 0.9 * k / 100`` or :func:`linear_schedule`.

>>> import numpy as np
>>> opt = SGD(lr=0.1)
>>> opt.step(np.array([1.0, 2.0]), np.array([10.0, -10.0]), 0).tolist()
[0.0, 3.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..errors import InputTypeError, OptionError
from ..inputs import describe

__all__ = ["SGD", "Adam", "Optimizer", "linear_schedule"]

Schedule = float | Callable[[int], float]


def linear_schedule(start: float, end: float, steps: int) -> Callable[[int], float]:
    """A learning rate going linearly from ``start`` (step 0) towards ``end`` (step ``steps``).

    >>> lr = linear_schedule(1.0, 0.1, 100)
    >>> lr(0), round(lr(50), 10)
    (1.0, 0.55)
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputTypeError(f"steps must be a positive integer, got {describe(steps)}")
    return lambda k: start - (start - end) * k / steps


def _real(value: object, name: str, low: float, high: float, *, open_low: bool = False) -> float:
    """``value`` as a finite float in ``[low, high)`` (``(low, high)`` with ``open_low``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputTypeError(f"{name} must be a number, got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    above = low < number if open_low else low <= number
    if not (math.isfinite(number) and above and number < high):
        bounds = f"{'(' if open_low else '['}{low:g}, {high:g})"
        raise OptionError(f"{name} must be a finite number in {bounds}, got {value!r:.40}")
    return number


def _check_lr(lr: object) -> Schedule:
    if callable(lr):
        return lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise InputTypeError(f"lr must be a number or a function of the step, got {describe(lr)}")
    return _real(lr, "lr", 0.0, math.inf, open_low=True)


class Optimizer:
    """Base class: holds the learning rate (a number or a schedule) and the step state.

    >>> isinstance(SGD(lr=0.1), Optimizer)
    True
    """

    def __init__(self, lr: Schedule) -> None:
        self.lr = _check_lr(lr)

    def rate(self, k: int) -> float:
        """The learning rate at step ``k``.

        >>> SGD(lr=lambda k: 1.0 / (k + 1)).rate(3)
        0.25
        """
        return float(self.lr(k)) if callable(self.lr) else self.lr

    def reset(self) -> None:
        """Forget the state (momentum, moments)."""

    def step(self, theta: np.ndarray, grad: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, ``theta -= lr * grad``, optionally with momentum.

    With momentum ``mu``: ``v = mu * v + grad; theta -= lr * v`` (PyTorch's form).

    Args:
        lr: a number or a function of the step number.
        momentum: in ``[0, 1)``; 0 is micrograd's plain update.

    >>> import numpy as np
    >>> opt = SGD(lr=1.0, momentum=0.5)
    >>> theta = opt.step(np.array([0.0]), np.array([1.0]), 0)
    >>> opt.step(theta, np.array([1.0]), 1).tolist()
    [-2.5]
    """

    def __init__(self, lr: Schedule = 0.1, momentum: float = 0.0) -> None:
        super().__init__(lr)
        self.momentum = _real(momentum, "momentum", 0.0, 1.0)
        self._velocity: np.ndarray | None = None

    def reset(self) -> None:
        self._velocity = None

    def step(self, theta: np.ndarray, grad: np.ndarray, k: int) -> np.ndarray:
        if self.momentum:
            self._velocity = (
                grad if self._velocity is None else self.momentum * self._velocity + grad
            )
            return theta - self.rate(k) * self._velocity
        return theta - self.rate(k) * grad


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias correction.

    Args:
        lr: a number or a function of the step number.
        betas: decay rates of the first and second moment estimates.
        eps: added to the denominator.

    >>> import numpy as np
    >>> Adam(lr=0.1).step(np.array([1.0]), np.array([3.0]), 0).round(6).tolist()
    [0.9]
    """

    def __init__(
        self, lr: Schedule = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        super().__init__(lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise InputTypeError(f"betas must be two numbers in [0, 1), got {describe(betas)}")
        self.betas = (_real(betas[0], "betas[0]", 0.0, 1.0), _real(betas[1], "betas[1]", 0.0, 1.0))
        self.eps = _real(eps, "eps", 0.0, math.inf, open_low=True)
        self.reset()

    def reset(self) -> None:
        self._m: np.ndarray | None = None
        self._v: np.ndarray | None = None
        self._t = 0

    def step(self, theta: np.ndarray, grad: np.ndarray, k: int) -> np.ndarray:
        b1, b2 = self.betas
        if self._m is None or self._v is None:
            self._m = np.zeros_like(theta)
            self._v = np.zeros_like(theta)
        self._t += 1
        self._m = b1 * self._m + (1 - b1) * grad
        self._v = b2 * self._v + (1 - b2) * grad * grad
        m_hat = self._m / (1 - b1**self._t)
        v_hat = self._v / (1 - b2**self._t)
        return theta - self.rate(k) * m_hat / (np.sqrt(v_hat) + self.eps)
