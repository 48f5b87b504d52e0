"""The fused loops' builtin entries: a call into a C loop without ctypes or a Python frame.

Calling a fused loop through ctypes costs about 6 us: the kernel object's Python checks of
every operand (``ndarray.ctypes.data`` alone is ~1 us) and ctypes' conversion of each argument.
On the 784-256-10 training step that is as much as the loops' arithmetic on the 10 x 256
output layer, so those stayed in NumPy. Where the interpreter's and NumPy's C headers are
found (:func:`symgrad.codegen.c_float.entry_flags`), the fused library also holds one CPython
builtin per loop (``METH_FASTCALL | METH_KEYWORDS``, as the C target's float entry) that

* takes the generated code's call, ``_fused0(x0, x1, ..., out=..., total=...)``;
* checks in C what the kernel object checks in Python: every array operand exactly a
  float64 ``ndarray`` of the kind's shape (the root's shape, a column, a row or 1 x 1) with
  contiguous rows, every scalar exactly a ``float``, ``int`` or ``numpy.float64``, ``out`` (if
  given) a writeable C-contiguous float64 array of the root's shape, ``total`` one of the sum's
  shape;
* runs the loop (the GIL released) and returns ``out`` (a new array when none was given);
* passes every other call, unchanged, to ``fallback`` (the kernel object's NumPy path).

The generated function reads its kernels from its namespace on every call, so once built the
entries replace the kernel objects there (:class:`symgrad.matrix.fused.Library`).

>>> import sympy as sp
>>> from symgrad.matrix import expr as mx, fused
>>> X = sp.MatrixSymbol("X", 2, 3)
>>> (group,) = fused.plan(mx.value_nodes([mx.tanh(X)]), [mx.tanh(X)], mvec=True).values()
>>> src = entry_source([("k", group)])
>>> "PyArray_CheckExact" in src, "PyObject_Vectorcall(fallback" in src
(True, True)
"""

from __future__ import annotations

import sys
import sysconfig
from typing import Any

import numpy as np

__all__ = ["entry_source"]

_HELPERS = """\
/* an operand's data when it is exactly a float64 ndarray of shape (n, m) whose rows are
   contiguous (entries 8 bytes apart) and start 8-byte aligned; *rs: the row stride in entries */
static const double *sg_operand(PyObject *o, npy_intp n, npy_intp m, int64_t *rs) {
    if (!PyArray_CheckExact(o)) return NULL;
    PyArrayObject *a = (PyArrayObject *)o;
    if (PyArray_TYPE(a) != NPY_DOUBLE || PyArray_NDIM(a) != 2) return NULL;
    const npy_intp *d = PyArray_DIMS(a), *s = PyArray_STRIDES(a);
    if (d[0] != n || d[1] != m || s[0] % 8 || (m > 1 && s[1] != 8)) return NULL;
    if (rs) *rs = s[0] / 8;
    return (const double *)PyArray_DATA(a);
}
/* a writeable C-contiguous float64 ndarray of shape (n, m), else NULL */
static double *sg_target(PyObject *o, npy_intp n, npy_intp m) {
    if (!PyArray_CheckExact(o)) return NULL;
    PyArrayObject *a = (PyArrayObject *)o;
    if (PyArray_TYPE(a) != NPY_DOUBLE || PyArray_NDIM(a) != 2 || !PyArray_ISWRITEABLE(a)
        || !PyArray_IS_C_CONTIGUOUS(a))
        return NULL;
    const npy_intp *d = PyArray_DIMS(a);
    return d[0] == n && d[1] == m ? (double *)PyArray_DATA(a) : NULL;
}
/* a scalar operand: exactly a float, an int that converts, or a numpy.float64 */
static int sg_scalar(PyObject *o, double *x) {
    if (PyFloat_CheckExact(o)) { *x = PyFloat_AS_DOUBLE(o); return 1; }
    if (PyLong_CheckExact(o)) {
        *x = PyLong_AsDouble(o);
        if (*x == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return 0; }
        return 1;
    }
    if (Py_IS_TYPE(o, &PyDoubleArrType_Type)) { *x = PyArrayScalar_VAL(o, Double); return 1; }
    return 0;
}
/* out= and total= (None: not given); 0 for any other keyword */
static int sg_keywords(PyObject *const *values, PyObject *kwnames, PyObject **out,
                       PyObject **total) {
    Py_ssize_t k = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < k; ++i) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        PyObject *v = values[i] == Py_None ? NULL : values[i];
        if (PyUnicode_CompareWithASCIIString(name, "out") == 0) *out = v;
        else if (PyUnicode_CompareWithASCIIString(name, "total") == 0) *total = v;
        else return 0;
    }
    return 1;
}
"""


#: NumPy helpers of the generated code with a builtin version here (:data:`_LSE`)
HELPERS = ("_logsumexp",)

#: ``_logsumexp(z, axis)`` (``codegen._logsumexp``: ``m + log(sum(exp(z - m)))``, ``m`` the
#: maximum along the axis, NaN propagating, the axis kept) for a float64 array with contiguous
#: rows: one loop for the maxima, one for the sums of ``exp`` (libmvec's), then ``m + log(s)``.
#: Along axis 0 the sums add row after row, as NumPy's; along axis 1, eight partial sums per row
#: (NumPy's pairwise sum rounds differently by an ulp or so). Every other call goes to NumPy.
_LSE = """\
static PyObject *sg_entry_logsumexp(PyObject *fallback, PyObject *const *args,
                                    Py_ssize_t nargs, PyObject *kwnames) {
    if (nargs != 2 || kwnames != NULL || !PyArray_CheckExact(args[0])
        || !PyLong_CheckExact(args[1]) || PyArray_NDIM((PyArrayObject *)args[0]) != 2)
        goto slow;
    {
    const long axis = PyLong_AsLong(args[1]);
    if (axis != 0 && axis != 1) { PyErr_Clear(); goto slow; }
    const npy_intp n = PyArray_DIMS((PyArrayObject *)args[0])[0];
    const npy_intp m = PyArray_DIMS((PyArrayObject *)args[0])[1];
    int64_t rs;
    const double *z = sg_operand(args[0], n, m, &rs);
    if (z == NULL || n == 0 || m == 0) goto slow;
    npy_intp dims[2] = {axis == 0 ? 1 : n, axis == 0 ? m : 1};
    PyObject *res = PyArray_SimpleNew(2, dims, NPY_DOUBLE);
    if (res == NULL) return NULL;
    double *o = (double *)PyArray_DATA((PyArrayObject *)res);
    double *acc = axis == 0 ? (double *)PyMem_RawMalloc(m * sizeof(double)) : NULL;
    if (axis == 0 && acc == NULL) { Py_DECREF(res); return PyErr_NoMemory(); }
    Py_BEGIN_ALLOW_THREADS
    if (axis == 0) {
        for (npy_intp j = 0; j < m; ++j) { o[j] = z[j]; acc[j] = 0.0; }
        for (npy_intp i = 1; i < n; ++i) {
            const double *r = z + i * rs;
            for (npy_intp j = 0; j < m; ++j) o[j] = sg_max(o[j], r[j]);
        }
        for (npy_intp i = 0; i < n; ++i) {
            const double *r = z + i * rs;
            for (npy_intp j = 0; j < m; ++j) acc[j] += exp(r[j] - o[j]);
        }
        for (npy_intp j = 0; j < m; ++j) o[j] = o[j] + log(acc[j]);
    } else {
        for (npy_intp i = 0; i < n; ++i) {
            const double *r = z + i * rs;
            double mx = r[0];
            for (npy_intp j = 1; j < m; ++j) mx = sg_max(mx, r[j]);
            double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, rest = 0.0;
            npy_intp j = 0;
            for (; j + 8 <= m; j += 8)
                for (int k = 0; k < 8; ++k) a[k] += exp(r[j + k] - mx);
            for (; j < m; ++j) rest += exp(r[j] - mx);
            o[i] = mx + log(((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
                            + rest);
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(acc);
    return res;
    }
slow:
    return PyObject_Vectorcall(fallback, args, nargs, kwnames);
}
"""


def entry_source(groups: list[tuple[str, Any]], helpers: tuple[str, ...] = ()) -> str:
    """C source of the builtin entries of ``groups`` (``(C loop name, Group)``), to be compiled
    after the loops themselves, and of the ``helpers`` named (among :data:`HELPERS`; they call
    ``exp``/``log``, so only with libmvec); ``sg_make(k, fallback)`` returns entry ``k``, the
    kernels first, then the helpers in the order given.

    >>> import sympy as sp
    >>> from symgrad.matrix import expr as mx, fused
    >>> X = sp.MatrixSymbol("X", 4, 9)
    >>> f = mx.exp(X)
    >>> (group,) = fused.plan(mx.value_nodes([f]), [f], mvec=True).values()
    >>> print(entry_source([("k", group)]).splitlines()[-2].strip())
    return PyCFunction_NewEx(&sg_defs[k], fallback, NULL);
    """
    lines = [
        # part of the cache key: the entries are built against this interpreter and NumPy
        f"/* symgrad fused entries: {sys.implementation.cache_tag} "
        f"{sysconfig.get_config_var('SOABI')}, NumPy {np.__version__} */",
        "#define PY_SSIZE_T_CLEAN",
        "#include <Python.h>",
        "#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION",
        "#include <numpy/arrayobject.h>",
        "#include <numpy/arrayscalars.h>",
        _HELPERS,
    ]
    for k, (name, group) in enumerate(groups):
        lines += _entry(k, name, group)
    if "_logsumexp" in helpers:
        lines.append(_LSE)
    functions = [(name, f"sg_entry{k}") for k, (name, _) in enumerate(groups)]
    functions += [(name, f"sg_entry{name}") for name in helpers]
    defs = [
        f'    {{"{name}", (PyCFunction)(void (*)(void)){c}, METH_FASTCALL | METH_KEYWORDS, NULL}},'
        for name, c in functions
    ]
    lines += ["static PyMethodDef sg_defs[] = {", *defs, "};", ""]
    lines += [
        "PyObject *sg_make(int k, PyObject *fallback) {",
        "    if (_import_array() < 0) return NULL;",
        "    return PyCFunction_NewEx(&sg_defs[k], fallback, NULL);",
        "}",
        "",
    ]
    return "\n".join(lines)


def _entry(k: int, name: str, group: Any) -> list[str]:
    kinds = [kind for _, kind in group.leaves]
    first = kinds.index("full")
    body = [
        f"static PyObject *sg_entry{k}(PyObject *fallback, PyObject *const *args,",
        "                             Py_ssize_t nargs, PyObject *kwnames) {",
        "    PyObject *out = NULL, *total = NULL;",
        f"    if (nargs != {len(kinds)} || !sg_keywords(args + nargs, kwnames, &out, &total)"
        f" || !PyArray_CheckExact(args[{first}]) "
        f"|| PyArray_NDIM((PyArrayObject *)args[{first}]) != 2)",
        "        goto slow;",
        "    {",
        f"    const npy_intp n = PyArray_DIMS((PyArrayObject *)args[{first}])[0];",
        f"    const npy_intp m = PyArray_DIMS((PyArrayObject *)args[{first}])[1];",
    ]
    call = ["(int64_t)n", "(int64_t)m", "o"]
    for j, kind in enumerate(kinds):
        if kind == "scalar":
            body += [f"    double x{j};", f"    if (!sg_scalar(args[{j}], &x{j})) goto slow;"]
            call.append(f"x{j}")
            continue
        shape = {"full": ("n", "m"), "col": ("n", "1"), "row": ("1", "m"), "one": ("1", "1")}
        r, c = shape[kind]
        stride = f"&s{j}" if kind in ("full", "col") else "NULL"
        if kind in ("full", "col"):
            body.append(f"    int64_t s{j};")
        body += [
            f"    const double *p{j} = sg_operand(args[{j}], {r}, {c}, {stride});",
            f"    if (p{j} == NULL) goto slow;",
        ]
        call += [f"p{j}", f"s{j}"] if kind in ("full", "col") else [f"p{j}"]
    if group.axis is not None:
        r, c = group.total_shape
        body += [
            "    if (total == NULL) goto slow;",
            f"    double *t = sg_target(total, {r}, {c});",
            "    if (t == NULL) goto slow;",
        ]
        call.append("t")
    body += [
        "    double *o;",
        "    if (out == NULL) {",
        "        npy_intp dims[2] = {n, m};",
        "        out = PyArray_SimpleNew(2, dims, NPY_DOUBLE);",
        "        if (out == NULL) return NULL;",
        "        o = (double *)PyArray_DATA((PyArrayObject *)out);",
        "    } else {",
        "        o = sg_target(out, n, m);",
        "        if (o == NULL) goto slow;",
        "        Py_INCREF(out);",
        "    }",
        "    Py_BEGIN_ALLOW_THREADS",
        f"    {name}({', '.join(call)});",
        "    Py_END_ALLOW_THREADS",
        "    return out;",
        "    }",
        "slow:",
        "    return PyObject_Vectorcall(fallback, args, nargs, kwnames);",
        "}",
        "",
    ]
    return body
