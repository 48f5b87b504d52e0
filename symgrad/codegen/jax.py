"""The JAX target: the DAG as ``jax.numpy`` statements, jitted, traceable by JAX's transforms.

Each unique node of the linearised DAG is one statement (XLA fuses the elementwise work, so no
inlining is needed here), printed by SymPy's ``JaxPrinter`` over its arguments' names. The
function is wrapped in ``jax.jit``; called with tracers it is traced like any JAX code, so it
works inside the user's own ``jax.jit``, ``jax.vmap`` and ``jax.grad``, and on whatever devices
the arrays live on (sharded arrays keep their sharding; a batch mean over a sharded axis becomes
a cross-device reduction).

Dtypes follow JAX: float32 inputs give float32 outputs; float64 needs JAX's 64-bit mode, and a
float64 NumPy array given while it is off is refused with a :class:`~symgrad.errors.DtypeError`
(JAX would silently round it to float32).

>>> import sympy as sp
>>> import numpy as np
>>> from symgrad import lambdify
>>> x = sp.Symbol("x")
>>> f = lambdify(sp.sin(x) * x, [x], backend="jax")
>>> f(np.ones(3, np.float32)).dtype
dtype('float32')
"""

from __future__ import annotations

import hashlib
import linecache
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.numpy import JaxPrinter

from ..errors import (
    ArgumentError,
    DtypeError,
    MissingSymbolError,
    ShapeError,
    UnsupportedFunctionError,
    require,
)
from ..graph import Linear, linearise, rebuild
from ..inputs import describe
from .compile import _rectangular
from .fuse import Fuser, _Pair

_MATH = re.compile(r"\bmath\.(\w+)")
# nodes printed inside their parent (a Piecewise prints its (expr, cond) pairs itself)
_INLINE = (sp.Tuple, sp.functions.elementary.piecewise.ExprCondPair)


def import_jax() -> Any:
    """The ``jax`` module, or a :class:`BackendUnavailableError` naming the extra to install."""
    # generated code names jax.numpy and jax.scipy.special fully qualified
    for module in ("jax.numpy", "jax.scipy.special"):
        require(module, "jax", "backend='jax'")
    return require("jax", "jax", "backend='jax'")


class _Printer(JaxPrinter):
    """SymPy's JAX printer with exact float literals and JAX's special functions."""

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True, "strict": True, "order": "none"})

    def _print_Float(self, expr):
        # repr of the float64 round-trips exactly (JAX rounds it to float32 where the inputs are)
        return repr(float(expr))

    def _print_Heaviside(self, expr):
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"jax.numpy.heaviside({self._print(expr.args[0])}, {self._print(h0)})"

    def _fold(self, name: str, expr) -> str:
        # max/min of several arguments as nested binary calls (NaN propagates, like NumPy)
        *rest, text = (self._print(a) for a in expr.args)
        for a in reversed(rest):
            text = f"jax.numpy.{name}({a}, {text})"
        return text

    def _print_Max(self, expr):
        return self._fold("maximum", expr)

    def _print_Min(self, expr):
        return self._fold("minimum", expr)

    def _print_sigmoid(self, expr):
        # the NumPy form (exp(-logaddexp(0, -x)): no overflow), through this printer's module
        return expr._numpycode(self)

    def _special(self, name: str, expr) -> str:
        return f"jax.scipy.special.{name}({self._print(expr.args[0])})"

    def _print_erf(self, expr):
        return self._special("erf", expr)

    def _print_erfc(self, expr):
        return self._special("erfc", expr)

    def _print_gamma(self, expr):
        return f"jax.numpy.exp({self._special('gammaln', expr)})"

    def _print_loggamma(self, expr):
        return self._special("gammaln", expr)


def emit(
    arg_spec: list, leaves: list[sp.Expr], spec: tuple[Any, bool], name: str, mean: bool, base
) -> str:
    """The JAX source of a function of ``arg_spec`` returning ``leaves`` nested as ``spec``.

    Args:
        arg_spec: per argument a symbol or a list of symbols (see :func:`symgrad.lambdify`).
        leaves: the output expressions.
        spec: ``(out_spec, top)``: the outputs nested as indices into ``leaves``, and whether
            the top level is a tuple (else one stacked array).
        name: the function's name.
        mean: average each output over its batch axes (``reduce="mean"``).
        base: the linearised DAG the outputs were derived from (or None).
    """
    out_spec, top = spec
    params = [f"_a{i}" for i in range(len(arg_spec))]
    lines = [f"def {name}({', '.join(params)}):"]
    var: dict[int, str] = {}  # id of an argument symbol -> its name
    by_symbol: dict[sp.Symbol, str] = {}
    entries: dict[str, str] = {}  # name of a vector argument's entry -> its indexing
    for i, item in enumerate(arg_spec):
        if isinstance(item, sp.Symbol):
            lines.append(f"    # _a{i}: {item.name!r}")
            var[id(item)] = by_symbol[item] = f"_a{i}"
            continue
        lines.append(f"    # _a{i}: vector of {len(item)} symbols")
        for j, s in enumerate(item):
            var[id(s)] = by_symbol[s] = f"_a{i}_{j}"
            entries[f"_a{i}_{j}"] = f"_a{i}[{j}]"
    lines.append(f"    _dtype = _result_dtype({', '.join(params)})")
    unpack_at = len(lines)  # the entries of vector arguments that are read, unpacked here
    unpacked: list[str] = []
    dag: Linear = linearise(leaves, base)
    order, args_of = dag.order, dag.args
    outs = [dag.index[leaf] for leaf in leaves]
    # a product of two factors read exactly once (and not by a Piecewise pair) is left to its
    # reader, which fuses many of them into one matrix product (see codegen.fuse)
    uses = [0] * len(order)
    pinned = [False] * len(order)
    for i, positions in enumerate(args_of):
        shadow = isinstance(order[i], _INLINE)
        for a in positions:
            uses[a] += 1
            pinned[a] = pinned[a] or shadow
    for o in outs:
        uses[o] += 1
    kid: list[Any] = [None] * len(order)
    printer = _Printer()
    elements = {v: (k.split("[")[0], int(k[k.index("[") + 1 : -1])) for v, k in entries.items()}
    fuser = Fuser(printer, {}, elements)
    missing = []
    n_temps = 0
    for i, node in enumerate(order):
        if not args_of[i]:
            if node.is_Symbol:
                v = var.get(id(node)) or by_symbol.get(node)
                if v is None:
                    missing.append(node)
                elif v in entries:
                    unpacked.append(f"    {v} = {entries.pop(v)}")
                kid[i] = v
            else:
                kid[i] = node  # a literal, printed in place
            continue
        if missing:
            continue
        positions = args_of[i]
        kids = [kid[a] for a in positions]
        if isinstance(node, _INLINE):
            kid[i] = rebuild(node, [sp.Symbol(k) if isinstance(k, str) else k for k in kids])
            continue
        if node.is_Mul and len(positions) == 2 and uses[i] == 1 and not pinned[i]:
            kid[i] = _Pair(node, kids, positions)
            continue
        text = fuser.node(node, kids)
        unknown = _MATH.search(text)
        if unknown:
            raise UnsupportedFunctionError(
                unknown.group(1),
                f"cannot compile {type(node).__name__} for JAX: it has no jax.numpy or "
                "jax.scipy translation; use backend='numpy', or replace the function",
            )
        lines += [f"    {ln}" for ln in fuser.lines]
        fuser.lines.clear()
        target = f"_t{n_temps}"
        n_temps += 1
        lines.append(f"    {target} = {text}")
        kid[i] = target
    if missing:
        shown = ", ".join(sorted(str(s) for s in missing)[:10])
        raise MissingSymbolError(
            f"the outputs use symbols that are not arguments: {shown}; add them to args "
            f"(or substitute values for them first)"
        )
    lines[unpack_at:unpack_at] = unpacked

    def build(s: Any, top: bool) -> str:
        if isinstance(s, int):
            text = fuser.text(kid[outs[s]])
            return f"_cast(_batch_mean({text}, 0), _dtype)" if mean else f"_cast({text}, _dtype)"
        if top:
            inner = ", ".join(build(item, False) for item in s)
            return f"({inner}{',' if len(s) == 1 else ''})"
        shape, flat = _rectangular(s)
        return f"_cast({fuser.stacked(shape, [kid[outs[k]] for k in flat], mean)}, _dtype)"

    ret = build(out_spec, top)
    lines += [f"    {ln}" for ln in fuser.lines]
    lines.append(f"    return {ret}")
    return "\n".join([*lines, *fuser.constants]) + "\n"


def build(
    arg_spec: list,
    leaves: list[sp.Expr],
    spec: tuple[Any, bool],
    name: str,
    mean: bool,
    base: Linear | None = None,
) -> tuple[Callable, str]:
    """A jitted JAX function (behind argument checks) and its source; see :func:`emit`."""
    jax = import_jax()
    source = emit(arg_spec, leaves, spec, name, mean, base)
    filename = f"<symgrad-jax:{name}:{hashlib.sha1(source.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {
        "jax": jax,
        "_result_dtype": _result_dtype,
        "_cast": _cast,
        **RUNTIME,
    }
    exec(compile(source, filename, "exec"), namespace)  # generated code only, never user text
    jitted = jax.jit(namespace[name])
    names = [str(a) if isinstance(a, sp.Symbol) else f"a vector of {len(a)}" for a in arg_spec]
    sizes = [None if isinstance(a, sp.Symbol) else len(a) for a in arg_spec]

    def call(*values: Any) -> Any:
        values = [_coerce(v, i, names, sizes[i]) for i, v in enumerate(values)]
        batch = [np.shape(v)[0 if n is None else 1 :] for v, n in zip(values, sizes, strict=True)]
        try:
            np.broadcast_shapes(*batch)
        except ValueError:
            shown = ", ".join(str(np.shape(v)) for v in values)
            raise ShapeError(
                f"argument shapes do not broadcast together ({shown}); batch axes come after a "
                "vector argument's first axis"
            ) from None
        return jitted(*values)

    call.jitted = jitted  # type: ignore[attr-defined]
    return call, source


# ---------------------------------------------------------------------------------------------
# what the generated code and its wrapper call


def _coerce(value: Any, position: int, names: Sequence[str], size: int | None) -> Any:
    """An argument as a JAX-ready float value; a float64 array needs JAX's 64-bit mode."""
    import jax
    import jax.numpy as jnp

    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise ArgumentError(
            f"argument {position} ({names[position]}) must be a number or an array of numbers, "
            f"got {describe(value)}"
        )
    if isinstance(value, (int, float)) and size is None:
        return float(value)  # a weakly typed scalar: it takes the other arguments' dtype
    if not isinstance(value, jax.Array):
        try:
            value = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise ArgumentError(
                f"argument {position} ({names[position]}) is not a numeric array: {exc}"
            ) from exc
        if value.dtype.kind not in "iufc":
            raise ArgumentError(
                f"argument {position} ({names[position]}) must be numeric, got an array of "
                f"dtype {value.dtype}"
            )
        wide = value.dtype in (np.float64, np.complex128)
        if wide and jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
            raise DtypeError(
                f"argument {position} ({names[position]}) is {value.dtype}, but JAX computes "
                "in 32 bits unless its 64-bit mode is on: call "
                "jax.config.update('jax_enable_x64', True) at start-up for float64, or pass "
                "float32 arrays (x.astype(numpy.float32))"
            )
    if value.dtype.kind in "iub":
        value = jnp.asarray(value, dtype=jnp.result_type(float))
    if size is not None and (value.ndim == 0 or value.shape[0] != size):
        raise ShapeError(
            f"argument {position} ({names[position]}) must have {size} entries along its first "
            f"axis (one per symbol), got shape {tuple(value.shape)}"
        )
    return value


def _result_dtype(*values: Any) -> Any:
    # JAX's promotion of the arguments (Python floats are weak: they follow the arrays)
    import jax.numpy as jnp

    return jnp.result_type(*values, float)


def _cast(x: Any, dtype: Any) -> Any:
    import jax.numpy as jnp

    return jnp.asarray(x, dtype=dtype)


# The fused operations of codegen.fuse, in JAX: the same contracts as codegen.runtime's NumPy
# helpers (leaves stacked along a new first axis, batch axes last), without in-place writes.


def _rows(items: Any) -> Any:
    import jax
    import jax.numpy as jnp

    if isinstance(items, jax.Array):
        return items
    return jnp.stack(jnp.broadcast_arrays(*[jnp.asarray(v) for v in items]))


def _lift(x: Any, ndim: int) -> Any:
    # rows with fewer batch axes get length-1 axes after the first (batch axes align right)
    if x.ndim >= ndim:
        return x
    return x.reshape(x.shape[:1] + (1,) * (ndim - x.ndim) + x.shape[1:])


def _stack(shape: tuple[int, ...], items: list) -> Any:
    arr = _rows(items)
    return arr.reshape(shape + arr.shape[1:]) if len(shape) > 1 else arr


def _dot(left: Any, right: Any) -> Any:
    # sum_k left[k] * right[k]: one matrix product where the shapes allow it
    a, b = _rows(left), _rows(right)
    if a.ndim == 1 and b.ndim <= 2:
        return a @ b
    if b.ndim == 1 and a.ndim == 2:
        return b @ a
    nd = max(a.ndim, b.ndim)
    return (_lift(a, nd) * _lift(b, nd)).sum(axis=0)


def _gather(shape, where, items, left, right) -> Any:
    # entries at[k] are left[li[k]] * right[ri[k]]; entries rest[k] are items[k]
    import jax.numpy as jnp

    at, li, ri, rest = where
    a, b = _rows(left)[li], _rows(right)[ri]
    nd = max(a.ndim, b.ndim)
    prod = _lift(a, nd) * _lift(b, nd)
    if len(items):
        others = _rows(items)
        nd = max(nd, others.ndim)
        prod, others = _lift(prod, nd), _lift(others, nd)
        batch = jnp.broadcast_shapes(prod.shape[1:], others.shape[1:])
        prod = jnp.concatenate(
            [
                jnp.broadcast_to(prod, (len(at), *batch)),
                jnp.broadcast_to(others, (len(rest), *batch)).astype(prod.dtype),
            ]
        )
    out = prod[_placement(at, rest)]
    return out.reshape(shape + out.shape[1:])


def _placement(at: np.ndarray, rest: np.ndarray) -> np.ndarray:
    # rows stacked as [products..., others...] -> their places: one static gather, no scatter
    where = np.empty(len(at) + len(rest), dtype=np.intp)
    where[at] = np.arange(len(at))
    where[rest] = len(at) + np.arange(len(rest))
    return where


def _gather_mean(shape, where, items, left, right) -> Any:
    # the batch mean of _gather(...): the mean of left[i] * right[j] over the batch is entry
    # (i, j) of one matrix product, left @ right.T / n
    import jax.numpy as jnp

    at, li, ri, rest = where
    a, b = _rows(left), _rows(right)
    nd = max(a.ndim, b.ndim)
    if nd == 1:  # the products have no batch axes
        return _batch_mean(_gather(shape, where, items, a, b), len(shape))
    a, b = _lift(a, nd), _lift(b, nd)
    batch = jnp.broadcast_shapes(a.shape[1:], b.shape[1:])
    others = _rows(items) if len(items) else None
    full = batch if others is None else jnp.broadcast_shapes(batch, others.shape[1:])
    if 0 in full:
        _empty_batch()
    n = int(np.prod(batch))
    a = jnp.broadcast_to(a, a.shape[:1] + batch).reshape(a.shape[0], n)
    b = jnp.broadcast_to(b, b.shape[:1] + batch).reshape(b.shape[0], n)
    pairs = (a @ b.T)[li, ri] / n
    if others is not None:
        means = others.reshape(len(rest), -1).mean(axis=1).astype(pairs.dtype)
        pairs = jnp.concatenate([pairs, means])
    return pairs[_placement(at, rest)].reshape(shape)


def _batch_mean(x: Any, lead: int) -> Any:
    # the mean over the batch axes (those after the output's own ``lead`` axes); sizes are
    # static under tracing, so an empty batch is refused before anything runs
    import jax.numpy as jnp

    x = jnp.asarray(x)
    if x.ndim <= lead:
        return x
    if 0 in x.shape[lead:]:
        _empty_batch()
    return x.mean(axis=tuple(range(lead, x.ndim)))


def _empty_batch() -> None:
    raise ShapeError("reduce='mean' over an empty batch: give at least one sample")


def _indices(text: str) -> np.ndarray:
    return np.array([int(v) for v in text.split(",")] if text else [], dtype=np.intp)


#: What generated JAX code calls, by name.
RUNTIME = {
    f.__name__: f for f in (_rows, _stack, _dot, _gather, _gather_mean, _batch_mean, _indices)
}
