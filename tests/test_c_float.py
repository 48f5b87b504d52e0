"""The C target's entry for calls on Python floats (codegen/c_float.py).

The entry must be invisible except for speed: on every input its answer (values, types,
nesting, errors, warnings) is the one the same function gives without it, and the one the NumPy
target gives. The references here are the NumPy target and the C target with the entry switched
off (its generated Python function), over random expressions of every head the targets print.
"""

from __future__ import annotations

import math
import pickle
import random
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
import sympy as sp

from symgrad.codegen import c_float, lambdify, value_and_grad
from symgrad.codegen.c import c_available
from symgrad.errors import ArgumentError, UnsupportedFunctionError
from tests.test_targets_differential import POINTS, _agree, random_expression
from tests.threads import run_threads

pytestmark = pytest.mark.skipif(not c_available(), reason="no C compiler")

x, y = sp.symbols("x y")
w0, w1 = sp.symbols("w0:2")
SCALARS = [x, y, w0, w1]
PY_FLOATS = [(float(a), float(b), float(v[0]), float(v[1])) for a, b, v in POINTS]
PY_FLOATS += [(0.0, 0.0, 0.0, 0.0), (-0.0, 1e308, -1e308, 5e-324), (1.0, -1.0, 0.5, 2.0)]


def _native(f) -> bool:
    return type(f.func).__name__ == "builtin_function_or_method"


def _call(f, *a):
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn"):
        warnings.simplefilter("always")
        try:
            out = f(*a)
        except Exception as exc:  # the error is part of the answer
            return ("raised", type(exc)), []
    return out, sorted({type(w.message).__name__ for w in caught})


def _shape_of(out):
    """The nesting and the types of a result, without the numbers."""
    if isinstance(out, tuple):
        return ("tuple", tuple(_shape_of(o) for o in out))
    if isinstance(out, np.ndarray):
        return ("ndarray", out.dtype.str, out.shape)
    return type(out).__name__


def _flat(out) -> list:
    if isinstance(out, tuple):
        return [v for o in out for v in _flat(o)]
    return list(np.asarray(out, dtype=float).ravel())


def _same(got, want) -> bool:
    return _shape_of(got) == _shape_of(want) and _agree(_flat(got), _flat(want))


@pytest.mark.parametrize("float_outputs", ["array", "tuple"])
def test_random_expressions_match_the_python_function_and_numpy(float_outputs):
    rng = random.Random(17 if float_outputs == "array" else 18)
    checked = 0
    while checked < 10:
        try:
            expr = random_expression(rng, rng.randint(2, 5))
        except (TypeError, ValueError):  # SymPy refuses some heads' arguments: Max(nan)
            continue
        if expr.has(sp.zoo) or expr.is_number:
            continue
        try:
            native = value_and_grad(
                expr, SCALARS, SCALARS, backend="c", float_outputs=float_outputs
            )
        except UnsupportedFunctionError:
            continue
        if not _native(native):  # math cannot print it: no float path, so no entry
            continue
        checked += 1
        numpy = value_and_grad(expr, SCALARS, SCALARS, float_outputs=float_outputs)
        # Python floats in, by lambdify's contract: a float and a float64 array (or a tuple)
        grad = ("ndarray", "<f8", (4,)) if float_outputs == "array" else ("tuple", ("float",) * 4)
        documented = ("tuple", ("float", grad))
        for at in PY_FLOATS:
            got, got_warned = _call(native, *at)
            python, _ = _call(native._fn, *at)  # the same function without its entry
            want, _ = _call(numpy, *at)
            assert _agree(_flat(got), _flat(python)), (expr, at, got, python)
            assert _agree(_flat(got), _flat(want)), (expr, at, got, want)
            if type(got[0]) is float:  # answered by the entry: the float path's documented types
                assert _shape_of(got) == documented, (expr, at, got)
            else:  # passed on (an IEEE event): exactly the Python function's answer
                assert _shape_of(got) == _shape_of(python), (expr, at, got, python)
            assert not got_warned or got_warned == ["RuntimeWarning"]


def test_the_lecture_gradient_is_answered_natively_with_python_floats():
    a, b, c, f = sp.symbols("a b c f")
    L = (a * b + c) * f
    for float_outputs, kind in (("array", np.ndarray), ("tuple", tuple)):
        g = value_and_grad(L, [a, b, c, f], [a, b, c, f], backend="c", float_outputs=float_outputs)
        assert _native(g)
        value, grad = g(2.0, -3.0, 10.0, -2.0)
        assert type(value) is float and value == -8.0
        assert type(grad) is kind
        # d/da = b f, d/db = a f, d/dc = f, d/df = a b + c (the lecture's numbers)
        assert list(grad) == [6.0, -4.0, -2.0, 4.0]
        if kind is np.ndarray:
            assert grad.dtype == np.float64 and grad.flags.writeable and grad.flags.c_contiguous


def test_ieee_events_are_answered_by_the_python_function():
    f = lambdify([1 / x, sp.log(x), [x, sp.sqrt(x)]], [x], backend="c")
    assert _native(f)
    for at in (0.0, -0.0, -1.0, math.inf, math.nan, 1e-320):
        got, warned = _call(f, at)
        want, want_warned = _call(f._fn, at)
        assert _same(got, want) and warned == want_warned, (at, got, want)
        ref, _ = _call(lambdify([1 / x, sp.log(x), [x, sp.sqrt(x)]], [x]), at)
        assert _agree(_flat(got), _flat(ref))
    # an overflow inside an otherwise finite result
    g = lambdify(x * x * 1e-300, [x], backend="c")
    assert _same(_call(g, 1e200)[0], _call(g._fn, 1e200)[0])


def test_other_inputs_and_bad_calls_pass_through_unchanged():
    f = value_and_grad(x**2 * y, [x, y], [x, y], backend="c")
    assert _native(f)
    for at in ((3, 2.0), (np.float64(3.0), 2.0), (True, 2.0), (np.array([1.0, 3.0]), 2.0)):
        got, want = _call(f, *at), _call(f._fn, *at)
        assert _shape_of(got[0]) == _shape_of(want[0]) and got[1] == want[1]
        if not isinstance(got[0][0], str):  # not ("raised", type)
            assert _agree(_flat(got[0]), _flat(want[0]))
    with pytest.raises(ArgumentError, match="takes 2 argument"):
        f(1.0, 2.0, 3.0)
    with pytest.raises(ArgumentError, match="missing"):
        f(1.0)
    # keywords go to the Python function, which knows its parameters' names
    assert _same(f(1.5, _a1=2.0), f._fn(1.5, 2.0))


def test_matrix_and_empty_outputs_keep_their_shape():
    matrix = sp.Matrix([[x, 2 * y], [x * y, sp.exp(x)]])
    m = lambdify(matrix, [x, y], backend="c")
    assert _native(m)
    assert _same(m(1.0, 3.0), lambdify(matrix, [x, y])(1.0, 3.0))
    e = lambdify([x, [[x, y], [y, x]]], [x, y], backend="c")
    assert _same(e(1.0, 2.0), e._fn(1.0, 2.0))
    t = lambdify([x, [[x, y], [y, x]]], [x, y], backend="c", float_outputs="tuple")
    assert t(1.0, 2.0) == (1.0, ((1.0, 2.0), (2.0, 1.0)))
    nothing = lambdify([], [x], backend="c")
    assert nothing(1.0) == () == nothing._fn(1.0)


def test_no_reference_leaks():
    f = value_and_grad(sp.tanh(x * y + w0), [x, y, w0], [x, y, w0], backend="c")
    assert _native(f)
    args = (0.5, -1.5, 0.25)
    before = [sys.getrefcount(a) for a in args]
    for _ in range(1000):
        f(*args)
        f(0.0, 1.0, math.inf)  # the fallback path
    assert [sys.getrefcount(a) for a in args] == before
    tracemalloc.start()
    try:
        for _ in range(2000):
            f(*args)
        start = tracemalloc.take_snapshot()
        for _ in range(20000):
            f(*args)
        grown = tracemalloc.take_snapshot().compare_to(start, "filename")
    finally:
        tracemalloc.stop()
    assert sum(s.size_diff for s in grown) < 10_000


def test_threads_keep_their_own_flags():
    f = lambdify([1 / x, x + y], [x, y], backend="c")
    bad = []

    def work(k):
        for _ in range(500):
            v = f(0.0 if k % 2 else 2.0, 1.0)
            want = (math.inf, 1.0) if k % 2 else (0.5, 3.0)
            if tuple(map(float, v)) != want:
                bad.append(v)

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        run_threads(work, 4)
    assert not bad


def test_without_headers_the_python_function_answers(monkeypatch):
    monkeypatch.setattr(c_float, "entry_flags", lambda cc: None)
    f = value_and_grad(x * y, [x, y], [x, y], backend="c")
    assert not _native(f)
    value, grad = f(2.0, 3.0)
    assert value == 6.0 and grad.tolist() == [3.0, 2.0]


def test_pickles_and_rebuilds_its_entry():
    f = value_and_grad(sp.sin(x) * y, [x, y], [x, y], backend="c", float_outputs="tuple")
    g = pickle.loads(pickle.dumps(f))
    assert _native(g)
    assert g(1.0, 2.0) == f(1.0, 2.0)


def test_vector_arguments_keep_the_python_function():
    f = value_and_grad(x * y, [x, y], backend="c")  # one vector argument
    assert not _native(f)
    assert f([2.0, 3.0])[1].tolist() == [3.0, 2.0]


def test_the_entry_source_checks_every_argument_exactly():
    src = c_float.entry_source([x, y], [x * y, x + y], [0, [1]], True, "array")
    assert "PyFloat_CheckExact(args[0]) && PyFloat_CheckExact(args[1])" in src
    assert "PyObject_Vectorcall(fallback, args, nargs, kwnames)" in src
    assert "NumPy " + np.__version__ in src  # part of the cache key
