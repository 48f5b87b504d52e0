"""What generated code calls at run time: argument checks, stacking, fused products.

The source that :func:`symgrad.lambdify` generates refers to these helpers by name; they are
kept apart from the code generator so that the generated functions' run-time support is small,
dependency-free (NumPy and ``math`` only) and testable on its own. An exported module
(:meth:`symgrad.CompiledFunction.export`) carries this file's text verbatim: it must import
nothing but ``math``, ``operator`` and NumPy, and define its errors itself when symgrad is not
importable.

>>> import numpy as np
>>> _dot([1.0, 2.0], [np.array([1.0, 0.0]), np.array([3.0, 1.0])]).tolist()
[7.0, 2.0]
"""

import math
import operator

import numpy as np

try:
    from ..errors import ArgumentError, ShapeError
except ImportError:  # in an exported module, where symgrad may not be installed

    class ArgumentError(TypeError):  # type: ignore[no-redef]
        """A wrong argument (symgrad.errors.ArgumentError when symgrad is present)."""

    class ShapeError(ValueError):  # type: ignore[no-redef]
        """A wrong argument shape (symgrad.errors.ShapeError when symgrad is present)."""


class _Missing:
    # the default of every generated parameter: a call with too few arguments is an error
    # naming the missing one, not Python's TypeError
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _too_many(names: list, extra: tuple) -> None:
    raise ArgumentError(
        f"the function takes {len(names)} argument(s) ({', '.join(names)}), got "
        f"{len(names) + len(extra)}"
    )


def _shape_error(exc: ValueError, names: list, values: tuple) -> None:
    # NumPy's broadcast failure as a ShapeError naming every argument's shape
    if "broadcast" in str(exc):
        shapes = ", ".join(f"{n}: {np.shape(v)}" for n, v in zip(names, values, strict=False))
        raise ShapeError(f"argument shapes do not broadcast together ({shapes}): {exc}") from exc


def _describe(obj: object, limit: int = 50) -> str:
    # a short, safe description of obj for error messages
    text = repr(obj)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(obj).__name__} {text}"


def _fmax(*xs: float) -> float:
    # nested numpy.maximum: NaN propagates, a tie gives the later argument (max(0, -0.0) = -0.0)
    m = xs[0]
    for x in xs[1:]:
        if x >= m or x != x:
            m = x
    return m


def _fmin(*xs: float) -> float:
    m = xs[0]
    for x in xs[1:]:
        if x <= m or x != x:
            m = x
    return m


def _ffloor(x: float) -> float:
    # numpy.floor: a float, and a zero keeps the argument's sign (floor(-0.0) = -0.0); math's int
    # is exact and unbounded. NaN and infinities raise in math.floor (the NumPy path answers).
    return math.copysign(math.floor(x), x)


def _fceil(x: float) -> float:
    # numpy.ceil: ceil(-0.5) = -0.0
    return math.copysign(math.ceil(x), x)


def _heaviside(x: float, h0: float) -> float:
    return 1.0 if x > 0 else 0.0 if x < 0 else h0 if x == 0 else x


def _fsign(x: float) -> float:
    # numpy.sign: NaN stays NaN
    return 1.0 if x > 0 else -1.0 if x < 0 else x if x != x else 0.0


def _gamma(x: float) -> float:
    # C99 tgamma: a pole at 0 is an infinity of the zero's sign, a negative integer NaN,
    # overflow +inf
    try:
        return math.gamma(x)
    except OverflowError:
        return math.inf
    except ValueError:
        if x == 0:
            return math.copysign(math.inf, x)
        return math.nan


def _lgamma(x: float) -> float:
    # C99 lgamma: +inf at the poles and on overflow
    try:
        return math.lgamma(x)
    except (OverflowError, ValueError):
        return math.inf if x == x else x


def _loggamma(x: float) -> float:
    # SymPy's loggamma, real part of the principal branch where it is real: lgamma for x > 0,
    # +inf at the poles, nan for x < 0 off the poles (the value is complex there) and at -inf
    if x < 0 and (x == -math.inf or x != math.floor(x)):
        return math.nan
    try:
        return math.lgamma(x)
    except (OverflowError, ValueError):
        return math.inf if x == x else x


def _ieee(scalar):
    # a math function with IEEE answers where math raises: overflow is +inf, a domain error NaN
    def safe(x):
        try:
            return scalar(x)
        except OverflowError:
            return math.inf
        except ValueError:
            return math.nan

    return safe


class _VectorMath:
    """Stands in for ``math`` in generated NumPy code: math functions that also take arrays.

    SymPy prints functions with no NumPy equivalent (``erf``, ``gamma``, ...) as ``math.f``;
    the NumPy target prints them as ``_vmath.f``. Each answers as C99 does where ``math``
    raises (``gamma`` at a pole, overflow), so arrays, NumPy scalars and C agree.
    """

    def __getattr__(self, name: str):
        special = {"gamma": _gamma, "lgamma": _lgamma, "loggamma": _loggamma}
        scalar = special.get(name) or getattr(math, name)
        if not callable(scalar):
            return scalar
        if name not in special:
            scalar = _ieee(scalar)
        ufunc = np.frompyfunc(scalar, 1, 1)

        def vectorised(x):
            if isinstance(x, (float, int)):
                return np.float64(scalar(x))  # NumPy's semantics in what follows
            out = ufunc(x)
            return out.astype(float) if isinstance(out, np.ndarray) else np.float64(out)

        setattr(self, name, vectorised)
        return vectorised


# The fused operations of codegen.fuse: leaves stacked along a new first axis, batch axes last.
# ``xp`` is the array module: NumPy here and in exported modules; jax.numpy for the JAX target
# (codegen/jax.py binds it), where arrays are immutable, so results are assembled by one gather
# instead of in-place writes.


def _batch_mean(x, lead: int, xp=np):
    # the mean over the batch axes: those after the output's own ``lead`` axes (a value that does
    # not depend on the batch is its own mean)
    if xp is not np:
        x = xp.asarray(x)
    if isinstance(x, xp.ndarray) and x.ndim > lead:
        if 0 in x.shape[lead:]:
            _empty_batch()
        return x.mean(axis=tuple(range(lead, x.ndim)))
    return x


def _empty_batch():
    raise ShapeError("reduce='mean' over an empty batch: give at least one sample")


def _rows(items: list, xp=np) -> np.ndarray:
    # leaves of broadcastable shapes stacked along a new first axis (batch axes last); an
    # array is already stacked
    if isinstance(items, xp.ndarray):
        return items
    if xp is not np:
        return xp.stack(xp.broadcast_arrays(*[xp.asarray(v) for v in items]))
    try:
        arr = np.array(items)
    except ValueError:
        arr = np.stack(np.broadcast_arrays(*items))
    # constant leaves (integers) are doubles like every other result
    return arr.astype(float) if arr.dtype.kind in "iub" else arr


def _stack(shape, items, xp=np):
    # One array of ``shape + batch`` from the flat leaves of a rectangular nested output. Leaves
    # that do not depend on the batch stay scalars until here, where all leaves are broadcast
    # together (batch axes last), so a constant row sits beside a batch row.
    arr = _rows(items, xp)
    return arr.reshape(shape + arr.shape[1:]) if len(shape) > 1 else arr


def _lift(x: np.ndarray, ndim: int) -> np.ndarray:
    # stacked rows with fewer batch axes: new length-1 axes after the first, so the batch axes
    # align from the right as they do between the leaves themselves
    if x.ndim >= ndim:
        return x
    return x.reshape(x.shape[:1] + (1,) * (ndim - x.ndim) + x.shape[1:])


def _dot(left: list, right: list, xp=np):
    # sum_k left[k] * right[k] over leaves of broadcastable shapes, as one vectorised product
    a, b = _rows(left, xp), _rows(right, xp)
    if a.ndim == 1 and b.ndim <= 2:
        return a @ b
    if b.ndim == 1 and a.ndim == 2:
        return b @ a
    nd = max(a.ndim, b.ndim)
    return (_lift(a, nd) * _lift(b, nd)).sum(axis=0)


def _last(vector, xp=np):
    # a vector argument with its entries on the last axis, after any batch axes (as in packs,
    # see pack.py): the entries of one member broadcast against batch values from the right
    if vector.ndim <= 2:
        return vector.T
    return xp.moveaxis(vector, 0, -1)


def _cat(items: list, xp=np):
    # values of broadcastable shapes stacked along a new last axis (a pack's operand list)
    return _last(_rows(items, xp), xp)


def _first(packed, xp=np):
    # a pack's columns as rows: members on the first axis, the batch axes after (``_rows``)
    return packed.T if packed.ndim <= 2 else xp.moveaxis(packed, -1, 0)


def _join(parts: list, xp=np):
    # stacked rows (members first) of broadcastable batch shapes, one after another
    batch = parts[0].shape[1:]
    if all(p.shape[1:] == batch for p in parts):
        return xp.concatenate(parts)
    parts = [xp.asarray(p) for p in parts]
    nd = max(p.ndim for p in parts)
    parts = [_lift(p, nd) for p in parts]
    batch = np.broadcast_shapes(*[p.shape[1:] for p in parts])
    return xp.concatenate([xp.broadcast_to(p, p.shape[:1] + batch) for p in parts])


def _total(packed, xp=np):
    # the sum of a pack's members (a sum of many isomorphic terms)
    return packed.sum(axis=-1)


def _mm(operands, weights, xp=np):
    # sum_i operands[..., i] * weights[..., i, k] for every k: one matrix product (weights of a
    # batched vector argument carry the batch axes first)
    if weights.ndim == 2:
        return operands @ weights
    return (operands[..., None, :] @ weights)[..., 0, :]


def _placed(at, rest, first, second, xp=np):
    # rows first[k] at places at[k] and second[k] at rest[k], in one array
    if xp is np:
        out = np.empty((len(at) + len(rest), *first.shape[1:]), np.result_type(first, second))
        out[at], out[rest] = first, second
        return out
    where = np.empty(len(at) + len(rest), dtype=np.intp)  # a static gather: no scatter
    where[at] = np.arange(len(at))
    where[rest] = len(at) + np.arange(len(rest))
    return xp.concatenate([first, second.astype(first.dtype)])[where]


def _gather(shape, where, items: list, left: list, right: list, xp=np):
    # A stacked output whose leaves at flat positions where[0] are the products
    # left[where[1]] * right[where[2]] and whose other leaves (at where[3]) are ``items``.
    at, li, ri, rest = where
    a, b = _rows(left, xp)[li], _rows(right, xp)[ri]
    nd = max(a.ndim, b.ndim)
    prod = _lift(a, nd) * _lift(b, nd)
    others = prod[:0]
    if len(items):
        others = _rows(items, xp)
        nd = max(nd, others.ndim)
        prod, others = _lift(prod, nd), _lift(others, nd)
        batch = np.broadcast_shapes(prod.shape[1:], others.shape[1:])
        prod = xp.broadcast_to(prod, (len(at), *batch))
        others = xp.broadcast_to(others, (len(rest), *batch))
    out = _placed(at, rest, prod, others, xp)
    return out.reshape(shape + out.shape[1:])


def _scaled(shape, one: list, rows: list, mean: bool, xp=np):
    # A stacked output whose every entry is one factor times the next row (an L2 term's
    # c * p_k for every k), or its batch mean: one product, no index arrays.
    a, b = _rows(one, xp), _rows(rows, xp)
    nd = max(a.ndim, b.ndim)
    out = _lift(a, nd) * _lift(b, nd)
    if mean:
        return _batch_mean(out, 1, xp).reshape(shape)
    return out.reshape(shape + out.shape[1:])


def _gather_mean(shape, where, items: list, left: list, right: list, xp=np, blocks=None):
    # The batch mean of ``_gather(...)``, without its per-sample rows: the mean of
    # left[i] * right[j] over the batch is entry (i, j) of one matrix product, left @ right.T
    # (or of one product per block of rows and columns the pairs read, see fuse._blocks).
    at, li, ri, rest = where
    a, b = _rows(left, xp), _rows(right, xp)
    if a.ndim == b.ndim == 2 and a.shape[1] == b.shape[1]:  # one batch axis of one length
        n = a.shape[1]
        others = _rows(items, xp) if len(items) else None
        if n and (others is None or others.shape[1:] == (n,)):
            if blocks is not None:  # one product per block; entries straight to their places
                parts, at = blocks
                picked = [
                    (a[r] @ b[c].T).ravel() if bl is None else (a[r] @ b[c].T)[bl, br]
                    for r, c, bl, br in parts
                ]
                pairs = xp.concatenate(picked) / n
            else:
                pairs = (a @ b.T)[li, ri] / n
            others = pairs[:0] if others is None else others.mean(axis=1)
            return _placed(at, rest, pairs, others, xp).reshape(shape)
    nd = max(a.ndim, b.ndim)
    if nd == 1:  # the products have no batch axes
        return _batch_mean(_gather(shape, where, items, a, b, xp), len(shape), xp)
    a, b = _lift(a, nd), _lift(b, nd)
    batch = np.broadcast_shapes(a.shape[1:], b.shape[1:])
    others = _rows(items, xp) if len(items) else None
    if math.prod(batch if others is None else np.broadcast_shapes(batch, others.shape[1:])) == 0:
        _empty_batch()
    n = math.prod(batch)
    a = xp.broadcast_to(a, a.shape[:1] + batch).reshape(a.shape[0], n)
    b = xp.broadcast_to(b, b.shape[:1] + batch).reshape(b.shape[0], n)
    pairs = (a @ b.T)[li, ri] / n
    others = pairs[:0] if others is None else others.reshape(len(rest), -1).mean(axis=1)
    return _placed(at, rest, pairs, others, xp).reshape(shape)


def _picker(text: str) -> operator.itemgetter:
    # the entries of a vector argument that generated code names (at least two)
    return operator.itemgetter(*(int(v) for v in text.split(",")))


def _indices(text: str) -> np.ndarray:
    # index arrays are kept in the generated source as one string constant each
    return np.array([int(v) for v in text.split(",")] if text else [], dtype=np.intp)


def _coerce(value: object, position: int, names: list) -> object:
    """A scalar argument as a float (or a float/complex array)."""
    if value is _MISSING:
        raise ArgumentError(
            f"argument {position} ({names[position]}) is missing: the function takes "
            f"{len(names)} argument(s) ({', '.join(names)})"
        )
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, (str, bytes)):
        raise ArgumentError(
            f"argument {position} ({names[position]}) must be a number or an array of numbers, "
            f"got {_describe(value)}"
        )
    if isinstance(value, (int, float)):
        # a NumPy scalar: IEEE answers with a warning (1/0.0 is inf), as for arrays
        try:
            return np.float64(value)
        except OverflowError:
            raise ArgumentError(
                f"argument {position} ({names[position]}) is an integer too large for a double"
            ) from None
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise ArgumentError(
            f"argument {position} ({names[position]}) is not a numeric array: {exc}"
        ) from exc
    if arr.dtype.kind in "iub":
        arr = arr.astype(float)
    elif arr.dtype.kind not in "fc":
        raise ArgumentError(
            f"argument {position} ({names[position]}) must be numeric, got an array of dtype "
            f"{arr.dtype}"
        )
    return arr if arr.ndim else arr[()]


def _coerce_vector(
    value: object, position: int, names: list, size: int, as_list: bool = False
) -> object:
    """A vector argument: first axis of length ``size`` (the symbols), any batch axes after."""
    arr = _coerce(value, position, names)
    if np.ndim(arr) == 0:
        raise ShapeError(
            f"argument {position} ({names[position]}) must be an array with {size} entries along "
            "its first axis, got a scalar"
        )
    if arr.shape[0] != size:
        raise ShapeError(
            f"argument {position} ({names[position]}) must have {size} entries along its first "
            f"axis (one per symbol), got shape {arr.shape}"
        )
    return arr.tolist() if arr.ndim == 1 and as_list else arr


def _dense_columns(scalars: list, theta: object) -> tuple[list, int] | None:
    """The batch as 1-D float64 columns and its size, for a function compiled by layers.

    None (the scalar program answers) unless the parameters are one float64 vector and every
    other argument is float64 with a non-empty common batch shape.
    """
    if type(theta) is not np.ndarray or theta.ndim != 1 or theta.dtype != np.float64:
        return None
    shapes = []
    for x in scalars:
        if getattr(x, "dtype", None) != np.float64:
            return None
        shapes.append(np.shape(x))
    if shapes and all(sh == shapes[0] for sh in shapes) and len(shapes[0]) == 1:
        return (list(scalars), shapes[0][0]) if shapes[0][0] else None  # one batch axis
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        return None
    size = math.prod(shape)
    if size == 0:
        return None
    return [np.broadcast_to(x, shape).reshape(size) for x in scalars], size


def _float_path(*args: object) -> object:
    """The fast path of a large program before it is built (or where it cannot be): none.

    The compiled function's own namespace replaces it by the path built on the first call on
    Python floats; an exported or unpickled module keeps this one, and its calls run the NumPy
    statements (the ``TypeError`` is the caller's signal to do so).
    """
    raise TypeError("no Python-float path: the NumPy statements answer")


#: The helpers by the names generated code uses.
HELPERS = {
    f.__name__: f
    for f in (
        _stack,
        _rows,
        _dot,
        _gather,
        _gather_mean,
        _scaled,
        _last,
        _first,
        _join,
        _total,
        _cat,
        _mm,
        _indices,
        _picker,
        _batch_mean,
        _coerce,
        _coerce_vector,
        _fmax,
        _fmin,
        _ffloor,
        _fceil,
        _fsign,
        _heaviside,
        _loggamma,
        _too_many,
        _shape_error,
        _float_path,
        _dense_columns,
    )
}
