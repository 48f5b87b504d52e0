"""Compile matrix expressions to NumPy: ``@``, broadcasting, stable softmax / log-sum-exp.

Like the scalar :mod:`symgrad.codegen`, the generated function has one statement per unique
DAG node of all outputs together (so the forward values are shared by every gradient: common
subexpressions are eliminated across value and gradient), and statements nobody reads are dropped.
Symbolic dimensions (a batch size ``B``) are read from the argument shapes at call time, so one
compiled function runs on any batch size. Arguments are checked for shape with a
:class:`~symgrad.errors.ShapeError` naming the argument.

>>> import numpy as np, sympy as sp
>>> from symgrad.matrix import expr as mx
>>> B = sp.Symbol("B", integer=True, positive=True)
>>> W, X = sp.MatrixSymbol("W", 2, 3), sp.MatrixSymbol("X", 3, B)
>>> f = compile_matrix(mx.tanh(mx.matmul(W, X)), [W, X], fuse=False)
>>> f(np.zeros((2, 3)), np.ones((3, 5))).shape
(2, 5)
>>> print(f.source)  # with fuse=True, tanh is a C loop when a compiler works (fused.py)
def symgrad_matrix_fn(a0=_MISSING, a1=_MISSING, *_extra):
    if _extra or a1 is _MISSING: _arity(('W', 'X'), (a0, a1), _extra)
    if a0.__class__ is not _ndarray: a0 = _asarray(a0, _f64)
    if a0.shape != (2, 3): _shape_error('W', a0.shape, '(2, 3)')
    if a1.__class__ is not _ndarray: a1 = _asarray(a1, _f64)
    s1 = a1.shape
    if len(s1) != 2 or s1[0] != 3: _shape_error('X', a1.shape, '(3, B)')
    d0 = s1[1]
    t0 = a0 @ a1
    t1 = numpy.tanh(t0, out=t0)
    del t0
    return t1
<BLANKLINE>
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import linecache
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp
from sympy.matrices.expressions import (
    Determinant,
    HadamardPower,
    HadamardProduct,
    Identity,
    Inverse,
    KroneckerProduct,
    MatAdd,
    MatMul,
    MatrixExpr,
    MatrixSymbol,
    Trace,
    Transpose,
    ZeroMatrix,
)
from sympy.matrices.expressions.blockmatrix import BlockMatrix
from sympy.matrices.expressions.diagonal import DiagMatrix
from sympy.matrices.expressions.special import OneMatrix

from ..codegen import c_build
from ..codegen.compile import check_name
from ..codegen.printers import NumPyTargetPrinter
from ..codegen.runtime import _MISSING, _VectorMath
from ..errors import (
    ArgumentError,
    BackendUnavailableError,
    InputTypeError,
    MissingSymbolError,
    OptionError,
    ShapeError,
)
from ..inputs import check_choice
from . import expr as mx
from . import fused, fused_entry
from . import native as native_entry
from .expr import Broadcast, Commutation, LogDet, LogSumExp, Map, Softmax, SumAll, SumAxis
from .simplify import push_scalars, simplify
from .update import GEMM_FROM, param_check, param_error, place_updates, sub_product
from .vjp import grad as matrix_grad

__all__ = ["CompiledMatrixFunction", "compile_matrix", "value_and_grad"]

_counter = itertools.count()


class _Printer(NumPyTargetPrinter):
    """The scalar NumPy target's printer (exact numbers and constants, ``_vmath`` for functions
    NumPy lacks) with ``maximum`` for relu."""

    def _print_Max(self, expr):
        if len(expr.args) == 2:
            a, b = (self._print(a) for a in expr.args)
            return f"numpy.maximum({a}, {b})"
        return super()._print_Max(expr)


def _softmax(z: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _logsumexp(z: np.ndarray, axis: int) -> np.ndarray:
    m = z.max(axis=axis, keepdims=True)
    return m + np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def _slogdet(a: np.ndarray) -> float:
    sign, value = np.linalg.slogdet(a)
    return value if sign > 0 else np.nan  # log det is undefined for det <= 0


#: results from this many rows on may use syrk (:func:`_gram`)
GRAM_SYRK_FROM = 128


def _gram(x: np.ndarray, s: np.ndarray, left: bool) -> np.ndarray:
    """``x^T diag(s) x``, or ``x diag(s) x^T`` if ``left``; ``s`` is a column.

    With ``s >= 0`` it is ``z^T z`` for ``z = diag(sqrt(s)) x``, and NumPy multiplies an array
    by its own transpose with BLAS ``syrk``: half the flops of the general product, and an
    exactly symmetric result. For small results the general product is as fast, and with a
    negative or NaN weight (``s.min() >= 0`` is then false) it is the one that is right.
    """
    if left:
        s = s.T
    # from 128 rows of the result on, syrk pays for the square roots and the check (measured)
    if x.shape[0 if left else 1] >= GRAM_SYRK_FROM and x.size and s.min() >= 0:
        z = np.sqrt(s) * x
        return z @ z.T if left else z.T @ z
    return (x * s) @ x.T if left else x.T @ (s * x)


def _add_transposed(x: np.ndarray, y: np.ndarray, blocked_from: int = 3 << 20) -> np.ndarray:
    """``x + y^T``, block by block for large matrices.

    Adding a matrix to a transposed one walks one of them across rows, a cache miss per entry
    once the matrices are far larger than the cache (measured: from about 1700 x 1700 on; below,
    NumPy's own loop is faster); a 128 x 128 block (128 KiB) and its transpose fit in cache
    together. For ``x + x^T`` (a symmetric result) each pair of blocks is added once.
    """
    n, m = x.shape
    b = 128
    if n * m < blocked_from or x.shape != y.shape[::-1]:
        return x + y.T
    out = np.empty((n, m), dtype=np.result_type(x, y))
    same = x is y
    for i in range(0, n, b):
        for j in range(i if same else 0, m, b):
            block = out[i : i + b, j : j + b]
            np.add(x[i : i + b, j : j + b], y[j : j + b, i : i + b].T, out=block)
            if same and j != i:
                out[j : j + b, i : i + b] = block.T
    return out


def _kron_identity(n: int, m: np.ndarray, first: bool) -> np.ndarray:
    """``I_n ⊗ m`` (``first``) or ``m ⊗ I_n`` without multiplying by the zeros of ``I_n``.

    ``numpy.zeros`` takes zeroed pages from the system lazily, so only the pages holding the
    ``n`` copies of ``m``'s entries are ever written (``numpy.kron`` writes all ``(n p)(n q)``).
    """
    p, q = m.shape
    out = np.zeros((n * p, n * q), dtype=np.result_type(m, np.float64))
    if first:  # block (i, i) is m: out[i p + a, i q + b] = m[a, b]
        blocks = out.reshape(n, p, n, q)
        s = blocks.strides
        view = np.lib.stride_tricks.as_strided(blocks, (n, p, q), (s[0] + s[2], s[1], s[3]))
        view[...] = m
    else:  # block (a, b) is m[a, b] I_n: out[a n + i, b n + i] = m[a, b]
        blocks = out.reshape(p, n, q, n)
        s = blocks.strides
        view = np.lib.stride_tricks.as_strided(blocks, (p, q, n), (s[0], s[2], s[1] + s[3]))
        view[...] = m[:, :, None]
    return out


def _scratch(pool: dict, slot: int, shape: tuple, *operands: Any) -> np.ndarray | None:
    """This thread's scratch array for statement ``slot``, or None (NumPy then allocates).

    Only for operands that are arrays of one floating dtype (and Python numbers): then every
    product and entrywise operation the generator pools keeps that dtype, so the scratch array
    has the dtype NumPy would have chosen.
    """
    dtype = None
    for o in operands:
        if o.__class__ is np.ndarray:
            if dtype is None:
                dtype = o.dtype
            elif o.dtype != dtype:
                return None
        elif o.__class__ is not float and o.__class__ is not int:
            return None
    if dtype is None or dtype.kind != "f":
        return None
    buf = pool.get(slot)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = pool[slot] = np.empty(shape, dtype)
    return buf


def _shape_error(name: str, got: Any, want: str) -> None:
    raise ShapeError(f"argument {name} has shape {got}, expected {want}")


def _arity(names: tuple, given: tuple, extra: tuple) -> None:
    count = sum(v is not _MISSING for v in given) + len(extra)
    raise ArgumentError(f"expected {len(names)} arguments ({', '.join(names)}), got {count}")


_NAMESPACE = {
    "numpy": np,
    "_asarray": np.asarray,
    "_ndarray": np.ndarray,
    "_f64": np.float64,
    "_softmax": _softmax,
    "_logsumexp": _logsumexp,
    "_slogdet": _slogdet,
    "_gram": _gram,
    "_add_transposed": _add_transposed,
    "_kron_identity": _kron_identity,
    "_shape_error": _shape_error,
    "_MISSING": _MISSING,
    "_arity": _arity,
    "_sub_product": sub_product,
    "_scratch": _scratch,
    "_total_of": fused.total_of,
    "_param_error": param_error,
    "_vmath": _VectorMath(),  # functions NumPy lacks (erf, gamma, ...), as the scalar target
}


class CompiledMatrixFunction(functools.partial):
    """A compiled matrix function: call it with NumPy arrays in the order of ``args``.

    Calling it runs the generated function directly (no Python wrapper per call), which
    checks the number of arguments itself.

    Attributes:
        source: the generated Python source (one statement per unique node).
        args: the argument symbols.

    >>> import numpy as np, sympy as sp
    >>> A = sp.MatrixSymbol("A", 2, 2)
    >>> f = compile_matrix(mx.trace(A), [A])
    >>> float(f(np.eye(2)))
    2.0
    """

    def __new__(cls, fn: Any, source: str, args: list, outputs: Any, native: Any = None):
        self = super().__new__(cls, fn if native is None else native)
        self.source, self._symbols, self.outputs, self._python = source, args, outputs, fn
        if native is not None:  # the program as one C function, built on a later call
            native_entry.attach(self, native)
        return self

    @property
    def args(self) -> list:  # functools.partial's own ``args`` (bound arguments) is empty
        return self._symbols

    @property
    def _fn(self) -> Any:
        # the generated NumPy function (its globals are the generated module's namespace)
        return self._python

    def __repr__(self) -> str:
        return f"CompiledMatrixFunction(args=[{', '.join(str(a) for a in self.args)}])"


def _check_args(args: Any) -> list:
    items = list(args) if isinstance(args, (list, tuple)) else [args]
    for a in items:
        if not isinstance(a, (MatrixSymbol, sp.Symbol)):
            raise InputTypeError(f"args must be MatrixSymbol or Symbol objects, got {a!r}")
    if len(set(items)) != len(items):
        raise InputTypeError(f"args contain a duplicate: {items}")
    return items


def _flatten(outputs: Any) -> tuple[list, Any]:
    flat: list = []

    def spec(o: Any) -> Any:  # nesting of outputs is shallow (lists of gradients), not a graph
        if isinstance(o, (list, tuple)):
            return [spec(i) for i in o]
        if not isinstance(o, sp.Basic):
            if isinstance(o, (int, float)) and not isinstance(o, bool):
                o = sp.Float(o)
            else:
                raise InputTypeError(f"outputs must be SymPy (matrix) expressions, got {o!r}")
        flat.append(o)
        return len(flat) - 1

    return flat, spec(outputs)


def compile_matrix(
    outputs: Any,
    args: Any,
    *,
    name: str = "symgrad_matrix_fn",
    backend: str = "numpy",
    fuse: bool = True,
) -> CompiledMatrixFunction:
    """Compile matrix/scalar expressions to one NumPy function.

    Args:
        outputs: an expression or a (nested) list/tuple of them.
        args: the ``MatrixSymbol``/``Symbol`` arguments, in call order.
        name: the generated function's name.
        backend: ``"numpy"`` or ``"jax"`` (the same code on ``jax.numpy`` under ``jax.jit``,
            see :mod:`symgrad.matrix.jax`).
        fuse: with NumPy, compute chains of entrywise operations on large arrays in one C loop
            each when a C compiler works (:mod:`symgrad.matrix.fused`; NumPy computes the same
            values otherwise). False keeps every operation in NumPy.

    Returns:
        A :class:`CompiledMatrixFunction` returning outputs in the same nesting.

    Raises:
        MissingSymbolError: an output uses a symbol that is not in ``args``.
        InputTypeError: ``args`` are not symbols.
        OptionError: ``name`` is not a safe identifier for the generated function.
        BackendUnavailableError: ``backend`` is neither ``"numpy"`` nor ``"jax"``.

    >>> import numpy as np, sympy as sp
    >>> x = sp.MatrixSymbol("x", 3, 1)
    >>> f = compile_matrix([mx.sumsq(x), mx.scale(2, x)], [x])
    >>> f(np.array([[1.0], [2.0], [2.0]]))[0]
    np.float64(9.0)
    """
    check_name(name)
    backend = check_choice(backend, ("numpy", "jax"), "backend", BackendUnavailableError)
    arg_list = _check_args(args)
    if not isinstance(fuse, bool):
        raise OptionError(f"fuse must be True or False, got {fuse!r}")
    program: list = []
    fn, source = _build(outputs, arg_list, name, backend, fuse=fuse, program=program)
    native = None
    if backend == "numpy" and fuse:
        native = native_entry.lazy_entry(fn, arg_list, *program)
    return CompiledMatrixFunction(fn, source, arg_list, outputs, native)


def _build(
    outputs: Any,
    arg_list: list,
    name: str,
    backend: str,
    updates: dict[int, int] | None = None,
    wrap: Any = None,
    fuse: bool = True,
    program: list | None = None,
) -> tuple[Any, str]:
    """``(callable, source)`` for checked arguments; ``updates`` as for :func:`_generate`,
    ``wrap`` as for :func:`symgrad.matrix.jax.jit_source`; ``program``, if given, receives the
    rewritten outputs and their nesting (``flat, spec``)."""
    flat, spec = _flatten(outputs)
    flat = push_scalars(simplify(flat))
    if program is not None:
        program += [flat, spec]
    source, kernels = _generate(
        arg_list, flat, spec, name, in_place=backend != "jax", updates=updates, fuse=fuse
    )
    if backend == "jax":
        from .jax import jit_source

        return _counted(jit_source(source, name, wrap), arg_list, wrap), source
    filename = f"<symgrad-matrix-{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = dict(_NAMESPACE)
    namespace["_local"] = threading.local()  # this function's scratch arrays, per thread
    exec(compile(source, filename, "exec"), namespace)
    if kernels:
        helpers = tuple(h for h in fused_entry.HELPERS if f"{h}(" in source)
        library = namespace["_fused_library"] = fused.Library(kernels, namespace, helpers)
        for k, group in kernels:
            namespace[k] = fused.FusedKernel(k, group, namespace[f"{k}_numpy"], library)
    return namespace[name], source


def _counted(fn: Any, args: list, wrap: Any) -> Any:
    """``fn`` (a jitted function, whose source has no defaults) behind an arity check."""
    if wrap is not None:  # the caller (sgd_step's flat layout) checks its own arguments
        return fn
    names = tuple(str(a) for a in args)

    def checked(*values: Any) -> Any:
        if len(values) != len(names):
            _arity(names, values, ())
        return fn(*values)

    return checked


class _Gen:
    """State of one code generation: names of nodes and the statements so far."""

    def __init__(self, args: list, kernels: bool = True) -> None:
        self.kernels = kernels  # call the NumPy helpers (_gram, ...); XLA fuses on its own
        self.ref: dict[sp.Basic, str] = {}
        self.lines: list[tuple[str, str, set[str]]] = []  # (target, code, names used)
        self.prologue: list[str] = []
        self.printer = _Printer()
        self.dims: dict[sp.Basic, str] = {}
        self.shapes: dict[str, tuple] = {}
        for i, a in enumerate(args):
            self.ref[a] = f"a{i}"
        for i, a in enumerate(args):
            if isinstance(a, MatrixSymbol):
                self._bind(i, a)

    def _bind(self, i: int, a: MatrixSymbol) -> None:
        v = f"a{i}"
        # converting only non-arrays keeps the per-call overhead at a few hundred nanoseconds
        self.prologue.append(f"    if {v}.__class__ is not _ndarray: {v} = _asarray({v}, _f64)")
        want = "(" + ", ".join(str(d) for d in a.shape) + ")"
        fail = f"_shape_error({str(a)!r}, {v}.shape, {want!r})"
        if all(d.is_Integer for d in a.shape):
            self.prologue.append(
                f"    if {v}.shape != ({int(a.shape[0])}, {int(a.shape[1])}): {fail}"
            )
            return
        checks = []
        for axis, d in enumerate(a.shape):
            if d.is_Integer:
                checks.append(f"s{i}[{axis}] != {int(d)}")
            elif d in self.dims:
                checks.append(f"s{i}[{axis}] != {self.dims[d]}")
        self.prologue.append(f"    s{i} = {v}.shape")
        cond = " or ".join([f"len(s{i}) != 2", *checks])
        self.prologue.append(f"    if {cond}: {fail}")
        for axis, d in enumerate(a.shape):
            if not d.is_Integer and d not in self.dims:
                if not isinstance(d, sp.Symbol):
                    raise InputTypeError(f"dimension {d} of {a} must be an integer or a Symbol")
                self.dims[d] = f"d{len(self.dims)}"
                self.prologue.append(f"    {self.dims[d]} = s{i}[{axis}]")

    # -- printing helpers
    def dim(self, d: sp.Basic) -> str:
        return self.scalar_code(d)

    def scalar_code(self, e: sp.Basic) -> str:
        """Print a small scalar (numbers and dimension symbols) inline."""
        if e in self.ref:
            return self.ref[e]
        if e.is_Number:
            return repr(float(e)) if not e.is_Integer else str(int(e))
        missing = [s for s in e.free_symbols if s not in self.dims and s not in self.ref]
        if missing:
            raise MissingSymbolError(
                f"{e} uses {missing}, which are not arguments; add them to args"
            )
        names = {s: sp.Symbol(self.dims.get(s) or self.ref[s]) for s in e.free_symbols}
        return self.printer.doprint(e.xreplace(names))

    def elem(self, child: sp.Basic) -> tuple[str, bool]:
        """(code, full) for use in an elementwise operation; broadcasts are left to NumPy."""
        c, base = mx._split(child) if isinstance(child, MatrixExpr) else (sp.S.One, child)
        if isinstance(base, OneMatrix):
            return self.scalar_code(c), False
        if isinstance(child, Broadcast):
            return self.use(child.arg), False
        return self.use(child), True

    def use(self, node: sp.Basic) -> str:
        if node in self.ref:
            return self.ref[node]
        if isinstance(node, MatrixSymbol | sp.Symbol) and node not in self.dims:
            raise MissingSymbolError(
                f"the outputs use {node}, which is not in args; add it to args"
            )
        return self.scalar_code(node)

    def emit(self, node: sp.Basic, code: str, uses: set[str]) -> None:
        target = f"t{len(self.lines)}"
        self.lines.append((target, code, uses))
        self.ref[node] = target
        self.shapes[target] = tuple(node.shape) if isinstance(node, MatrixExpr) else ()


def _deps(g: _Gen, node: sp.Basic) -> set[str]:
    return {g.ref[a] for a in mx.operands(node) if a in g.ref} | (
        {g.ref[a.arg] for a in mx.operands(node) if isinstance(a, Broadcast) and a.arg in g.ref}
    )


def _node_code(g: _Gen, node: sp.Basic) -> str | None:
    """The right-hand side for one node, its operands already named."""
    if isinstance(node, (MatrixSymbol, sp.Symbol)) or node.is_Number:
        return None
    if isinstance(node, Identity):
        return f"numpy.eye({g.dim(node.shape[0])})"
    if isinstance(node, OneMatrix):
        return f"numpy.ones(({g.dim(node.shape[0])}, {g.dim(node.shape[1])}))"
    if isinstance(node, ZeroMatrix):
        return f"numpy.zeros(({g.dim(node.shape[0])}, {g.dim(node.shape[1])}))"
    if isinstance(node, MatAdd) and g.kernels and (pair := _plus_transpose(node)):
        return f"_add_transposed({g.use(pair[0])}, {g.use(pair[1])})"
    if isinstance(node, (MatAdd, HadamardProduct, Map)):
        parts = [g.elem(a) for a in mx.operands(node)]
        if isinstance(node, MatAdd):
            code = _sum_code(g, node)
        elif isinstance(node, HadamardProduct):
            code = " * ".join(_paren(p) for p, _ in parts)
        else:
            names = {v: sp.Symbol(p) for v, (p, _) in zip(node.lam.variables, parts, strict=True)}
            code = g.printer.doprint(node.lam.expr.xreplace(names))
        if not any(full for _, full in parts):
            code = f"numpy.broadcast_to({code}, ({g.dim(node.shape[0])}, {g.dim(node.shape[1])}))"
        return code
    if isinstance(node, MatMul):
        coeff, mats = node.as_coeff_matrices()
        prod = _product_code(g, mats)
        if coeff == 1:
            return prod
        c = g.use(coeff) if coeff in g.ref else g.scalar_code(coeff)
        return f"{_paren(c)} * ({prod})" if len(mats) > 1 else f"{_paren(c)} * {prod}"
    if isinstance(node, DiagMatrix):
        return f"numpy.diagflat({g.use(node.args[0])})"
    if isinstance(node, Transpose):
        return f"{g.use(node.arg)}.T"
    if isinstance(node, Commutation):  # the permutation with K vec(Y) = vec(Y^T), Y (p, q)
        p, q = (g.dim(d) for d in node.args)
        return f"numpy.eye({p} * {q})[numpy.arange({p} * {q}).reshape({p}, {q}).T.ravel()]"
    if isinstance(node, KroneckerProduct):
        if g.kernels and len(node.args) == 2 and any(isinstance(a, Identity) for a in node.args):
            first = isinstance(node.args[0], Identity)
            eye, m = node.args if first else node.args[::-1]
            return f"_kron_identity({g.dim(eye.shape[0])}, {g.use(m)}, {first})"
        code = g.use(node.args[0])
        for a in node.args[1:]:
            code = f"numpy.kron({code}, {g.use(a)})"
        return code
    if isinstance(node, BlockMatrix):
        rows = node.blocks.tolist()
        inner = ", ".join("[" + ", ".join(g.use(b) for b in row) + "]" for row in rows)
        return f"numpy.block([{inner}])"
    if isinstance(node, HadamardPower):
        return f"{g.use(node.args[0])} ** {g.scalar_code(node.args[1])}"
    if isinstance(node, Inverse):
        return f"numpy.linalg.inv({g.use(node.arg)})"
    if isinstance(node, Trace):
        return f"numpy.trace({g.use(node.arg)})"
    if isinstance(node, Determinant):
        return f"numpy.linalg.det({g.use(node.arg)})"
    if isinstance(node, LogDet):
        return f"_slogdet({g.use(node.arg)})"
    if isinstance(node, SumAll):
        return f"{g.use(node.arg)}.sum()"
    if isinstance(node, SumAxis):
        return f"{g.use(node.args[0])}.sum(axis={node.axis}, keepdims=True)"
    if isinstance(node, Broadcast):
        rows, cols = (g.dim(d) for d in node.shape)
        return f"numpy.broadcast_to({g.use(node.arg)}, ({rows}, {cols}))"
    if isinstance(node, Softmax):
        lse = LogSumExp(*node.args)
        if g.kernels and lse in g.ref:
            # softmax(z) = exp(z - logsumexp(z)): with the log-sum-exp known (the loss's
            # forward value), two passes over z instead of five
            return f"numpy.exp({g.use(node.args[0])} - {g.ref[lse]})"
        return f"_softmax({g.use(node.args[0])}, {node.axis})"
    if isinstance(node, LogSumExp):
        return f"_logsumexp({g.use(node.args[0])}, {node.axis})"
    if isinstance(node, MatrixExpr):
        raise InputTypeError(f"cannot compile the matrix node {type(node).__name__}: {node}")
    # a scalar node: SymPy's printer with the operands replaced by their names
    kids = [_scalar_operand(g, a) for a in node.args]
    if isinstance(node, (sp.Add, sp.Mul, sp.Pow)):
        return g.printer.doprint(node.func(*kids, evaluate=False))
    return g.printer.doprint(node.func(*kids))


def _product_code(g: _Gen, mats: Sequence[MatrixExpr]) -> str:
    """``A @ B @ ...`` with diagonal factors as broadcasts: ``X^T diag(s) X`` is ``X.T @ (s * X)``.

    A ``diag(s)`` (``s`` a column) scales the rows of its right neighbour (or the columns of its
    left one), so no dense ``n x n`` diagonal is ever built.
    """
    parts: list[str] = []
    pending: list[str] = []  # diagonals waiting for a right neighbour
    for m in _grams(g, mats) if g.kernels else mats:
        if isinstance(m, DiagMatrix):
            pending.append(g.use(m.args[0]))
            continue
        code = m if isinstance(m, str) else g.use(m)  # a str: a weighted Gram product's code
        for d in reversed(pending):
            code = f"{_paren(d)} * {_paren(code)}"
        pending = []
        parts.append(code)
    if pending:
        if not parts:  # a product of diagonals only
            return f"numpy.diagflat({' * '.join(_paren(d) for d in pending)})"
        last = parts.pop()
        for d in pending:
            last = f"{_paren(last)} * {_paren(d)}.T"
        parts.append(last)
    return " @ ".join(_paren(p) if "*" in p and len(parts) > 1 else p for p in parts)


def _grams(g: _Gen, mats: Sequence[MatrixExpr]) -> list:
    """``mats`` with each ``X^T diag(s) X`` (and ``X diag(s) X^T``) replaced by its code."""
    out: list = []
    i = 0
    while i < len(mats):
        a, d, b = [*mats[i : i + 3], None, None][:3]
        if isinstance(d, DiagMatrix) and d.args[0].shape[1] == 1:
            if isinstance(a, Transpose) and a.arg == b:
                out.append(_gram_code(g, b, d.args[0], False))
                i += 3
                continue
            if isinstance(b, Transpose) and b.arg == a:
                out.append(_gram_code(g, a, d.args[0], True))
                i += 3
                continue
        out.append(a)
        i += 1
    return out


def _gram_code(g: _Gen, x: MatrixExpr, s: MatrixExpr, left: bool) -> str:
    """``_gram(x, s, left)``; below its syrk size (known or tested inline) the general product
    itself, which is what ``_gram`` would run, without the call."""
    xs, ss = g.use(x), g.use(s)
    general = f"({xs} * {ss}.T) @ {xs}.T" if left else f"{xs}.T @ ({ss} * {xs})"
    call = f"_gram({xs}, {ss}, {left})"
    side = x.shape[0 if left else 1]
    if side.is_Integer:
        return call if int(side) >= GRAM_SYRK_FROM else general
    return f"{call} if {g.dim(side)} >= {GRAM_SYRK_FROM} else {general}"


def _scalar_operand(g: _Gen, a: sp.Basic) -> sp.Basic:
    if a in g.ref:
        return sp.Symbol(g.ref[a])
    if a in g.dims:
        return sp.Symbol(g.dims[a])
    if isinstance(a, sp.Symbol):
        g.use(a)  # raises MissingSymbolError
    return a


def _paren(code: str) -> str:
    return code if code.replace("_", "").replace(".", "").isalnum() else f"({code})"


def _plus_transpose(node: MatAdd) -> tuple[MatrixExpr, MatrixExpr] | None:
    """``(X, Y)`` if ``node`` is ``X + Y^T`` of (non-vector) matrices, else None."""
    if len(node.args) != 2 or 1 in node.shape:
        return None
    a, b = node.args
    if isinstance(a, Transpose) and not isinstance(b, Transpose):
        a, b = b, a
    if isinstance(b, Transpose) and not isinstance(a, Transpose):
        return a, b.arg
    return None


def _sum_code(g: _Gen, node: MatAdd) -> str:
    out = []
    for term in node.args:
        c, base = mx._split(term)
        if isinstance(base, OneMatrix):
            code, sign = (
                g.scalar_code(abs(c) if c.is_number else c),
                "-" if c.is_number and c < 0 else "+",
            )
        elif isinstance(term, Broadcast):
            code, sign = g.use(term.arg), "+"
        elif c == -1:
            code, sign = g.use(base) if base in g.ref else g.use(term), "-"
            if base not in g.ref:
                sign = "+"
        else:
            code, sign = g.use(term), "+"
        out.append((sign, _paren(code)))
    out.sort(key=lambda item: item[0] == "-")  # "1 - h*h": one subtraction, not negate + add
    text = ("-" if out[0][0] == "-" else "") + out[0][1]
    for sign, code in out[1:]:
        text += f" {sign} {code}"
    return text


def _generate(
    args: list,
    flat: list,
    spec: Any,
    name: str,
    in_place: bool = True,
    updates: dict[int, int] | None = None,
    fuse: bool = False,
) -> tuple[str, list[tuple[str, fused.Group]]]:
    # in_place: reuse dead temporaries' memory (NumPy); JAX arrays are immutable (jax.py).
    # fuse: entrywise trees as C loops (fused.py) where a C compiler works; returns the source
    # and the fused kernels' (name, group)
    # updates {output position: argument position}: subtract that output from that argument in
    # place (update.py) and return the argument in the output's place (NumPy only)
    g = _Gen(args, kernels=in_place)
    order = mx.value_nodes(flat)
    groups = _fusion(order, flat) if in_place and fuse else {}
    inner = {n for group in groups.values() for n in group.inner}
    kernels: list[tuple[str, fused.Group]] = []
    below: dict[str, Any] = {}  # fused target -> its NumPy path for small arrays, or None
    for node in order:
        if node in g.ref or node in inner:
            continue
        if node in groups:
            group = groups[node]
            small = _small_path(g, group)
            code, total = _fused_call(g, group, len(kernels), small)
            g.emit(node, code, set())
            below[g.ref[node]] = small
            if total:  # named after the call that fills it (update.py reads names)
                g.emit(group.total, _total_code(g, group, total, small), set())
            kernels.append((f"_fused{len(kernels)}", group))
            continue
        code = _node_code(g, node)
        if code is None:
            g.use(node)  # a leaf: an argument, a number or a dimension (else MissingSymbolError)
            continue
        g.emit(node, code, set())
    # liveness: drop statements that no output reads (e.g. broadcasts folded into NumPy's)
    out_names = [g.use(o) for o in flat]
    needed = set(out_names)
    kept = []
    for target, code, _ in reversed(g.lines):
        if target in needed:
            kept.append((target, code))
            needed |= set(_names_in(code))
    kept.reverse()
    if updates:
        pairs = [(f"a{i}", out_names[k]) for k, i in updates.items()]
        small = frozenset(
            f"a{i}"
            for i in updates.values()
            if (size := sp.Mul(*args[i].shape)).is_Integer and int(size) < GEMM_FROM
        )
        kept = place_updates(kept, pairs, len(g.lines), small)
        for k, i in updates.items():
            out_names[k] = f"a{i}"
        # before the conversion of non-arrays: a converted copy would be updated, not the caller's
        g.prologue[:0] = [param_check(f"a{i}", str(args[i])) for i in sorted(set(updates.values()))]

    def build(s: Any) -> str:
        if isinstance(s, list):
            inner = ", ".join(build(i) for i in s)
            return f"({inner},)" if len(s) == 1 else f"({inner})"
        return out_names[s]

    if in_place:
        # called directly (CompiledMatrixFunction is a partial): the arity is checked here
        params = "".join(f"a{i}=_MISSING, " for i in range(len(args)))
        given = f"({', '.join(f'a{i}' for i in range(len(args)))}{',' * (len(args) == 1)})"
        names = repr(tuple(str(a) for a in args))
        missing = f" or a{len(args) - 1} is _MISSING" if args else ""
        lines = [
            f"def {name}({params}*_extra):",
            f"    if _extra{missing}: _arity({names}, {given}, _extra)",
            *g.prologue,
        ]
    else:
        lines = [f"def {name}({', '.join(f'a{i}' for i in range(len(args)))}):", *g.prologue]
    if in_place:
        sizes = {}
        for target, shape in g.shapes.items():
            if len(shape) == 2:
                # a dimension no argument gives: never pooled
                with contextlib.suppress(MissingSymbolError):
                    sizes[target] = g.scalar_code(sp.Mul(*shape))
        shape_code = {
            g.ref[group.root]: "(" + ", ".join(g.dim(d) for d in group.root.shape) + ")"
            for group in groups.values()
        }
        body = _reuse_memory(kept, g.shapes, set(out_names), sizes, shape_code, below)
        lines += [f"    {line}" for line in body]
    else:
        lines += [f"    {target} = {code}" for target, code in kept]
    lines.append(f"    return {build(spec)}")
    used = [(k, group) for k, group in kernels if any(f"{k}(" in line for line in lines)]
    helpers = [fused.numpy_source(f"{k}_numpy", group, g.printer) for k, group in used]
    return "\n".join([*helpers, *lines]) + "\n", used


def _fusion(order: list, flat: list) -> dict:
    """The entrywise trees to fuse (see :mod:`.fused`), by root; none without a C compiler."""
    candidates = (fused.entrywise(n) or isinstance(n, Softmax) for n in order)
    if not any(candidates) or not c_build.c_available():
        return {}
    # whether libmvec links is probed when the first kernel is built (probing runs the
    # compiler): trees that need it then stay in NumPy if it does not
    groups = fused.plan(order, flat, mvec=True)
    # a tree whose size is known and small stays in NumPy (the C call would cost more)
    return {
        root: group
        for root, group in groups.items()
        if not ((size := sp.Mul(*root.shape)).is_Integer and int(size) < fused.FUSED_FROM)
    }


def _small_path(g: _Gen, group: fused.Group) -> Any:
    """``(size test, code(out))``: when the C loop runs, and the NumPy expression the generated
    code runs itself below that size (no call into the kernel object for small arrays); None
    when the size is fixed (then only large trees are fused) or not known."""
    size = sp.Mul(*group.root.shape)
    if size.is_Integer:
        return None
    try:
        test = f"{g.scalar_code(size)} >= {fused.FUSED_FROM}"
    except MissingSymbolError:
        return None
    operands = [g.use(node) for node, _ in group.leaves]
    return test, lambda out: fused.numpy_code(group, operands, out, g.printer)


def _fused_call(g: _Gen, group: fused.Group, k: int, small: Any) -> tuple[str, str | None]:
    """The call of fused kernel ``k``, and the array receiving the root's row or column sums or
    its sum (1 x 1) (allocated here, before the call; only for the C loop when ``small`` tests
    the size), or None."""
    args = [g.use(node) for node, _ in group.leaves]
    if group.total is None:
        return f"_fused{k}({', '.join(args)})", None
    total = f"t{len(g.lines)}"
    shape = (sp.S.One, sp.S.One) if group.axis == -1 else tuple(group.total.shape)
    empty = f"numpy.empty(({', '.join(g.dim(d) for d in shape)}))"
    g.lines.append((total, f"{empty} if {small[0]} else None" if small else empty, set()))
    g.shapes[total] = shape
    return f"_fused{k}({', '.join(args)}, total={total})", total


def _total_code(g: _Gen, group: fused.Group, total: str, small: Any) -> str:
    """The sum's own statement, after the call: the sums the call filled in (``_total_of``:
    NumPy's own sums of the result where it has another dtype than float64), or below its
    size NumPy's sum of the result (as the unfused code computes it)."""
    root, axis = g.ref[group.root], group.axis
    filled = f"_total_of({root}, {total}, {axis})"
    if not small:
        return filled
    numpy_sum = f"{root}.sum()" if axis == -1 else f"{root}.sum(axis={axis}, keepdims=True)"
    return f"{filled} if {small[0]} else {numpy_sum}"


def _names_in(code: str) -> list[str]:
    return _NAME.findall(code)


_NAME = re.compile(r"\bt\d+\b")
_BINARY = re.compile(r"^(\w+|-?[0-9.]+(?:e-?[0-9]+)?) ([-+*]) (\w+|-?[0-9.]+(?:e-?[0-9]+)?)$")
_UNARY = re.compile(r"^numpy\.(tanh|exp|log|sin|cos|sqrt|abs|negative)\((t\d+)\)$")
_SCALED_PRODUCT = re.compile(r"^(\w+|\(.+\)) \* \(([^()]+ @ [^()]+)\)$")
_PAIR = re.compile(r"^(\w+) @ (\w+)$")
_OPERAND = re.compile(r"\b[at]\d+\b")
#: results with at least this many entries (128 KiB of float64) go to the workspace: smaller
#: blocks come from the allocator's free lists, and a scratch lookup costs about 0.5 us
POOLED_FROM = 16384
#: ... and at most this many (16 MiB of float64): a function called once on a large batch (a
#: prediction over a whole data set) would otherwise keep that much memory for its lifetime
POOLED_UP_TO = 1 << 21
_UFUNC = {"+": "add", "-": "subtract", "*": "multiply"}


def _reuse_memory(
    kept: list[tuple[str, str]],
    shapes: dict,
    outputs: set[str],
    sizes: dict | None = None,
    fused_shapes: dict | None = None,
    small: dict | None = None,
) -> list[str]:
    """The statements with temporaries freed after their last use and reused in place.

    Large temporaries that live until the function returns cost page faults on every call
    (their memory goes back to the system only at the end); so each temporary is deleted right
    after its last reader, and an entrywise operation whose operand dies there writes into it
    (``numpy.add(t1, a1, out=t1)``). Only arrays the function itself allocated are reused (not
    arguments, transposes or broadcasts, which are views), and only when the operand has the
    result's full shape. ``c * (A @ B)`` scales the fresh product in place.

    ``sizes`` (target -> code for its number of entries) turns on the workspace: a product or
    entrywise result that allocates, does not reach an output (directly, through views or
    through later in-place writes) and has :data:`POOLED_FROM` to :data:`POOLED_UP_TO` entries
    is written into a scratch array kept between calls (``_scratch``, one set per thread).
    glibc hands large freed blocks back to the system when they sit at the top of the heap,
    so a step whose temporaries are all freed would fault them in again on every call
    (measured: 362 page faults and +12% on the 784-256-10 step run alone).
    """
    last: dict[str, int] = {}
    for i, (target, code) in enumerate(kept):
        for name in _names_in(code):
            last[name] = i
        if _NAME.fullmatch(target):  # a temporary never read (a fused root wanted for its sum)
            last.setdefault(target, i)  # dies at once
    owned = {
        t
        for t, code in kept
        if not (
            code.endswith(".T") or code.startswith("numpy.broadcast_to") or _NAME.fullmatch(code)
        )
    }
    # an array lives as long as its views: no in-place write into it while a view is read (an
    # output view, such as a returned transpose, is read after the last statement)
    for name in outputs:
        last[name] = len(kept)
    for target, code in reversed(kept):
        if target not in owned and target in last:
            for name in _names_in(code):
                last[name] = max(last.get(name, -1), last[target])
    dies_at: dict[int, list[str]] = {}
    for name, i in last.items():
        dies_at.setdefault(i, []).append(name)

    def reusable(name: str, i: int, target: str) -> bool:
        return (
            name in owned
            and name not in outputs
            and last.get(name) == i
            and shapes.get(name) == shapes.get(target)
            and shapes.get(name) != ()
        )

    forms: list[tuple] = []
    into: dict[str, str] = {}  # target -> the operand whose memory it writes
    for i, (target, code) in enumerate(kept):
        form: tuple = ()
        if m := _BINARY.match(code):
            left, op, right = m.groups()
            cand = next((c for c in (left, right) if reusable(c, i, target)), None)
            form = ("binary", left, _UFUNC[op], right, cand)
        elif m := _UNARY.match(code):
            cand = m.group(2) if reusable(m.group(2), i, target) else None
            form = ("unary", m.group(1), m.group(2), cand)
        elif code.startswith("_fused"):  # a fused kernel (fused.py): out= any dead full operand
            operands = _OPERAND.findall(code.partition("total=")[0])
            cand = next((c for c in operands if reusable(c, i, target)), None)
            form = ("fused", operands, cand)
        elif (m := _SCALED_PRODUCT.match(code)) and shapes.get(target) != ():
            form = ("scaled", m.group(1), m.group(2))
        elif (m := _PAIR.match(code)) and shapes.get(target) != ():
            form = ("scaled", None, code)
        if form and form[0] != "scaled" and form[-1]:
            into[target] = form[-1]
        forms.append(form)
    escaped = set(outputs)  # names whose memory an output holds
    for target, code in reversed(kept):
        if target in escaped:
            escaped |= {into[target]} if target in into else set()
            if target not in owned:
                escaped |= set(_names_in(code))

    def scratch(i: int, target: str, shape: str, *operands: str) -> str | None:
        if sizes is None or target in escaped or target not in sizes:
            return None
        size = sizes[target]
        if size.isdigit() and not POOLED_FROM <= int(size) <= POOLED_UP_TO:
            return None
        call = f"_scratch(_pool, {i}, {shape}, {', '.join(operands)})"
        if size.isdigit():
            return call
        return f"{call} if {POOLED_FROM} <= {size} <= {POOLED_UP_TO} else None"

    out: list[str] = []
    for i, ((target, code), form) in enumerate(zip(kept, forms, strict=True)):
        line = f"{target} = {code}"
        if form and form[0] == "binary":
            _, left, ufunc, right, cand = form
            full = [n for n in (left, right) if shapes.get(n) == shapes.get(target)]
            buf = cand or (full and scratch(i, target, f"{full[0]}.shape", left, right))
            if buf:
                line = f"{target} = numpy.{ufunc}({left}, {right}, out={buf})"
        elif form and form[0] == "unary":
            _, fn, arg, cand = form
            buf = cand or scratch(i, target, f"{arg}.shape", arg)
            if buf:
                line = f"{target} = numpy.{fn}({arg}, out={buf})"
        elif form and form[0] == "fused":
            _, operands, cand = form
            shape = (fused_shapes or {}).get(target)
            buf = cand or (shape and scratch(i, target, shape, *operands))
            call = f"{code[:-1]}, out={buf})" if buf else code
            line = f"{target} = {call}"
            if (small or {}).get(target):
                test, numpy_code = small[target]
                # below the C loop's size a scratch array is never pooled (smaller still)
                line += f" if {test} else {numpy_code(cand)}"
        elif form:
            _, factor, product = form
            pair = _PAIR.match(product)
            buf = pair and scratch(
                i, target, f"({pair[1]}.shape[0], {pair[2]}.shape[1])", pair[1], pair[2]
            )
            if buf:
                product = f"numpy.matmul({pair[1]}, {pair[2]}, out={buf})"
            if factor:
                out.append(f"{target} = {product}")
                line = f"{target} *= {factor}"
            else:
                line = f"{target} = {product}"
        out.append(line)
        dead = sorted((n for n in dies_at.get(i, ()) if n not in outputs), key=lambda n: int(n[1:]))
        if dead:
            out.append(f"del {', '.join(dead)}")
    if any("_scratch(" in line for line in out):
        out.insert(0, "_pool = _local.__dict__")
    return out


def value_and_grad(
    f: sp.Expr,
    wrt: Sequence[MatrixSymbol],
    args: Sequence[sp.Basic] | None = None,
    *,
    backend: str = "numpy",
) -> CompiledMatrixFunction:
    """Compile ``f`` and its gradients: the function returns ``(f, [df/dw for w in wrt])``.

    Args:
        f: a scalar matrix expression (e.g. a loss).
        wrt: parameters to differentiate by (``MatrixSymbol``/``Symbol``).
        args: call order of all arguments; default ``wrt`` followed by the other symbols in
            order of appearance.
        backend: ``"numpy"`` or ``"jax"`` (see :func:`compile_matrix`).

    Returns:
        A :class:`CompiledMatrixFunction`; value and gradients share one DAG (CSE across both).

    >>> import numpy as np, sympy as sp
    >>> W, x = sp.MatrixSymbol("W", 1, 2), sp.MatrixSymbol("x", 2, 1)
    >>> fg = value_and_grad(mx.sumsq(mx.matmul(W, x)), [W], [W, x])
    >>> val, (dW,) = fg(np.array([[1.0, 2.0]]), np.array([[3.0], [4.0]]))
    >>> float(val), dW.tolist()
    (121.0, [[66.0, 88.0]])
    """
    f = mx._operand(f, "value_and_grad")
    wrt = _check_args(wrt)
    grads = matrix_grad(f, wrt)
    if args is None:
        args = _default_args(f, wrt)
    return compile_matrix([f, list(grads)], args, name="symgrad_value_and_grad", backend=backend)


def _default_args(f: sp.Basic, wrt: list) -> list:
    """``wrt`` followed by the other symbols of ``f`` in order of appearance."""
    others = [
        n for n in mx.value_nodes([f]) if isinstance(n, (MatrixSymbol, sp.Symbol)) and n not in wrt
    ]
    return [*wrt, *others]
