"""One answer everywhere: every target of the compiler against NumPy/SciPy semantics.

For the elementary and special functions, at ordinary points, poles, branch cuts, signed zeros,
NaN and infinities, the value and the gradient must be the same on every target:

* ``array``: the NumPy path of :func:`symgrad.lambdify` / :func:`symgrad.value_and_grad`
  (called with a one-element array);
* ``float``: the same compiled function called with a Python float (the scalar fast path);
* ``c``: ``backend="c"`` (where a C compiler exists), called with an array and with a float;
* ``jax``: ``backend="jax"`` in JAX's 64-bit mode (where JAX is installed), the same two ways.

The referee is independent of symgrad's compiler: SymPy's own ``lambdify`` with NumPy and SciPy
(``scipy.special`` for the special functions), of the expression and of ``sympy.diff`` of it,
evaluated on arrays (NumPy's IEEE answers: ``1/0 = inf``, ``log(-1) = nan``,
``sign(nan) = nan``, ``Mod(-1, 2) = 1``, ``gamma(-1) = nan``, ``gamma(-0.0) = -inf``).

Cases that fail because of the code generator (owned by the compiler branches) are marked
``xfail(strict=True)`` naming the bug, so the fix turns them into failures to be unmarked.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import pytest
import sympy as sp

from symgrad import lambdify, sigmoid, value_and_grad
from symgrad.codegen import c as cbackend
from symgrad.errors import SymgradError

pytest.importorskip("scipy")

x = sp.Symbol("x")
INF, NAN = math.inf, math.nan
# ordinary points, signed zeros, subnormals, the edges of the range, infinities, NaN, and the
# points where the functions below have poles (0, -1, -2), branch points (+-1) and cuts (< 0)
POINTS = [0.7, -0.7, 2.5, -2.5, 0.0, -0.0, 1.0, -1.0, -2.0, 1e-310, 1e308, -1e308, INF, -INF, NAN]

FUNCTIONS = {
    "sin": sp.sin(x),
    "cos": sp.cos(x),
    "tan": sp.tan(x),
    "exp": sp.exp(x),
    "log": sp.log(x),
    "sqrt": sp.sqrt(x),
    "pow1.5": x**1.5,
    "pow-1": 1 / x,
    "pow-2": x**-2,
    "cube": x**3,
    "asin": sp.asin(x),
    "acos": sp.acos(x),
    "atan": sp.atan(x),
    "sinh": sp.sinh(x),
    "cosh": sp.cosh(x),
    "tanh": sp.tanh(x),
    "asinh": sp.asinh(x),
    "acosh": sp.acosh(x),
    "atanh": sp.atanh(x),
    "erf": sp.erf(x),
    "erfc": sp.erfc(x),
    "gamma": sp.gamma(x),
    "loggamma": sp.loggamma(x),
    "sign": sp.sign(x),
    "Abs": sp.Abs(x),
    "floor": sp.floor(x),
    "ceiling": sp.ceiling(x),
    "Mod": sp.Mod(x, 2),
    "relu": sp.Max(0, x),
    "Min": sp.Min(x, 1),
    "sigmoid": sigmoid(x),
    "atan2": sp.atan2(x, 1),
    "xlogx": x * sp.log(x),
}
# The referee's derivative where sympy.diff has no NumPy form (0 almost everywhere, the kink
# conventions of docs/conventions.md), written with NumPy's own functions.
NUMPY_DIFF = {
    "sign": lambda p: np.zeros_like(p),
    "floor": lambda p: np.zeros_like(p),
    "ceiling": lambda p: np.zeros_like(p),
    "Mod": lambda p: np.ones_like(p),  # Mod(x, 2) = x - 2 floor(x/2)
    "relu": lambda p: np.heaviside(p, 0.0),
    "Min": lambda p: np.heaviside(1 - p, 0.0),
    "Abs": np.sign,
}


def _loggamma(p: np.ndarray) -> np.ndarray:
    # SymPy's loggamma is the principal branch of log(gamma), evaluated by mpmath: a real
    # number, nan where it is complex (x < 0), +inf at the poles (SymPy: loggamma(-1) = oo).
    # (SciPy's loggamma is not a referee: it gives inf at 1e-310, where the value is 713.8.)
    import mpmath

    out = []
    for v in p.tolist():
        try:
            r = mpmath.loggamma(v)
        except ValueError:
            out.append(INF)
            continue
        out.append(float(r.real) if mpmath.im(r) == 0 else NAN)
    return np.array(out)


NUMPY_VALUE = {"loggamma": _loggamma}


def _referee(name: str, which: str):
    e = FUNCTIONS[name]
    if which == "grad" and name in NUMPY_DIFF:
        f = NUMPY_DIFF[name]
    elif which == "value" and name in NUMPY_VALUE:
        f = NUMPY_VALUE[name]
    else:
        if which == "grad":
            e = sp.diff(e, x)
        e = e.rewrite(sp.exp) if e.has(sigmoid) else e
        f = sp.lambdify(x, e, modules=["numpy", "scipy"])

    def at(p: float) -> float:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = np.asarray(f(np.array([p])), dtype=complex).ravel()
        v = r[0] if r.size else complex(f(p))
        return float(v.real) if v.imag == 0 or v != v else NAN

    return at


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    if a == 0 and b == 0:  # a zero's sign shows downstream: 1/x, atan2, copysign
        return math.copysign(1, a) == math.copysign(1, b)
    return abs(a - b) <= 1e-12 * max(1.0, abs(b))


def _call(fn, p: float, kind: str) -> float:
    arg = np.array([p]) if kind == "array" else p
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's errstate policy, not ours
        r = fn(arg)
    if isinstance(r, tuple):  # value_and_grad: (value, gradient)
        r = r[1]
    r = np.asarray(r)
    if np.iscomplexobj(r):
        return complex(r.ravel()[0])  # a complex result is itself a disagreement
    return float(r.ravel()[0])


# Known code generator bugs, for the compiler branches to fix; each entry is (function, value
# or gradient, targets, points, bug). When a fix lands, its strict xfails fail: drop the entry.
_KNOWN = [
    # fixed on the compiler branch (float path, gamma/loggamma, sign, sqrt) and the cbackend
    # branch (the C printer)
]


def _same_point(p: float, q: float) -> bool:
    if math.isnan(p) or math.isnan(q):
        return math.isnan(p) and math.isnan(q)
    return p == q and math.copysign(1, p) == math.copysign(1, q)


def _known(name: str, which: str, target: str, p: float) -> str | None:
    for fname, w, targets, points, bug in _KNOWN:
        here = fname == name and w in (which, "*") and target in targets
        if here and any(_same_point(p, q) for q in points):
            return bug
    return None


try:
    import jax
except ImportError:  # the interop extra is not installed
    jax = None
TARGETS = ["array", "float"] + (["c-array", "c-float"] if cbackend.c_available() else [])
TARGETS += ["jax-array", "jax-float"] if jax is not None else []


def _x64(target: str):
    # JAX computes in float64 only in its 64-bit mode (switched on here only, not globally)
    return jax.enable_x64(True) if target.startswith("jax") else contextlib.nullcontext()


def _compiled(name: str, which: str, backend: str):
    e = FUNCTIONS[name]
    if which == "value":
        return lambdify(e, [x], backend=backend)
    return value_and_grad(e, x, backend=backend)


def _subnormal(p: float) -> bool:
    return p != 0 and abs(p) < np.finfo(float).tiny


def test_jax_flushes_subnormals_to_zero_as_documented() -> None:
    # the one documented difference of the JAX target (docs/conventions.md): if XLA stops
    # flushing, this fails and the subnormal points join the JAX rows above
    if jax is None:
        pytest.skip("JAX is not installed")
    with jax.enable_x64(True):
        f = lambdify(sp.log(x), [x], backend="jax")
        assert float(np.asarray(f(np.array([1e-310])))[0]) == -INF


def _split():
    # (name, which, target) -> the points expected to agree; known bugs one test per point
    ok, bugs = [], []
    for name in FUNCTIONS:
        for which in ("value", "grad"):
            for target in TARGETS:
                good = []
                for p in POINTS:
                    if target.startswith("jax") and _subnormal(p):
                        continue  # XLA flushes subnormals to zero (docs/conventions.md)
                    bug = _known(name, which, target, p)
                    if bug:
                        mark = pytest.mark.xfail(strict=True, reason=bug)
                        bugs.append(pytest.param(name, which, target, p, marks=mark))
                    else:
                        good.append(p)
                ok.append(pytest.param(name, which, target, good, id=f"{name}-{which}-{target}"))
    return ok, bugs


AGREE, KNOWN_BUGS = _split()
_CACHE: dict = {}


def _check(name: str, which: str, target: str, points: list[float]) -> None:
    key = (name, which, target.split("-")[0])
    backend = {"c": "c", "jax": "jax"}.get(key[2], "numpy")
    if key not in _CACHE:
        try:
            with _x64(target):
                _CACHE[key] = _compiled(name, which, backend)
        except SymgradError as exc:  # no translation: the same typed error on every target
            _CACHE[key] = exc
    fn = _CACHE[key]
    if isinstance(fn, SymgradError):
        pytest.skip(f"not compilable: {fn}")
    referee = _referee(name, which)
    bad = []
    for p in points:
        ref = referee(p)
        try:
            with _x64(target):
                got = _call(fn, p, target.split("-")[-1])
        except Exception as exc:  # an untyped exception where NumPy answers is a disagreement
            bad.append(f"at {p!r}: {type(exc).__name__}: {exc}, NumPy/SciPy {ref!r}")
            continue
        if not (isinstance(got, float) and _same(got, ref)):
            bad.append(f"at {p!r}: {got!r}, NumPy/SciPy {ref!r}")
    assert not bad, f"{name} {which} on {target}: " + "; ".join(bad)


@pytest.mark.parametrize("name, which, target, points", AGREE)
def test_every_target_gives_numpys_answer(name, which, target, points) -> None:
    _check(name, which, target, points)


@pytest.mark.parametrize("name, which, target, p", KNOWN_BUGS)
def test_known_code_generator_bugs(name, which, target, p) -> None:
    _check(name, which, target, [p])


@pytest.mark.parametrize(
    "expr",
    [
        sp.Max(0, x),
        sp.floor(x) ** 2 + sp.floor(x),
        sp.ceiling(x),
        sp.Integer(3) + 0 * x,
        sp.Piecewise((0, x < 0), (x, True)),
        sp.Min(x, 2) * 0 + 5,
    ],
    ids=str,
)
def test_the_float_path_returns_floats_as_numpy_does(expr) -> None:
    # math.floor/ceil return ints and integer literals stay ints in Python: an int result was
    # exact and unbounded (floor(1e300)**2 an int of 600 digits instead of inf)
    f = lambdify(expr, [x])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for p in (-1.5, 2.5, 1e300, -1e300):
            got, want = f(p), np.asarray(f(np.array([p]))).ravel()[0]
            assert isinstance(got, float), (p, got)
            assert _same(float(got), float(want)), (p, got, want)


RECIPROCALS = [sp.csch(x), sp.sech(x), sp.coth(x), sp.acsch(x), sp.asech(x), sp.acoth(x)]
STIFF = [1e-8, -1e-12, 1e-3, 0.5, 0.9, 2.5, -3.0, 30.0, 400.0, 800.0]


@pytest.mark.parametrize("expr", RECIPROCALS, ids=str)
@pytest.mark.parametrize("target", TARGETS)
def test_reciprocal_hyperbolics_are_accurate_at_tiny_and_huge_arguments(expr, target) -> None:
    # SymPy's printers write these through exp/log: csch(1e-8) lost 5 digits, coth(800) was
    # inf/inf = nan, acsch(-1e-12) was log(0); the referee is mpmath at 30 digits
    backend = {"c": "c", "jax": "jax"}.get(target.split("-")[0], "numpy")
    with _x64(target):
        f = lambdify(expr, [x], backend=backend)
        for p in STIFF:
            want = complex(sp.N(expr.subs(x, sp.Float(p, 30)), 30))
            want = want.real if abs(want.imag) < 1e-300 else NAN  # complex: NaN on real targets
            got = _call(f, p, target.split("-")[-1])
            ok = _same(got, want) or abs(got - want) <= 1e-14 * abs(want)
            assert ok, (p, got, want)
