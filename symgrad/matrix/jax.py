"""The matrix path on JAX: the same generated source, run on ``jax.numpy`` under ``jax.jit``.

The matrix code generator prints NumPy calls qualified as ``numpy.*`` and a handful of helpers
(stable softmax, log-sum-exp, log-determinant); every one of them has a ``jax.numpy``
counterpart with the same semantics, so the JAX target runs the same source in a namespace
where ``numpy`` is ``jax.numpy`` and the helpers are JAX's. Shape checks in the prologue read
static shapes, so they also hold under tracing; the result is traceable by the caller's own
``jax.jit``, ``vmap`` and ``grad``.

>>> import numpy as np, sympy as sp
>>> from symgrad.matrix import expr as mx
>>> from symgrad.matrix.codegen import compile_matrix
>>> W, X = sp.MatrixSymbol("W", 2, 3), sp.MatrixSymbol("X", 3, 4)
>>> f = compile_matrix(mx.tanh(mx.matmul(W, X)), [W, X], backend="jax")
>>> f(np.ones((2, 3), np.float32), np.zeros((3, 4), np.float32)).dtype
dtype('float32')
"""

from __future__ import annotations

import hashlib
import linecache
from typing import Any

import numpy as np

from ..codegen.jax import JaxMath, import_jax
from ..errors import DtypeError, ShapeError


def _shape_error(name: str, got: Any, want: str) -> None:
    raise ShapeError(f"argument {name} has shape {tuple(got)}, expected {want}")


def _namespace() -> dict[str, Any]:
    jax = import_jax()
    jnp = jax.numpy

    def asarray(value: Any, _dtype: Any = None) -> Any:
        # keep the argument's dtype (float32 stays float32); float64 needs JAX's 64-bit mode
        if isinstance(value, jax.Array):  # also a tracer inside jit, vmap or grad
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)  # weakly typed: it takes the arrays' dtype
        arr = np.asarray(value)
        if arr.dtype.kind in "iub":
            return jnp.asarray(arr, dtype=jnp.result_type(float))
        if arr.dtype == np.float64 and jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
            raise DtypeError(
                "a float64 array was passed to a JAX function while JAX's 64-bit mode is off: "
                "call jax.config.update('jax_enable_x64', True) at start-up, or pass float32 "
                "arrays (x.astype(numpy.float32))"
            )
        return jnp.asarray(arr)

    def slogdet(a: Any) -> Any:
        sign, value = jnp.linalg.slogdet(a)
        return jnp.where(sign > 0, value, jnp.nan)  # log det is undefined for det <= 0

    return {
        "numpy": jnp,
        "_asarray": asarray,
        "_ndarray": jax.Array,
        "_f64": None,
        "_softmax": lambda z, axis: jax.nn.softmax(z, axis=axis),
        "_logsumexp": lambda z, axis: jax.nn.logsumexp(z, axis=axis, keepdims=True),
        "_slogdet": slogdet,
        "_vmath": JaxMath(),
        "_shape_error": _shape_error,
    }


def jit_source(source: str, name: str, wrap: Any = None) -> Any:
    """The function ``name`` defined by the generated ``source``, run on JAX under ``jax.jit``
    (``wrap(function)`` instead when ``wrap`` is given: a caller's layout of the arguments).

    The wrapper passes JAX arrays through as they are and converts anything else once per
    call; a Python number argument (a learning rate) keeps its converted, weakly typed device
    scalar from the last call with the same value, since converting it costs about as much
    as a small network's whole step (measured: 6 us of 110 us on the demo step).
    """
    jax = import_jax()
    filename = f"<symgrad-matrix-jax:{name}:{hashlib.sha1(source.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = _namespace()
    exec(compile(source, filename, "exec"), namespace)  # generated code only, never user text
    fn = namespace[name]
    jitted = jax.jit(wrap(fn) if wrap is not None else fn)
    asarray = namespace["_asarray"]
    array_type = type(jax.numpy.zeros(()))  # the concrete jax.Array class: a cheap exact test
    scalars: dict[int, tuple[float, bool, Any]] = {}  # position -> (number, x64, on device)
    config = jax.config

    def call(*values: Any) -> Any:
        arrays = list(values)
        for i, v in enumerate(values):
            if v.__class__ is array_type:
                continue
            if v.__class__ is float or v.__class__ is int:
                last = scalars.get(i)
                x64 = config.jax_enable_x64  # the scalar's precision follows the mode
                # 0.0 and -0.0 compare equal but differ: zeros are converted every time
                if (
                    last is not None
                    and last[0].__class__ is v.__class__
                    and last[0] == v != 0
                    and last[1] == x64
                ):
                    arrays[i] = last[2]
                    continue
                arrays[i] = jax.numpy.asarray(v)  # weakly typed: it takes the arrays' dtype
                scalars[i] = (v, x64, arrays[i])
                continue
            # checked before jax.jit, which would silently round float64 to float32
            arrays[i] = asarray(v)
        return jitted(*arrays)

    return call
