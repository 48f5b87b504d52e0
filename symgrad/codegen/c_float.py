"""The C target's entry for calls on Python floats: a CPython function, no Python frame.

A call on Python floats is dominated by the interpreter, not by the arithmetic: checking four
argument types costs as much as computing the lecture's gradient. For ``backend="c"`` the
generated library therefore also holds a builtin function (a ``PyCFunction`` with the vectorcall
convention) that

* reads the arguments when there are exactly as many as the function takes, no keywords, and
  every one is exactly a Python ``float`` (``PyFloat_CheckExact``: not ``int``, ``bool`` or a
  NumPy scalar);
* computes every output in straight-line C (the statements of :mod:`.c_source`, the C target's
  printer: NumPy's semantics) and, if no IEEE exception was raised (division by zero, overflow,
  invalid operation), returns what the Python-float path returns: the same nesting, Python
  floats, and a NumPy array (or a tuple, ``float_outputs="tuple"``) for stacked outputs;
* otherwise passes the call, unchanged, to the generated Python function: every other input
  kind, every error message and every IEEE special case (``1/0.0`` is ``inf`` with a
  RuntimeWarning) is answered exactly as by the NumPy and C targets.

The entry needs the interpreter's and NumPy's C headers; where they are missing (a Python
without its ``-dev`` package) the C target works as before, through the Python function. The
library is cached like every kernel (:mod:`.c_build`), keyed also by the Python and NumPy
versions.

>>> import sympy as sp
>>> x = sp.Symbol("x")
>>> source = entry_source([x], [x * x, sp.exp(x)], [0, [1]], True, "tuple")
>>> source.count("PyFloat_CheckExact"), "PyObject_Vectorcall(fallback" in source
(1, True)
"""

from __future__ import annotations

import ctypes
import functools
import sys
import sysconfig
from typing import Any

import numpy as np
import sympy as sp

from ..errors import SymgradError
from . import c_build
from .c_printer import PRELUDE
from .c_source import _plan
from .plan import rectangular

__all__ = ["entry_flags", "entry_make", "entry_source", "load_entry", "native_entry"]

_RUNTIME = """\
#if defined(__x86_64__) && defined(__SSE2__) && defined(__GNUC__)
/* x86-64 computes doubles in SSE: its status register holds every flag, and reading it is
   one instruction (fetestexcept also reads the x87 status word) */
#define SG_MX 0x0D /* MXCSR: invalid (bit 0), divide by zero (2), overflow (3) */
#define SG_RAISED() (__builtin_ia32_stmxcsr() & SG_MX)
#define SG_CLEAR() __builtin_ia32_ldmxcsr(__builtin_ia32_stmxcsr() & ~SG_MX)
#else
#define SG_FLAGS (FE_DIVBYZERO | FE_OVERFLOW | FE_INVALID)
#define SG_RAISED() fetestexcept(SG_FLAGS)
#define SG_CLEAR() feclearexcept(SG_FLAGS)
#endif
/* a tuple of the items (references stolen); NULL, everything released, if any is NULL */
static PyObject *sg_tuple(Py_ssize_t n, PyObject *const *items) {
    PyObject *t = PyTuple_New(n);
    int ok = t != NULL;
    for (Py_ssize_t i = 0; i < n; ++i) {
        if (items[i] == NULL) ok = 0;
        if (t != NULL) PyTuple_SET_ITEM(t, i, items[i]); else Py_XDECREF(items[i]);
    }
    if (!ok) { Py_XDECREF(t); return NULL; }
    return t;
}
"""

_ARRAYS = """\
/* a new float64 array of shape dims holding o[at[0]], o[at[1]], ... in C order */
static PyObject *sg_array(int nd, npy_intp *dims, const double *o, const int *at, int n) {
    PyObject *a = PyArray_SimpleNew(nd, dims, NPY_DOUBLE);
    if (a != NULL) {
        double *d = (double *)PyArray_DATA((PyArrayObject *)a);
        for (int i = 0; i < n; ++i) d[i] = o[at[i]];
    }
    return a;
}
"""


@functools.lru_cache(maxsize=4)
def entry_flags(cc: tuple[str, ...]) -> tuple[str, ...] | None:
    """The compiler flags that find Python's and NumPy's headers, or None when they do not.

    Args:
        cc: the compiler command (see :func:`symgrad.codegen.c_build.compiler`).

    >>> cc = c_build.compiler()
    >>> flags = entry_flags(cc) if cc else None
    >>> flags is None or any(f.startswith("-I") for f in flags)
    True
    """
    include = sysconfig.get_paths().get("include")
    if not include or sys.implementation.name != "cpython":
        return None
    flags = [f"-I{include}", f"-I{np.get_include()}"]
    if sys.platform == "darwin":  # the interpreter's symbols are found when it loads the library
        flags += ["-undefined", "dynamic_lookup"]
    probe = "#include <Python.h>\n#include <fenv.h>\n#include <numpy/arrayobject.h>\n"
    return tuple(flags) if c_build.compiles(cc, flags, probe) else None


def entry_source(arg_spec: list, leaves: list, spec: Any, top: bool, stacked: str) -> str:
    """The C source of the float entry computing ``leaves`` over scalar arguments.

    Args:
        arg_spec: the arguments, each a symbol.
        leaves: the outputs, flat (a program's ``leaves``).
        spec: their nesting (a program's ``spec``: leaf indices in nested lists).
        top: whether the top level is a tuple of results (a program's ``top``).
        stacked: ``"array"`` or ``"tuple"``: how nested lists are returned (as the
            Python-float path, :func:`.pyfloat.emit_body`).

    Returns:
        A translation unit whose ``sg_make(fallback)`` returns the entry, a builtin function
        that passes every call it does not answer itself to ``fallback``.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> src = entry_source([x, y], [x * y, y], [0, [1]], True, "tuple")
    >>> print(next(ln for ln in src.splitlines() if "return sg_tuple" in ln).strip()[:74])
    if (!SG_RAISED()) return sg_tuple(2, (PyObject *[]){PyFloat_FromDouble(o[0
    """
    plan = _plan(arg_spec, list(leaves))
    arrays = stacked == "array" and _has_array(spec, top)
    lines = [
        # part of the cache key: the library is built against this interpreter and NumPy
        f"/* symgrad float entry: {sys.implementation.cache_tag} "
        f"{sysconfig.get_config_var('SOABI')}, NumPy {np.__version__} */",
        "#define PY_SSIZE_T_CLEAN",
        "#include <Python.h>",
        "#include <fenv.h>",
    ]
    if arrays:
        lines += [
            "#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION",
            "#include <numpy/arrayobject.h>",
        ]
    lines += [PRELUDE, _RUNTIME, *([_ARRAYS] if arrays else [])]
    # not inlined: every operation is done before the flags are read (the compiler does not
    # otherwise keep floating-point operations on their side of the flag test)
    lines += ["__attribute__((noinline)) static void sg_eval(const double *a, double *o)", "{"]
    lines += [f"    const double {name} = a[{j}];" for name, j, _ in plan.loads]
    lines += [f"    const double {name} = {text};" for name, text, _ in plan.stmts]
    lines += [f"    o[{k}] = {text};" for k, (text, _) in enumerate(plan.results)]
    lines += ["}", ""]
    n, nout = len(arg_spec), max(len(plan.results), 1)
    exact = " && ".join(f"PyFloat_CheckExact(args[{j}])" for j in range(n))
    lines += [
        "static PyObject *sg_call(PyObject *fallback, PyObject *const *args, Py_ssize_t nargs,",
        "                         PyObject *kwnames)",
        "{",
        f"    if (nargs == {n} && kwnames == NULL && {exact}) {{",
        f"        double a[{n}], o[{nout}];",
        *[f"        a[{j}] = PyFloat_AS_DOUBLE(args[{j}]);" for j in range(n)],
        # clearing is slower than testing (glibc's feclearexcept rewrites the x87 environment)
        "        if (SG_RAISED()) SG_CLEAR();",
        "        sg_eval(a, o);",
        f"        if (!SG_RAISED()) return {_result(spec, top, stacked)};",
        "    }",
        "    return PyObject_Vectorcall(fallback, args, nargs, kwnames);",
        "}",
        *entry_make("symgrad_native_entry", arrays),
    ]
    return "\n".join(lines)


def entry_make(name: str, numpy: bool) -> list[str]:
    """The C lines after an entry's ``sg_call``: its method record and ``sg_make(fallback)``,
    which returns the builtin function ``name`` (importing NumPy's C API first if ``numpy``).

    >>> entry_make("f", False)[-3]
    '    return PyCFunction_NewEx(&sg_def, fallback, NULL);'
    """
    return [
        "",
        "static PyMethodDef sg_def = {",
        f'    "{name}", (PyCFunction)(void (*)(void))sg_call,',
        "    METH_FASTCALL | METH_KEYWORDS, NULL",
        "};",
        "",
        "PyObject *sg_make(PyObject *fallback)",
        "{",
        *(["    if (_import_array() < 0) return NULL;"] if numpy else []),
        "    return PyCFunction_NewEx(&sg_def, fallback, NULL);",
        "}",
        "",
    ]


def load_entry(
    name: str, source: str, flags: list[str], fallback: Any, *, timeout: Any, cache_dir: Any
) -> Any | None:
    """Build ``source`` (an entry, :func:`entry_make`) and return ``sg_make(fallback)``, or None
    when there is no compiler, no Python headers, or the build fails.

    Args:
        name: the library's name in the cache.
        source: the translation unit.
        flags: compiler flags (besides the headers' and the cache's common ones).
        fallback: the Python function the entry passes other calls to.
        timeout, cache_dir: the C compiler's options (see :func:`.c_build.build_library`).

    >>> load_entry("x", "int", [], print, timeout=None, cache_dir=None) is None  # no sg_make
    True
    """
    cc = c_build.compiler()
    headers = entry_flags(cc) if cc is not None else None
    if headers is None:
        return None
    try:
        lib = c_build.build_library(
            name, [(source, [*flags, *headers])], timeout=timeout, cache=cache_dir
        )
        make = ctypes.PyDLL(str(lib)).sg_make
    except (SymgradError, OSError, AttributeError):
        return None
    make.restype = ctypes.py_object
    make.argtypes = [ctypes.py_object]
    return make(fallback)


def _has_array(spec: Any, top: bool) -> bool:
    if isinstance(spec, int):
        return False
    return not top or any(isinstance(s, list) for s in spec)


def _result(spec: Any, top: bool, stacked: str) -> str:
    # the C expression building the Python-float path's result (pyfloat._build, in C)
    if isinstance(spec, int):
        return f"PyFloat_FromDouble(o[{spec}])"
    if top or stacked != "array":
        items = [_result(s, False, stacked) for s in spec]
        if not items:
            return "sg_tuple(0, NULL)"
        return f"sg_tuple({len(items)}, (PyObject *[]){{{', '.join(items)}}})"
    shape, flat = rectangular(spec)
    dims = ", ".join(map(str, shape))
    at = f"(const int[]){{{', '.join(map(str, flat))}}}" if flat else "NULL"
    return f"sg_array({len(shape)}, (npy_intp[]){{{dims}}}, o, {at}, {len(flat)})"


def native_entry(
    prog: Any, stacked: str, fallback: Any, *, timeout: float | None, cache_dir: Any
) -> Any | None:
    """The float entry of ``prog`` around ``fallback``, or None where it cannot be built.

    None when an argument is a vector, or the headers are missing; a failing build of the
    entry is not an error either (the C target then runs as it did without it): the kernel,
    built first, has already reported any problem with the outputs themselves.

    Args:
        prog: the program (:class:`~symgrad.codegen.plan.Program`).
        stacked: ``"array"`` or ``"tuple"`` (see :func:`entry_source`).
        fallback: the generated Python function, which answers every other call.
        timeout, cache_dir: the C compiler's options (see :func:`.c_build.build_library`).

    >>> import sympy as sp
    >>> from symgrad.codegen.plan import plan
    >>> x = sp.Symbol("x")
    >>> def python(v):
    ...     return (v * v,)
    >>> entry = native_entry(plan([x * x], [x]), "tuple", python, timeout=None, cache_dir=None)
    >>> entry(3.0) if entry is not None else (9.0,)
    (9.0,)
    >>> entry("3") if entry is not None else python("3")  # not a float: the fallback answers
    Traceback (most recent call last):
    ...
    TypeError: can't multiply sequence by non-int of type 'str'
    """
    if c_build.compiler() is None or not prog.args:
        return None
    if not all(isinstance(a, sp.Symbol) for a in prog.args):
        return None
    source = entry_source(prog.args, prog.leaves, prog.spec, prog.top, stacked)
    return load_entry(
        "symgrad_entry", source, ["-O2"], fallback, timeout=timeout, cache_dir=cache_dir
    )
