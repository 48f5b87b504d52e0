"""The C target gives the NumPy target's numbers, shapes and dtypes (differential tests).

References: the NumPy target (a different code path: NumPy ufuncs), mpmath at 30 digits where the
NumPy target itself overflows or raises, and C99 Annex F / ``scipy.special.gamma`` values at
the poles of gamma (written out below).
"""

from __future__ import annotations

import itertools
import math
import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp

from symgrad import lambdify, parse, value_and_grad
from symgrad.codegen import c_build
from symgrad.errors import SymgradError, UnsupportedFunctionError
from symgrad.functions import relu, sigmoid

pytestmark = pytest.mark.skipif(not c_build.c_available(), reason="no C compiler")

x, y, w0, w1 = sp.symbols("x y w0 w1")


def test_parameter_vector_broadcasts_from_the_right():
    f = lambdify(w0 * y, [y, [w0, w1]], backend="c")
    Y = np.arange(6.0).reshape(2, 3)
    W = np.array([[10.0, 11.0, 12.0], [13.0, 14.0, 15.0]])
    assert f(Y, W).tolist() == [[0, 11, 24], [30, 44, 60]]


# Every argument kind the NumPy target takes for a scalar argument and a vector of 2 symbols.
SCALARS = {
    "float": 1.5,
    "int": 2,
    "np.float64": np.float64(-0.5),
    "0-d": np.array(1.25),
    "np.float32": np.float32(1.5),
    "(3,)": np.arange(3.0) - 1,
    "(1, 3)": np.arange(3.0).reshape(1, 3),
    "(2, 3)": np.arange(6.0).reshape(2, 3) / 3,
    "(2, 1)": np.array([[0.5], [2.0]]),
    "int (3,)": np.arange(3),
    "float32 (3,)": np.arange(3, dtype=np.float32),
    "(0,)": np.zeros(0),
    "(1,)": np.array([2.0]),
    "strided (3,)": np.arange(6.0)[::2],
}
VECTORS = {
    "list": [0.5, -1.0],
    "(2,)": np.array([0.5, -1.0]),
    "int (2,)": np.array([1, 2]),
    "(2, 3)": np.arange(6.0).reshape(2, 3) - 2,
    "(2, 1)": np.array([[1.0], [2.0]]),
    "(2, 1, 3)": np.arange(6.0).reshape(2, 1, 3),
    "(2, 2, 3)": np.arange(12.0).reshape(2, 2, 3) / 5,
    "float32 (2, 3)": np.arange(6, dtype=np.float32).reshape(2, 3),
    "(2, 0)": np.zeros((2, 0)),
    "(3,) wrong length": np.arange(3.0),
    "(2, 4)": np.ones((2, 4)),
    "Fortran (2, 3)": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
}
# The NumPy target reads a 1-D parameter vector as a float64 array (its entries are NumPy
# float64 scalars, so 1/0 is inf, never ZeroDivisionError), so a float32 scalar times an entry is
# float64 there (NumPy's promotion); the C target still returns float32 for these. Values agree.
VECTOR_1D = {"list", "(2,)", "int (2,)"}
OUTPUTS = {
    "product": (w0 * y, None),
    "nested with constants": ([w0 * y, [w1, y * w1, sp.Integer(3)]], None),
    "gradient": ([sp.tanh(w0 * y + w1), [y * w0, sp.Integer(2), w1**2]], None),
    "constant gradient": ([w0 * y, [sp.Integer(1), sp.Rational(1, 2)]], None),
    "mean": ([w0 * y + w1, [y, w1]], "mean"),
}


def _call(f, a, b):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return "ok", f(a, b)
        except SymgradError as exc:
            return "error", type(exc).__name__


def _same(want, got) -> str | None:
    # None when equal in value (1e-12 relative; float32 results to float32 precision), shape and
    # dtype; else what differs
    if isinstance(want, tuple):
        if not isinstance(got, tuple) or len(got) != len(want):
            return "structure"
        return next((d for d in map(_same, want, got) if d), None)
    want, got = np.asarray(want), np.asarray(got)
    if want.shape != got.shape:
        return f"shape {want.shape} != {got.shape}"
    if want.dtype != got.dtype:
        return f"dtype {want.dtype} != {got.dtype}"
    tol = 1e-12 if want.dtype == np.float64 else 1e-6
    if not np.allclose(want, got, rtol=tol, atol=0, equal_nan=True):
        return "values"
    return None


@pytest.mark.parametrize("which", list(OUTPUTS))
def test_every_argument_shape_and_dtype_as_numpy(which):
    expr, reduce = OUTPUTS[which]
    args = [y, [w0, w1]]
    f_np = lambdify(expr, args, reduce=reduce)
    f_c = lambdify(expr, args, backend="c", reduce=reduce)
    bad = []
    for (sn, s), (vn, v) in itertools.product(SCALARS.items(), VECTORS.items()):
        want, got = _call(f_np, s, v), _call(f_c, s, v)
        if want[0] != got[0] or (want[0] == "error" and want[1] != got[1]):
            bad.append((sn, vn, want, got))
        elif want[0] == "ok" and (diff := _same(want[1], got[1])):
            if diff == "dtype float64 != float32" and "32" in sn and vn in VECTOR_1D:
                continue  # see VECTOR_1D
            bad.append((sn, vn, diff))
    assert not bad, bad[:5]


def test_constant_gradient_has_numpy_shape():
    f_np = value_and_grad(x + 2 * y, [x, y], args=[x, y])
    f_c = value_and_grad(x + 2 * y, [x, y], args=[x, y], backend="c")
    v, g = f_c(np.ones(4), np.ones(4))
    assert v.shape == (4,) and np.shape(g) == np.shape(f_np(np.ones(4), np.ones(4))[1]) == (2,)
    assert np.asarray(g).tolist() == [1, 2]


# ---------------------------------------------------------------- every head, C against NumPy

_GAMMA_POLES = [(0.0, math.inf), (-0.0, -math.inf), (-1.0, math.nan), (-2.0, math.nan)]


def test_gamma_at_its_poles_is_ieee():
    # C99 Annex F tgamma, the values scipy.special.gamma gives: +-inf at +-0, NaN at negative
    # integers; never an exception
    f = lambdify(sp.gamma(x), [x], backend="c")
    got = f(np.array([p for p, _ in _GAMMA_POLES]))
    np.testing.assert_array_equal(got, [v for _, v in _GAMMA_POLES])
    assert math.copysign(1, got[1]) == -1


def test_mod_sign_nan_as_numpy():
    xs = np.array([-1.0, -3.5, 3.5, -0.0, 0.0, np.inf, -np.inf, np.nan, 2.0, -2.0])
    for d in [2, -2, sp.Rational(1, 3), sp.Float(0.5)]:
        got = lambdify(sp.Mod(x, d), [x], backend="c")(xs)
        with np.errstate(invalid="ignore"):
            want = np.mod(xs, float(d))
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    ys = np.array([2.0, -2.0, 0.0, np.inf, -np.inf, np.nan, 0.75, -0.75, 3.0, 1e-300])
    with np.errstate(invalid="ignore", divide="ignore"):
        np.testing.assert_array_equal(
            lambdify(sp.Mod(x, y), [x, y], backend="c")(xs, ys), np.mod(xs, ys)
        )
        sign = lambdify(sp.sign(x), [x], backend="c")(xs)
    np.testing.assert_array_equal(sign, np.sign(xs))


# (head, expression, points): ordinary points inside the domain, and edge values
_EDGES = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 800.0, -800.0, 1e-300]
HEADS = [
    ("Abs", sp.Abs(x), (-3, 3)),
    ("Heaviside", sp.Heaviside(x) + sp.Heaviside(x, 0), (-2, 2)),
    ("Mod", sp.Mod(x, 3) + sp.Mod(-x, sp.Rational(1, 2)), (-5, 5)),
    ("frac", sp.frac(x), (-5, 5)),
    ("floor, ceiling", sp.floor(x) + 2 * sp.ceiling(x), (-5, 5)),
    ("sign", sp.sign(x), (-2, 2)),
    ("exp, log", sp.exp(x) + sp.log(x), (0.1, 5)),
    ("sqrt, cbrt, powers", sp.sqrt(x) + x ** sp.Rational(1, 3) + x**-2 + x**3 + x**2.5, (0.1, 4)),
    ("reciprocal of a sum", 1 / (x + 1) + 1 / (2 * x) + (x + 1) ** 2, (0.1, 4)),
    ("sin, cos, tan", sp.sin(x) + sp.cos(x) + sp.tan(x), (-1.4, 1.4)),
    ("sec, csc, cot", sp.sec(x) + sp.csc(x) + sp.cot(x), (0.1, 1.4)),
    ("asin, acos, atan", sp.asin(x) + sp.acos(x) + sp.atan(x), (-0.99, 0.99)),
    ("asec, acsc, acot", sp.asec(x) + sp.acsc(x) + sp.acot(x), (1.01, 5)),
    ("sinh, cosh, tanh", sp.sinh(x) + sp.cosh(x) + sp.tanh(x), (-5, 5)),
    ("sech", sp.sech(x), (-5, 5)),
    ("csch", sp.csch(x), (0.1, 5)),
    ("coth", sp.coth(x), (0.1, 5)),
    ("asinh, acosh, atanh", sp.asinh(x) + sp.acosh(x + 2) + sp.atanh(x / 2), (-0.99, 0.99)),
    ("asech, acsch, acoth", sp.asech(x) + sp.acsch(x) + sp.acoth(x + 1), (0.1, 0.99)),
    ("atan2", sp.atan2(x, x - 1), (-3, 3)),
    ("erf, erfc", sp.erf(x) + sp.erfc(x), (-3, 3)),
    ("gamma, loggamma", sp.gamma(x) + sp.loggamma(x), (0.1, 6)),
    ("beta, binomial, catalan", sp.beta(x) + sp.binomial(x, 2) + sp.catalan(x), (0.5, 5)),
    ("rising, falling", sp.RisingFactorial(x, 2) + sp.FallingFactorial(x, 2), (0.5, 5)),
    ("sinc", sp.sinc(x), (-3, 3)),
    ("Max, Min, relu", sp.Max(x, 1, -x) - sp.Min(x, 0.5) + relu(x), (-2, 2)),
    ("sigmoid", sigmoid(x), (-30, 30)),
    ("Piecewise", sp.Piecewise((x**2, x > 1), (-x, x < -1), (0.5, True)), (-3, 3)),
    ("Piecewise without otherwise", sp.Piecewise((x, x > 0)), (-3, 3)),
    ("re, im, arg", sp.re(x) + sp.im(x) + sp.arg(x), (-3, 3)),
    ("constants", sp.EulerGamma * x + sp.Catalan + sp.GoldenRatio + sp.E + sp.pi, (-3, 3)),
    ("huge rational", parse("2**1100/3**690*x") + sp.Rational(1, 3**700), (-3, 3)),
    ("huge integer", sp.Integer(3**600) * x * sp.Integer(2) ** -900, (-3, 3)),
    ("nan, oo", sp.Max(x, -sp.oo) + sp.Min(x, sp.oo), (-3, 3)),
]


def _mp(expr: sp.Expr, value: float) -> float | None:
    # mpmath at 30 digits (SymPy's own value at +-oo), as a double; None when not a real number
    at = sp.Float(value, 30) if math.isfinite(value) else sp.oo if value > 0 else -sp.oo
    try:
        v = complex(expr.subs(x, at).evalf(30))
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not abs(v.imag) <= 1e-25 * max(1.0, abs(v.real)) or math.isnan(v.real):
        return None
    return v.real


@pytest.mark.parametrize(("head", "expr", "domain"), HEADS, ids=[h for h, _, _ in HEADS])
def test_every_head_matches_numpy(head, expr, domain):
    rng = np.random.default_rng(11)
    ordinary = rng.uniform(*domain, 40)
    f_c = lambdify(expr, [x], backend="c")
    f_np = lambdify(expr, [x])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_allclose(f_c(ordinary), f_np(ordinary), rtol=1e-12, atol=1e-300)
        got = np.asarray(f_c(np.array(_EDGES)), dtype=float)
        for v, g in zip(_EDGES, got, strict=True):
            try:
                want = float(f_np(np.array([v]))[0])
            except (ValueError, ArithmeticError):  # the NumPy target's math.* raise at poles
                want = None
            if want is not None and (
                want == g or (np.isnan(want) and np.isnan(g)) or abs(want - g) <= 1e-12 * abs(g)
            ):
                continue
            # the NumPy target overflowed (inf/inf) or raised: mpmath decides
            ref = _mp(expr, v) if not np.isnan(v) else None
            if want is None and (ref is None or not np.isfinite(g)):
                # a pole of gamma, where the NumPy target's math.gamma raises and C gives inf or
                # NaN (C99 Annex F, as scipy.special.gamma: see test_gamma_at_its_poles)
                continue
            assert ref is not None and g == pytest.approx(ref, rel=1e-12), (head, v, g, want)


def test_infinite_float_literal():
    f = lambdify([sp.Float("1e400") * x, sp.Float("-1e400") * x], [x], backend="c")
    got = f(np.array([1.0, -1.0, 0.0]))
    np.testing.assert_array_equal(got, [[np.inf, -np.inf, np.nan], [-np.inf, np.inf, np.nan]])


def test_complex_infinity_is_a_typed_error():
    with pytest.raises(UnsupportedFunctionError, match="zoo"):
        lambdify(sp.zoo * x, [x], backend="c")


def test_huge_rational_is_correctly_rounded():
    e = parse("2**1100/3**690*x")
    with mpmath.workdps(60):
        want = float(mpmath.mpf(2) ** 1100 / mpmath.mpf(3) ** 690)
    f = lambdify(e, [x], backend="c")
    assert f(np.array([1.0]))[0] == want
    assert f(1.0) == want


@pytest.mark.parametrize("head", [sp.sech, sp.csch, sp.coth, sp.sec, sp.csc, sp.cot])
def test_reciprocal_functions_and_their_gradients(head):
    expr = head(x * y + 1) * x
    f = value_and_grad(expr, [x, y], args=[x, y], backend="c")
    xs, ys = np.array([0.3, 1.1, -0.7]), np.array([0.2, -0.4, 0.9])
    v, g = f(xs, ys)
    ref = sp.lambdify([x, y], [expr, sp.diff(expr, x), sp.diff(expr, y)], "mpmath")
    for i in range(3):
        want = [float(r) for r in ref(mpmath.mpf(xs[i]), mpmath.mpf(ys[i]))]
        np.testing.assert_allclose([v[i], g[0][i], g[1][i]], want, rtol=1e-12)


@pytest.mark.parametrize("head", [sp.Max, sp.Min])
def test_wide_max_and_min_build_in_linear_time_and_propagate_nan(head):
    # each SIMD helper's argument used to be written twice by a macro: a left fold of 20
    # arguments took 18 s to compile and 300 exhausted the compiler's memory
    xs = sp.symbols("a0:300")
    vals = np.random.default_rng(3).normal(size=(300, 6))
    vals[7, 2] = np.nan
    f = lambdify(head(*xs, evaluate=False), [list(xs)], backend="c")
    want = vals.max(axis=0) if head is sp.Max else vals.min(axis=0)
    np.testing.assert_array_equal(f(vals), want)
