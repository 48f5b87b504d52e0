"""Compiled training: derive the loss gradient once, then train with vectorised NumPy.

:class:`Trainer` builds the network once as SymPy expressions over input symbols (see
:meth:`~symgrad.nn.Module.symbolic`), forms the per-sample loss and, when the network is a
chain of dense layers on the NumPy target (an :class:`MLP`), computes each step's batch-mean
loss and gradient layer by layer as matrix products (``codegen/lift.py``: the chain rule runs
on the loss and the activations only).
Otherwise it derives the per-sample gradient with respect to every parameter by one reverse
sweep (:func:`symgrad.autodiff.sweep`) and compiles value, gradient and scores into one NumPy
function (:func:`symgrad.codegen.lambdify`) taking the parameter vector and the batch as
arrays. Each training step is a single vectorised call for the whole batch, plus the
optimiser's update.

>>> import random
>>> import numpy as np
>>> from symgrad.nn import MLP, SGD
>>> model = MLP(3, [4, 4, 1], variant="lecture", rng=random.Random(0))
>>> xs = np.array([[2, 3, -1], [3, -1, 0.5], [0.5, 1, 1], [1, 1, -1]])
>>> ys = np.array([1.0, -1.0, -1.0, 1.0])
>>> trainer = Trainer(model, loss="sse", optimizer=SGD(lr=0.1))
>>> history = trainer.fit(xs, ys, steps=50)
>>> history.loss[-1] < 0.1 < history.loss[0]
True
"""

from __future__ import annotations

import functools
import io
import math
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from ..autodiff import sweep
from ..codegen import lambdify
from ..errors import BackendUnavailableError, DomainError, InputTypeError, OptionError, ShapeError
from ..inputs import describe
from ..markup import html_table
from .dense import Dense, DenseProgram
from .health import HealthMonitor, LayerStats, TrainingWarning
from .losses import LOSSES, resolve
from .modules import Module
from .optim import SGD, Optimizer

__all__ = ["History", "Trainer"]


@dataclass
class History:
    """What happened during :meth:`Trainer.fit`.

    Attributes:
        loss: the loss at each completed step (before that step's update).
        accuracy: the accuracy at each step (``None`` for regression losses).
        lr: the learning rate used at each step.
        health: per-step lists of :class:`~symgrad.nn.health.LayerStats`.
        stopped: why training stopped early (``None`` if it ran all steps).
        seconds: the wall time of the fit.

    >>> h = History(loss=[1.0, 0.5])
    >>> h.loss[-1], h.stopped
    (0.5, None)
    """

    loss: list[float] = field(default_factory=list)
    accuracy: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    health: list[list[LayerStats]] = field(default_factory=list)
    stopped: str | None = None
    seconds: float = 0.0

    def __repr__(self) -> str:
        if not self.loss:
            return f"<History: no steps{f', stopped: {self.stopped}' if self.stopped else ''}>"
        acc = next((a for a in reversed(self.accuracy) if a is not None), None)
        parts = [
            f"{len(self.loss)} steps",
            f"loss {self.loss[0]:.4g} -> {self.loss[-1]:.4g} (min {min(self.loss):.4g})",
            *([f"accuracy {acc:.3g}"] if acc is not None else []),
            f"{self.seconds:.2f} s",
            *([f"stopped: {self.stopped}"] if self.stopped else []),
        ]
        return f"<History: {', '.join(parts)}>"

    def _repr_html_(self) -> str:
        rows = [["steps", str(len(self.loss))]]
        if self.loss:
            rows += [
                ["first loss", f"{self.loss[0]:.6g}"],
                ["last loss", f"{self.loss[-1]:.6g}"],
                ["lowest loss", f"{min(self.loss):.6g}"],
            ]
        acc = next((a for a in reversed(self.accuracy) if a is not None), None)
        if acc is not None:
            rows.append(["last accuracy", f"{acc:.4g}"])
        rows.append(["seconds", f"{self.seconds:.3g}"])
        if self.stopped:
            rows.append(["stopped", self.stopped])
        return html_table(["training", ""], rows, caption="history.plot() draws the loss")

    def plot(self, path: str | None = None, *, title: str = "training loss"):
        """Draw the loss curve (log scale); save it as an image if ``path`` is given.

        Uses matplotlib's object API with the Agg canvas, so no display is needed, and
        ``matplotlib.pyplot`` need not be imported: the figure shows itself in a notebook
        (it has ``_repr_png_``).

        Returns:
            The matplotlib ``Figure``.

        Raises:
            BackendUnavailableError: matplotlib is not installed (``pip install
                ".[examples]"`` from a clone).

        >>> fig = History(loss=[1.0, 0.5, 0.25]).plot()
        >>> fig.axes[0].get_ylabel()
        'loss'
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise BackendUnavailableError(
                "plotting needs matplotlib: pip install matplotlib "
                '(or, from a clone, pip install -e ".[examples]")'
            ) from exc
        fig = _shown_figure(Figure)(figsize=(6, 4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.plot(range(len(self.loss)), self.loss)
        if self.loss and min(self.loss) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(title)
        if path is not None:
            fig.savefig(path, dpi=100)
        return fig


@functools.cache
def _shown_figure(figure: type) -> type:
    class LossFigure(figure):  # type: ignore[misc, valid-type]
        """A matplotlib Figure that a notebook displays as a PNG without pyplot."""

        def _repr_png_(self) -> bytes:
            buf = io.BytesIO()
            self.savefig(buf, format="png", dpi=100)
            return buf.getvalue()

    return LossFigure


def _progress(steps: int, enabled: bool, losses: list[float] | None = None) -> Iterator[int]:
    if not enabled:
        yield from range(steps)
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        every = max(1, steps // 10)
        for k in range(steps):
            if k % every == 0 or k == steps - 1:
                last = f", loss {losses[-1]:.4g}" if losses else ""
                print(f"step {k + 1}/{steps}{last}", file=sys.stderr, flush=True)
            yield k
        return
    # the bar stays when done (leave=True) and shows the loss of the latest step
    bar = tqdm(range(steps), desc="training", leave=True, dynamic_ncols=True)
    every = max(1, steps // 200)
    try:
        for k in bar:
            yield k
            if losses and (k % every == 0 or k == steps - 1):
                bar.set_postfix(loss=f"{losses[-1]:.4g}", refresh=False)
    finally:
        bar.close()


#: With ``progress="auto"``, the setup's phases are shown once it has taken this long (seconds).
SETUP_PROGRESS_AFTER = 2.0


class _SetupProgress:
    # The phases of a Trainer's setup on stderr: a tqdm bar when tqdm is installed, else one
    # line per phase. ``"auto"`` stays silent until the setup has taken SETUP_PROGRESS_AFTER
    # seconds (small models, tests and doctests never print).
    PHASES = ("building the loss", "deriving the gradient", "compiling")

    def __init__(self, mode: bool | str) -> None:
        if not (isinstance(mode, bool) or mode == "auto"):
            raise OptionError(f"progress must be True, False or 'auto', got {mode!r}")
        self.mode, self.start, self.bar, self.shown = mode, time.perf_counter(), None, False

    def phase(self, k: int, detail: str = "") -> None:
        elapsed = time.perf_counter() - self.start
        if self.mode is False or (self.mode == "auto" and elapsed < SETUP_PROGRESS_AFTER):
            return
        text = f"symgrad setup: {self.PHASES[k]} ({k + 1}/{len(self.PHASES)}){detail}"
        try:
            from tqdm.auto import tqdm
        except ImportError:
            print(f"{text}, {elapsed:.1f} s so far", file=sys.stderr, flush=True)
            self.shown = True
            return
        if self.bar is None:
            self.bar = tqdm(total=len(self.PHASES), desc="symgrad setup", leave=False)
            self.bar.update(k)
        else:
            self.bar.update(1)
        self.bar.set_postfix_str(f"{self.PHASES[k]}{detail}")
        self.shown = True

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(self.bar.total - self.bar.n)
            self.bar.close()
        if self.shown:
            elapsed = time.perf_counter() - self.start
            print(f"symgrad setup: done in {elapsed:.1f} s", file=sys.stderr, flush=True)


def _as_array(obj: Any, what: str, finite: bool = True) -> np.ndarray:
    if isinstance(obj, (str, bytes)) or obj is None:
        raise InputTypeError(f"{what} must be an array of numbers, got {describe(obj)}")
    try:
        arr = np.asarray(obj, dtype=float)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputTypeError(f"{what} must be an array of numbers, got {describe(obj)}") from exc
    if finite and not np.all(np.isfinite(arr)):
        raise DomainError(
            f"{what} contains NaN or infinite entries (None also becomes NaN); clean the data first"
        )
    return arr


_INTERNAL = re.compile(r"[xt]\d+")  # the Trainer's input and target symbols: x0.., t0..


def _symbolic_network(model: Module, params: list) -> tuple[list, list, list]:
    """``(theta, x, scores)``: one symbol per parameter, the inputs, the model's outputs.

    Parameters are named by their labels when these are unique, non-empty and distinct from the
    input and target symbols (readable formulas); otherwise (any label is a valid model) the
    labels are replaced by ``theta0, theta1, ...`` while the network is built, then restored.
    """
    x = list(sp.symbols(f"x0:{model.nin}"))
    labels = [p.label for p in params]
    if (
        all(labels)
        and len(set(labels)) == len(labels)
        and not any(_INTERNAL.fullmatch(lab) for lab in labels)
    ):
        return [sp.Symbol(lab) for lab in labels], x, model.symbolic(x)
    theta = [sp.Symbol(f"theta{i}") for i in range(len(params))]
    try:
        for p, s in zip(params, theta, strict=True):
            p.label = s.name
        scores = model.symbolic(x)
    finally:
        for p, lab in zip(params, labels, strict=True):
            p.label = lab
    return theta, x, scores


def _layers(loss: sp.Expr, theta: list, x: list, t: list) -> Any:
    # the network's dense layers (codegen/lift.py), or None when the loss is not such a chain
    from ..codegen.compile import value_and_grad
    from ..codegen.lift import lift
    from ..graph import linearise

    args = [*x, *t, list(theta)]
    general = functools.partial(value_and_grad, loss, theta, args, reduce="mean")
    found = lift(loss, linearise([loss]), theta, args, "loss_and_grad", "array", general, None)
    return None if found is None else found.func


class _ScalarProgram:
    """What the trainer runs for a scalar (``Value``) model: per-sample loss and gradient.

    The network is built once over input symbols (:meth:`~symgrad.nn.Module.symbolic`). When
    its expression is a chain of dense layers (an :class:`MLP`; see ``codegen/lift.py``) on the
    NumPy target, a step is the batch-mean loss and gradient computed layer by layer as matrix
    products; otherwise (and for the per-sample function :attr:`fn`, built on first use) the
    per-sample loss is differentiated by one reverse sweep and compiled with the scores, and the
    batch reduction is numeric.
    """

    def __init__(
        self,
        model: Module,
        params: list,
        loss_fn: Any,
        reduction: str,
        backend: str,
        phase: Callable[..., None],
    ) -> None:
        self.model, self.params, self.reduction = model, params, reduction
        self._backend = backend
        phase(0)
        theta, x, scores = _symbolic_network(model, params)
        self.parameter_symbols = theta
        t = list(sp.symbols(f"t0:{len(scores)}"))
        self.nout = len(scores)
        self.loss_expr = loss_fn(scores, t)
        self._symbols = (theta, x, t, scores)
        phase(1, f", {len(theta)} parameters")
        self._net = _layers(self.loss_expr, theta, x, t) if backend == "numpy" else None
        phase(2)
        if self._net is None:
            _ = self.fn, self._predict_fn  # compiled now, as the steps need them

    @functools.cached_property
    def fn(self) -> Any:
        """The per-sample function ``(theta, x, t) -> (losses, gradients, scores)``."""
        theta, x, t, scores = self._symbols
        per_sample = sweep([self.loss_expr], theta)[0]
        grads = [per_sample.get(s, sp.S.Zero) for s in theta]
        return lambdify(
            [self.loss_expr, grads, scores], [theta, x, t], self._backend, name="loss_and_grad"
        )

    @functools.cached_property
    def _predict_fn(self) -> Any:
        theta, x, _, scores = self._symbols
        return lambdify([scores], [theta, x], self._backend, name="predict")

    def _by_layers(self, theta: np.ndarray, *rows: np.ndarray) -> bool:
        # whether the layers answer this call: float64 data and parameters, a non-empty batch
        return (
            self._net is not None
            and rows[0].shape[1] > 0
            and theta.dtype == np.float64
            and theta.ndim == 1
            and all(r.dtype == np.float64 and r.ndim == 2 for r in rows)
        )

    def loss_and_grad(
        self, theta: np.ndarray, xt: np.ndarray, tt: np.ndarray, out: np.ndarray | None = None
    ) -> tuple[float, np.ndarray, np.ndarray]:
        n = xt.shape[1]
        if self._by_layers(theta, xt, tt):
            loss, grad, outputs = self._net.mean([*xt, *tt], n, theta)
            if self.reduction != "mean":
                loss, grad = loss * n, grad * n
            if out is not None:
                out[...] = grad
                grad = out
            return float(loss), grad, outputs.T
        per, grads, scores = self.fn(theta, xt, tt)
        per = np.broadcast_to(per, (n,))
        grads = np.broadcast_to(grads, (len(self.params), n))
        if self.reduction == "mean":
            loss, grad = float(np.mean(per)), grads.mean(axis=1, out=out)
        else:
            loss, grad = float(np.sum(per)), grads.sum(axis=1, out=out)
        return loss, grad, np.broadcast_to(scores, (self.nout, n))

    def predict(self, theta: np.ndarray, xt: np.ndarray) -> np.ndarray:
        if self._by_layers(theta, xt):
            return self._net.forward(list(xt), theta).T
        (scores,) = self._predict_fn(theta, xt)
        return np.broadcast_to(scores, (self.nout, xt.shape[1]))

    def vector(self) -> np.ndarray:
        return np.array([p.data for p in self.params], dtype=float)

    def assign(self, theta: np.ndarray) -> None:
        for p, v in zip(self.params, theta.tolist(), strict=True):
            p.data = v

    def groups(self) -> list[tuple[str, np.ndarray]]:
        index = {id(p): i for i, p in enumerate(self.params)}
        layers = getattr(self.model, "layers", None) or [self.model]
        return [
            (f"layer {i}", np.array([index[id(p)] for p in layer.parameters()], dtype=int))
            for i, layer in enumerate(layers)
        ]


class Trainer:
    """Compiles a model's loss and gradient once and trains it with vectorised steps.

    One trainer for both kinds of model: a scalar :class:`~symgrad.nn.Module` (e.g. micrograd's
    :class:`MLP`, differentiated as one SymPy expression per sample) and a
    :class:`~symgrad.nn.Dense` network (differentiated as matrix expressions, each step a few
    BLAS products). Either way samples are rows, the parameters form one vector
    (:meth:`parameter_vector`), and the optimiser, :class:`History`, health monitor and
    persistence are the same.

    Args:
        model: a :class:`~symgrad.nn.Module` with ``symbolic()`` and an ``nin`` attribute
            (e.g. an :class:`MLP`), or a :class:`~symgrad.nn.Dense` network.
        loss: ``"squared_error"``/``"mse"`` (mean), ``"sse"`` (sum), ``"hinge"`` (labels -1/+1),
            ``"logistic"`` (labels 0/1), ``"softmax_cross_entropy"`` (class indices or one-hot
            rows); for a scalar model also a function ``(scores, targets) -> per-sample SymPy
            loss``. Each name means the same for both kinds of model: the per-sample loss,
            summed over the outputs.
        reduction: ``"mean"`` or ``"sum"`` over the batch (default: the loss's own).
        l2: the L2 regularisation strength: ``l2 * sum(theta**2)`` is added to the loss.
        optimizer: an :class:`~symgrad.nn.optim.Optimizer` (default ``SGD(lr=0.1)``).
        monitor: ``True`` (default) for a :class:`HealthMonitor` with default thresholds,
            ``False`` for none, or a monitor of your own.
        backend: the compiled functions' target (see :func:`symgrad.lambdify`; ``"numpy"`` or
            ``"jax"`` for a dense model); ``"jax"`` computes in float64, so it needs JAX's
            64-bit mode.
        progress: show the setup's phases (build, derive, compile) on stderr, with tqdm when
            installed: ``True``, ``False``, or ``"auto"`` (default: only once the setup has
            taken :data:`SETUP_PROGRESS_AFTER` seconds).

    Attributes:
        compile_seconds: the time spent deriving and compiling.
        loss_expr: the per-sample loss as a SymPy expression (scalar models), or the batch
            loss as a matrix expression (dense models).
        parameter_symbols: the symbols of the parameters, in ``parameters()`` order.
        fn: the compiled function (``fn.source`` shows its code): for a scalar model the
            per-sample ``(theta, x, t) -> (per-sample losses, gradients, scores)`` (compiled on
            first use when the steps run by layers), for a dense model the step's
            ``(W_1, b_1, ..., X, Y) -> (loss, [gradients], scores)`` (samples as columns).

    >>> import random, numpy as np
    >>> from symgrad.nn import MLP
    >>> t = Trainer(MLP(1, [1], rng=random.Random(0)), loss="mse")
    >>> t.loss_expr
    (L0.N0.b + L0.N0.w0*x0 - t0)**2
    >>> Trainer(Dense(2, [3, 1], seed=0), loss="mse").parameter_vector().shape
    (13,)
    """

    def __init__(
        self,
        model: Module | Dense,
        loss: Any = "squared_error",
        *,
        reduction: str | None = None,
        l2: float = 0.0,
        optimizer: Optimizer | None = None,
        monitor: bool | HealthMonitor = True,
        progress: bool | str = "auto",
        backend: str = "numpy",
    ) -> None:
        dense = isinstance(model, Dense)
        if not dense and (not isinstance(model, Module) or not hasattr(model, "nin")):
            raise InputTypeError(
                f"model must be a symgrad.nn module with an nin attribute (e.g. an MLP) or a "
                f"Dense network, got {describe(model)}"
            )
        if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not l2 >= 0:
            raise OptionError(f"l2 must be a number >= 0, got {l2!r}")
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise InputTypeError(f"optimizer must be an Optimizer, got {describe(optimizer)}")
        for value, what in ((backend, "backend"), (reduction, "reduction")):
            if value is not None and not isinstance(value, str):
                raise OptionError(f"{what} must be a string, got {describe(value)}")
        if dense and callable(loss):
            raise OptionError(
                f"a Dense network takes a loss by name ({', '.join(LOSSES)}); functions "
                "of per-sample SymPy scores are for scalar models"
            )
        loss_fn, self.reduction, self.loss_name = resolve(loss, reduction)
        self.model = model
        self.optimizer = optimizer if optimizer is not None else SGD(lr=0.1)
        self.l2 = float(l2)
        self.params = model.parameters()
        start = time.perf_counter()
        shown = _SetupProgress(progress)
        if dense:
            program: _ScalarProgram | DenseProgram = DenseProgram(
                model, self.loss_name, self.reduction, backend, shown.phase
            )
            self.parameter_symbols = model.parameter_symbols()
            self.nout = model.nout
        else:
            program = _ScalarProgram(
                model, self.params, loss_fn, self.reduction, backend, shown.phase
            )
            self.parameter_symbols = program.parameter_symbols
            self.nout = program.nout
        self._program = program
        self.loss_expr = program.loss_expr
        self.n_parameters = len(program.vector())
        shown.close()
        self.compile_seconds = time.perf_counter() - start
        self.monitor = self._make_monitor(monitor)

    @property
    def fn(self) -> Any:
        """The compiled per-step function (see the class's attributes)."""
        return self._program.fn

    def _make_monitor(self, monitor: bool | HealthMonitor) -> HealthMonitor | None:
        if isinstance(monitor, HealthMonitor):
            return monitor
        if monitor is False:
            return None
        if monitor is not True:
            raise InputTypeError(f"monitor must be True, False or a HealthMonitor, got {monitor!r}")
        return HealthMonitor(self._program.groups())

    # ------------------------------------------------------------------ data
    def _inputs(self, X: Any) -> np.ndarray:
        arr = _as_array(X, "X")
        if arr.ndim != 2 or arr.shape[1] != self.model.nin:
            raise ShapeError(
                f"X must be an array of shape (samples, {self.model.nin}), got shape {arr.shape}"
            )
        return arr.T

    def _targets(self, y: Any, n: int) -> np.ndarray:
        arr = _as_array(y, "y")
        if self.loss_name == "softmax_cross_entropy" and arr.ndim == 1:
            if np.any(arr != np.round(arr)) or np.any(arr < 0) or np.any(arr >= self.nout):
                raise ShapeError(
                    f"softmax targets must be class indices 0..{self.nout - 1} (or one-hot rows)"
                )
            onehot = np.zeros((self.nout, arr.shape[0]))
            onehot[arr.astype(int), np.arange(arr.shape[0])] = 1.0
            arr = onehot
        elif arr.ndim == 1 and self.nout == 1:
            arr = arr[None, :]
        elif arr.ndim == 2 and arr.shape[1] == self.nout:
            arr = arr.T
        else:
            raise ShapeError(
                f"y must have shape (samples,) or (samples, {self.nout}), got {arr.shape}"
            )
        if arr.shape[1] != n:
            raise ShapeError(f"X has {n} samples but y has {arr.shape[1]}")
        return arr

    def _check_shape(self, theta: np.ndarray) -> None:
        if theta.shape != (self.n_parameters,):
            raise ShapeError(f"theta must have shape ({self.n_parameters},), got {theta.shape}")

    def parameter_vector(self) -> np.ndarray:
        """The model's current parameters as one vector (``parameters()`` order).

        >>> import random
        >>> from symgrad.nn import MLP
        >>> Trainer(MLP(2, [1], rng=random.Random(0))).parameter_vector().shape
        (3,)
        """
        return self._program.vector()

    def set_parameters(self, theta: np.ndarray) -> None:
        """Write a parameter vector back into the model (its ``Value`` objects or arrays).

        >>> import random
        >>> from symgrad.nn import MLP
        >>> model = MLP(2, [1], rng=random.Random(0))
        >>> Trainer(model).set_parameters([0.5, -0.5, 1.0])
        >>> [p.data for p in model.parameters()]
        [0.5, -0.5, 1.0]
        """
        theta = _as_array(theta, "theta", finite=False)
        self._check_shape(theta)
        if not np.all(np.isfinite(theta)):
            bad = int(np.flatnonzero(~np.isfinite(theta))[0])
            raise DomainError(
                f"theta[{bad}] is {theta[bad]}: parameters must be finite numbers (a diverged "
                "run? Trainer.fit keeps the last finite parameters)"
            )
        self._program.assign(theta)

    # ------------------------------------------------------------------ evaluation
    def loss_and_grad(self, theta: Any, X: Any, y: Any) -> tuple[float, np.ndarray, np.ndarray]:
        """The batch loss, its gradient and the scores, in one vectorised call.

        Args:
            theta: the parameter vector (``parameter_vector()`` order).
            X: inputs, shape ``(samples, nin)``.
            y: targets (see the loss).

        Returns:
            ``(loss, gradient of shape (n_params,), scores of shape (nout, samples))``.

        >>> import random
        >>> from symgrad.nn import MLP
        >>> t = Trainer(MLP(1, [1], rng=random.Random(0)), loss="mse")
        >>> loss, grad, scores = t.loss_and_grad([2.0, 1.0], [[1.0], [2.0]], [3.0, 5.0])
        >>> loss, grad.tolist()  # residuals 0 and 0: 2*x + 1 fits exactly
        (0.0, [0.0, 0.0])
        """
        theta = _as_array(theta, "theta", finite=False)
        self._check_shape(theta)
        xt = self._inputs(X)
        return self._evaluate(theta, xt, self._targets(y, xt.shape[1]))

    def _evaluate(
        self, theta: np.ndarray, xt: np.ndarray, tt: np.ndarray, out: np.ndarray | None = None
    ) -> tuple[float, np.ndarray, np.ndarray]:
        # checked inputs as columns: what fit calls at every step (the gradient into `out`)
        with np.errstate(all="ignore"):  # overflow shows up as a non-finite loss, handled by fit
            loss, grad, scores = self._program.loss_and_grad(theta, xt, tt, out)
            if self.l2:
                # the penalty does not depend on the batch: d/dtheta l2*|theta|^2 = 2*l2*theta
                loss += self.l2 * float(theta @ theta)
                grad += (2.0 * self.l2) * theta
        return loss, grad, scores

    def predict(self, X: Any, theta: Any = None) -> np.ndarray:
        """Scores of shape ``(samples,)`` (one output) or ``(samples, nout)``.

        >>> import random
        >>> from symgrad.nn import MLP
        >>> t = Trainer(MLP(2, [1], rng=random.Random(0)))
        >>> t.predict([[0.0, 0.0], [1.0, 1.0]]).shape
        (2,)
        """
        if theta is None:
            theta = self.parameter_vector()
        else:
            theta = _as_array(theta, "theta", finite=False)
            self._check_shape(theta)
        xt = self._inputs(X)
        with np.errstate(all="ignore"):
            scores = self._program.predict(theta, xt)
        return scores[0].copy() if self.nout == 1 else scores.T.copy()

    def accuracy(self, scores: np.ndarray, y: Any) -> float | None:
        """Classification accuracy for classification losses, else ``None``.

        Hinge: labels -1/+1, ``(y > 0) == (score > 0)``. Logistic: labels 0/1, the same with
        ``y > 0.5``. Softmax: the largest score is the class.

        >>> import random, numpy as np
        >>> from symgrad.nn import MLP
        >>> t = Trainer(MLP(1, [1], rng=random.Random(0)), loss="hinge")
        >>> t.accuracy(np.array([[0.3, -2.0, 1.0]]), [1, 1, 1])
        0.6666666666666666
        """
        y = np.asarray(y, dtype=float)
        if self.loss_name in ("hinge", "logistic") and self.nout != 1:
            return None  # several independent binary outputs: no single accuracy
        if self.loss_name == "hinge":
            return float(np.mean((y > 0) == (scores[0] > 0)))
        if self.loss_name == "logistic":
            return float(np.mean((y > 0.5) == (scores[0] > 0)))
        if self.loss_name == "softmax_cross_entropy":
            truth = y if y.ndim == 1 else np.argmax(y, axis=1)
            return float(np.mean(np.argmax(scores, axis=0) == truth))
        return None

    # ------------------------------------------------------------------ training
    def fit(
        self,
        X: Any,
        y: Any,
        steps: int = 100,
        *,
        batch_size: int | None = None,
        rng: np.random.Generator | None = None,
        callback: Callable[[int, float, float | None], None] | None = None,
        progress: bool | str = "auto",
    ) -> History:
        """Train for ``steps`` steps; the model's parameters hold the result.

        Each step evaluates the loss and gradient of the (mini)batch in one compiled call,
        checks health, and applies the optimiser. A non-finite loss, or an update that makes a
        parameter non-finite, stops training with a :class:`TrainingWarning` and sets
        ``history.stopped``; the model keeps the last finite parameters whose loss was finite.

        Args:
            X: inputs, shape ``(samples, nin)``.
            y: targets.
            steps: the number of steps.
            batch_size: ``None`` for full batch, else a random minibatch per step.
            rng: a NumPy ``Generator`` for minibatches (default ``default_rng(0)``).
            callback: called as ``callback(step, loss, accuracy)`` after each step.
            progress: show a progress bar (tqdm if installed); ``"auto"`` shows it for runs of
                1000 steps or more.

        Returns:
            A :class:`History`.

        >>> import random
        >>> from symgrad.nn import MLP, SGD
        >>> t = Trainer(MLP(1, [1], rng=random.Random(0)), loss="mse", optimizer=SGD(0.1))
        >>> h = t.fit([[0.0], [1.0]], [1.0, 3.0], steps=200)
        >>> [round(float(p), 3) for p in t.parameter_vector()]  # y = 2 x + 1
        [2.0, 1.0]
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise InputTypeError(f"steps must be a non-negative integer, got {describe(steps)}")
        if steps > sys.maxsize:
            raise OptionError(f"steps must be at most {sys.maxsize}, got {describe(steps)}")
        X = _as_array(X, "X")
        X_cols = self._inputs(X)  # checked once; samples as columns inside
        y_all = _as_array(y, "y")
        y_cols = self._targets(y_all, X.shape[0])
        n = X.shape[0]
        if n == 0:
            raise ShapeError("X has 0 samples; training needs at least one (samples, nin) row")
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise InputTypeError(f"batch_size must be a positive integer, got {batch_size!r}")
        gen = rng if rng is not None else np.random.default_rng(0)
        show = steps >= 1000 if progress == "auto" else bool(progress)
        history = History()
        start = time.perf_counter()
        theta = self.parameter_vector()
        good = theta
        # two parameter buffers, written in turn: the update goes into the one not holding
        # theta, so theta stays the last finite parameters if the update overflows, and no
        # parameter-sized array is allocated per step
        spare, grad_buffer = np.empty_like(theta), np.empty_like(theta)
        for k in _progress(steps, show, history.loss):
            if batch_size is None or batch_size >= n:
                xb, tb, yb = X_cols, y_cols, y_all
            else:
                idx = gen.choice(n, size=batch_size, replace=False)
                xb, tb, yb = X[idx].T, y_cols[:, idx], y_all[idx]
            loss, grad, scores = self._evaluate(theta, xb, tb, grad_buffer)
            if not math.isfinite(loss):
                history.stopped = (
                    f"loss became {loss} at step {k}; stopped and kept the parameters of the "
                    "last finite loss"
                )
                warnings.warn(history.stopped, TrainingWarning, stacklevel=2)
                theta = good
                break
            good = theta
            lr = self.optimizer.rate(k)
            new = spare
            np.copyto(new, theta)
            with np.errstate(all="ignore"):  # an overflow is caught just below
                self.optimizer.update([new], [grad], k)
            if not np.isfinite(new).all():
                # the loss was finite but the update overflowed (a huge rate or gradient)
                with np.errstate(all="ignore"):
                    size = float(np.linalg.norm(grad))
                history.stopped = (
                    f"the update at step {k} made parameters non-finite (gradient norm "
                    f"{size:.3g}, learning rate {lr:.3g}); stopped and "
                    "kept the last finite parameters"
                )
                warnings.warn(history.stopped, TrainingWarning, stacklevel=2)
                break
            if self.monitor is not None:
                history.health.append(self.monitor.observe(k, grad, theta, new))
            acc = self.accuracy(scores, yb)
            history.loss.append(loss)
            history.accuracy.append(acc)
            history.lr.append(lr)
            theta, spare = new, theta
            if callback is not None:
                callback(k, loss, acc)
        self.set_parameters(theta)
        history.seconds = time.perf_counter() - start
        return history
