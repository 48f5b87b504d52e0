"""symgrad.matrix: every VJP rule against finite differences of an independent NumPy reference.

Each row builds a scalar f = sum(C ⊙ node) exercising one head on random shapes, with a NumPy
reference of f written by hand. The compiled value must equal the reference, and the compiled
gradient must equal symgrad.numerical's gradient of the *reference* (never the code under test).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from sympy.matrices.expressions import (
    Determinant,
    HadamardPower,
    HadamardProduct,
    Inverse,
    MatAdd,
    MatMul,
    Trace,
    Transpose,
)

from symgrad import numerical
from symgrad.errors import InputTypeError, MissingSymbolError, OptionError, ShapeError
from symgrad.matrix import expr as mx
from symgrad.matrix.codegen import compile_matrix, value_and_grad
from symgrad.matrix.hessian import hessian, hvp
from symgrad.matrix.latex import latex
from symgrad.matrix.vjp import backprop_equations, grad, registered_heads

RNG = np.random.default_rng(7)


def M(name, r, c):
    return sp.MatrixSymbol(name, r, c)


def _spd(n):
    a = RNG.normal(size=(n, n))
    return a @ a.T + n * np.eye(n)


def _weighted(node, C):
    return mx.sum(mx.hadamard(C, node))


def _softmax_ref(z, axis):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _row(head):
    """(f, wrt symbols, values dict, reference f(values) in NumPy) for one head, random shapes."""
    m, n, k = (int(v) for v in RNG.integers(2, 5, size=3))
    A, Bm, Cw = M("A", m, n), M("B", m, n), M("C", m, n)
    vals = {A: RNG.normal(size=(m, n)), Bm: RNG.normal(size=(m, n)), Cw: RNG.normal(size=(m, n))}
    c = vals[Cw]
    if head is MatAdd:
        f = _weighted(mx.add(A, mx.scale(3, Bm)), Cw)
        return f, [A, Bm], vals, lambda v: np.sum(c * (v[A] + 3 * v[Bm]))
    if head is MatMul:
        K, Cmk = M("K", n, k), M("D", m, k)
        vals[K], vals[Cmk] = RNG.normal(size=(n, k)), RNG.normal(size=(m, k))
        s = sp.Symbol("s")
        vals[s] = 1.7
        d = vals[Cmk]
        f = _weighted(mx.scale(s, mx.matmul(A, K)), Cmk)
        return f, [A, K, s], vals, lambda v: np.sum(d * (v[s] * v[A] @ v[K]))
    if head is Transpose:
        Ct = M("E", n, m)
        vals[Ct] = RNG.normal(size=(n, m))
        e = vals[Ct]
        return _weighted(Transpose(A), Ct), [A], vals, lambda v: np.sum(e * v[A].T)
    if head is HadamardProduct:
        f = _weighted(mx.hadamard(A, Bm), Cw)
        return f, [A, Bm], vals, lambda v: np.sum(c * v[A] * v[Bm])
    if head is HadamardPower:
        return _weighted(HadamardPower(A, 3), Cw), [A], vals, lambda v: np.sum(c * v[A] ** 3)
    S, Cs = M("S", m, m), M("F", m, m)
    vals[S], vals[Cs] = _spd(m), RNG.normal(size=(m, m))
    cs = vals[Cs]
    if head is Inverse:
        f = _weighted(mx.inverse(S), Cs)
        return f, [S], vals, lambda v: np.sum(cs * np.linalg.inv(v[S]))
    if head is Trace:
        f = mx.trace(mx.matmul(S, S))
        return f, [S], vals, lambda v: np.trace(v[S] @ v[S])
    if head is Determinant:
        return mx.det(S), [S], vals, lambda v: np.linalg.det(v[S])
    if head is mx.LogDet:
        return mx.logdet(S), [S], vals, lambda v: np.linalg.slogdet(v[S])[1]
    if head is mx.SumAll:
        return mx.sum(mx.tanh(A)), [A], vals, lambda v: np.sum(np.tanh(v[A]))
    if head is mx.SumAxis:
        R = M("R", 1, n)
        vals[R] = RNG.normal(size=(1, n))
        r = vals[R]
        f = _weighted(mx.sum(mx.hadamard(A, A), axis=0), R)
        return f, [A], vals, lambda v: np.sum(r * (v[A] ** 2).sum(axis=0, keepdims=True))
    if head is mx.Broadcast:
        b = M("b", m, 1)
        vals[b] = RNG.normal(size=(m, 1))
        f = _weighted(mx.tanh(mx.add(A, mx.broadcast(b, (m, n)))), Cw)
        return f, [A, b], vals, lambda v: np.sum(c * np.tanh(v[A] + v[b]))
    if head is mx.Softmax:
        f = _weighted(mx.softmax(A, axis=0), Cw)
        return f, [A], vals, lambda v: np.sum(c * _softmax_ref(v[A], 0))
    if head is mx.LogSumExp:
        R = M("R", m, 1)
        vals[R] = RNG.normal(size=(m, 1))
        r = vals[R]
        f = _weighted(mx.logsumexp(A, axis=1), R)
        return f, [A], vals, lambda v: np.sum(r * np.log(np.exp(v[A]).sum(axis=1, keepdims=True)))
    if head is mx.Map:
        f = _weighted(mx.elementwise(lambda u, w: sp.sin(u) * sp.exp(w / 3), A, Bm), Cw)
        return f, [A, Bm], vals, lambda v: np.sum(c * np.sin(v[A]) * np.exp(v[Bm] / 3))
    raise KeyError(head)


HEADS = [
    MatAdd,
    MatMul,
    Transpose,
    HadamardProduct,
    HadamardPower,
    Inverse,
    Trace,
    Determinant,
    mx.LogDet,
    mx.SumAll,
    mx.SumAxis,
    mx.Broadcast,
    mx.Softmax,
    mx.LogSumExp,
    mx.Map,
]


def _check(f, wrt, vals, ref, rtol=1e-6):
    args = list(vals)
    fg = value_and_grad(f, wrt, args)
    value, grads = fg(*[vals[a] for a in args])
    np.testing.assert_allclose(value, ref(vals), rtol=1e-10, atol=1e-12)
    for w, g in zip(wrt, grads, strict=True):
        x0 = np.ravel(vals[w]).astype(float)
        shape = np.shape(vals[w])

        def fw(x, w=w, shape=shape):
            v = dict(vals)
            v[w] = x.reshape(shape) if shape else float(x[0])
            return ref(v)

        num = numerical.gradient(fw, x0, method="richardson")
        np.testing.assert_allclose(np.ravel(g), num, rtol=rtol, atol=1e-7)


@pytest.mark.parametrize("head", HEADS, ids=lambda h: h.__name__)
def test_rule_matches_finite_differences(head):
    for _ in range(2):  # two random shapes per head
        _check(*_row(head))


def test_every_registered_head_has_a_row():
    assert set(registered_heads()) == set(HEADS)


# --------------------------------------------------------------- cases SymPy 1.14 gets wrong
X3 = M("X", 3, 3)
X3_VAL = _spd(3)


@pytest.mark.parametrize(
    ("make", "ref"),
    [
        (lambda X: mx.trace(X) + mx.trace(mx.transpose(X)), lambda x: 2 * np.trace(x)),
        (lambda X: mx.trace(X) + 1, lambda x: np.trace(x) + 1),
        (lambda X: sp.sin(mx.trace(X)), lambda x: np.sin(np.trace(x))),
        (lambda X: mx.logdet(X), lambda x: np.log(np.linalg.det(x))),
        (lambda X: sp.log(mx.det(X)), lambda x: np.log(np.linalg.det(x))),
    ],
    ids=["sum_of_traces", "trace_plus_1", "sin_trace", "logdet", "log_det"],
)
def test_sympy_failures_are_right_here(make, ref):
    _check(make(X3), [X3], {X3: X3_VAL}, lambda v: ref(v[X3]))


def test_gradient_through_tanh_wrt_W_and_x():
    W, x, b, y = M("W", 2, 3), M("x", 3, 1), M("b", 2, 1), M("y", 2, 1)
    f = mx.sumsq(mx.sub(mx.tanh(mx.add(mx.matmul(W, x), b)), y))
    vals = {a: RNG.normal(size=a.shape) for a in (W, x, b, y)}
    ref = lambda v: np.sum((np.tanh(v[W] @ v[x] + v[b]) - v[y]) ** 2)  # noqa: E731
    _check(f, [W, x, b], vals, ref)


def test_second_derivative_through_tanh():
    w = M("w", 3, 1)
    V = M("V", 3, 1)
    A = RNG.normal(size=(4, 3))
    Am = M("A", 4, 3)
    f = mx.sum(mx.tanh(mx.matmul(Am, w)))
    hv = compile_matrix(hvp(f, w, V), [w, Am, V])
    w0 = RNG.normal(size=(3, 1))
    H = numerical.hessian(lambda x: np.sum(np.tanh(A @ x)), w0.ravel(), method="richardson")
    for j in range(3):
        e = np.zeros((3, 1))
        e[j] = 1.0
        np.testing.assert_allclose(hv(w0, A, e).ravel(), H[:, j], rtol=1e-6, atol=1e-8)


def _logistic():
    n, d = 6, 3
    Xs, w, y = M("X", n, d), M("w", d, 1), M("y", n, 1)
    z = mx.matmul(Xs, w)
    # negative log-likelihood: sum(log(1 + e^z) - y ⊙ z)
    f = mx.sum(mx.sub(mx.softplus(z), mx.hadamard(y, z)))
    X0, y0 = RNG.normal(size=(n, d)), (RNG.random(size=(n, 1)) > 0.5).astype(float)
    w0 = RNG.normal(size=(d, 1))
    ref = lambda wv: np.sum(np.log1p(np.exp(X0 @ wv.reshape(d, 1))) - y0 * (X0 @ wv.reshape(d, 1)))  # noqa: E731
    return f, (Xs, w, y, z), (X0, w0, y0), ref


def test_logistic_regression_hvp_and_closed_form_hessian():
    f, (Xs, w, y, z), (X0, w0, y0), ref = _logistic()
    d = w0.shape[0]
    v = M("v", d, 1)
    hv = compile_matrix(hvp(f, w, v), [w, Xs, y, v])
    H_num = numerical.hessian(ref, w0.ravel(), method="richardson")
    for j in range(d):
        e = np.zeros((d, 1))
        e[j] = 1.0
        np.testing.assert_allclose(hv(w0, X0, y0, e).ravel(), H_num[:, j], rtol=1e-6)
    H = hessian(f, w)
    s_sym = M("s", X0.shape[0], 1)
    assert latex(H, {mx.sigmoid(z): s_sym}) == (
        r"X^{T} \operatorname{diag}\left(s \odot \left(\mathbf{1} - s\right)\right) X"
    )
    H_val = compile_matrix(H, [w, Xs, y])(w0, X0, y0)
    s = 1 / (1 + np.exp(-X0 @ w0))
    np.testing.assert_allclose(H_val, X0.T @ np.diag((s * (1 - s)).ravel()) @ X0, rtol=1e-12)
    np.testing.assert_allclose(H_val, H_num, rtol=1e-6)
    g = grad(f, w)
    assert latex(g, {mx.sigmoid(z): s_sym}) == r"X^{T} \left(s - y\right)"


def test_hessian_of_a_matrix_parameter_and_bad_wrt():
    W = M("W", 2, 3)
    H = hessian(mx.sumsq(W), W)
    np.testing.assert_array_equal(compile_matrix(H, [W])(np.zeros((2, 3))), 2 * np.eye(6))
    with pytest.raises(InputTypeError, match="MatrixSymbol"):
        hessian(mx.sumsq(W), sp.Symbol("w"))


# --------------------------------------------------------------- textbook forms and LaTeX
def test_least_squares_gradient_is_textbook():
    W, x, y = M("W", 2, 3), M("x", 3, 1), M("y", 2, 1)
    g = grad(mx.sumsq(mx.sub(mx.matmul(W, x), y)), W)
    assert g == mx.scale(2, mx.matmul(mx.sub(mx.matmul(W, x), y), x.T))
    assert latex(g) == r"2 \left(W x - y\right) x^{T}"


def _two_layer():
    B = sp.Symbol("B", integer=True, positive=True)
    W1, b1, W2, b2 = M("W_1", 16, 2), M("b_1", 16, 1), M("W_2", 1, 16), M("b_2", 1, 1)
    X, Y = M("x", 2, B), M("y", 1, B)
    z1 = mx.add(mx.matmul(W1, X), mx.broadcast(b1, (16, B)))
    h = mx.tanh(z1)
    z2 = mx.add(mx.matmul(W2, h), mx.broadcast(b2, (1, B)))
    L = mx.sumsq(mx.sub(z2, Y)) / 2
    return L, [W1, b1, W2, b2], z1, h, z2, B


def test_mlp_backprop_equations_golden_latex():
    L, params, z1, h, z2, B = _two_layer()
    d1, d2 = M("delta_1", 16, B), M("delta_2", 1, B)
    deltas, grads = backprop_equations(L, params, {z1: d1, z2: d2})
    names = {h: M("h_1", 16, B)}
    got = [latex(e.rhs, names) for e in deltas + grads]
    assert got == [
        r"W_{2} h_{1} + b_{2} \mathbf{1}^{T} - y",
        r"\left(\mathbf{1} - h_{1} \odot h_{1}\right) \odot \left(W_{2}^{T} \delta_{2}\right)",
        r"\delta_{1} x^{T}",
        r"\delta_{1} \mathbf{1}",
        r"\delta_{2} h_{1}^{T}",
        r"\delta_{2} \mathbf{1}",
    ]


# --------------------------------------------------------------- codegen
def test_compiled_function_runs_on_any_batch_size_and_checks_shapes():
    L, params, *_ = _two_layer()
    X, Y = [a for a in mx.value_nodes([L]) if str(a) in ("x", "y")]
    fg = value_and_grad(L, params, [*params, X, Y])
    p = [RNG.normal(size=a.shape) for a in params]
    for batch in (1, 5, 300):
        _, grads = fg(*p, RNG.normal(size=(2, batch)), RNG.normal(size=(1, batch)))
        assert [g.shape for g in grads] == [(16, 2), (16, 1), (1, 16), (1, 1)]
    with pytest.raises(ShapeError, match="argument y has shape"):
        fg(*p, np.zeros((2, 5)), np.zeros((1, 4)))
    with pytest.raises(ShapeError, match="W_1"):
        fg(np.zeros((2, 16)), *p[1:], np.zeros((2, 5)), np.zeros((1, 5)))
    # one statement per unique node (CSE); fused kernels' NumPy definitions come before
    assert fg.source.partition("def symgrad_")[2].count("numpy.tanh") == 1


def test_softmax_and_logsumexp_are_stable():
    Z = M("Z", 3, 2)
    f = compile_matrix([mx.softmax(Z), mx.logsumexp(Z)], [Z])
    s, lse = f(np.array([[1000.0, -1000.0], [0.0, -1001.0], [999.0, -1002.0]]))
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(lse))
    np.testing.assert_allclose(lse[0, 0], 1000 + np.log(1 + np.exp(-1000) + np.exp(-1)))


# --------------------------------------------------------------- bad input
def test_shape_errors_name_the_mismatch():
    W, x = M("W", 3, 2), M("x", 3, 1)
    with pytest.raises(ShapeError, match=r"W has shape \(3, 2\) and x has shape \(3, 1\)"):
        mx.matmul(W, x)
    with pytest.raises(ShapeError, match="add"):
        mx.add(W, x)
    with pytest.raises(ShapeError, match="square"):
        mx.trace(W)
    with pytest.raises(ShapeError, match="scalar f"):
        grad(mx.matmul(W, mx.transpose(W)), W)
    with pytest.raises(ShapeError, match="cannot be repeated"):
        mx.broadcast(x, (2, 4))


def test_wrong_types_and_options():
    W = M("W", 3, 2)
    with pytest.raises(InputTypeError):
        mx.matmul(W, "x")
    with pytest.raises(InputTypeError):
        grad(mx.sum(W), "W")
    with pytest.raises(InputTypeError):
        grad(mx.sum(W), [])
    with pytest.raises(OptionError):
        mx.sum(W, axis=2)
    with pytest.raises(InputTypeError):
        mx.elementwise("tanh", W)
    with pytest.raises(MissingSymbolError):
        compile_matrix(mx.sum(W), [])


def test_softmax_cross_entropy_gradient_is_textbook():
    from symgrad.nn.dense import BATCH as B
    from symgrad.nn.dense import DENSE_LOSSES

    Z, Y = M("Z", 10, B), M("Y", 10, B)
    g = grad(DENSE_LOSSES["softmax_cross_entropy"](Z, Y) / B, Z)
    assert latex(g) == r"\frac{1}{B} \left(\operatorname{softmax}\left(Z\right) - Y\right)"


def test_matrix_package_imports_only_lower_layers():
    import ast
    from pathlib import Path

    allowed = {"errors", "graph", "construct", "inputs", "functions", "parse", "rules"}
    allowed |= {"autodiff", "codegen", "numerical", "latex", "derivation", "viz", "matrix"}
    root = Path(__file__).resolve().parent.parent / "symgrad" / "matrix"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                top = (node.module or "").split(".")[0]
                names = [top] if top else [a.name for a in node.names]
                assert set(names) <= allowed, (path.name, names)


def test_expressions_built_with_sympy_operators():
    W, x, y = M("W", 2, 3), M("x", 3, 1), M("y", 2, 1)
    S = M("S", 3, 3)
    f = mx.sumsq(W * x - y) + sp.Trace(S * S.T) + 3 * sp.Trace(W.T * W)
    vals = {W: RNG.normal(size=(2, 3)), x: RNG.normal(size=(3, 1)), y: RNG.normal(size=(2, 1))}
    vals[S] = RNG.normal(size=(3, 3))

    def ref(v):
        r = v[W] @ v[x] - v[y]
        return np.sum(r * r) + np.trace(v[S] @ v[S].T) + 3 * np.trace(v[W].T @ v[W])

    _check(f, [W, x, S], vals, ref)


def test_unsupported_head_is_a_typed_error():
    from symgrad.errors import UnsupportedFunctionError

    A = M("A", 3, 3)
    with pytest.raises(UnsupportedFunctionError, match="MatPow"):
        grad(sp.Trace(sp.MatPow(A, 2)), A)


def test_gradient_of_unrelated_parameter_is_zero():
    A, V = M("A", 2, 2), M("V", 2, 2)
    g = grad(mx.sum(A), V)
    np.testing.assert_array_equal(compile_matrix(g, [V])(np.ones((2, 2))), np.zeros((2, 2)))


def test_products_inside_entrywise_functions_print_as_hadamard():
    Z, Y = M("Z", 1, 5), M("Y", 1, 5)
    assert r"Z \odot Y" in latex(mx.elementwise(lambda u, v: sp.exp(u * v), Z, Y))
    assert latex(mx.elementwise(lambda u: u**3, Z)) == r"Z^{\odot 3}"


def test_closed_form_hessian_through_tanh():
    w, A = M("w", 3, 1), M("A", 4, 3)
    h = mx.tanh(mx.matmul(A, w))
    H = hessian(mx.sum(h), w)
    assert latex(H, {h: M("h", 4, 1)}) == (
        r"- 2 A^{T} \operatorname{diag}\left(\left(\mathbf{1} - h \odot h\right) \odot h\right) A"
    )
    A0, w0 = RNG.normal(size=(4, 3)), RNG.normal(size=(3, 1))
    H_num = numerical.hessian(lambda x: np.sum(np.tanh(A0 @ x)), w0.ravel(), method="richardson")
    np.testing.assert_allclose(compile_matrix(H, [w, A])(w0, A0), H_num, rtol=1e-6, atol=1e-9)
