"""The C entry of compiled matrix programs (symgrad.matrix.native) against independent references.

References: hand-written NumPy formulas of the Hessians, central finite differences of the
gradients, ``numpy.kron``; and the generated NumPy function for the calls the entry passes on
(float32, lists, wrong shapes, IEEE exceptions), which must answer exactly as without the entry.
"""

from __future__ import annotations

import math
import types
import warnings

import numpy as np
import pytest
import sympy as sp
from sympy.matrices.expressions.diagonal import DiagMatrix

from symgrad.codegen import c_build
from symgrad.codegen.c_float import entry_flags
from symgrad.errors import ArgumentError, CompilerError, ShapeError
from symgrad.matrix import expr as mx
from symgrad.matrix import native
from symgrad.matrix.codegen import compile_matrix, value_and_grad
from symgrad.matrix.hessian import hessian
from symgrad.matrix.parse import parse

_CC = c_build.compiler()
needs_entry = pytest.mark.skipif(
    _CC is None or entry_flags(_CC) is None,
    reason="needs a C compiler and Python's and NumPy's headers",
)

m_, n_ = sp.symbols("m n", integer=True, positive=True)


def _native(outputs, args):
    f = compile_matrix(outputs, args)
    assert native.prepare(f), "the program should run as one C function"
    return f


def _symbols(f):
    return {s.name: s for s in mx.value_nodes([f]) if isinstance(s, sp.MatrixSymbol)}


def _logistic():
    f = parse(
        "sum(log(exp(-y.*(X*w)) + vector(1)))",
        {"X": ("m", "n"), "w": ("n",), "y": ("m",)},
    )
    s = _symbols(f)
    return f, s["X"], s["w"], s["y"]


def _hand_logistic_hessian(X, w, y):
    sig = 1 / (1 + np.exp(-y * (X @ w)))
    d = y * y * sig * (1 - sig)
    return X.T @ (d * X)


def _loss(X, w, y):
    return np.sum(np.log1p(np.exp(-y * (X @ w))))


@needs_entry
@pytest.mark.parametrize("m,n", [(1, 1), (3, 2), (10, 10), (7, 25), (40, 19), (130, 120)])
def test_logistic_hessian_matches_hand_numpy_and_finite_differences(m, n):
    f, X, w, y = _logistic()
    H = _native(hessian(f, w), [w, X, y])
    rng = np.random.default_rng(m * 1000 + n)
    Xv, wv = rng.normal(size=(m, n)), rng.normal(size=(n, 1)) / np.sqrt(n)
    yv = rng.choice([-1.0, 1.0], size=(m, 1))
    got = H(wv, Xv, yv)
    assert got.shape == (n, n) and got.dtype == np.float64 and got.flags.c_contiguous
    np.testing.assert_allclose(got, _hand_logistic_hessian(Xv, wv, yv), rtol=1e-12, atol=1e-12)
    # the Hessian is the derivative of the gradient: central differences of the hand gradient
    eps = 1e-5
    grad = lambda v: -Xv.T @ (yv / (1 + np.exp(yv * (Xv @ v))))  # noqa: E731
    for j in range(min(n, 3)):
        e = np.zeros((n, 1))
        e[j] = eps
        col = (grad(wv + e) - grad(wv - e)) / (2 * eps)
        np.testing.assert_allclose(got[:, j : j + 1], col, rtol=1e-6, atol=1e-8)


@needs_entry
def test_gradient_and_value_match_finite_differences():
    f, X, w, y = _logistic()
    fg = value_and_grad(f, [w], [w, X, y])
    assert native.prepare(fg)
    rng = np.random.default_rng(1)
    Xv, wv, yv = rng.normal(size=(9, 4)), rng.normal(size=(4, 1)), rng.choice([-1.0, 1.0], (9, 1))
    val, (dw,) = fg(wv, Xv, yv)
    assert type(val) is np.float64
    assert val == pytest.approx(_loss(Xv, wv, yv), rel=1e-13)
    eps = 1e-6
    for j in range(4):
        e = np.zeros((4, 1))
        e[j] = eps
        fd = (_loss(Xv, wv + e, yv) - _loss(Xv, wv - e, yv)) / (2 * eps)
        assert dw[j, 0] == pytest.approx(fd, rel=1e-6, abs=1e-9)


@needs_entry
@pytest.mark.parametrize("n", [1, 5, 64, 200])
def test_quadratic_form_hessian_on_strided_and_fortran_arrays(n):
    f = parse("x'*A*x", {"A": ("n", "n"), "x": ("n",)})
    s = _symbols(f)
    H = _native(hessian(f, s["x"]), [s["x"], s["A"]])
    rng = np.random.default_rng(n)
    big = rng.normal(size=(2 * n, 3 * n))
    for A in (big[::2, ::3], np.asfortranarray(big[:n, :n]), big[:n, :n], big[n - 1 :: -1, :n]):
        x = rng.normal(size=(2 * n, 1))[::2]
        got = H(x, A)
        np.testing.assert_array_equal(got, A + A.T)  # one addition per entry: exact


@needs_entry
@pytest.mark.parametrize("n,k", [(1, 1), (10, 2), (33, 3)])
def test_factorisation_hessian_is_the_kronecker_product(n, k):
    f = parse("norm2(T - U*V')^2", {"T": ("n", "n"), "U": ("n", k), "V": ("n", k)})
    s = _symbols(f)
    H = _native(hessian(f, s["U"]), [s["U"], s["T"], s["V"]])
    rng = np.random.default_rng(n)
    U, T, V = rng.normal(size=(n, k)), rng.normal(size=(n, n)), rng.normal(size=(n, k))
    want = np.kron(np.eye(n), 2 * V.T @ V)
    np.testing.assert_allclose(H(U, T, V), want, rtol=1e-13, atol=1e-13)


@needs_entry
@pytest.mark.parametrize("n", [3, 30, 150])
def test_weighted_gram_with_negative_and_nan_weights(n):
    # X^T diag(s) X with s of any sign: the general product (syrk needs s >= 0); NaN propagates
    X, s = sp.MatrixSymbol("X", m_, n_), sp.MatrixSymbol("s", m_, 1)
    G = _native(mx.matmul(X.T, DiagMatrix(s), X), [X, s])
    rng = np.random.default_rng(n)
    Xv, sv = rng.normal(size=(n + 1, n)), rng.normal(size=(n + 1, 1))
    np.testing.assert_allclose(G(Xv, sv), Xv.T @ (sv * Xv), rtol=1e-11, atol=1e-11)
    sv[0] = np.nan
    want = Xv.T @ (sv * Xv)
    assert np.isnan(want).all()
    np.testing.assert_array_equal(np.isnan(G(Xv, sv)), np.isnan(want))
    # X diag(t) X^T too, and a diagonal scaling the rows of a product's factor
    t = sp.MatrixSymbol("t", n_, 1)
    G2 = _native([mx.matmul(X, DiagMatrix(t), X.T), mx.matmul(X, DiagMatrix(t))], [X, t])
    tv = rng.normal(size=(n, 1))
    got, scaled = G2(Xv, tv)
    np.testing.assert_allclose(got, (Xv * tv.T) @ Xv.T, rtol=1e-11, atol=1e-11)
    np.testing.assert_array_equal(scaled, Xv * tv.T)


@needs_entry
def test_mlp_gradients_with_broadcasts_and_sums_match_the_numpy_function():
    W1, b1 = sp.MatrixSymbol("W1", 5, 3), sp.MatrixSymbol("b1", 5, 1)
    W2, X = sp.MatrixSymbol("W2", 2, 5), sp.MatrixSymbol("X", 3, n_)
    h = mx.tanh(mx.add(mx.matmul(W1, X), mx.broadcast(b1, (5, n_))))
    loss = mx.sumsq(mx.matmul(W2, h))
    fg = value_and_grad(loss, [W1, b1, W2], [W1, b1, W2, X])
    assert native.prepare(fg)
    rng = np.random.default_rng(3)
    vals = [rng.normal(size=s) for s in ((5, 3), (5, 1), (2, 5), (3, 7))]
    val, grads = fg(*vals)
    ref_val, ref_grads = fg._fn(*vals)
    assert type(val) is np.float64 and val == pytest.approx(ref_val, rel=1e-13)
    for got, want in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    # the loss by hand, and one derivative by central differences
    W1v, b1v, W2v, Xv = vals
    assert val == pytest.approx(np.sum((W2v @ np.tanh(W1v @ Xv + b1v)) ** 2), rel=1e-13)
    eps = 1e-6
    e = np.zeros((5, 1))
    e[2] = eps
    up = np.sum((W2v @ np.tanh(W1v @ Xv + b1v + e)) ** 2)
    down = np.sum((W2v @ np.tanh(W1v @ Xv + b1v - e)) ** 2)
    assert grads[1][2, 0] == pytest.approx((up - down) / (2 * eps), rel=1e-6)


@needs_entry
def test_scalar_arguments_traces_and_row_sums():
    A, c = sp.MatrixSymbol("A", n_, n_), sp.Symbol("c")
    outputs = [
        mx.scale(c, mx.sum(A, axis=0)),
        mx.trace(A),
        mx.sum(mx.hadamard(A, A)),
        mx.matmul(mx.scale(2 * c + 1, A), A),  # a coefficient computed inline
    ]
    f = _native(outputs, [A, c])
    rng = np.random.default_rng(4)
    Av = rng.normal(size=(6, 6))
    rows, tr, ss, prod = f(Av, 2.5)
    np.testing.assert_allclose(prod, 6.0 * (Av @ Av), rtol=1e-13)
    np.testing.assert_allclose(rows, 2.5 * Av.sum(axis=0, keepdims=True), rtol=1e-14)
    assert type(tr) is np.float64 and tr == pytest.approx(np.trace(Av), rel=1e-14)
    assert ss == pytest.approx(np.sum(Av * Av), rel=1e-13)
    # an int scalar is passed to the NumPy function: the same numbers
    np.testing.assert_allclose(f(Av, 2)[0], 2 * Av.sum(axis=0, keepdims=True), rtol=1e-14)


@needs_entry
def test_calls_the_entry_does_not_take_are_answered_by_the_numpy_function():
    f, X, w, y = _logistic()
    H = _native(hessian(f, w), [w, X, y])
    rng = np.random.default_rng(5)
    Xv, wv, yv = rng.normal(size=(6, 4)), rng.normal(size=(4, 1)), rng.choice([-1.0, 1.0], (6, 1))
    # float32 stays float32 (NumPy's path), lists are converted
    got32 = H(wv.astype(np.float32), Xv.astype(np.float32), yv.astype(np.float32))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, _hand_logistic_hessian(Xv, wv, yv), rtol=1e-4)
    np.testing.assert_allclose(H(wv.tolist(), Xv, yv), H(wv, Xv, yv), rtol=1e-12)
    with pytest.raises(ShapeError, match="argument X"):
        H(wv, Xv[:, :3], yv)
    with pytest.raises(ArgumentError, match="expected 3 arguments"):
        H(wv, Xv)
    with pytest.raises(TypeError):
        H(wv, Xv, y=yv)


@needs_entry
def test_ieee_exceptions_give_numpys_warnings_and_values():
    f, X, w, y = _logistic()
    H = _native(hessian(f, w), [w, X, y])
    Xv, yv = np.ones((3, 2)), np.ones((3, 1))
    wv = np.array([[400.0], [400.0]])  # exp(y x^T w) = exp(800) overflows: NumPy warns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = H(wv, Xv, yv)
    with warnings.catch_warnings(record=True) as expected:
        warnings.simplefilter("always")
        want = H._fn(wv, Xv, yv)
    assert any("overflow" in str(w.message) for w in expected)
    assert [str(w.message) for w in caught] == [str(w.message) for w in expected]
    np.testing.assert_array_equal(got, want)
    # NaN propagates without a warning, as in NumPy
    wv = np.array([[np.nan], [0.0]])
    got = H(wv, Xv, yv)
    assert np.isnan(got).all()
    np.testing.assert_array_equal(got, H._fn(wv, Xv, yv))


@needs_entry
def test_large_elementwise_functions_go_to_the_numpy_function():
    # from FUNCTION_C_BELOW entries a tree with a function runs in NumPy (vector loops)
    Z = sp.MatrixSymbol("Z", n_, n_)
    f = compile_matrix(mx.tanh(Z), [Z])
    calls = []

    def counting(*args):
        calls.append(args[0].shape)
        return f._fn(*args)

    entry = native._build_entry(f.func.source, counting)
    assert entry is not None
    k = math.isqrt(native.FUNCTION_C_BELOW - 1)  # k * k < FUNCTION_C_BELOW <= (k + 1)^2
    big, small = np.full((k + 1, k + 1), 0.5), np.full((k, k), 0.5)
    np.testing.assert_allclose(entry(big), np.tanh(big), rtol=1e-15)
    np.testing.assert_allclose(entry(small), np.tanh(small), rtol=1e-15)
    assert calls == [(k + 1, k + 1)]


def test_builds_on_the_tenth_call_and_without_a_compiler_stays_numpy(monkeypatch):
    A = sp.MatrixSymbol("A", n_, n_)
    a = np.arange(9.0).reshape(3, 3)
    monkeypatch.setattr(c_build, "c_available", lambda: False)
    f = compile_matrix(mx.add(A, A.T), [A])
    assert f.func is f._fn and not native.prepare(f)
    np.testing.assert_array_equal(f(a), a + a.T)
    monkeypatch.undo()
    if _CC is None or entry_flags(_CC) is None:
        return
    f = compile_matrix(mx.add(A, A.T), [A])
    for _ in range(native.NATIVE_AFTER - 1):
        np.testing.assert_array_equal(f(a), a + a.T)
        assert isinstance(f.func, native._Lazy)
    np.testing.assert_array_equal(f(a), a + a.T)
    assert isinstance(f.func, types.BuiltinFunctionType)
    np.testing.assert_array_equal(f(a), a + a.T)


@needs_entry
def test_a_failed_build_keeps_the_numpy_function(monkeypatch):
    A = sp.MatrixSymbol("A", n_, n_)
    f = compile_matrix(mx.add(A, A.T), [A])

    def broken(*args, **kwargs):
        raise CompilerError("no")

    monkeypatch.setattr(c_build, "build_library", broken)
    assert not native.prepare(f)
    assert f.func is f._fn
    a = np.arange(4.0).reshape(2, 2)
    np.testing.assert_array_equal(f(a), a + a.T)


def test_unsupported_programs_and_fuse_false_have_no_entry():
    A = sp.MatrixSymbol("A", n_, n_)
    assert compile_matrix(mx.inverse(A), [A]).func.__class__ is not native._Lazy
    assert compile_matrix(mx.add(A, A.T), [A], fuse=False).func.__class__ is not native._Lazy


@needs_entry
def test_infinities_give_numpys_values_and_warnings():
    A = sp.MatrixSymbol("A", n_, n_)
    f = _native([mx.add(A, A.T), mx.scale(2, A)], [A])
    a = np.zeros((3, 3))
    a[0, 1], a[1, 0], a[2, 2] = np.inf, -np.inf, np.inf  # inf + (-inf): invalid, NaN
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = f(a)
    with warnings.catch_warnings(record=True) as expected:
        warnings.simplefilter("always")
        want = f._fn(a)
    assert [str(w.message) for w in caught] == [str(w.message) for w in expected]
    assert any("invalid" in str(w.message) for w in expected)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    assert np.isnan(got[0][0, 1]) and got[0][2, 2] == np.inf and got[1][0, 1] == np.inf
    # infinities without an invalid operation stay in C, with NumPy's values and no warning
    b = np.zeros((3, 3))
    b[0, 1] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sym, twice = f(b)
    np.testing.assert_array_equal(sym, b + b.T)
    np.testing.assert_array_equal(twice, 2 * b)


@needs_entry
@pytest.mark.parametrize("n", [3, 12, 40, 200])
def test_products_in_c_and_through_blas_on_views(n):
    # below PRODUCT_C_UP_TO / MATVEC_C_UP_TO multiply-adds in C, above through NumPy's matmul
    # called from C on views (a transposed argument, a broadcast column, a scaled product)
    A, B = sp.MatrixSymbol("A", n_, n_), sp.MatrixSymbol("B", n_, n_)
    w, b = sp.MatrixSymbol("w", n_, 1), sp.MatrixSymbol("b", n_, 1)
    outputs = [
        mx.matmul(A, B.T),
        mx.scale(3, mx.matmul(A.T, B, w)),
        mx.matmul(A, mx.broadcast(b, (n_, n_))),
        mx.matmul(A, w),
    ]
    f = _native(outputs, [A, B, w, b])
    rng = np.random.default_rng(n)
    big = rng.normal(size=(2 * n, 2 * n))
    Av, Bv = big[::2, ::2], np.asfortranarray(rng.normal(size=(n, n)))
    wv, bv = rng.normal(size=(n, 1)), rng.normal(size=(n, 1))
    got = f(Av, Bv, wv, bv)
    want = [Av @ Bv.T, 3 * (Av.T @ Bv @ wv), Av @ np.broadcast_to(bv, (n, n)), Av @ wv]
    for g, v in zip(got, want, strict=True):
        assert g.shape == v.shape and g.dtype == np.float64
        np.testing.assert_allclose(g, v, rtol=1e-12, atol=1e-12 * n)


def _random_program(rng, A, B, x, c):
    """A random matrix expression over square A, B, a column x and a scalar c (n x n result)."""
    pool = [A, B, mx.transpose(A), mx.matmul(A, B)]
    for _ in range(int(rng.integers(2, 6))):
        p, q = (pool[int(k)] for k in rng.integers(0, len(pool), 2))
        op = int(rng.integers(0, 8))
        if op == 0:
            e = mx.add(p, q)
        elif op == 1:
            e = mx.hadamard(p, q)
        elif op == 2:
            e = mx.matmul(p, q)
        elif op == 3:
            e = mx.transpose(p)
        elif op == 4:
            e = mx.scale(c, p)
        elif op == 5:
            e = mx.tanh(p)
        elif op == 6:
            e = mx.add(p, mx.broadcast(mx.matmul(q, x), tuple(p.shape)))
        else:
            e = mx.sub(p, mx.broadcast(mx.sum(q, axis=0), tuple(p.shape)))
        pool.append(e)
    return pool[-1], mx.sum(mx.hadamard(pool[-1], pool[-2]))


@needs_entry
@pytest.mark.parametrize("seed", range(12))
def test_random_programs_agree_with_the_numpy_function(seed):
    rng = np.random.default_rng(seed)
    A, B = sp.MatrixSymbol("A", n_, n_), sp.MatrixSymbol("B", n_, n_)
    x, c = sp.MatrixSymbol("x", n_, 1), sp.Symbol("c")
    out, total = _random_program(rng, A, B, x, c)
    f = _native([out, total], [A, B, x, c])
    for n in (1, 7, 13, 33):
        vals = [rng.normal(size=(n, n)) / n, rng.normal(size=(n, n)) / n, rng.normal(size=(n, 1))]
        vals[0] = np.asfortranarray(vals[0]) if seed % 2 else vals[0]
        got, want = f(*vals, 0.5), f._fn(*vals, 0.5)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-11, atol=1e-12)
        assert type(got[1]) is np.float64
        assert got[1] == pytest.approx(want[1], rel=1e-10, abs=1e-12)


def test_numpy_function_does_not_write_into_an_array_an_output_views():
    # found by the random programs: t3 = t2.T was returned after t2 had been reused in place
    A, B, x = (
        sp.MatrixSymbol("A", n_, n_),
        sp.MatrixSymbol("B", n_, n_),
        sp.MatrixSymbol("x", n_, 1),
    )
    out = mx.transpose(mx.add(mx.broadcast(mx.matmul(A, B, x), (n_, n_)), B))
    f = compile_matrix([out, mx.sum(mx.hadamard(out, mx.transpose(out)))], [A, B, x], fuse=False)
    a, b, v = np.full((2, 2), 2.0), np.arange(4.0).reshape(2, 2), np.ones((2, 1))
    got, total = f(a, b, v)
    want = (np.broadcast_to(a @ b @ v, (2, 2)) + b).T
    np.testing.assert_array_equal(got, want)
    assert total == np.sum(want * want.T)
