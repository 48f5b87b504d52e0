"""A compiled SGD step: loss, gradients and ``p -= lr * df/dp`` in one generated function.

:func:`value_and_grad` returns the gradients and leaves the update to the caller: one more pass
over every parameter after all gradients exist, with all of them alive at once.
:func:`sgd_step` compiles the update into the function instead. With NumPy each parameter is
updated in place as soon as its gradient is known and the parameter has been read for the last
time, and a gradient that is a matrix product goes straight into its parameter through BLAS
``gemm`` with ``beta = 1`` (:mod:`symgrad.matrix.update`), so the weight gradients are never
stored. With JAX the whole step, update included, is one jitted function: one dispatch per step,
and XLA fuses the update into the gradient's last operation. (Donating the parameter buffers
to the results, ``donate_argnums``, was measured and left out: on CPU it made the 784-256-10
step 13% slower, 2.79 ms against 2.47 ms, and the 2-16-16-1 step no faster.)

The learning rate is the step's last argument, so a schedule changes it without recompiling;
it is applied where it costs least (the rewrite system moves scalar factors to the smallest
operand of each product).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp
from sympy.matrices.expressions import MatrixSymbol

from ..codegen.compile import check_name
from ..errors import ArgumentError, BackendUnavailableError, InputTypeError, OptionError, ShapeError
from ..inputs import check_choice
from . import expr as mx
from .codegen import _build, _check_args, _default_args
from .update import param_error
from .vjp import grad as matrix_grad

__all__ = ["CompiledMatrixStep", "sgd_step"]


class CompiledMatrixStep:
    """A compiled training step: call it with the arguments' values, then the learning rate.

    ``value, params = step(*values, lr)`` returns the loss at the given parameters and the
    updated parameters, in ``params`` order. With NumPy the parameter arrays passed in are
    updated in place and returned (they must be writeable floating-point arrays); with JAX
    the new parameters are new arrays.

    With ``flat=True`` the parameters come as one vector ``theta`` before the other values,
    and ``params`` in the result is ``theta`` (updated in place with NumPy, a new array with
    JAX).

    Attributes:
        source: the generated Python source.
        args: the argument symbols (the learning rate is not among them; with ``flat``, the
            arguments after ``theta``).
        params: the parameters the step updates.
        backend: ``"numpy"`` or ``"jax"``.

    >>> import numpy as np, sympy as sp
    >>> w = sp.MatrixSymbol("w", 2, 1)
    >>> step = sgd_step(mx.sumsq(w), [w])
    >>> value, (new,) = step(np.array([[1.0], [2.0]]), 0.25)
    >>> float(value), new.ravel().tolist()  # w - 0.25 * 2 w
    (5.0, [0.5, 1.0])
    """

    def __init__(
        self, fn: Any, source: str, args: list, params: list, backend: str, flat: bool
    ) -> None:
        self._fn, self.source, self.args, self.params = fn, source, args, params
        self.backend, self.flat = backend, flat

    def __call__(self, *values: Any) -> Any:
        if len(values) != len(self.args) + 1 + self.flat:
            names = ", ".join(["theta"] * self.flat + [str(a) for a in self.args])
            raise ArgumentError(
                f"expected {len(self.args) + 1 + self.flat} arguments ({names}, then the "
                f"learning rate), got {len(values)}"
            )
        return self._fn(*values)

    def __repr__(self) -> str:
        names = ", ".join(["theta"] * self.flat + [str(a) for a in self.args])
        return f"CompiledMatrixStep(args=[{names}], lr, backend={self.backend!r})"


def sgd_step(
    f: sp.Expr,
    params: Sequence[MatrixSymbol],
    args: Sequence[sp.Basic] | None = None,
    *,
    flat: bool = False,
    backend: str = "numpy",
    name: str = "symgrad_sgd_step",
    fuse: bool = True,
) -> CompiledMatrixStep:
    """Compile one SGD step of the scalar loss ``f``: ``p <- p - lr * df/dp`` for each ``p``.

    Args:
        f: a scalar matrix expression (the loss).
        params: the ``MatrixSymbol`` parameters to update.
        args: call order of all arguments; default ``params`` followed by the other symbols in
            order of appearance. The learning rate comes after them.
        flat: take the parameters as one vector ``theta`` (each parameter raveled in row-major
            order, in ``params`` order), as the first argument in place of the separate arrays:
            ``value, theta = step(theta, *other_values, lr)``. With JAX this makes the update
            one operation over one buffer, the faster layout for small networks (the separate
            arrays cost one kernel and one argument each per step: the 2-16-16-1 step takes
            0.8x the time), but not for large layers, which XLA then copies out of and back
            into the vector (784-256-10: 1.1-1.2x); with NumPy the parameters are views into
            ``theta`` and it costs nothing.
        backend: ``"numpy"`` (in-place updates, BLAS ``gemm`` for product gradients) or
            ``"jax"`` (one jitted function, the update inside).
        name: the generated function's name.
        fuse: with NumPy, chains of entrywise operations on large arrays run as one C loop
            each when a C compiler works (see :func:`~symgrad.matrix.compile_matrix`).

    Returns:
        A :class:`CompiledMatrixStep`; ``step(*values, lr)`` returns ``(loss, params)`` (or
        ``(loss, theta)`` with ``flat``).

    Raises:
        InputTypeError: a parameter is not a ``MatrixSymbol``, or is not among ``args``.
        ShapeError: ``flat`` with a parameter whose shape is not fixed numbers.
        MissingSymbolError: ``f`` uses a symbol that is not in ``args``.
        BackendUnavailableError: an unknown backend.

    >>> import numpy as np, sympy as sp
    >>> W, x = sp.MatrixSymbol("W", 1, 2), sp.MatrixSymbol("x", 2, 1)
    >>> step = sgd_step(mx.sumsq(mx.matmul(W, x)), [W], [W, x])
    >>> Wv = np.array([[1.0, 2.0]])
    >>> value, _ = step(Wv, np.array([[3.0], [4.0]]), 0.01)
    >>> float(value), Wv.round(2).tolist()  # dW = 2 (W x) x^T = [[66, 88]]
    (121.0, [[0.34, 1.12]])
    """
    check_name(name)
    backend = check_choice(backend, ("numpy", "jax"), "backend", BackendUnavailableError)
    for option, value in (("flat", flat), ("fuse", fuse)):
        if not isinstance(value, bool):
            raise OptionError(f"{option} must be True or False, got {value!r}")
    f = mx._operand(f, "sgd_step")
    wrt = _check_args(params)
    for p in wrt:
        if not isinstance(p, MatrixSymbol):
            raise InputTypeError(
                f"sgd_step updates arrays in place, so parameters must be MatrixSymbols; {p} is "
                "a scalar Symbol (make it a 1 x 1 MatrixSymbol)"
            )
        if flat and not all(d.is_Integer for d in p.shape):
            raise ShapeError(f"flat=True needs parameters of fixed shape; {p} has shape {p.shape}")
    grads = matrix_grad(f, wrt)
    if args is None:
        args = _default_args(f, wrt)
    arg_list = _check_args(args)
    missing = [p for p in wrt if p not in arg_list]
    if missing:
        raise InputTypeError(f"the parameters {missing} must be among args {arg_list}")
    lr = sp.Dummy("lr", real=True)
    steps = [mx.scale(lr, g) for g in grads]
    position = [arg_list.index(p) for p in wrt]
    layout = _Layout(wrt, position, len(arg_list)) if flat else None
    if backend == "jax" and layout:
        # theta - lr * (the gradients end to end): measured faster under XLA than joining the
        # new parameters (784-256-10: 4.2 against 4.9 ms)
        fn, source = _build([f, list(grads)], arg_list, name, backend, wrap=layout.jax_wrapper)
    elif backend == "jax":
        # immutable arrays: the new parameters are outputs
        news = [mx.sub(p, s) for p, s in zip(wrt, steps, strict=True)]
        fn, source = _build([f, news], [*arg_list, lr], name, backend)
    else:
        updates = {1 + k: i for k, i in enumerate(position)}
        fn, source = _build([f, steps], [*arg_list, lr], name, backend, updates=updates, fuse=fuse)
        if layout:
            fn = layout.numpy_wrapper(fn)
    shown = [arg for i, arg in enumerate(arg_list) if i not in position] if flat else arg_list
    return CompiledMatrixStep(fn, source, shown, wrt, backend, flat)


class _Layout:
    """Where each parameter lives in the flat vector, and the calls that unpack it."""

    def __init__(self, params: list, position: list[int], n_args: int) -> None:
        self.shapes = [(int(p.shape[0]), int(p.shape[1])) for p in params]
        self.names = [str(p) for p in params]
        self.offsets = [0]
        for r, c in self.shapes:
            self.offsets.append(self.offsets[-1] + r * c)
        self.position = position
        self.others = [i for i in range(n_args) if i not in set(position)]

    def _assemble(self, pieces: list, rest: tuple) -> list:
        """The generated function's arguments: ``pieces`` of theta and ``rest`` in place."""
        full: list = [None] * (len(pieces) + len(self.others))
        for i, piece in zip(self.position, pieces, strict=True):
            full[i] = piece
        for i, value in zip(self.others, rest, strict=True):
            full[i] = value
        return full

    def _pieces(self, theta: Any) -> list:
        o = self.offsets
        return [theta[o[k] : o[k + 1]].reshape(s) for k, s in enumerate(self.shapes)]

    def numpy_wrapper(self, fn: Any) -> Any:
        n = self.offsets[-1]

        def flat_step(theta: Any, *rest: Any) -> Any:
            if not (
                isinstance(theta, np.ndarray)
                and theta.dtype.kind == "f"
                and theta.flags.writeable
                and theta.flags.c_contiguous
            ):
                param_error("theta", theta)
            if theta.shape != (n,):
                raise ShapeError(f"theta has shape {theta.shape}, expected ({n},)")
            value, _ = fn(*self._assemble(self._pieces(theta), rest[:-1]), rest[-1])
            return value, theta

        return flat_step

    def jax_wrapper(self, fn: Any) -> Any:
        from ..codegen.jax import import_jax

        jnp = import_jax().numpy
        n = self.offsets[-1]

        def flat_step(theta: Any, *rest: Any) -> Any:
            if theta.shape != (n,):
                raise ShapeError(f"theta has shape {tuple(theta.shape)}, expected ({n},)")
            *data, lr = rest
            value, grads = fn(*self._assemble(self._pieces(theta), data))
            return value, theta - lr * jnp.concatenate([g.reshape(-1) for g in grads])

        return flat_step
