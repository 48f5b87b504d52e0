"""A whole compiled matrix program as one C function: no NumPy call per statement on small arrays.

On small operands a compiled matrix function costs what its NumPy calls cost (about 1 us each:
the argument checks, ``X @ w``, each piece of a sigmoid, the weights, the scaling, the product),
not what its flops cost: the logistic-regression Hessian ``X^T diag(d) X`` at n = 10 took
6.4 us against 1.7 us for the product alone. :func:`entry_source` prints the program (the nodes
the NumPy generator prints, after the same rewrites) as one CPython builtin function (the
vectorcall convention, as the scalar C target's float entry, :mod:`symgrad.codegen.c_float`):

* every value is a strided view ``(pointer, rows, cols, row stride, col stride)``: arguments of
  any layout, transposes and broadcasts are views, never copies;
* trees of entrywise operations (sums, Hadamard products and powers, scalar multiples,
  elementwise functions) are one loop each, in 128 x 128 tiles (a transposed operand stays
  in cache), with NumPy's operations in NumPy's order;
* products with at most :data:`PRODUCT_C_UP_TO` multiply-adds (:data:`MATVEC_C_UP_TO` for a
  matrix times a column) are C loops; larger ones call NumPy's ``matmul`` (BLAS) on views of
  the C values, from C;
* a weighted Gram product ``X^T diag(s) X`` (or ``X diag(s) X^T``) with at most
  :data:`GRAM_C_UP_TO` multiply-adds is one symmetric C loop; larger ones compute
  ``Z = diag(sqrt(s)) X`` in one pass and call ``matmul(Z^T, Z)`` (BLAS ``syrk``: half the
  flops), or ``X^T (s X)`` when a weight is negative or NaN;
* sums, traces, Kronecker products (with an identity factor: only its diagonal blocks are
  written) and scalar formulas are straight C.

The entry computes the call itself when every matrix argument is a float64 ``numpy.ndarray``
(any strides), every scalar argument a Python ``float``, the shapes agree, no dimension is 0,
and no tree with an elementwise function has :data:`FUNCTION_C_BELOW` entries or more (there
NumPy's vector loops and the fused kernels are faster than one libm call per entry).
It returns what the NumPy function returns (new C-ordered float64 arrays, ``numpy.float64``
scalars, the same nesting) unless an IEEE exception (division by zero, overflow, invalid) was
raised on the way; every other call, and every call that raised one, is passed unchanged to the
generated NumPy function, which gives NumPy's results, warnings and errors (float32 arguments,
lists, wrong shapes, ``log(0)``). Results agree with NumPy's to rounding: sums and products
are accumulated in another order than BLAS's.

A program is printed only when every node is one of those kinds; it is built (C compiler and
Python/NumPy headers needed, :func:`symgrad.codegen.c_float.entry_flags`) on its
:data:`NATIVE_AFTER`-th call, so that functions called once or twice never run the compiler, and
replaces the NumPy function inside the :class:`~symgrad.matrix.codegen.CompiledMatrixFunction`.
Without a compiler, or when the build fails, the NumPy function stays.

>>> import numpy as np, sympy as sp
>>> from symgrad.matrix import expr as mx
>>> X, w = sp.MatrixSymbol("X", 3, 2), sp.MatrixSymbol("w", 2, 1)
>>> src = entry_source([X, w], [mx.tanh(mx.matmul(X, w))], 0)
>>> "PyNumber_MatrixMultiply" in src, "tanh(x0)" in src
(True, True)
"""

from __future__ import annotations

import functools
import re
import threading
import types
import weakref
from typing import Any

import sympy as sp
from sympy.matrices.expressions import (
    HadamardPower,
    HadamardProduct,
    Identity,
    KroneckerProduct,
    MatAdd,
    MatMul,
    MatrixExpr,
    MatrixSymbol,
    Trace,
    Transpose,
    ZeroMatrix,
)
from sympy.matrices.expressions.diagonal import DiagMatrix
from sympy.printing.codeprinter import PrintMethodNotImplementedError

from ..codegen import c_build
from ..codegen.c_float import _RUNTIME, entry_make, load_entry
from ..codegen.c_printer import PRELUDE, CPrinter, c_double
from ..errors import SymgradError
from . import expr as mx
from . import fused
from .expr import Broadcast, Map, SumAll, SumAxis
from .native_runtime import RUNTIME

__all__ = [
    "FUNCTION_C_BELOW",
    "GRAM_C_UP_TO",
    "MATVEC_C_UP_TO",
    "NATIVE_AFTER",
    "PRODUCT_C_UP_TO",
    "Unsupported",
    "attach",
    "entry_source",
    "lazy_entry",
    "prepare",
]

#: Products of matrices with at most this many multiply-adds run as C loops, larger ones
#: through NumPy's BLAS ``matmul`` (called from C: about 0.6 us more than the flops). Measured
#: by benchmarks/bench_native_thresholds.py, one thread: n x n times n x n, C 0.73 against
#: BLAS 0.89 us at n = 12, 1.03 against 0.96 at n = 16
PRODUCT_C_UP_TO = 2048
#: ... and a matrix times a column with at most this many (four partial sums, vectorised):
#: C 1.55 against BLAS 1.69 us at n = 96, 2.85 against 2.93 at n = 128
MATVEC_C_UP_TO = 16384
#: Weighted Gram products ``X^T diag(s) X`` with at most this many multiply-adds (rows of the
#: result squared times rows of X) run in C; larger ones through BLAS ``syrk``. Measured on the
#: logistic Hessian: C 2.55 against BLAS 3.36 us at n = 20, 3.65 against 3.81 at 24, 5.01
#: against 4.52 at 28 (BLAS's side also computed ``X w`` through BLAS, 0.5 us more)
GRAM_C_UP_TO = 8192
#: A tree with an elementwise function (one libm call per entry) runs in C below this many
#: entries; from there on the whole call goes to the NumPy function (vector loops). Measured,
#: ``f(W X + b)`` with W 16 x 16: tanh C 1.93 against NumPy 2.41 us at 128 entries, 2.96
#: against 2.69 at 192; exp 2.30 against 2.60 at 256, 2.87 against 2.87 at 384
FUNCTION_C_BELOW = 192
#: Calls through the NumPy function before the C entry is built (a compiler run, ~0.5 s once;
#: cached on disk): functions called once or twice, as in tests and notebooks, never build it
NATIVE_AFTER = 10
#: Tile side of the entrywise loops: a transposed operand's tile (128 KiB) stays in cache while
#: its rows are read. ``A + A^T`` at 3000 x 3000, one thread: 34.2 ms with 64, 26.8 with 128,
#: 27.6 with 256 (NumPy's blocked ``_add_transposed`` 29.4)
_TILE = 128


class Unsupported(SymgradError):
    """A node the C program does not compute (the NumPy function then runs alone).

    >>> A = sp.MatrixSymbol("A", 2, 2)
    >>> entry_source([A], [mx.inverse(A)], 0)
    Traceback (most recent call last):
    ...
    symgrad.matrix.native.Unsupported: Inverse
    """


def _dim(e: sp.Basic, dims: dict) -> str:
    """A dimension (integer, symbol, sums and products of them) as a C ``npy_intp`` expression."""
    if e.is_Integer:
        return str(int(e))
    if e in dims:
        return dims[e]
    if isinstance(e, (sp.Add, sp.Mul)) and all(a.is_Integer or a in dims for a in e.args):
        op = " + " if isinstance(e, sp.Add) else " * "
        return "(" + op.join(_dim(a, dims) for a in e.args) + ")"
    raise Unsupported(f"dimension {e}")


def _scalar_outputs_ok(node: sp.Basic) -> bool:
    # NumPy's path gives numpy.float64 for scalars computed from an array reduction (the C
    # entry returns numpy.float64); a number or a scalar argument would come back as given
    return any(isinstance(n, (SumAll, Trace)) for n in mx.value_nodes([node]))


def _entrywise(node: sp.Basic) -> bool:
    if not isinstance(node, MatrixExpr) or fused._constant(node) is not None:
        return False
    if isinstance(node, HadamardPower):
        return bool(node.args[1].is_number)
    if isinstance(node, MatMul):
        coeff, mats = node.as_coeff_matrices()
        return len(mats) == 1 and coeff != 1
    return isinstance(node, (MatAdd, HadamardProduct, Map))


class _Program:
    """The C text of one program: its value names, owned arrays and statements."""

    def __init__(self, args: list) -> None:
        self.args = args
        self.dims: dict[sp.Basic, str] = {}
        self.val: dict[sp.Basic, str] = {}  # node -> C name (a view "vK" or a double "sK")
        self.slots = 0  # owned arrays (new references released after their last reader)
        self.owner: dict[str, int | None] = {}  # view name -> the slot holding its memory
        self.consts: list[str] = []  # doubles whose address a constant view holds
        self.bind: list[str] = []
        self.gate: list[str] = []
        self.body: list[str] = []
        self.printer = fused._ordered(CPrinter())

    def slot(self, name: str) -> str:
        """A new owned-array slot, whose array the view ``name`` shows."""
        self.owner[name] = self.slots
        self.slots += 1
        return f"&own[{self.slots - 1}]"

    def free(self, name: str) -> None:
        self.body.append(f"    Py_CLEAR(own[{self.owner[name]}]);")

    def scalar(self, e: sp.Basic) -> str:
        if e in self.val:
            return self.val[e]
        if e.is_Number or isinstance(e, sp.NumberSymbol):
            return c_double(e)
        if e in self.dims:
            return f"(double){self.dims[e]}"
        if isinstance(e, (sp.Add, sp.Mul, sp.Pow)):  # a coefficient not computed on its own
            parts = {a: sp.Symbol(self.scalar(a)) for a in e.args if not a.is_Number}
            with sp.evaluate(False):
                return f"({_print(self, e.func(*[parts.get(a, a) for a in e.args]))})"
        raise Unsupported(f"scalar {e}")

    def shape(self, node: sp.Basic) -> tuple[str, str]:
        r, c = node.shape
        return _dim(r, self.dims), _dim(c, self.dims)

    # -- arguments
    def bind_args(self) -> None:
        for i, a in enumerate(self.args):
            x = f"args[{i}]"
            if isinstance(a, sp.Symbol):
                self.val[a] = f"s{i}"
                self.bind += [
                    f"    if (!PyFloat_CheckExact({x})) goto fallback;",
                    f"    const double s{i} = PyFloat_AS_DOUBLE({x});",
                ]
                continue
            if not isinstance(a, MatrixSymbol):
                raise Unsupported(f"argument {a}")
            v = f"a{i}"
            self.bind += [
                f"    if (!PyArray_CheckExact({x})) goto fallback;",
                f"    PyArrayObject *{v} = (PyArrayObject *){x};",
                f"    if (!sg_usable({v})) goto fallback;",
            ]
            for axis, d in enumerate(a.shape):
                got = f"PyArray_DIM({v}, {axis})"
                if d.is_Integer:
                    self.bind.append(f"    if ({got} != {int(d)}) goto fallback;")
                elif d in self.dims:
                    self.bind.append(f"    if ({got} != {self.dims[d]}) goto fallback;")
                elif isinstance(d, sp.Symbol):
                    self.dims[d] = f"d{len(self.dims)}"
                    self.bind.append(f"    const npy_intp {self.dims[d]} = {got};")
                    self.bind.append(f"    if ({self.dims[d]} == 0) goto fallback;")
                else:
                    raise Unsupported(f"dimension {d}")
            self.val[a] = f"v{i}"
            self.bind.append(f"    sg_m v{i} = sg_arg({v});")

    # -- nodes
    def view(self, node: sp.Basic, text: str, base: str | None = None) -> None:
        """``node`` as a view of the value named ``base`` (None: of an argument or a constant)."""
        name = f"v{len(self.val) + len(self.args)}_"
        self.body.append(f"    sg_m {name} = {text};")
        self.val[node] = name
        self.owner[name] = self.owner.get(base) if base else None

    def fresh(self, node: sp.Basic) -> str:
        name = f"v{len(self.val) + len(self.args)}_"
        self.body.append(f"    sg_m {name};")
        self.val[node] = name
        return name

    def constant(self, node: sp.Basic, value: str) -> None:
        k = f"k{len(self.consts)}"
        self.consts.append(k)
        r, c = self.shape(node)
        self.body.append(f"    {k} = {value};")
        self.view(node, f"(sg_m){{&{k}, {r}, {c}, 0, 0, NULL}}")


def _group(root: sp.Basic, inner: set, prog: _Program) -> tuple[sp.Expr, list]:
    """The formula of one entry of ``root`` over its leaves' entries, and the leaves (C names):
    ``x0, x1, ...`` are the leaves in order."""
    leaves: list[str] = []
    symbols: dict[str, sp.Symbol] = {}
    formulas: dict[sp.Basic, sp.Expr] = {}

    def leaf(name: str) -> sp.Symbol:
        if name not in symbols:
            symbols[name] = sp.Symbol(f"x{len(leaves)}", real=True)
            leaves.append(name)
        return symbols[name]

    def operand(a: sp.Basic) -> sp.Expr:
        if a in formulas:
            return formulas[a]
        if getattr(a, "shape", None) is None:  # a scalar
            return a if a.is_Number else leaf(prog.scalar(a))
        if (c := fused._constant(a)) is not None:
            return operand(c)
        if isinstance(a, Broadcast) and getattr(a.arg, "shape", None) is None:
            return operand(a.arg)
        return leaf(prog.val[a])

    for node in fused.tree_order(root, inner):
        formulas[node] = fused._local(node, operand)
    return formulas[root], leaves


def _has_call(e: sp.Expr) -> bool:
    return any(
        isinstance(n, sp.Function) or (isinstance(n, sp.Pow) and not n.exp.is_Integer)
        for n in sp.preorder_traversal(e)
    )


def entry_source(args: list, flat: list, spec: Any) -> str:
    """The C source of the program computing ``flat`` (nested as ``spec``) from ``args``.

    Args:
        args: the argument symbols (``MatrixSymbol``/``Symbol``), in call order.
        flat: the outputs, after the NumPy generator's rewrites (``simplify``,
            ``push_scalars``).
        spec: their nesting: an output index, or (nested) lists of them (returned as tuples).

    Returns:
        A translation unit whose ``sg_make(fallback)`` returns the entry.

    Raises:
        Unsupported: a node, dimension or output the C program does not compute.

    >>> A = sp.MatrixSymbol("A", 2, 2)
    >>> source = entry_source([A], [mx.add(A, A.T)], 0)
    >>> source.count("= x0 + x1;")  # one loop for rows of unit stride, one in tiles
    2
    """
    prog = _Program(list(args))
    prog.bind_args()
    order = mx.value_nodes(flat)
    readers = fused.reads(order, flat)
    inner = fused.inner_nodes({n for n in order if _entrywise(n)}, readers)
    # identities read as Kronecker factors and diagonals read as factors of products are
    # never materialised (the Kronecker product writes blocks, the product scales rows)
    factor_reads: dict[sp.Basic, int] = {}
    for n in order:
        if isinstance(n, KroneckerProduct) and len(n.args) == 2:
            kinds: tuple = (Identity,)
        elif isinstance(n, MatMul):
            kinds = (DiagMatrix,)
        else:
            continue
        for a in dict.fromkeys(mx.operands(n)):
            if isinstance(a, kinds):
                factor_reads[a] = factor_reads.get(a, 0) + list(mx.operands(n)).count(a)
    segments = []  # (first, end) of each node's statements in prog.body
    for node in order:
        if node in prog.val or node in inner:
            continue
        if node not in flat and factor_reads.get(node, -1) == len(readers.get(node, ())):
            continue
        start = len(prog.body)
        _node(prog, node, inner)
        segments.append((start, len(prog.body)))
    _release_after_last_read(prog, segments, {prog.val[o] for o in flat if o in prog.val})
    outs = []
    for o in flat:
        if isinstance(o, MatrixExpr):
            outs.append(f"sg_out({prog.val[o]})")
        elif _scalar_outputs_ok(o):
            outs.append(f"sg_float({prog.scalar(o)})")
        else:
            raise Unsupported(f"scalar output {o}")

    def build(s: Any) -> str:
        if isinstance(s, int):
            return outs[s]
        return f"sg_tuple({len(s)}, (PyObject *[]){{{', '.join(build(i) for i in s)}}})"

    lines = [
        "#define PY_SSIZE_T_CLEAN",
        "#include <Python.h>",
        "#include <fenv.h>",
        "#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION",
        "#include <numpy/arrayobject.h>",
        "#include <numpy/arrayscalars.h>",
        PRELUDE,
        _RUNTIME,
        RUNTIME,
        "static PyObject *sg_call(PyObject *fallback, PyObject *const *args, Py_ssize_t nargs,",
        "                         PyObject *kwnames)",
        "{",
        f"    PyObject *own[{max(prog.slots, 1)}] = {{0}};",
        *[f"    double {k};" for k in prog.consts],
        "    PyObject *result = NULL;",
        "    int rc = 0;",
        "    (void)rc;",
        f"    if (nargs != {len(args)} || kwnames != NULL) goto fallback;",
        *prog.bind,
        *prog.gate,
        "    if (SG_RAISED()) SG_CLEAR();",
        *prog.body,
        "    if (SG_RAISED()) goto fallback;",
        f"    result = {build(spec)};",
        "    goto done;",
        "fallback:",
        f"    for (int k = 0; k < {max(prog.slots, 1)}; ++k) Py_CLEAR(own[k]);",
        "    return PyObject_Vectorcall(fallback, args, nargs, kwnames);",
        "fail:",
        "    result = NULL;",
        "done:",
        f"    for (int k = 0; k < {max(prog.slots, 1)}; ++k) Py_XDECREF(own[k]);",
        "    return result;",
        "}",
        *entry_make("symgrad_matrix_entry", True),
    ]
    return "\n".join(lines)


def _into(prog: _Program, node: sp.Basic, call: str) -> None:
    """``node`` as a new array filled by the helper ``call`` (its last arguments added here)."""
    name = prog.fresh(node)
    _call(prog, f"{call}, &{name}, {prog.slot(name)})")


_VIEW = re.compile(r"\b(?:v\d+_|g\d+)")


def _release_after_last_read(prog: _Program, segments: list, outputs: set) -> None:
    """Insert ``Py_CLEAR`` of each owned array after the last statements reading it (through
    any view), except the outputs': large temporaries do not all live until the return."""
    last: dict[int, int] = {}
    for k, (start, end) in enumerate(segments):
        for line in prog.body[start:end]:
            for name in _VIEW.findall(line):
                if (slot := prog.owner.get(name)) is not None:
                    last[slot] = k
    keep = {prog.owner.get(name) for name in outputs}
    frees: dict[int, list[int]] = {}
    for slot, k in last.items():
        if slot not in keep:
            frees.setdefault(segments[k][1], []).append(slot)
    for end in sorted(frees, reverse=True):
        prog.body[end:end] = [f"    Py_CLEAR(own[{slot}]);" for slot in sorted(frees[end])]


def _call(prog: _Program, code: str) -> None:
    """A helper call returning 0 (done), 1 (an IEEE flag before a NumPy call) or -1 (error)."""
    prog.body += [
        f"    rc = {code};",
        "    if (rc > 0) goto fallback;",
        "    if (rc < 0) goto fail;",
    ]


def _node(prog: _Program, node: sp.Basic, inner: set) -> None:
    """Append the statements computing ``node`` (its operands are computed)."""
    if isinstance(node, (MatrixSymbol, sp.Symbol)):
        if node not in prog.val and node not in prog.dims:
            raise Unsupported(f"{node} is not an argument")
        return
    if node.is_Number or isinstance(node, sp.NumberSymbol):
        return
    if isinstance(node, MatrixExpr) and (c := fused._constant(node)) is not None:
        prog.constant(node, prog.scalar(c))
        return
    if isinstance(node, ZeroMatrix):
        prog.constant(node, "0.0")
        return
    if isinstance(node, Broadcast):
        a = node.arg
        if getattr(a, "shape", None) is None:
            prog.constant(node, prog.scalar(a))
            return
        r, c = prog.shape(node)
        v = prog.val[a]
        prog.view(node, f"sg_bcast({v}, {r}, {c})", v)
        return
    if isinstance(node, Transpose):
        v = prog.val[node.arg]
        prog.view(node, f"(sg_m){{{v}.p, {v}.c, {v}.r, {v}.cs, {v}.rs, {v}.own}}", v)
        return
    if isinstance(node, Identity):
        _into(prog, node, f"sg_eye({_dim(node.shape[0], prog.dims)}")
        return
    if _entrywise(node):
        _entrywise_loop(prog, node, inner)
        return
    if isinstance(node, MatMul):
        _product(prog, node)
        return
    if isinstance(node, DiagMatrix):
        _into(prog, node, f"sg_diag({prog.val[node.args[0]]}")
        return
    if isinstance(node, KroneckerProduct) and len(node.args) == 2:
        a, b = node.args
        ea, eb = isinstance(a, Identity), isinstance(b, Identity)
        va = _dim(a.shape[0], prog.dims) if ea else prog.val[a]
        vb = _dim(b.shape[0], prog.dims) if eb else prog.val[b]
        if ea:
            _into(prog, node, f"sg_kron_eye({va}, {vb}, 1")
        elif eb:
            _into(prog, node, f"sg_kron_eye({vb}, {va}, 0")
        else:
            _into(prog, node, f"sg_kron({va}, {vb}")
        return
    if isinstance(node, SumAxis):
        _into(prog, node, f"sg_sum_axis({prog.val[node.args[0]]}, {node.axis}")
        return
    if isinstance(node, SumAll):
        name = f"s{len(prog.val)}_"
        prog.body.append(f"    const double {name} = sg_sum({prog.val[node.arg]});")
        prog.val[node] = name
        return
    if isinstance(node, Trace):
        name = f"s{len(prog.val)}_"
        prog.body.append(f"    const double {name} = sg_trace({prog.val[node.arg]});")
        prog.val[node] = name
        return
    if isinstance(node, MatrixExpr) or not isinstance(node, (sp.Add, sp.Mul, sp.Pow, sp.Function)):
        raise Unsupported(type(node).__name__)
    names = {a: sp.Symbol(prog.scalar(a)) for a in node.args if not a.is_Number}
    with sp.evaluate(False):
        e = node.func(*[names.get(a, a) for a in node.args])
    name = f"s{len(prog.val)}_"
    prog.body.append(f"    const double {name} = {_print(prog, e)};")
    prog.val[node] = name


def _print(prog: Any, e: sp.Expr) -> str:
    try:
        return prog.printer.doprint(e)
    except (SymgradError, PrintMethodNotImplementedError) as exc:
        raise Unsupported(str(exc)) from exc


def _entrywise_loop(prog: _Program, node: sp.Basic, inner: set) -> None:
    expr, leaves = _group(node, inner, prog)
    r, c = prog.shape(node)
    if _has_call(expr):  # NumPy's vector loops (and the fused kernels) are faster from here on
        prog.gate.append(f"    if ({r} * {c} >= {FUNCTION_C_BELOW}) goto fallback;")
    name = prog.fresh(node)
    mats = [(k, v) for k, v in enumerate(leaves) if v.startswith("v")]
    scalars = [f"const double x{k} = {v};" for k, v in enumerate(leaves) if k not in dict(mats)]
    value = _print(prog, expr)
    # rows of unit stride (the usual case): one vectorised pass; else tiles (a transposed
    # operand is read down its columns within a cached tile)
    rows = " && ".join([f"{v}.cs == 1" for _, v in mats] or ["1"])
    T = _TILE
    prog.body += [
        f"    if (sg_new({r}, {c}, &{name}, {prog.slot(name)}) == NULL) goto fail;",
        "    {",
        f"        const npy_intp R = {r}, C = {c};",
        f"        double *o = {name}.p;",
        *[f"        {line}" for line in scalars],
        f"        if ({rows}) {{",
        "            for (npy_intp i = 0; i < R; ++i) {",
        *[f"                const double *r{k} = {v}.p + i * {v}.rs;" for k, v in mats],
        "                double *oi = o + i * C;",
        "                SG_IVDEP",
        "                for (npy_intp j = 0; j < C; ++j) {",
        *[f"                    const double x{k} = r{k}[j];" for k, _ in mats],
        f"                    oi[j] = {value};",
        "                }",
        "            }",
        "        } else {",
        f"            for (npy_intp ib = 0; ib < R; ib += {T})",
        f"            for (npy_intp jb = 0; jb < C; jb += {T}) {{",
        f"                const npy_intp ie = ib + {T} < R ? ib + {T} : R;",
        f"                const npy_intp je = jb + {T} < C ? jb + {T} : C;",
        "                for (npy_intp i = ib; i < ie; ++i)",
        "                for (npy_intp j = jb; j < je; ++j) {",
        *[
            f"                    const double x{k} = {v}.p[i * {v}.rs + j * {v}.cs];"
            for k, v in mats
        ],
        f"                    o[i * C + j] = {value};",
        "                }",
        "            }",
        "        }",
        "    }",
    ]


def _grams(mats: list) -> list:
    """``mats`` with each ``X^T diag(s) X`` / ``X diag(s) X^T`` as ``("gram", X, s, left)``."""
    out: list = []
    i = 0
    while i < len(mats):
        a, d, b = [*mats[i : i + 3], None, None][:3]
        if isinstance(d, DiagMatrix) and d.args[0].shape[1] == 1:
            if isinstance(a, Transpose) and a.arg == b:
                out.append(("gram", b, d.args[0], False))
                i += 3
                continue
            if isinstance(b, Transpose) and b.arg == a:
                out.append(("gram", a, d.args[0], True))
                i += 3
                continue
        out.append(a)
        i += 1
    return out


def _product(prog: _Program, node: MatMul) -> None:
    coeff, mats = node.as_coeff_matrices()

    def temp(call: str, consumed: str = "", tail: str = "") -> str:
        # a product's intermediate: released as soon as the next step has read it
        tmp = f"g{prog.slots}"
        prog.body.append(f"    sg_m {tmp};")
        _call(prog, f"{call}, &{tmp}, {prog.slot(tmp)}{tail})")
        if consumed.startswith("g"):
            prog.free(consumed)
        return tmp

    parts: list[str] = []
    pending: list[str] = []  # diagonals waiting for their right neighbour (they scale its rows)
    for m in _grams(list(mats)):
        if isinstance(m, tuple):
            _, x, s, left = m
            vx, vs = prog.val[x], prog.val[s]
            if left:
                vx = f"(sg_m){{{vx}.p, {vx}.c, {vx}.r, {vx}.cs, {vx}.rs, {vx}.own}}"
            code = temp(f"sg_gram({vx}, {vs}", tail=f", {GRAM_C_UP_TO}")
        elif isinstance(m, DiagMatrix):
            if m.args[0].shape[1] != 1:
                raise Unsupported("diagonal of a row")
            pending.append(prog.val[m.args[0]])
            continue
        else:
            code = prog.val[m]
        for d in reversed(pending):
            code = temp(f"sg_scale({code}, {d}, 0", code)
        pending = []
        parts.append(code)
    if not parts:
        raise Unsupported("a product of diagonals")
    for d in pending:  # trailing diagonals scale the columns of the last factor
        parts[-1] = temp(f"sg_scale({parts[-1]}, {d}, 1", parts[-1])
    acc = parts[0]
    for p in parts[1:]:
        prev = acc
        acc = temp(f"sg_mm({acc}, {p}", acc, f", {PRODUCT_C_UP_TO}, {MATVEC_C_UP_TO}")
        if p.startswith("g") and p != prev:
            prog.free(p)
    if coeff != 1 and not acc.startswith("g"):
        acc = temp(f"sg_copy({acc}")  # as NumPy's ``t = A @ B; t *= c``: a fresh array
    name = prog.fresh(node)
    prog.owner[name] = prog.owner.get(acc)
    prog.body.append(f"    {name} = {acc};")
    if coeff != 1:
        prog.body.append(f"    sg_scale_inplace({name}, {prog.scalar(coeff)});")


def _build_entry(source: str, fallback: Any) -> Any | None:
    """The built entry around ``fallback``, or None (no compiler, headers or build)."""
    return load_entry("sg_matrix", source, ["-O3"], fallback, timeout=None, cache_dir=None)


class _Lazy:
    """The function a compiled matrix function calls until its C entry is built."""

    def __init__(self, python: Any, source: str) -> None:
        self.python, self.source = python, source
        self.calls = 0
        self.owner: Any = None
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls >= NATIVE_AFTER:
            self.switch()
        return self.python(*args, **kwargs)

    def switch(self) -> Any:
        """Build the entry now and put it (or, failing, the NumPy function) in the owner."""
        with self._lock:
            owner = self.owner() if self.owner is not None else None
            if owner is None or owner.func is not self:
                return None if owner is None else owner.func
            entry = _build_entry(self.source, self.python)
            new = entry if entry is not None else self.python
            functools.partial.__setstate__(owner, (new, (), None, owner.__dict__))
            return entry


def lazy_entry(python: Any, args: list, flat: list, spec: Any) -> _Lazy | None:
    """What a compiled matrix function calls first: ``python`` until the C entry is built, or
    None when the program has a node the C entry does not compute (or no compiler is found).

    Args:
        python: the generated NumPy function (the entry's fallback).
        args, flat, spec: as for :func:`entry_source`.

    >>> import numpy as np
    >>> A = sp.MatrixSymbol("A", 2, 2)
    >>> lazy = lazy_entry(lambda a: a + a.T, [A], [mx.add(A, A.T)], 0)
    >>> lazy is None or lazy(np.eye(2)).tolist() == [[2.0, 0.0], [0.0, 2.0]]
    True
    """
    if not c_build.c_available():
        return None
    try:
        source = entry_source(args, flat, spec)
    except (Unsupported, KeyError):
        return None
    return _Lazy(python, source)


def prepare(compiled: Any) -> bool:
    """Build the C entry of a compiled matrix function now, not on its :data:`NATIVE_AFTER`-th
    call; True when its calls now go through the entry.

    Args:
        compiled: a :class:`~symgrad.matrix.codegen.CompiledMatrixFunction`.

    >>> import numpy as np
    >>> from symgrad.matrix.codegen import compile_matrix
    >>> A = sp.MatrixSymbol("A", 2, 2)
    >>> f = compile_matrix(mx.add(A, A.T), [A])
    >>> ok = prepare(f)  # False without a C compiler and Python's headers
    >>> f(np.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
    [[2.0, 5.0], [5.0, 8.0]]
    """
    if isinstance(compiled.func, _Lazy):
        compiled.func.switch()
    return isinstance(compiled.func, types.BuiltinFunctionType)


def attach(compiled: Any, lazy: _Lazy) -> None:
    """Let ``lazy`` replace itself in ``compiled`` (a ``functools.partial``) when it builds.

    :func:`~symgrad.matrix.codegen.compile_matrix` does this for every function it compiles.

    >>> from symgrad.matrix.codegen import compile_matrix
    >>> A = sp.MatrixSymbol("A", 2, 2)
    >>> f = compile_matrix(mx.add(A, A.T), [A])
    >>> lazy = f.func
    >>> isinstance(lazy, _Lazy) == (lazy_entry(f._fn, [A], [mx.add(A, A.T)], 0) is not None)
    True
    """
    lazy.owner = weakref.ref(compiled)
