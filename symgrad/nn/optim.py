"""Optimisers: SGD (with momentum) and Adam, one interface for every model, with schedules.

Every optimiser updates a list of NumPy arrays in place from their gradients:
``opt.update(arrays, grads, k)`` for step ``k``. :class:`~symgrad.nn.Trainer` calls it for
scalar and dense models alike. Given parameters, an optimiser is also PyTorch-shaped for
micrograd-style :class:`~symgrad.Value` models: ``SGD(model.parameters(), lr=0.1)``, then
``loss.backward()``, ``opt.step()`` and ``opt.zero_grad()``.

The learning rate may be a number or a function of the step (a schedule), e.g. micrograd's demo
``lambda k: 1.0 - 0.9 * k / 100`` or :func:`linear_schedule`.

>>> import numpy as np
>>> theta = np.array([1.0, 2.0])
>>> SGD(lr=0.1).update([theta], [np.array([10.0, -10.0])], 0)
>>> theta.tolist()
[0.0, 3.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import InputTypeError, OptionError, ShapeError
from ..inputs import describe
from ..value import Value

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


def _is_rate(obj: object) -> bool:
    # a schedule is a plain function of the step; a model is callable too, but has parameters
    if callable(obj):
        return not hasattr(obj, "parameters") and not hasattr(obj, "__iter__")
    return isinstance(obj, (int, float)) and not isinstance(obj, bool)


def _check_params(params: object, owner: str) -> list[Value]:
    if isinstance(params, (str, bytes, dict)) or not hasattr(params, "__iter__"):
        hint = " (pass model.parameters(), not the model)" if hasattr(params, "parameters") else ""
        raise InputTypeError(
            f"{owner} parameters must be a list of symgrad Value objects{hint}, got "
            f"{describe(params)}"
        )
    items = list(params)  # a generator is consumed once, as in PyTorch
    if not items:
        raise OptionError(f"{owner} got an empty parameter list; pass model.parameters()")
    for p in items:
        if not isinstance(p, Value):
            raise InputTypeError(
                f"{owner} parameters must be symgrad Value objects (micrograd-style), got "
                f"{describe(p)}; NumPy arrays are updated with update(arrays, grads, k)"
            )
    if len({id(p) for p in items}) != len(items):
        raise OptionError(f"{owner} got the same parameter twice; it would be updated twice")
    return items


class Optimizer:
    """Base class: the learning rate (a number or a schedule), the state, the update rule.

    Subclasses implement :meth:`_apply` (one in-place update of one array); the state (momentum,
    moments) is kept per array and created on the first :meth:`update`.

    Args:
        params: optional :class:`~symgrad.Value` parameters for the PyTorch-shaped
            :meth:`step`/:meth:`zero_grad` (e.g. ``model.parameters()``); a
            :class:`~symgrad.nn.Trainer` does not need them.
        lr: a number or a function of the step number; ``SGD(0.1)`` gives it by position.
        default_lr: the rate when none is given (each optimiser's own default).

    >>> isinstance(SGD(lr=0.1), Optimizer)
    True
    """

    def __init__(
        self, params: object = None, lr: object = None, *, default_lr: float = 0.1
    ) -> None:
        owner = type(self).__name__
        if params is not None and _is_rate(params):
            if lr is not None:
                raise InputTypeError(
                    f"{owner} got a learning rate twice ({params!r} and lr={lr!r}); write "
                    f"{owner}(model.parameters(), lr=...) or {owner}(lr=...)"
                )
            params, lr = None, params  # SGD(0.1): the rate given by position
        self.lr = _check_lr(default_lr if lr is None else lr)
        self.params: list[Value] | None = None if params is None else _check_params(params, owner)
        self.steps = 0  # calls of step() so far: the schedule's k for Value parameters
        self._state: list[dict[str, np.ndarray]] | None = None
        self._shapes: list[tuple[int, ...]] | None = None

    def rate(self, k: int) -> float:
        """The learning rate at step ``k``.

        >>> SGD(lr=lambda k: 1.0 / (k + 1)).rate(3)
        0.25
        """
        return float(self.lr(k)) if callable(self.lr) else self.lr

    def reset(self) -> None:
        """Forget the state (momentum, moments), e.g. before training other arrays.

        >>> import numpy as np
        >>> opt = SGD(lr=1.0, momentum=0.5)
        >>> opt.update([np.zeros(2)], [np.ones(2)], 0)
        >>> opt.reset(); opt.update([np.zeros(3)], [np.ones(3)], 0)
        """
        self._state = None
        self._shapes = None
        self.steps = 0

    def update(self, arrays: Sequence[np.ndarray], grads: Sequence[np.ndarray], k: int) -> None:
        """Update ``arrays`` in place from ``grads`` at step ``k`` (which sets the schedule's rate).

        Args:
            arrays: float NumPy arrays (the parameters), changed in place.
            grads: their gradients, one array of the same shape each.
            k: the step number (0 for the first step).

        Raises:
            InputTypeError: an array is not a writeable float NumPy array.
            ShapeError: ``grads`` do not match ``arrays``, or the arrays are not the ones the
                state was built for (call :meth:`reset` to start over with others).

        >>> import numpy as np
        >>> W, b = np.ones((2, 2)), np.zeros(2)
        >>> Adam(lr=0.1).update([W, b], [np.ones((2, 2)), -np.ones(2)], 0)
        >>> W[0].round(6).tolist(), b.round(6).tolist()
        ([0.9, 0.9], [0.1, 0.1])
        """
        if isinstance(arrays, np.ndarray) or isinstance(grads, np.ndarray):
            raise InputTypeError("update takes lists of arrays: update([theta], [grad], k)")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise InputTypeError(f"k (the step number) must be an int >= 0, got {describe(k)}")
        for seq, what in ((arrays, "arrays"), (grads, "grads")):
            if isinstance(seq, (str, bytes, dict)) or not hasattr(seq, "__iter__"):
                raise InputTypeError(f"{what} must be a list of NumPy arrays, got {describe(seq)}")
        arrays, grads = list(arrays), list(grads)
        if len(arrays) != len(grads):
            raise ShapeError(f"{len(arrays)} arrays but {len(grads)} gradients")
        for i, (a, g) in enumerate(zip(arrays, grads, strict=True)):
            if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or not a.flags.writeable:
                raise InputTypeError(
                    f"arrays[{i}] must be a writeable float NumPy array (updated in place), got "
                    f"{describe(a)}"
                )
            try:
                grads[i] = np.asarray(g, dtype=a.dtype)
            except (TypeError, ValueError, OverflowError):
                raise InputTypeError(
                    f"grads[{i}] must be an array of numbers, got {describe(g)}"
                ) from None
            if grads[i].shape != a.shape:
                raise ShapeError(f"grads[{i}] has shape {grads[i].shape}, arrays[{i}] {a.shape}")
        shapes = [a.shape for a in arrays]
        if self._state is None:
            self._state = [{} for _ in arrays]
            self._shapes = shapes
        elif shapes != self._shapes:
            raise ShapeError(
                f"this optimizer's state is for arrays of shapes {self._shapes}, got {shapes}; "
                "call reset() to train other arrays (or use a new optimizer)"
            )
        self._begin()
        lr = self.rate(k)
        for a, g, state in zip(arrays, grads, self._state, strict=True):
            self._apply(a, g, state, lr)

    def _begin(self) -> None:
        """Called once per update before the arrays (Adam counts its steps here)."""

    def _apply(self, a: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray], lr: float):
        raise NotImplementedError

    # ------------------------------------------------------------------ PyTorch's shape
    def _bound(self, what: str) -> list[Value]:
        if self.params is None:
            name = type(self).__name__
            raise OptionError(
                f"{what}() needs the parameters: create the optimizer as "
                f"{name}(model.parameters(), lr=...); with a Trainer, use trainer.fit instead"
            )
        return self.params

    def zero_grad(self) -> None:
        """Set the ``.grad`` of every parameter to 0 (``backward()`` accumulates into it).

        >>> from symgrad import Value
        >>> w = Value(1.0); w.grad = 3.0
        >>> SGD([w], lr=0.1).zero_grad(); w.grad
        0.0
        """
        for p in self._bound("zero_grad"):
            p.grad = 0.0

    def step(self) -> None:
        """Update every parameter's ``.data`` from its ``.grad`` (after ``loss.backward()``).

        The schedule's step number is the number of earlier ``step()`` calls. NaN or infinite
        gradients propagate into the parameters, as in PyTorch (``Trainer.fit`` stops instead).

        Raises:
            OptionError: the optimizer was created without parameters.

        >>> from symgrad import Value
        >>> w = Value(2.0)
        >>> opt = SGD([w], lr=0.1)
        >>> loss = w * w
        >>> loss.backward(); opt.step(); w.data
        1.6
        """
        params = self._bound("step")
        data = np.array([p.data for p in params], dtype=float)
        grad = np.array([p.grad for p in params], dtype=float)
        self.update([data], [grad], self.steps)
        self.steps += 1
        for p, v in zip(params, data.tolist(), strict=True):
            p.data = v


class SGD(Optimizer):
    """Stochastic gradient descent, ``p -= lr * grad``, optionally with momentum.

    With momentum ``mu``: ``v = mu * v + grad; p -= lr * v`` (PyTorch's form, ``v = grad`` at
    the first step).

    Args:
        params: optional :class:`~symgrad.Value` parameters for :meth:`step` (PyTorch's
            ``SGD(model.parameters(), lr=0.1)``); ``SGD(0.1)`` is ``SGD(lr=0.1)``.
        lr: a number or a function of the step number (default 0.1).
        momentum: in ``[0, 1)``; 0 is micrograd's plain update.

    Raises:
        InputTypeError: ``params`` is not a list of ``Value`` objects, ``lr`` or ``momentum``
            is not a number.
        OptionError: a rate out of range, an empty parameter list.

    >>> import numpy as np
    >>> opt = SGD(lr=1.0, momentum=0.5)
    >>> theta = np.array([0.0])
    >>> opt.update([theta], [np.array([1.0])], 0)
    >>> opt.update([theta], [np.array([1.0])], 1)
    >>> theta.tolist()
    [-2.5]
    """

    def __init__(self, params: object = None, lr: object = None, momentum: float = 0.0) -> None:
        super().__init__(params, lr, default_lr=0.1)
        self.momentum = _real(momentum, "momentum", 0.0, 1.0)

    def _apply(self, a, g, state, lr):
        if self.momentum:
            v = state.get("v")
            if v is None:
                v = state["v"] = g.copy()
            else:
                v *= self.momentum
                v += g
            g = v
        # lr * g into a kept buffer: a fresh parameter-sized temporary per step is returned to
        # the system and faulted back in at every step for large arrays
        step = state.get("step")
        if step is None:
            step = state["step"] = np.empty_like(a)
        np.multiply(g, lr, out=step)
        a -= step


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias correction.

    Args:
        params: optional :class:`~symgrad.Value` parameters for :meth:`step`.
        lr: a number or a function of the step number (default 1e-3).
        betas: decay rates of the first and second moment estimates.
        eps: added to the denominator.

    >>> import numpy as np
    >>> theta = np.array([1.0])
    >>> Adam(lr=0.1).update([theta], [np.array([3.0])], 0)
    >>> theta.round(6).tolist()
    [0.9]
    """

    def __init__(
        self,
        params: object = None,
        lr: object = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr, default_lr=1e-3)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise InputTypeError(f"betas must be two numbers in [0, 1), got {describe(betas)}")
        self.betas = (_real(betas[0], "betas[0]", 0.0, 1.0), _real(betas[1], "betas[1]", 0.0, 1.0))
        self.eps = _real(eps, "eps", 0.0, math.inf, open_low=True)
        self._t = 0

    def reset(self) -> None:
        super().reset()
        self._t = 0

    def _begin(self) -> None:
        self._t += 1

    def _apply(self, a, g, state, lr):
        b1, b2 = self.betas
        if not state:
            state["m"], state["v"] = np.zeros_like(a), np.zeros_like(a)
            state["step"] = np.empty_like(a)
        m, v, step = state["m"], state["v"], state["step"]
        # m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2, through one kept buffer
        m *= b1
        np.multiply(g, 1 - b1, out=step)
        m += step
        v *= b2
        np.multiply(g, g, out=step)
        step *= 1 - b2
        v += step
        # bias-corrected: theta -= lr * (m / c1) / (sqrt(v / c2) + eps)
        np.divide(v, 1 - b2**self._t, out=step)
        np.sqrt(step, out=step)
        step += self.eps
        np.divide(m, step, out=step)
        step *= lr / (1 - b1**self._t)
        a -= step
