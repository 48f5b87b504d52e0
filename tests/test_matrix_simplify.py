"""symgrad.matrix.simplify and the generated code's use of it: textbook rewrites, scalars on the
smallest operand, temporaries reused without touching the caller's arrays.

Numbers are compared with hand-written NumPy; forms with the textbook formula written by hand.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp

from symgrad.errors import UnsupportedFunctionError
from symgrad.matrix import expr as mx
from symgrad.matrix.codegen import compile_matrix, value_and_grad
from symgrad.matrix.hessian import hessian, hvp, linear_map
from symgrad.matrix.simplify import push_scalars, simplify
from symgrad.matrix.vjp import grad
from symgrad.nn import Dense, Trainer

n = sp.Symbol("n", integer=True, positive=True)
A, Bm = sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("B", n, n)
x, v = sp.MatrixSymbol("x", n, 1), sp.MatrixSymbol("v", n, 1)


def test_common_factors_are_collected_right_then_left():
    assert simplify(mx.add(mx.matmul(A, x), mx.matmul(A.T, x))) == mx.matmul(mx.add(A, A.T), x)
    assert simplify(mx.add(mx.matmul(A, Bm), mx.matmul(A, A))) == mx.matmul(A, mx.add(Bm, A))
    assert simplify(mx.add(mx.matmul(A, x), x)) == mx.matmul(mx.add(A, sp.Identity(n)), x)
    assert simplify(mx.sub(mx.matmul(A, x), mx.matmul(A, x))) == sp.ZeroMatrix(n, 1)


def test_diagonals_merge_and_unit_wrappers_drop():
    from sympy.matrices.expressions.diagonal import DiagMatrix

    a, b = sp.MatrixSymbol("a", n, 1), sp.MatrixSymbol("b", n, 1)
    got = simplify(mx.matmul(A.T, DiagMatrix(a), DiagMatrix(b), A))
    assert got == mx.matmul(A.T, DiagMatrix(mx.hadamard(a, b)), A)
    got = simplify(mx.add(DiagMatrix(a), mx.scale(2, DiagMatrix(b))))
    assert got == DiagMatrix(mx.add(a, mx.scale(2, b)))
    assert simplify(mx.matmul(x.T, x, mx.broadcast(3, (1, 1)))) == mx.scale(3, mx.matmul(x.T, x))


def test_entries_of_one_by_one_products():
    from symgrad.matrix.text import text

    # (sums keep their operands' order, so the forms are compared as printed)
    assert text(grad((x.T * A * x)[0, 0], x)) == "(A + A')*x"
    assert text(grad(mx.sum(mx.matmul(x.T, A, x)), x)) == "(A + A')*x"
    A0, x0 = np.arange(9.0).reshape(3, 3), np.array([[1.0], [-2.0], [0.5]])
    g = compile_matrix(grad((x.T * A * x)[0, 0], x), [A, x])(A0, x0)
    np.testing.assert_allclose(g, (A0 + A0.T) @ x0)


def test_push_scalars_to_the_smallest_operand():
    D, X = sp.MatrixSymbol("D", 10, 256), sp.MatrixSymbol("X", 784, 256)
    (out,) = push_scalars([mx.scale(sp.Rational(1, 256), mx.matmul(D, X.T))])
    assert out.args[0] == mx.scale(sp.Rational(1, 256), D)
    D0, X0 = np.random.default_rng(0).normal(size=(10, 256)), np.ones((784, 256))
    got = compile_matrix(mx.scale(sp.Rational(1, 256), mx.matmul(D, X.T)), [D, X])(D0, X0)
    np.testing.assert_allclose(got, D0 @ X0.T / 256, rtol=1e-14)


def test_784_step_scales_no_weight_sized_array_and_keeps_inputs():
    net = Dense(784, [256, 10], activation="tanh", seed=0)
    fn = Trainer(net, "softmax_cross_entropy", monitor=False).fn  # the training step's
    src = fn.source
    scale = re.search(r"(t\d+) = d0\*\*\(-1\.0\)", src).group(1)
    dW1 = re.search(r"return \(\w+, \((t\d+),", src).group(1)
    # dW1 is a plain product (no scale on the 256 x 784 result) ...
    assert re.search(rf"^    {dW1} = t\d+ @ t\d+$", src, re.M)
    assert not re.search(rf"^    {dW1} \*=", src, re.M)
    # ... and the 1/B scale is applied once, to the 256 x 10 transposed weight
    uses = re.findall(rf"^    (t\d+) = .*\b{scale}\b.*$", src, re.M)
    assert len(uses) == 3  # W2^T, dW2 (10 x 256) and db2 (10 x 1)
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(784, 32)), np.eye(10)[rng.integers(0, 10, 32)].T.copy()
    X0, Y0 = X.copy(), Y.copy()
    params = [m.copy() for m in net.matrices(net.parameter_vector())]
    value, grads, _scores = fn(*params, X, Y)
    np.testing.assert_array_equal(X, X0)  # in-place reuse never touches the caller's arrays
    np.testing.assert_array_equal(Y, Y0)
    for p, p0 in zip(net.matrices(net.parameter_vector()), params, strict=True):
        np.testing.assert_array_equal(p, p0)
    W1, b1, W2, b2 = params
    h = np.tanh(W1 @ X + b1)
    z = W2 @ h + b2
    s = np.exp(z - z.max(0)) / np.exp(z - z.max(0)).sum(0)
    lse = z.max(0) + np.log(np.exp(z - z.max(0)).sum(0))
    assert abs(value - (lse.sum() - np.sum(Y * z)) / 32) < 1e-12
    d2 = (s - Y) / 32
    d1 = (1 - h * h) * (W2.T @ d2)
    for got, want in zip(
        grads, [d1 @ X.T, d1.sum(1, keepdims=True), d2 @ h.T, d2.sum(1, keepdims=True)], strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)


def test_generated_code_frees_temporaries():
    W, X = sp.MatrixSymbol("W", 3, 4), sp.MatrixSymbol("X", 4, 5)
    f = compile_matrix(mx.tanh(mx.add(mx.matmul(W, X), mx.matmul(W, X))), [W, X])
    assert "del " in f.source and "out=" in f.source
    W0, X0 = np.ones((3, 4)), np.ones((4, 5))
    np.testing.assert_allclose(f(W0, X0), np.tanh(2 * W0 @ X0))
    g = value_and_grad(mx.sum(mx.hadamard(W, W)), [W])
    assert g(W0)[1][0] is not W0


def test_linear_map_errors_and_zero():
    with pytest.raises(UnsupportedFunctionError, match="use hvp"):
        linear_map(mx.add(mx.matmul(A, v), x), v)  # affine, not linear
    with pytest.raises(UnsupportedFunctionError):
        linear_map(mx.exp(v), v)
    assert linear_map(mx.matmul(A, x), v) == sp.ZeroMatrix(n, n)


def test_hessian_of_a_scalar_coefficient_term_and_of_two_vectors():
    y = sp.MatrixSymbol("y", 3, 1)
    w = sp.MatrixSymbol("w", 3, 1)
    f = mx.sumsq(w) ** 2  # (w^T w)^2: H = 4 (w^T w) I + 8 w w^T
    H = hessian(f, w)
    w0 = np.array([[1.0], [2.0], [-1.0]])
    want = 4 * (w0.T @ w0).item() * np.eye(3) + 8 * w0 @ w0.T
    np.testing.assert_allclose(compile_matrix(H, [w])(w0), want, rtol=1e-12)
    g = mx.sum(mx.hadamard(mx.tanh(w), y))  # H = [[diag(-2 t (1 - t^2) y), diag(1 - t^2)], ...]
    H = hessian(g, [w, y])
    y0 = np.array([[0.5], [-1.0], [2.0]])
    t = np.tanh(w0)
    want = np.block([
        [np.diag((-2 * t * (1 - t * t) * y0).ravel()), np.diag((1 - t * t).ravel())],
        [np.diag((1 - t * t).ravel()), np.zeros((3, 3))],
    ])  # fmt: skip
    np.testing.assert_allclose(compile_matrix(H, [w, y])(w0, y0), want, rtol=1e-12, atol=1e-15)
    hv = hvp(g, [w, y], [sp.MatrixSymbol("p", 3, 1), sp.MatrixSymbol("q", 3, 1)])
    assert len(hv) == 2
