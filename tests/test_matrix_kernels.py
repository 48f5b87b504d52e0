"""Compiled matrix code's special kernels against dense NumPy written out by hand.

``X^T diag(s) X`` runs as BLAS ``syrk`` on ``diag(sqrt(s)) X`` when every weight is >= 0 (and
the result is large enough), as the general product otherwise; ``I ⊗ M`` and ``M ⊗ I`` fill only
their nonzero entries; ``X + Y^T`` adds block by block. The references build the dense ``diag``,
call ``numpy.kron`` and add the transposed array directly.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from sympy.matrices.expressions import KroneckerProduct, Transpose
from sympy.matrices.expressions.diagonal import DiagMatrix
from sympy.matrices.expressions.special import Identity

from symgrad.matrix import expr as mx
from symgrad.matrix.codegen import _add_transposed, compile_matrix

RNG = np.random.default_rng(11)
n, m = sp.Symbol("n", integer=True, positive=True), sp.Symbol("m", integer=True, positive=True)
X, s, r = sp.MatrixSymbol("X", n, m), sp.MatrixSymbol("s", n, 1), sp.MatrixSymbol("r", m, 1)
A, B = sp.MatrixSymbol("A", 3, m), sp.MatrixSymbol("B", m, 2)


def _weights(k, sign):
    w = RNG.uniform(0.1, 2.0, (k, 1))
    if sign == "mixed":
        w[::3] *= -1
    if sign == "zero":
        w[::2] = 0.0
    return w


@pytest.mark.parametrize("sign", ["positive", "mixed", "zero"])
@pytest.mark.parametrize(("rows", "cols"), [(4, 3), (150, 130), (130, 150), (1, 140)])
def test_weighted_gram_products_equal_the_dense_diagonal(sign, rows, cols):
    x0 = RNG.normal(size=(rows, cols))
    f = compile_matrix(mx.matmul(Transpose(X), DiagMatrix(s), X), [X, s])
    assert "_gram(" in f.source and "diagflat" not in f.source
    w = _weights(rows, sign)
    got = f(x0, w)
    np.testing.assert_allclose(got, x0.T @ np.diagflat(w) @ x0, rtol=1e-12, atol=1e-12)
    if sign != "mixed" and cols >= 128:  # the syrk path ran: its result is exactly symmetric
        assert np.array_equal(got, got.T)
    g = compile_matrix(mx.matmul(X, DiagMatrix(r), Transpose(X)), [X, r])
    v = _weights(cols, sign)
    np.testing.assert_allclose(g(x0, v), x0 @ np.diagflat(v) @ x0.T, rtol=1e-12, atol=1e-12)


def test_weighted_gram_inside_a_longer_product_and_nan_weights():
    x0, a0, b0 = (RNG.normal(size=shape) for shape in [(100, 140), (3, 140), (140, 2)])
    w = _weights(100, "positive")
    f = compile_matrix(mx.matmul(A, Transpose(X), DiagMatrix(s), X, B), [A, X, s, B])
    want = a0 @ x0.T @ np.diagflat(w) @ x0 @ b0
    np.testing.assert_allclose(f(a0, x0, w, b0), want, rtol=1e-10)
    w[5] = np.nan  # NaN propagates as in the dense product (into the columns it touches)
    got = compile_matrix(mx.matmul(Transpose(X), DiagMatrix(s), X), [X, s])(x0, w)
    assert np.isnan(got).all() == np.isnan(x0.T @ (w * x0)).all()
    assert np.isnan(got).any()


@pytest.mark.parametrize("k", [1, 2, 5])
def test_kronecker_with_identity_equals_numpy_kron(k):
    M = sp.MatrixSymbol("M", 2, 3)
    m0 = RNG.normal(size=(2, 3))
    left = compile_matrix(KroneckerProduct(Identity(n), M), [M, s])
    right = compile_matrix(KroneckerProduct(M, Identity(n)), [M, s])
    assert "numpy.kron" not in left.source + right.source
    w = np.ones((k, 1))  # s only fixes n
    np.testing.assert_array_equal(left(m0, w), np.kron(np.eye(k), m0))
    np.testing.assert_array_equal(right(m0, w), np.kron(m0, np.eye(k)))


@pytest.mark.parametrize(("rows", "cols"), [(3, 3), (300, 300), (260, 390), (390, 260)])
def test_sums_with_a_transpose_equal_numpy(rows, cols):
    P, Q = sp.MatrixSymbol("P", n, m), sp.MatrixSymbol("Q", m, n)
    p0, q0 = RNG.normal(size=(rows, cols)), RNG.normal(size=(cols, rows))
    f = compile_matrix([mx.add(P, Transpose(Q)), mx.add(mx.scale(2, P), Transpose(Q))], [P, Q])
    assert "_add_transposed(" in f.source
    got, got2 = f(p0, q0)
    np.testing.assert_array_equal(got, p0 + q0.T)
    np.testing.assert_array_equal(got2, 2 * p0 + q0.T)
    # the blocked loop, which compiled code takes for matrices of millions of entries
    np.testing.assert_array_equal(_add_transposed(p0, q0, blocked_from=0), p0 + q0.T)
    if rows == cols:
        np.testing.assert_array_equal(_add_transposed(p0, p0, blocked_from=0), p0 + p0.T)
        S = sp.MatrixSymbol("S", n, n)
        np.testing.assert_array_equal(compile_matrix(mx.add(S, Transpose(S)), [S])(p0), p0 + p0.T)


def test_jax_target_writes_the_same_products_without_numpy_helpers():
    jax = pytest.importorskip("jax")
    P, M = sp.MatrixSymbol("P", n, n), sp.MatrixSymbol("M", 2, 2)
    outputs = [
        mx.add(P, Transpose(P)),
        mx.matmul(Transpose(X), DiagMatrix(s), X),
        KroneckerProduct(Identity(n), M),
    ]
    args = [P, X, s, M]
    vals = [RNG.normal(size=(300, 300)), RNG.normal(size=(300, 140)), _weights(300, "positive")]
    vals.append(RNG.normal(size=(2, 2)))
    want = compile_matrix(outputs, args)(*vals)
    with jax.enable_x64(True):
        f = compile_matrix(outputs, args, backend="jax")
        assert not any(h in f.source for h in ("_gram", "_add_transposed", "_kron_identity"))
        got = f(*vals)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-10, atol=1e-10)


def test_compiled_functions_check_their_arity_without_a_wrapper():
    from symgrad.errors import ArgumentError

    f = compile_matrix(mx.matmul(Transpose(X), DiagMatrix(s), X), [X, s])
    x0, w = RNG.normal(size=(5, 4)), _weights(5, "positive")
    np.testing.assert_allclose(f(x0, w), x0.T @ (w * x0), rtol=1e-12)
    for bad in [(), (x0,), (x0, w, w)]:
        with pytest.raises(ArgumentError, match=rf"expected 2 arguments \(X, s\), got {len(bad)}"):
            f(*bad)
    assert f.args == [X, s]
