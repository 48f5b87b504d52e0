"""symgrad formulas inside PyTorch models: a ``torch.autograd.Function`` and an ``nn.Module``.

:func:`function` compiles an expression and its exact gradient (one reverse sweep, shared with
the value) and wraps them as a ``torch.autograd.Function``: tensors in and out, the device and
floating dtype of the inputs kept, and ``backward`` the chain rule through symgrad's compiled
gradient (summed over broadcast batch axes, as PyTorch's own operators do). :class:`Module` is
a per-sample loss whose parameters are one ``nn.Parameter`` vector, for training loops.

The arithmetic runs in NumPy on the host (the compiled function), so a CUDA tensor is copied to
the host and back; float32 tensors are computed in float32.

>>> import sympy as sp, torch
>>> x, w, b = sp.symbols("x w b")
>>> f = function(sp.tanh(w * x + b), [w, b], [x, w, b])
>>> wt = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
>>> out = f.apply(torch.tensor([1.0, 2.0], dtype=torch.float64), wt, 0.0)
>>> out.sum().backward()
>>> round(wt.grad.item(), 6)  # sum_i x_i (1 - tanh(w x_i)^2)
1.626396
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from .codegen import lambdify, value_and_grad
from .errors import InputTypeError, MissingSymbolError, OptionError, require
from .inputs import as_expr, as_symbols, check_choice, describe

torch = require("torch", "torch", "symgrad.torch")  # the PyTorch package, not this module

__all__ = ["Module", "function"]

_REDUCTIONS = ("mean", "sum", None)


def function(expr: Any, wrt: Any, args: Any, *, backend: str = "numpy") -> type:
    """A ``torch.autograd.Function`` computing ``expr`` with symgrad's exact gradient.

    Args:
        expr: a scalar expression (evaluated elementwise over batches, like :func:`lambdify`).
        wrt: the symbols to differentiate with respect to; they must make up whole arguments
            (a scalar argument, or every symbol of a vector argument).
        args: the arguments of the function, as for :func:`symgrad.lambdify`: each a symbol
            (a tensor of any shape, or a number) or a list of symbols (a tensor whose first
            axis indexes them, e.g. a parameter vector ``(n,)`` or a batch ``(n, batch)``).
        backend: the compiled function's backend (``"numpy"`` or ``"c"``).

    Returns:
        A subclass of ``torch.autograd.Function``; call it as ``F.apply(*inputs)``. Its output
        has the broadcast batch shape of the inputs, the inputs' device and their promoted
        floating dtype. Arguments outside ``wrt`` get no gradient. ``F.compiled`` is the
        compiled value-and-gradient function.

    Raises:
        InputTypeError: ``wrt`` splits a vector argument.
        MissingSymbolError: a ``wrt`` symbol is not among ``args``.

    >>> import sympy as sp, torch
    >>> x, y = sp.symbols("x y")
    >>> F = function(x**2 * y, [x, y], [x, y])
    >>> xt = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    >>> F.apply(xt, 2.0).backward()
    >>> xt.grad.item()
    12.0
    """
    e = as_expr(expr)
    wrt_syms, _ = as_symbols(wrt, e)
    compiled = value_and_grad(e, wrt_syms, args, backend=backend)
    spec = compiled.args
    row = {s: k for k, s in enumerate(wrt_syms)}
    rows: list[Any] = []  # per argument: its rows in the gradient (a list for vectors), or None
    listed: set[sp.Symbol] = set()
    for i, item in enumerate(spec):
        syms = [item] if isinstance(item, sp.Symbol) else list(item)
        listed.update(syms)
        inside = [s in row for s in syms]
        if not any(inside):
            rows.append(None)
        elif not all(inside):
            raise InputTypeError(
                f"wrt must list whole arguments: argument {i} is a vector of {len(syms)} symbols "
                "and only some of them are in wrt; split it into two arguments"
            )
        else:
            rows.append(row[item] if isinstance(item, sp.Symbol) else [row[s] for s in syms])
    absent = [s for s in wrt_syms if s not in listed]
    if absent:
        raise MissingSymbolError(
            f"wrt symbols {', '.join(map(str, absent))} are not among args; add them to args"
        )
    state: dict[str, Any] = {}

    def value_only() -> Any:
        if "value" not in state:
            state["value"] = lambdify(e, spec, backend)
        return state["value"]

    def forward(ctx, *inputs):
        arrays, device, dtype = _host_arrays(inputs)
        if any(ctx.needs_input_grad):
            value, gradient = compiled(*arrays)
            ctx.gradient = np.asarray(gradient)
            ctx.shapes = [np.shape(a) for a in arrays]
        else:
            value = value_only()(*arrays)
        ctx.place = (device, dtype)
        return torch.as_tensor(np.asarray(value)).to(device=device, dtype=dtype)

    def backward(ctx, grad_output):
        g = grad_output.detach().to("cpu").numpy()
        device, dtype = ctx.place
        out: list[Any] = []
        for i, r in enumerate(rows):
            if r is None or not ctx.needs_input_grad[i]:
                out.append(None)
                continue
            # chain rule per sample, then summed over the axes the input was broadcast along
            local = ctx.gradient[r] * g
            lead = 0 if isinstance(r, int) else 1
            out.append(
                torch.as_tensor(_unbroadcast(local, ctx.shapes[i], lead)).to(
                    device=device, dtype=dtype
                )
            )
        return tuple(out)

    namespace = {
        "forward": staticmethod(forward),
        "backward": staticmethod(backward),
        "compiled": compiled,
        "__doc__": f"symgrad's {compiled!r}, differentiated in {', '.join(map(str, wrt_syms))}",
    }
    return type("SymgradFunction", (torch.autograd.Function,), namespace)


def _host_arrays(inputs: Sequence[Any]) -> tuple[list[Any], Any, Any]:
    # NumPy views of the inputs (copied to the host when on a device), and the device and
    # floating dtype of the result (PyTorch's promotion of the tensors among the inputs)
    device = None
    dtype = None
    arrays: list[Any] = []
    for value in inputs:
        if isinstance(value, torch.Tensor):
            if not (value.dtype.is_floating_point or value.dtype.is_complex):
                value = value.to(torch.get_default_dtype())
            device = value.device if device is None else device
            dtype = value.dtype if dtype is None else torch.promote_types(dtype, value.dtype)
            arrays.append(value.detach().to("cpu").numpy())
        else:
            arrays.append(value)
    if dtype is None:
        dtype = torch.get_default_dtype()
    return arrays, device or torch.device("cpu"), dtype


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...], lead: int) -> np.ndarray:
    """``grad`` summed down to an input of ``shape`` that NumPy broadcast along batch axes.

    The first ``lead`` axes (a vector argument's symbol axis) are the input's own; the batch
    axes after them align from the right, as in broadcasting.
    """
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(lead, lead + extra)))
    kept = tuple(k for k, n in enumerate(shape) if n == 1 and grad.shape[k] != 1)
    if kept:
        grad = grad.sum(axis=kept, keepdims=True)
    return np.broadcast_to(grad, shape) if grad.shape != shape else grad


class Module(torch.nn.Module):
    """A per-sample loss ``expr`` whose parameters are one trainable vector.

    Args:
        expr: the loss of one sample (an expression over ``params`` and ``inputs``).
        params: the parameter symbols; they become ``self.params``, one ``nn.Parameter``.
        inputs: the data arguments (as ``args`` of :func:`function`), passed to ``forward``.
        init: initial parameter values (default: uniform in [-1, 1), micrograd's choice, from
            PyTorch's generator).
        reduce: ``"mean"`` (default) or ``"sum"`` over the batch, or ``None`` (per sample).
        dtype: the parameters' dtype (default: PyTorch's default dtype).

    >>> import sympy as sp, torch
    >>> x, y, w, b = sp.symbols("x y w b")
    >>> loss = Module((w * x + b - y) ** 2, [w, b], [x, y], init=[0.0, 0.0], dtype=torch.float64)
    >>> X = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    >>> opt = torch.optim.SGD(loss.parameters(), lr=0.1)
    >>> for _ in range(500):
    ...     opt.zero_grad()
    ...     loss(X, 2 * X + 1).backward()
    ...     opt.step()
    >>> [round(v, 4) for v in loss.params.tolist()]
    [2.0, 1.0]
    """

    def __init__(
        self,
        expr: Any,
        params: Sequence[Any],
        inputs: Sequence[Any],
        init: Any = None,
        *,
        reduce: str | None = "mean",
        dtype: Any = None,
    ) -> None:
        super().__init__()
        reduce = check_choice(reduce, _REDUCTIONS, "reduce")
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        syms, _ = as_symbols(params, None, "params")
        if dtype is None:
            dtype = torch.get_default_dtype()
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise InputTypeError(
                f"dtype must be a floating torch dtype such as torch.float64, got {describe(dtype)}"
            )
        self.reduce = reduce
        self.function = function(expr, syms, [*inputs, syms])
        if init is None:
            values = torch.empty(len(syms), dtype=dtype).uniform_(-1.0, 1.0)
        else:
            try:
                values = torch.as_tensor(init, dtype=dtype).clone()
            except (TypeError, ValueError, RuntimeError):
                raise InputTypeError(
                    f"init must be {len(syms)} real numbers (a list or tensor), got "
                    f"{describe(init)}"
                ) from None
            if values.shape != (len(syms),):
                raise OptionError(
                    f"init must have one value per parameter ({len(syms)}), got shape "
                    f"{tuple(values.shape)}"
                )
        self.params = torch.nn.Parameter(values)

    def forward(self, *inputs: Any) -> Any:
        """The loss over a batch of ``inputs`` (reduced as ``reduce`` says)."""
        per_sample = self.function.apply(*inputs, self.params)
        if self.reduce == "mean":
            return per_sample.mean()
        if self.reduce == "sum":
            return per_sample.sum()
        return per_sample
