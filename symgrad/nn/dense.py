"""Dense networks: layers as matrix expressions, trained by the same :class:`~symgrad.nn.Trainer`.

A :class:`Dense` network is ``nin -> nouts[0] -> ... -> nouts[-1]`` with one weight matrix and
one bias per layer, stored as NumPy arrays. The :class:`~symgrad.nn.Trainer` builds it once as a
matrix expression (:mod:`symgrad.matrix`), derives the loss gradient with the matrix chain rule
(textbook formulas such as ``(softmax(Z) - Y) h^T / B``) and compiles value, gradients and scores
to one NumPy function of BLAS products; one step then costs a few matrix products whatever the
width. Scalar (:class:`~symgrad.nn.MLP`) and dense models share the trainer, the optimisers,
:class:`~symgrad.nn.History`, the health monitor and persistence, and take samples as rows.

Inside the formulas samples are columns (``X`` of shape ``(nin, B)``, the textbook
``W x + b``); ``B`` is a symbol, so one compiled function serves every batch size.

>>> import numpy as np
>>> from symgrad.nn import Trainer, SGD
>>> net = Dense(2, [8, 1], seed=0)
>>> X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
>>> history = Trainer(net, "mse", optimizer=SGD(lr=0.1)).fit(X, [0.0, 1.0, 1.0, 2.0], steps=300)
>>> history.loss[-1] < 1e-3 < history.loss[0]
True
>>> net(X).round(1).ravel().tolist()
[0.0, 1.0, 1.0, 2.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp
from sympy.matrices.expressions import MatrixExpr, MatrixSymbol

from ..errors import InputTypeError, OptionError, ShapeError
from ..inputs import describe
from ..matrix import expr as mx
from ..matrix.codegen import CompiledMatrixFunction, compile_matrix
from ..matrix.vjp import grad as matrix_grad
from .losses import LOSSES, resolve
from .modules import ACTIVATIONS

__all__ = ["BATCH", "DENSE_LOSSES", "Dense", "loss_expression"]

#: More float64 parameters than this (2 TB) cannot be allocated on any machine symgrad runs on.
_MAX_PARAMETERS = 2**38

#: The batch size in the formulas (samples are columns inside them).
BATCH = sp.Symbol("B", integer=True, positive=True)

_ACTIVATE: dict[str, Callable[[MatrixExpr], MatrixExpr]] = {
    "relu": mx.relu,
    "tanh": mx.tanh,
    "sigmoid": mx.sigmoid,
    "linear": lambda z: z,
}


# ----------------------------------------------------------------------------- losses
# Each is the loss *summed* over the batch, for scores Z and targets Y of shape (nout, B); the
# trainer divides by B for the mean. They are the batch forms of symgrad.nn.losses (same names,
# same per-sample values, summed over the outputs as there).


def _squared_error(Z: MatrixExpr, Y: MatrixExpr) -> sp.Expr:
    return mx.sumsq(mx.sub(Z, Y))


def _hinge(Z: MatrixExpr, Y: MatrixExpr) -> sp.Expr:
    return mx.sum(mx.elementwise(lambda s, y: sp.Max(0, 1 - y * s), Z, Y))


def _logistic(Z: MatrixExpr, Y: MatrixExpr) -> sp.Expr:
    # -(y log sigmoid(s) + (1 - y) log sigmoid(-s)) = softplus(s) - y s, overflow-free
    return mx.sum(mx.softplus(Z)) - mx.sum(mx.hadamard(Y, Z))


def _softmax_cross_entropy(Z: MatrixExpr, Y: MatrixExpr) -> sp.Expr:
    # logsumexp over each column minus the target's score: its gradient is softmax(Z) - Y
    if Z.shape[0] < 2:
        raise ShapeError("softmax_cross_entropy needs a network with at least 2 outputs")
    return mx.sum(mx.logsumexp(Z, axis=0)) - mx.sum(mx.hadamard(Y, Z))


#: loss name (as :data:`symgrad.nn.losses.LOSSES` resolves it) -> the batch-summed matrix loss
DENSE_LOSSES: dict[str, Callable[[MatrixExpr, MatrixExpr], sp.Expr]] = {
    "squared_error": _squared_error,
    "hinge": _hinge,
    "logistic": _logistic,
    "softmax_cross_entropy": _softmax_cross_entropy,
}


# ----------------------------------------------------------------------------- the model
class Dense:
    """A fully connected network on matrices, trained by :class:`~symgrad.nn.Trainer`.

    Layer ``i`` computes ``h_i = act(h_{i-1} W_i^T + b_i)`` for samples as rows (in the
    formulas, ``W_i h + b_i 1^T`` for samples as columns); the last layer is linear unless
    ``linear_output=False``. Weights start uniform in ``±1/sqrt(fan_in)``, biases at 0.

    Args:
        nin: the number of inputs.
        nouts: the width of each layer; the last is the number of outputs.
        activation: the hidden layers' activation, one of ``"relu"`` (default, as for
            :class:`~symgrad.nn.MLP`), ``"tanh"``, ``"sigmoid"``, ``"linear"``.
        linear_output: whether the last layer is linear (default ``True``).
        seed: a seed or a ``numpy.random.Generator`` for the initial weights.

    Attributes:
        nin, nout: the numbers of inputs and outputs.
        symbols: the parameters' ``MatrixSymbol`` objects ``W_1, b_1, W_2, ...``.

    Raises:
        InputTypeError: ``nin`` or a width is not a positive integer, a bad ``seed`` or
            ``linear_output``.
        OptionError: an unknown activation, or more parameters than memory can hold.

    >>> net = Dense(3, [4, 2], seed=0)
    >>> [p.shape for p in net.parameters()]
    [(4, 3), (4,), (2, 4), (2,)]
    >>> net(np.zeros((5, 3))).shape
    (5, 2)
    """

    def __init__(
        self,
        nin: int,
        nouts: Sequence[int],
        *,
        activation: str = "relu",
        linear_output: bool = True,
        seed: Any = None,
    ) -> None:
        for n, what in ((nin, "nin"), *((w, "a layer width") for w in _widths(nouts))):
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise InputTypeError(f"{what} must be a positive integer, got {describe(n)}")
        if not isinstance(linear_output, bool):
            raise InputTypeError(
                f"linear_output must be True or False, got {describe(linear_output)}"
            )
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise OptionError(
                f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}"
            )
        try:
            rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        except (TypeError, ValueError):
            raise InputTypeError(
                f"seed must be an int, None or a numpy.random.Generator, got {describe(seed)}"
            ) from None
        sizes = [nin, *nouts]
        self.nin, self.nout = nin, sizes[-1]
        self.activation, self.linear_output = activation, linear_output
        self.symbols: list[MatrixSymbol] = []
        shapes = [(sizes[i + 1], sizes[i]) for i in range(len(nouts))]
        shapes = [shape for W in shapes for shape in (W, (W[0], 1))]
        count = sum(a * b for a, b in shapes)
        if count > _MAX_PARAMETERS:
            raise OptionError(
                f"a network of {count:,} parameters does not fit in memory; use smaller layers"
            )
        for i in range(len(nouts)):
            fan_in, fan_out = sizes[i], sizes[i + 1]
            self.symbols += [
                MatrixSymbol(f"W_{i + 1}", fan_out, fan_in),
                MatrixSymbol(f"b_{i + 1}", fan_out, 1),
            ]
        # one flat buffer, every parameter array a view of it: the trainer's parameter vector
        # is one copy in or out, and the formulas' matrices are views of any such vector
        self._slices, start = [], 0
        for shape in shapes:
            self._slices.append((start, start + shape[0] * shape[1], shape))
            start += shape[0] * shape[1]
        try:
            self._theta = np.zeros(start)
            for (a, b, shape), sym in zip(self._slices, self.symbols, strict=True):
                if sym.name.startswith("W"):
                    bound = 1.0 / np.sqrt(shape[1])
                    self._theta[a:b] = rng.uniform(-bound, bound, size=b - a)
        except MemoryError:
            raise OptionError(
                f"a network of {start:,} parameters does not fit in memory; use smaller layers"
            ) from None
        self._forward: CompiledMatrixFunction | None = None

    # ------------------------------------------------------------------ parameters
    def parameters(self) -> list[np.ndarray]:
        """The parameter arrays ``W_1 (n1, nin), b_1 (n1,), W_2, ...``: live views, in place.

        >>> net = Dense(2, [1], seed=0)
        >>> net.parameters()[1][:] = 0.5
        >>> net(np.zeros((1, 2))).tolist()
        [[0.5]]
        """
        return [
            self._theta[a:b].reshape(shape if sym.name[0] == "W" else (shape[0],))
            for (a, b, shape), sym in zip(self._slices, self.symbols, strict=True)
        ]

    def parameter_symbols(self) -> list[MatrixSymbol]:
        """The parameters' ``MatrixSymbol`` objects, in :meth:`parameters` order.

        >>> [str(s) for s in Dense(2, [3, 1]).parameter_symbols()]
        ['W_1', 'b_1', 'W_2', 'b_2']
        """
        return list(self.symbols)

    def parameter_vector(self) -> np.ndarray:
        """A copy of all parameters as one vector (``W_1`` row by row, ``b_1``, ``W_2``, ...).

        >>> Dense(2, [3, 1]).parameter_vector().shape
        (13,)
        """
        return self._theta.copy()

    def matrices(self, theta: np.ndarray) -> list[np.ndarray]:
        """``theta`` (a parameter vector) cut into the formulas' matrices, as views.

        >>> [m.shape for m in Dense(2, [3]).matrices(np.zeros(9))]
        [(3, 2), (3, 1)]
        """
        if not isinstance(theta, np.ndarray) or theta.shape != self._theta.shape:
            raise ShapeError(
                f"theta must be a NumPy vector of shape {self._theta.shape}, got {describe(theta)}"
            )
        return [theta[a:b].reshape(shape) for a, b, shape in self._slices]

    def layer_slices(self) -> list[slice]:
        """Which entries of the parameter vector each layer holds (its weights, then its bias).

        >>> Dense(2, [3, 1]).layer_slices()
        [slice(0, 9, None), slice(9, 13, None)]
        """
        pairs = zip(self._slices[0::2], self._slices[1::2], strict=True)
        return [slice(w[0], b[1]) for w, b in pairs]

    # ------------------------------------------------------------------ formulas and numbers
    def symbolic(self, X: MatrixExpr) -> MatrixExpr:
        """The outputs ``(nout, B)`` as a matrix expression of ``X (nin, B)`` (samples as columns).

        >>> net = Dense(2, [3, 1])
        >>> net.symbolic(sp.MatrixSymbol("X", 2, BATCH)).shape
        (1, B)
        """
        act = _ACTIVATE[self.activation]
        h, last = X, len(self.symbols) // 2 - 1
        for i, (W, b) in enumerate(zip(self.symbols[0::2], self.symbols[1::2], strict=True)):
            h = mx.add(mx.matmul(W, h), mx.broadcast(b, (W.shape[0], h.shape[1])))
            if i < last or not self.linear_output:
                h = act(h)
        return h

    def __call__(self, X: Any) -> np.ndarray:
        """The outputs for inputs ``X`` of shape ``(samples, nin)``: shape ``(samples, nout)``."""
        try:
            arr = np.asarray(X, dtype=float)
        except (TypeError, ValueError, OverflowError):
            raise InputTypeError(f"X must be an array of numbers, got {describe(X)}") from None
        if arr.ndim != 2 or arr.shape[1] != self.nin:
            raise ShapeError(
                f"X must be an array of shape (samples, {self.nin}), got shape {np.shape(X)}"
            )
        if self._forward is None:
            Xs = MatrixSymbol("X", self.nin, BATCH)
            self._forward = compile_matrix(self.symbolic(Xs), [*self.symbols, Xs])
        return self._forward(*self.matrices(self._theta), arr.T).T

    def __repr__(self) -> str:
        widths = " -> ".join(str(s.shape[0]) for s in self.symbols[0::2])
        return f"Dense({self.nin} -> {widths}, {self.activation})"


def _widths(nouts: object) -> list:
    if isinstance(nouts, (str, bytes)) or not isinstance(nouts, Sequence) or not nouts:
        raise InputTypeError(f"nouts must be a non-empty list of layer widths, got {nouts!r}")
    return list(nouts)


def loss_expression(
    model: Dense, loss: str = "squared_error", reduction: str | None = None
) -> tuple[sp.Expr, MatrixSymbol, MatrixSymbol]:
    """``(loss, X, Y)``: the batch loss of ``model`` as a matrix expression of ``X`` and ``Y``.

    ``X`` is ``(nin, B)`` and ``Y`` ``(nout, B)`` (samples as columns, as in the formulas);
    the loss is named as for :class:`~symgrad.nn.Trainer` (``"mse"``, ``"sse"``, ``"hinge"``,
    ``"logistic"``, ``"softmax_cross_entropy"``).

    Raises:
        OptionError: an unknown loss name or reduction, or a function instead of a name.
        ShapeError: softmax cross-entropy of a network with one output.

    >>> from symgrad import matrix as mx
    >>> net = Dense(3, [4], seed=0)
    >>> f, X, Y = loss_expression(net, "softmax_cross_entropy")
    >>> f.free_symbols >= {X, Y, *net.symbols}, mx.grad(f, net.symbols[1]).shape
    (True, (4, 1))
    """
    f, X, Y, _ = _loss_and_scores(model, loss, reduction)
    return f, X, Y


def _loss_and_scores(model: Dense, loss: str, reduction: str | None) -> tuple:
    if not isinstance(model, Dense):
        raise InputTypeError(f"model must be a Dense network, got {describe(model)}")
    if callable(loss):
        raise OptionError(
            f"a Dense network takes a loss by name ({', '.join(LOSSES)}); functions of "
            "per-sample SymPy scores are for scalar models"
        )
    if reduction is not None and not isinstance(reduction, str):
        raise OptionError(f"reduction must be 'mean' or 'sum', got {describe(reduction)}")
    fn, reduction, _ = resolve(loss, reduction)
    X = MatrixSymbol("X", model.nin, BATCH)
    Y = MatrixSymbol("Y", model.nout, BATCH)
    # built once: a second, equal copy of a deep network would be compared node by node
    scores = model.symbolic(X)
    total = DENSE_LOSSES[fn.__name__](scores, Y)
    return (total / BATCH if reduction == "mean" else total), X, Y, scores


# ----------------------------------------------------------------------------- compiled
class DenseProgram:
    """What the trainer runs for a :class:`Dense` model: value, gradients and scores compiled.

    Args:
        model: the network.
        loss: a loss name, as for :func:`loss_expression`.
        reduction: ``"mean"`` (divide the batch sum by ``B``), ``"sum"``, or ``None`` (the
            loss's own).
        backend: ``"numpy"`` or ``"jax"``.
        phase: called with the setup phase's number (0 build, 1 derive, 2 compile).

    Attributes:
        loss_expr: the batch loss as a matrix expression.
        fn: the compiled ``(params..., X, Y) -> (loss, [gradients], scores)`` (``fn.source``).

    >>> p = DenseProgram(Dense(2, [1], seed=0), "mse")
    >>> loss, grads, scores = p.loss_and_grad(np.zeros(3), np.ones((2, 4)), np.ones((1, 4)))
    >>> loss, grads.tolist()  # all-zero weights: scores 0, residual -1, d/db = -2
    (1.0, [-2.0, -2.0, -2.0])
    """

    def __init__(
        self,
        model: Dense,
        loss: str,
        reduction: str | None = None,
        backend: str = "numpy",
        phase: Callable[..., None] = lambda *a: None,
    ) -> None:
        self.model = model
        phase(0)
        self.loss_expr, X, Y, scores = _loss_and_scores(model, loss, reduction)
        params = model.parameter_symbols()
        phase(1, f", {len(model._theta)} parameters")
        grads = matrix_grad(self.loss_expr, params)
        phase(2)
        self.fn = compile_matrix(
            [self.loss_expr, list(grads), scores], [*params, X, Y], backend=backend
        )
        self._predict = compile_matrix(scores, [*params, X], backend=backend)

    def loss_and_grad(
        self, theta: np.ndarray, xt: np.ndarray, tt: np.ndarray, out: np.ndarray | None = None
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """``(loss, gradient vector, scores (nout, B))`` for inputs and targets as columns.

        The gradient vector is written into ``out`` when given (no allocation per step).
        """
        value, grads, scores = self.fn(*self.model.matrices(theta), xt, tt)
        flat = np.concatenate([np.ravel(g) for g in grads], out=out)
        return float(value), flat, np.asarray(scores)

    def predict(self, theta: np.ndarray, xt: np.ndarray) -> np.ndarray:
        """Scores ``(nout, B)`` for inputs as columns."""
        return np.asarray(self._predict(*self.model.matrices(theta), xt))

    def vector(self) -> np.ndarray:
        """The model's parameters as one vector (a copy)."""
        return self.model.parameter_vector()

    def assign(self, theta: np.ndarray) -> None:
        """Write a parameter vector into the model's arrays."""
        self.model._theta[:] = theta

    def groups(self) -> list[tuple[str, np.ndarray]]:
        """``(name, indices)`` per layer, for the health monitor."""
        return [
            (f"layer {i}", np.arange(s.start, s.stop))
            for i, s in enumerate(self.model.layer_slices())
        ]
