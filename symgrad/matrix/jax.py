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


def jit_source(source: str, name: str) -> Any:
    """The function ``name`` defined by the generated ``source``, run on JAX under ``jax.jit``."""
    jax = import_jax()
    filename = f"<symgrad-matrix-jax:{name}:{hashlib.sha1(source.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = _namespace()
    exec(compile(source, filename, "exec"), namespace)  # generated code only, never user text
    jitted = jax.jit(namespace[name])
    asarray = namespace["_asarray"]

    def call(*values: Any) -> Any:
        # checked before jax.jit, which would silently round float64 to float32
        return jitted(*[asarray(v) for v in values])

    return call
