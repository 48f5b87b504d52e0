"""Compiled functions over ``dask.array`` batches: data larger than memory, or a cluster.

:func:`lambdify` and :func:`value_and_grad` here take the same arguments as symgrad's own and
return a :class:`DaskFunction`. Called with dask arrays chunked along the batch axis (the last
axis: a vector argument's first axis indexes its symbols), it maps the compiled function over
the chunks: per-sample outputs are lazy dask arrays chunked like the inputs; with
``reduce="mean"`` or ``"sum"`` each chunk is reduced where it lives (the compiled function's own
batch mean, times the chunk's size) and the partial sums are added in a tree, so only one chunk
per worker is ever in memory. Non-dask arguments (a parameter vector) go to every chunk.

The function sent to workers is a small picklable recipe (the expressions, symbols and
options); each worker process compiles it once and caches it, so a ``distributed`` cluster of
worker processes runs it as well as the threaded scheduler.

>>> import numpy as np, sympy as sp, dask.array as da
>>> x, w = sp.symbols("x w")
>>> f = value_and_grad((w * x - 1) ** 2, w, [x, w], reduce="mean")
>>> xs = da.from_array(np.linspace(0.0, 1.0, 11), chunks=4)
>>> value, slope = f(xs, 2.0)
>>> round(float(value.compute()), 6), round(float(slope.compute()), 6)
(0.4, 0.4)
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from . import codegen
from .errors import InputTypeError, ShapeError, require
from .inputs import as_expr, as_symbols, check_choice, describe

dask = require("dask", "dask", "symgrad.dask")
da = require("dask.array", "dask", "symgrad.dask")

__all__ = ["DaskFunction", "lambdify", "value_and_grad"]

REDUCTIONS = (None, "mean", "sum")
SPLIT_EVERY = 8  # partial sums added per node of the reduction tree


def lambdify(
    outputs: Any, args: Any, backend: str = "numpy", *, reduce: str | None = None
) -> DaskFunction:
    """:func:`symgrad.lambdify` mapped over dask arrays chunked along the batch axis.

    Args:
        outputs, args, backend: as for :func:`symgrad.lambdify` (``"numpy"`` or ``"c"``).
        reduce: ``None`` (lazy per-sample outputs), ``"mean"`` or ``"sum"`` over the batch.

    Returns:
        A :class:`DaskFunction`.

    >>> import numpy as np, sympy as sp, dask.array as da
    >>> x = sp.Symbol("x")
    >>> f = lambdify(x**2, [x])
    >>> f(da.arange(6.0, chunks=2)).compute().tolist()
    [0.0, 1.0, 4.0, 9.0, 16.0, 25.0]
    """
    compiled = codegen.lambdify(outputs, args, backend, reduce=_check(reduce))
    recipe = _Recipe("lambdify", _freeze(outputs), _freeze(compiled.args), backend)
    return DaskFunction(recipe, reduce)


def value_and_grad(
    expr: Any, wrt: Any, args: Any = None, *, backend: str = "numpy", reduce: str | None = None
) -> DaskFunction:
    """:func:`symgrad.value_and_grad` mapped over dask arrays chunked along the batch axis.

    Args:
        expr, wrt, args, backend: as for :func:`symgrad.value_and_grad`.
        reduce: ``None`` (lazy per-sample value and gradient), ``"mean"`` or ``"sum"``.

    Returns:
        A :class:`DaskFunction` returning ``(value, gradient)`` as dask arrays.

    >>> import numpy as np, sympy as sp, dask.array as da
    >>> x, w = sp.symbols("x w")
    >>> f = value_and_grad(w * x**2, [w], [x, [w]], reduce="sum")
    >>> [a.compute().tolist() for a in f(da.arange(4.0, chunks=2), [3.0])]
    [42.0, [14.0]]
    """
    e = as_expr(expr)
    syms, single = as_symbols(wrt, e)
    compiled = codegen.value_and_grad(e, syms[0] if single else syms, args, reduce=_check(reduce))
    wrt_frozen = syms[0] if single else tuple(syms)
    recipe = _Recipe("value_and_grad", (e, wrt_frozen), _freeze(compiled.args), backend)
    return DaskFunction(recipe, reduce)


def _check(reduce: str | None) -> str | None:
    reduce = check_choice(reduce, REDUCTIONS, "reduce")
    return None if reduce is None else "mean"


def _freeze(obj: Any) -> Any:
    # nested lists as tuples: a recipe is hashable, so every worker compiles it once
    if isinstance(obj, sp.MatrixBase):
        return sp.ImmutableMatrix(obj)
    if isinstance(obj, (list, tuple)):
        return tuple(_freeze(o) for o in obj)
    return obj


def _thaw(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return [_thaw(o) for o in obj]
    return obj


@dataclass(frozen=True)
class _Recipe:
    """What a worker needs to compile the function: picklable and hashable."""

    kind: str  # "lambdify" or "value_and_grad"
    what: Any  # the outputs, or (expr, wrt)
    args: tuple
    backend: str


@functools.lru_cache(maxsize=64)
def _compiled(recipe: _Recipe, mean: bool) -> codegen.CompiledFunction:
    # compiled once per process (a worker unpickles the recipe for every task)
    reduce = "mean" if mean else None
    args = _thaw(recipe.args)
    if recipe.kind == "lambdify":
        outputs = recipe.what
        if not isinstance(outputs, sp.MatrixBase):
            outputs = _thaw(outputs)
        return codegen.lambdify(outputs, args, recipe.backend, reduce=reduce)
    expr, wrt = recipe.what
    wrt = wrt if isinstance(wrt, sp.Basic) else list(wrt)
    return codegen.value_and_grad(expr, wrt, args, backend=recipe.backend, reduce=reduce)


def _per_sample(recipe: _Recipe, leads: tuple, n: int, *values: Any) -> tuple:
    # one chunk's outputs, each broadcast to its leading axes + the chunk's batch axis (an
    # output that does not depend on the batch is repeated, as a NumPy call would broadcast it)
    out = _compiled(recipe, False)(*values)
    outs = out if isinstance(out, tuple) else (out,)
    # an output without batch axes has only its leading shape: a batch axis of length 1 first
    return tuple(
        np.broadcast_to(np.asarray(o)[..., None] if np.ndim(o) == len(lead) else o, (*lead, n))
        for o, lead in zip(outs, leads, strict=True)
    )


def _chunk_sum(recipe: _Recipe, n: int, *values: Any) -> tuple:
    # one chunk's batch sums (its compiled batch mean times its size) and its size ``n``
    out = _compiled(recipe, True)(*values)
    outs = out if isinstance(out, tuple) else (out,)
    return tuple(np.asarray(o) * n for o in outs), n


def _add(*parts: tuple) -> tuple:
    # partial sums of several chunks (a node of the reduction tree)
    columns = zip(*[p[0] for p in parts], strict=True)
    return tuple(functools.reduce(operator.add, c) for c in columns), sum(p[1] for p in parts)


def _finish(part: tuple, mean: bool, k: int) -> np.ndarray:
    sums, n = part
    return np.asarray(sums[k] / n if mean else sums[k])


def _lead(output: Any) -> tuple[int, ...]:
    # the leading (non-batch) shape of one output: nested lists stack, a matrix is 2-D
    if isinstance(output, sp.MatrixBase):
        return output.shape
    if isinstance(output, (list, tuple)):
        return (len(output), *_lead(output[0]))
    return ()


class DaskFunction:
    """A compiled function mapped over dask arrays (made by :func:`lambdify` here).

    Call it with the compiled function's arguments: dask arrays chunked along their last
    (batch) axis, and NumPy arrays or numbers that every chunk shares. It returns dask arrays
    (a tuple where the compiled function returns a tuple); nothing runs until ``.compute()``.

    >>> import sympy as sp, dask.array as da
    >>> x = sp.Symbol("x")
    >>> f = lambdify([x, 2 * x], [x], reduce="mean")
    >>> [float(v.compute()) for v in f(da.arange(5.0, chunks=2))]
    [2.0, 4.0]
    """

    def __init__(self, recipe: _Recipe, reduce: str | None) -> None:
        if not isinstance(recipe, _Recipe):
            raise InputTypeError(
                "DaskFunction objects are made by symgrad.dask.lambdify or value_and_grad, not "
                f"by calling the class; got {describe(recipe)}"
            )
        reduce = check_choice(reduce, REDUCTIONS, "reduce")
        self.recipe = recipe
        self.reduce = reduce
        self.compiled = _compiled(recipe, reduce is not None)
        if recipe.kind == "value_and_grad":
            wrt = recipe.what[1]
            self._many, leads = True, [(), () if isinstance(wrt, sp.Basic) else (len(wrt),)]
        else:
            outputs = recipe.what
            self._many = isinstance(outputs, tuple)
            leads = [_lead(o) for o in outputs] if self._many else [_lead(outputs)]
        self._leads = tuple(leads)

    def __reduce__(self) -> tuple:
        # pickled as its recipe: the receiving process compiles it (once, cached)
        return (DaskFunction, (self.recipe, self.reduce))

    def __repr__(self) -> str:
        return f"<DaskFunction of {self.compiled!r}, reduce={self.reduce!r}>"

    def __call__(self, *values: Any) -> Any:
        spec = self.compiled.args
        if len(values) != len(spec):
            self.compiled(*values)  # raises the compiled function's ArgumentError
        blocks, chunks, dtype = self._blocks(values, spec)
        if self.reduce is None:
            out = []
            for j, lead in enumerate(self._leads):
                parts = [
                    da.from_delayed(t[j], shape=(*lead, c), dtype=dtype)
                    for t, c in zip(blocks, chunks, strict=True)
                ]
                out.append(da.concatenate(parts, axis=len(lead)))
        else:
            sums = [
                dask.delayed(_chunk_sum, pure=True)(self.recipe, c, *b)
                for b, c in zip(blocks, chunks, strict=True)
            ]
            while len(sums) > 1:  # a tree: each node adds SPLIT_EVERY partial sums
                sums = [
                    dask.delayed(_add, pure=True)(*sums[i : i + SPLIT_EVERY])
                    for i in range(0, len(sums), SPLIT_EVERY)
                ]
            mean = self.reduce == "mean"
            out = [
                da.from_delayed(
                    dask.delayed(_finish, pure=True)(sums[0], mean, j), shape=lead, dtype=dtype
                )
                for j, lead in enumerate(self._leads)
            ]
        return tuple(out) if self._many else out[0]

    def _blocks(self, values: tuple, spec: list) -> tuple[list, tuple, Any]:
        """Per chunk, the delayed arguments (or outputs, when per sample); the chunk sizes."""
        chunks = None
        per_arg: list[Any] = []
        for i, (v, item) in enumerate(zip(values, spec, strict=True)):
            if not isinstance(v, da.Array):
                per_arg.append(None)
                continue
            want = 1 if isinstance(item, sp.Symbol) else 2
            if v.ndim != want:
                raise ShapeError(
                    f"dask argument {i} must have {want} axis(es) (a vector argument is "
                    f"(symbols, batch), a symbol (batch,)); got shape {v.shape}"
                )
            if chunks is None:
                chunks = v.chunks[-1]
            elif v.shape[-1] != sum(chunks):
                raise ShapeError(
                    f"dask arguments have different batch sizes ({sum(chunks)} and "
                    f"{v.shape[-1]}); give every batch argument the same samples"
                )
            v = v.rechunk({k: -1 for k in range(v.ndim - 1)} | {v.ndim - 1: chunks})
            per_arg.append(list(v.to_delayed().ravel()))
        if chunks is None:
            raise ShapeError(
                "no argument is a dask array; call .compiled for NumPy inputs, or wrap the "
                "batch with dask.array.from_array(x, chunks=...)"
            )
        dtype = np.result_type(*[v.dtype for v in values if isinstance(v, da.Array)], float)
        blocks = [
            [values[i] if p is None else p[k] for i, p in enumerate(per_arg)]
            for k in range(len(chunks))
        ]
        if self.reduce is None:
            n = len(self._leads)
            blocks = [
                dask.delayed(_per_sample, pure=True, nout=n)(self.recipe, self._leads, c, *b)
                for b, c in zip(blocks, chunks, strict=True)
            ]
        return blocks, chunks, dtype
