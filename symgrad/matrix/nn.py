"""Matrix-level networks: Linear layers, MLPs, losses and optimisers on compiled matrix gradients.

Samples are *columns* (``X`` has shape ``(features, B)``), as in the textbook ``W x + b``; the
batch size ``B`` is a symbol, so one compiled training step runs on any batch size. The loss
and all gradients are derived once by :func:`symgrad.matrix.grad` and compiled to one NumPy
function; optimisers update the parameter arrays in place.

>>> import numpy as np
>>> net = MLP(2, [4, 1], seed=0)
>>> step = Trainer(net, mse, SGD(0.1))
>>> X, Y = np.ones((2, 8)), np.zeros((1, 8))
>>> first = step(X, Y)
>>> for _ in range(20):
...     last = step(X, Y)
>>> bool(last < first)
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp
from sympy.matrices.expressions import MatrixExpr, MatrixSymbol

from ..errors import InputTypeError, OptionError
from . import expr as mx
from .codegen import CompiledMatrixFunction, compile_matrix, value_and_grad

__all__ = [
    "MLP",
    "SGD",
    "Adam",
    "Linear",
    "Trainer",
    "hinge",
    "mse",
    "softmax_cross_entropy",
]

BATCH = sp.Symbol("B", integer=True, positive=True)

_ACTIVATIONS: dict[str, Callable[[MatrixExpr], MatrixExpr]] = {
    "tanh": mx.tanh,
    "relu": mx.relu,
    "sigmoid": mx.sigmoid,
    "linear": lambda z: z,
}


class Linear:
    """``W x + b 1^T`` with ``W`` of shape ``(nout, nin)`` (uniform ``±1/sqrt(nin)`` init).

    Attributes:
        W, b: the parameter symbols; ``values`` maps them to NumPy arrays.

    >>> layer = Linear(3, 2, name="1", seed=0)
    >>> layer(sp.MatrixSymbol("x", 3, BATCH)).shape
    (2, B)
    >>> layer.values[layer.W].shape
    (2, 3)
    """

    def __init__(self, nin: int, nout: int, *, name: str = "", seed: Any = None) -> None:
        for v, what in ((nin, "nin"), (nout, "nout")):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputTypeError(f"{what} must be a positive int, got {v!r}")
        rng = np.random.default_rng(seed)
        self.W = MatrixSymbol(f"W_{name}" if name else "W", nout, nin)
        self.b = MatrixSymbol(f"b_{name}" if name else "b", nout, 1)
        bound = 1.0 / np.sqrt(nin)
        self.values = {
            self.W: rng.uniform(-bound, bound, size=(nout, nin)),
            self.b: np.zeros((nout, 1)),
        }

    def parameters(self) -> list[MatrixSymbol]:
        """``[W, b]``.

        >>> [str(p) for p in Linear(2, 2, name="1").parameters()]
        ['W_1', 'b_1']
        """
        return [self.W, self.b]

    def __call__(self, X: MatrixExpr) -> MatrixExpr:
        return mx.add(mx.matmul(self.W, X), mx.broadcast(self.b, (self.W.shape[0], X.shape[1])))


class MLP:
    """A multi-layer perceptron ``nin -> nouts[0] -> ... -> nouts[-1]``, last layer linear.

    Args:
        nin: input features.
        nouts: layer widths.
        activation: ``"tanh"``, ``"relu"``, ``"sigmoid"`` or ``"linear"`` for hidden layers.
        seed: seed or ``numpy.random.Generator`` for the initial weights.

    >>> net = MLP(2, [16, 16, 1], seed=0)
    >>> len(net.parameters()), net(sp.MatrixSymbol("x", 2, BATCH)).shape
    (6, (1, B))
    """

    def __init__(
        self, nin: int, nouts: Sequence[int], *, activation: str = "tanh", seed: Any = None
    ) -> None:
        if activation not in _ACTIVATIONS:
            raise OptionError(
                f"unknown activation {activation!r}; choose one of {', '.join(_ACTIVATIONS)}"
            )
        if not isinstance(nouts, (list, tuple)) or not nouts:
            raise InputTypeError(f"nouts must be a non-empty list of widths, got {nouts!r}")
        rng = np.random.default_rng(seed)
        sizes = [nin, *nouts]
        self.layers = [
            Linear(sizes[i], sizes[i + 1], name=str(i + 1), seed=rng) for i in range(len(nouts))
        ]
        self.activation = activation
        self.nin = nin
        self.values: dict[MatrixSymbol, np.ndarray] = {}
        for layer in self.layers:
            self.values.update(layer.values)
            layer.values = self.values  # one shared store

    def parameters(self) -> list[MatrixSymbol]:
        """All parameter symbols, layer by layer.

        >>> [str(p) for p in MLP(2, [3, 1]).parameters()]
        ['W_1', 'b_1', 'W_2', 'b_2']
        """
        return [p for layer in self.layers for p in layer.parameters()]

    def __call__(self, X: MatrixExpr) -> MatrixExpr:
        act = _ACTIVATIONS[self.activation]
        h = X
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = act(h)
        return h

    def predictor(self) -> Callable[[np.ndarray], np.ndarray]:
        """A compiled forward pass ``X (nin, B) -> outputs (nout, B)`` on the current weights.

        >>> net = MLP(2, [3, 1], seed=0)
        >>> net.predictor()(np.zeros((2, 5))).shape
        (1, 5)
        """
        X = MatrixSymbol("X", self.nin, BATCH)
        params = self.parameters()
        f = compile_matrix(self(X), [*params, X])
        return lambda x: f(*[self.values[p] for p in params], x)


# ----------------------------------------------------------------------------- losses
def mse(out: MatrixExpr, Y: MatrixExpr) -> sp.Expr:
    """Mean over the batch of the squared error ``sum((out - Y)^2) / B``.

    >>> mse(sp.MatrixSymbol("z", 1, 4), sp.MatrixSymbol("y", 1, 4))
    SumAll(HadamardProduct(-y + z, -y + z))/4
    """
    r = mx.sub(out, Y)
    return mx.sumsq(r) / out.shape[1]


def softmax_cross_entropy(out: MatrixExpr, Y: MatrixExpr) -> sp.Expr:
    """Cross-entropy of ``softmax(out)`` (over rows) against one-hot columns ``Y``, batch mean.

    Written as ``(sum(logsumexp(Z)) - sum(Y ⊙ Z)) / B`` so it is stable and its gradient is
    the textbook ``(softmax(Z) - Y) / B``.

    >>> Z, Y = sp.MatrixSymbol("Z", 3, 4), sp.MatrixSymbol("Y", 3, 4)
    >>> from symgrad.matrix.vjp import grad
    >>> grad(softmax_cross_entropy(Z, Y), Z)
    (1/4)*(-Y + Softmax(Z, 0))
    """
    return (mx.sum(mx.logsumexp(out, axis=0)) - mx.sum(mx.hadamard(Y, out))) / out.shape[1]


def hinge(out: MatrixExpr, Y: MatrixExpr) -> sp.Expr:
    """Mean hinge loss ``sum(max(0, 1 - Y ⊙ out)) / B`` for labels ``Y`` in ``{-1, +1}``.

    >>> hinge(sp.MatrixSymbol("z", 1, 4), sp.MatrixSymbol("y", 1, 4)).has(sp.Max)
    True
    """
    margin = mx.elementwise(lambda u, y: sp.Max(0, 1 - y * u), out, Y)
    return mx.sum(margin) / out.shape[1]


# ----------------------------------------------------------------------------- optimisers
class SGD:
    """Stochastic gradient descent with optional momentum: ``v = mu v + g; p -= lr v``.

    >>> p, g = [np.ones(2)], [np.ones(2)]
    >>> SGD(0.5).update(p, g); p[0].tolist()
    [0.5, 0.5]
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0) -> None:
        if not lr > 0 or not 0 <= momentum < 1:
            raise OptionError(f"need lr > 0 and 0 <= momentum < 1, got {lr!r}, {momentum!r}")
        self.lr, self.momentum = lr, momentum
        self._v: list[np.ndarray] | None = None

    def update(self, params: list[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Update ``params`` in place."""
        if self.momentum:
            if self._v is None:
                self._v = [np.zeros_like(p) for p in params]
            for p, g, v in zip(params, grads, self._v, strict=True):
                v *= self.momentum
                v += g
                p -= self.lr * v
        else:
            for p, g in zip(params, grads, strict=True):
                p -= self.lr * g


class Adam:
    """Adam (Kingma & Ba 2015) with bias correction.

    >>> p = [np.zeros(1)]
    >>> Adam(0.1).update(p, [np.ones(1)]); p[0].round(6).tolist()
    [-0.1]
    """

    def __init__(
        self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        if not lr > 0 or not all(0 <= b < 1 for b in betas):
            raise OptionError(f"need lr > 0 and betas in [0, 1), got {lr!r}, {betas!r}")
        self.lr, self.betas, self.eps = lr, betas, eps
        self._m: list[np.ndarray] | None = None
        self._v: list[np.ndarray] | None = None
        self.t = 0

    def update(self, params: list[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Update ``params`` in place."""
        if self._m is None or self._v is None:
            self._m = [np.zeros_like(p) for p in params]
            self._v = [np.zeros_like(p) for p in params]
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, g, m, v in zip(params, grads, self._m, self._v, strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


# ----------------------------------------------------------------------------- training
class Trainer:
    """A compiled training step: ``trainer(X, Y)`` runs forward, backward and the update.

    Args:
        model: an :class:`MLP` (anything with ``parameters()``, ``values``, ``nin`` and a call).
        loss: ``loss(out, Y) -> scalar`` (:func:`mse`, :func:`softmax_cross_entropy`,
            :func:`hinge`).
        optimizer: :class:`SGD` or :class:`Adam`.
        nout: rows of ``Y``; default the model's output width.
        backend: ``"numpy"`` or ``"jax"`` for the compiled step (see
            :func:`~symgrad.matrix.codegen.compile_matrix`); the update stays NumPy's.

    Attributes:
        fn: the compiled value-and-gradient function (``fn.source`` shows the code).

    >>> net = MLP(2, [3, 1], seed=0)
    >>> t = Trainer(net, mse, SGD(0.1))
    >>> float(t(np.zeros((2, 4)), np.zeros((1, 4))))
    0.0
    """

    def __init__(
        self,
        model: MLP,
        loss: Callable[..., Any],
        optimizer: Any,
        nout: int | None = None,
        *,
        backend: str = "numpy",
    ) -> None:
        self.model, self.optimizer = model, optimizer
        X = MatrixSymbol("X", model.nin, BATCH)
        out = model(X)
        Y = MatrixSymbol("Y", nout or out.shape[0], BATCH)
        self.params = model.parameters()
        self.loss_expr = loss(out, Y)
        self.fn: CompiledMatrixFunction = value_and_grad(
            self.loss_expr, self.params, [*self.params, X, Y], backend=backend
        )
        self._arrays = [model.values[p] for p in self.params]

    def __call__(self, X: np.ndarray, Y: np.ndarray) -> Any:
        # shapes of X and Y (samples as columns, equal batch sizes) are checked by self.fn
        value, grads = self.fn(*self._arrays, X, Y)
        self.optimizer.update(self._arrays, [np.asarray(g) for g in grads])
        return value
