"""The native C backend and the pure-Python scalar fast path of lambdify.

References are independent of the code under test: SymPy's own ``lambdify`` of the same
expressions, and hand-written NumPy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import lambdify, value_and_grad
from symgrad.codegen import c as cbackend
from symgrad.codegen import c_build, c_source
from symgrad.errors import ArgumentError, BackendUnavailableError, UnsupportedFunctionError
from symgrad.functions import relu, sigmoid

needs_cc = pytest.mark.skipif(not cbackend.c_available(), reason="no C compiler")

x, y, z = sp.symbols("x y z")

# (expression, domain of x and y): one row per kind of head the C printer must get right
CASES = [
    (x * y + sp.sin(x) * sp.cos(y), (-3, 3)),
    (sp.tanh(x * y + 1) ** 2, (-3, 3)),
    (sp.exp(-(x**2)) / (1 + y**2), (-2, 2)),
    (sp.log(x) + sp.sqrt(y) + x ** sp.Rational(1, 3), (0.1, 4)),
    (x**-2 + y ** sp.Rational(-1, 2) + x**y, (0.1, 3)),
    (relu(x - y) + sp.Max(x, y, 0.5) - sp.Min(x, 2 * y), (-2, 2)),
    (sp.Heaviside(x, 0) * y + sp.Abs(x - y) + sp.sign(y), (-2, 2)),
    (sigmoid(5 * x) + sp.atan(y) + sp.erf(x * y), (-30, 30)),
    (sp.Piecewise((x**2, x > 0), (y, True)) + sp.Float(0.1) * x, (-2, 2)),
]


def _points(lo: float, hi: float, n: int = 50):
    rng = np.random.default_rng(7)
    return rng.uniform(lo, hi, n), rng.uniform(lo, hi, n)


@needs_cc
@pytest.mark.parametrize(("expr", "domain"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_c_backend_matches_sympy_lambdify(expr, domain):
    xs, ys = _points(*domain)
    erf = np.vectorize(math.erf)
    ref = sp.lambdify([x, y], expr, modules=[{"Heaviside": np.heaviside, "erf": erf}, "numpy"])
    f = lambdify(expr, [x, y], backend="c")
    np.testing.assert_allclose(f(xs, ys), ref(xs, ys), rtol=1e-12, atol=1e-12)
    # scalars run the Python fast path; a 0-d array goes to the kernel
    for i in range(3):
        want = ref(xs[i], ys[i])
        assert abs(f(float(xs[i]), float(ys[i])) - want) <= 1e-12 * (1 + abs(want))
        assert abs(f(np.array(xs[i]), ys[i]) - want) <= 1e-12 * (1 + abs(want))


@needs_cc
def test_c_backend_gradient_batch_and_broadcasting():
    w = sp.symbols("w0:3")
    loss = sp.tanh(w[0] * x + w[1] * y + w[2]) ** 2
    f_np = value_and_grad(loss, list(w), args=[x, y, list(w)])
    f_c = value_and_grad(loss, list(w), args=[x, y, list(w)], backend="c")
    xs, ys = _points(-2, 2, 20)
    p = np.array([0.3, -0.7, 0.2])
    _, g_np = f_np(xs, ys, p)
    v_c, g_c = f_c(xs, ys, p)
    # hand-written reference
    t = np.tanh(p[0] * xs + p[1] * ys + p[2])
    dt = 2 * t * (1 - t**2)
    np.testing.assert_allclose(v_c, t**2, rtol=1e-12)
    np.testing.assert_allclose(g_c, np.stack([dt * xs, dt * ys, dt]), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g_c, g_np, rtol=1e-12, atol=1e-15)
    assert g_c.shape == (3, 20)
    # a scalar x against an array y; a parameter batch of shape (3, 20)
    v1, _ = f_c(0.5, ys, p)
    np.testing.assert_allclose(v1, np.tanh(p[0] * 0.5 + p[1] * ys + p[2]) ** 2, rtol=1e-12)
    pb = np.tile(p[:, None], (1, 20))
    np.testing.assert_allclose(f_c(xs, ys, pb)[0], t**2, rtol=1e-12)
    # 2-D batches keep their shape; a non-contiguous view works
    v2, g2 = f_c(xs.reshape(4, 5), ys.reshape(4, 5), p)
    assert v2.shape == (4, 5) and g2.shape == (3, 4, 5)
    np.testing.assert_allclose(f_c(xs[::2], ys[::2], p)[0], (t**2)[::2], rtol=1e-12)


@needs_cc
@pytest.mark.parametrize("unit", [1, 2])
def test_chunked_kernel_matches(monkeypatch, unit):
    # chunks of 3 statements, 1 or 2 chunks per translation unit: values cross functions and
    # translation units through the scratch array
    monkeypatch.setattr(c_source, "SINGLE", 3)
    monkeypatch.setattr(c_source, "CHUNK", 3)
    monkeypatch.setattr(c_source, "UNIT", unit)
    expr = sp.exp(sp.sin(x) * y) + sp.cos(x * y) ** 3 + x / (1 + y**2)
    g = symgrad.grad(expr, [x, y], simplify=False)
    f = lambdify([expr, g], [x, y], backend="c", name="chunked")
    kernel = cbackend.build_c_kernel([x, y], [expr], name="chunked_kernel_test")
    assert "chunked_kernel_test_c1(" in kernel.source
    xs, ys = _points(-1, 1, 10)
    dx = sp.lambdify([x, y], [sp.diff(expr, x), sp.diff(expr, y)])(xs, ys)
    value, grad = f(xs, ys)
    np.testing.assert_allclose(value, sp.lambdify([x, y], expr)(xs, ys), rtol=1e-12)
    np.testing.assert_allclose(grad, np.stack(dx), rtol=1e-12)
    # batch means in a chunked kernel: the sums live beside the scratch array
    mean = lambdify([expr, g], [x, y], backend="c", reduce="mean", name="chunked_mean")
    assert "_c1(" in mean._fn.__globals__["_kernel"].source
    m_value, m_grad = mean(xs, ys)
    np.testing.assert_allclose(m_value, np.mean(sp.lambdify([x, y], expr)(xs, ys)), rtol=1e-12)
    np.testing.assert_allclose(m_grad, np.stack(dx).mean(axis=1), rtol=1e-12)


@needs_cc
def test_kernel_cached_outside_the_repo(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    kernel = cbackend.build_c_kernel([x], [x**2 + 3 * x], name="cached_kernel")
    assert tmp_path / "symgrad" / "c" in kernel.library.parents
    again = cbackend.build_c_kernel([x], [x**2 + 3 * x], name="cached_kernel")
    assert again.library == kernel.library
    assert kernel(np.array([1.0, 2.0])).tolist() == [[4.0, 10.0]]


@needs_cc
def test_c_backend_bad_input():
    f = lambdify(x * y, [x, y], backend="c")
    with pytest.raises(ArgumentError, match="real numbers"):
        f(np.array([1j]), 1.0)
    with pytest.raises(symgrad.errors.ShapeError, match="cannot be combined"):
        f(np.ones(3), np.ones(4))
    with pytest.raises(ArgumentError):
        f("a", 1.0)
    with pytest.raises(UnsupportedFunctionError, match="zeta"):
        lambdify(sp.zeta(x), [x], backend="c")
    g = lambdify(x * y, [x, [y, z]], backend="c")
    with pytest.raises(symgrad.errors.ShapeError):
        g(1.0, np.ones(3))


def test_c_backend_unavailable(monkeypatch):
    monkeypatch.setattr(c_build, "compiler", lambda: None)
    with pytest.raises(BackendUnavailableError, match="C compiler"):
        lambdify(x + 1, [x], backend="c")
    with pytest.warns(RuntimeWarning, match="NumPy backend"):
        f = lambdify(x + 1, [x], backend="auto")
    assert f(np.array([1.0, 2.0])).tolist() == [2.0, 3.0]
    with pytest.raises(BackendUnavailableError, match="backend must be one of 'numpy', 'c'"):
        lambdify(x, [x], backend="fortran")


def test_scalar_fast_path_is_used_and_matches():
    f = value_and_grad(sp.tanh(x * y + z), [x, y, z])
    assert "math.tanh" in f.source
    value, grad = f([0.5, -1.5, 0.25])
    assert type(value) is float
    t = np.tanh(0.5 * -1.5 + 0.25)
    assert value == pytest.approx(t, rel=1e-15)
    np.testing.assert_allclose(grad, (1 - t**2) * np.array([-1.5, 0.5, 1.0]), rtol=1e-14)
    # the same numbers as the vectorised path
    batch = f(np.array([[0.5, 1.0], [-1.5, 2.0], [0.25, 0.0]]))
    assert batch[0][0] == pytest.approx(value, rel=1e-15)


def test_scalar_fast_path_falls_back_to_numpy_semantics():
    f = lambdify([sp.log(x), sp.sqrt(x), x ** sp.Rational(1, 3)], [x])
    assert f(4.0)[0] == pytest.approx(np.log(4.0))
    # math.log(0.0) raises; the NumPy statements then give -inf with NumPy's warning
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        assert f(0.0)[0] == -np.inf
    with pytest.warns(RuntimeWarning, match="invalid value"):
        out = f(-8.0)
    assert np.isnan(out[1])
    g = lambdify(relu(x) + sp.Heaviside(x, 0), [x])
    assert g(0.0) == 0.0 and g(2.0) == 3.0 and g(-1.0) == 0.0
    assert np.isnan(g(float("nan")))  # NaN propagates as in numpy.maximum


def test_scalar_fast_path_skipped_for_large_functions(monkeypatch):
    import symgrad.codegen.pyfloat as pyfloat

    monkeypatch.setattr(pyfloat, "SCALAR_PATH_LIMIT", 2)
    f = lambdify(sp.tanh(x * y + z) * x, [x, y, z])
    assert "math.tanh" not in f.source
    assert f(1.0, 2.0, 3.0) == pytest.approx(np.tanh(5.0))


def _mlp_loss(width: int = 6):
    # one sample's loss of a small ReLU MLP (micrograd's demo shape), its parameters and inputs
    w = sp.symbols(f"w0:{width * 3}")
    v = sp.symbols(f"v0:{width + 1}")
    t = sp.Symbol("t")
    hidden = [relu(w[3 * j] * x + w[3 * j + 1] * y + w[3 * j + 2]) for j in range(width)]
    score = sum(v[j] * h for j, h in enumerate(hidden)) + v[width]
    return relu(1 - t * score), [*w, *v], t


@needs_cc
@pytest.mark.parametrize("simd", [True, False], ids=["simd", "scalar"])
@pytest.mark.parametrize("reduce", [None, "mean"])
def test_c_kernel_matches_numpy_on_every_batch_tail(monkeypatch, simd, reduce):
    # the SIMD loop takes 4 samples at a time: batches of 1..9 cover every partial last block
    # (the statement-by-statement generator; packed kernels: tests/test_c_pack.py)
    monkeypatch.setattr(cbackend, "generate_packed", lambda *args, **kwargs: None)
    if not simd:
        monkeypatch.setattr(c_source, "SIMD_LIMIT", 0)
    loss, params, t = _mlp_loss()
    f_c = value_and_grad(loss, params, [x, y, t, params], backend="c", reduce=reduce)
    f_np = value_and_grad(loss, params, [x, y, t, params], reduce=reduce)
    kernel = f_c._fn.__globals__["_kernel"]
    avx = c_build.target(c_build.compiler()).avx
    assert ("sg_vd" in kernel.source) == (simd and avx)
    rng = np.random.default_rng(3)
    p = rng.normal(size=len(params))
    for n in [*range(1, 10), 101]:
        data = rng.normal(size=(3, n))
        data[2] = np.sign(data[2])
        got, want = f_c(*data, p), f_np(*data, p)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # strided and read-only inputs take the general load and pointer paths
    big = rng.normal(size=(3, 40))
    strided = [big[0, ::2], np.broadcast_to(big[1, :20], (20,)), np.sign(big[2, ::2])]
    for a, b in zip(f_c(*strided, p), f_np(*strided, p), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@needs_cc
@pytest.mark.parametrize("reduce", [None, "mean"])
def test_chunked_simd_kernel_matches_numpy(monkeypatch, reduce):
    # the 4-sample loop split into functions of 7 statements over 2 translation units
    monkeypatch.setattr(c_source, "SINGLE", 7)
    monkeypatch.setattr(c_source, "CHUNK", 7)
    monkeypatch.setattr(c_source, "UNIT", 4)
    loss, params, t = _mlp_loss(3)
    f_c = value_and_grad(loss, params, [x, y, t, params], backend="c", reduce=reduce)
    f_np = value_and_grad(loss, params, [x, y, t, params], reduce=reduce)
    kernel = f_c._fn.__globals__["_kernel"]
    assert kernel.source.count("#include <math.h>") > 2  # several translation units
    assert ("sg_vd" in kernel.source) == c_build.target(c_build.compiler()).avx
    rng = np.random.default_rng(5)
    p = rng.normal(size=len(params))
    for n in (1, 3, 4, 5, 9, 64):
        data = rng.normal(size=(3, n))
        data[2] = np.sign(data[2])
        for a, b in zip(f_c(*data, p), f_np(*data, p), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@needs_cc
@pytest.mark.parametrize("single", [True, False], ids=["one function", "chunked"])
@pytest.mark.parametrize("reduce", [None, "mean"])
def test_terms_over_parameters_only_are_computed_once(monkeypatch, single, reduce):
    # an L2 term inside the loss: statements over the parameters alone run for the first sample
    # when the parameter vector has no batch axes, for every sample when it has
    if not single:
        monkeypatch.setattr(c_source, "SINGLE", 7)
        monkeypatch.setattr(c_source, "CHUNK", 7)
    loss, params, t = _mlp_loss(3)
    loss = loss + sp.Rational(1, 100) * sum(q**2 for q in params) + sp.exp(params[0] * params[1])
    f_c = value_and_grad(loss, params, [x, y, t, params], backend="c", reduce=reduce)
    f_np = value_and_grad(loss, params, [x, y, t, params], reduce=reduce)
    assert "once" in f_c._fn.__globals__["_kernel"].source
    rng = np.random.default_rng(9)
    for n in (1, 5, 13):
        data = rng.normal(size=(3, n))
        for p in (rng.normal(size=len(params)), rng.normal(size=(len(params), n))):
            for a, b in zip(f_c(*data, p), f_np(*data, p), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@needs_cc
def test_auto_picks_numpy_where_c_cannot_be_optimised(monkeypatch):
    f = lambdify(sp.tanh(x * y) + x, [x, y], backend="auto")
    assert f._fn.__globals__.get("_kernel") is not None
    monkeypatch.setattr(cbackend, "BUDGET", 1e-9)  # nothing fits: code at -O0 loses to NumPy
    g = lambdify(sp.tanh(x * y) + x, [x, y], backend="auto")
    assert g._fn.__globals__.get("_kernel") is None
    xs = np.linspace(-1, 1, 5)
    np.testing.assert_allclose(f(xs, 2 * xs), g(xs, 2 * xs), rtol=1e-14)
    h = lambdify(sp.tanh(x * y) + x, [x, y], backend="c")  # asked for: built all the same
    assert h._fn.__globals__.get("_kernel") is not None


def test_optimisation_levels_fit_the_budget(monkeypatch):
    # a small program: every unit at its best level; a huge one: -O0 where the budget ends
    small = [("", "scalar", 0), ("", "scalar", 8000), ("", "simd", 8000)]
    assert cbackend._levels(small, 2) == ["-O2", "-O2", "-O1"]
    huge = [("", "scalar", 0)] + [("", "scalar", 8000)] * 25
    levels = cbackend._levels(huge, 2)
    assert levels[0] == "-O2" and levels[-1] == "-O0"
    cost = sum(cbackend.COST["scalar", lv] * n for (_, _, n), lv in zip(huge, levels, strict=True))
    assert cost <= cbackend.BUDGET * 2
    assert cbackend._levels([("", "simd", 1000)], 2) == ["-O1"]  # one function: the best


@needs_cc
@pytest.mark.parametrize(
    "expr", [sp.Piecewise((x**2, x > 0), (y, True)), sp.tanh(x) * y, x**y], ids=str
)
def test_conditionals_and_math_calls_keep_the_scalar_loop(expr):
    f = lambdify(expr, [x, y], backend="c")
    assert "sg_vd" not in f._fn.__globals__["_kernel"].source
    xs = np.array([-1.0, 0.5, 2.0, 3.0, 0.25])
    want = sp.lambdify([x, y], expr, modules="numpy")(np.abs(xs), 3.0)
    np.testing.assert_allclose(f(np.abs(xs), 3.0), want, rtol=1e-12)


@needs_cc
def test_batch_mean_of_an_empty_batch_is_an_error():
    f = lambdify(x * y, [x, y], backend="c", reduce="mean")
    with pytest.raises(symgrad.errors.ShapeError, match="empty batch"):
        f(np.array([]), 1.0)
