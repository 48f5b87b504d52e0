"""Golden matrix-calculus results: textbook / matrixcalculus.org examples, from text to formula.

Each example is parsed from matrixcalculus.org notation, differentiated, and compared three
ways: the text and LaTeX are the textbook formulas (written here by hand, not captured from the
code), and the compiled derivative matches finite differences of an independent NumPy
implementation of the function at random shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from symgrad import numerical
from symgrad.matrix import expr as mx
from symgrad.matrix.codegen import compile_matrix
from symgrad.matrix.hessian import hessian, jacobian
from symgrad.matrix.latex import latex
from symgrad.matrix.parse import parse
from symgrad.matrix.text import text
from symgrad.matrix.vjp import backprop_equations, grad

RNG = np.random.default_rng(2018)


def _dims():
    m, n, p, k = (int(v) for v in RNG.integers(2, 6, size=4))
    return {"m": m, "n": n, "p": p, "k": k}


def _spd(n):
    a = RNG.normal(size=(n, n))
    return a @ a.T + n * np.eye(n)


SHAPES = {
    "A": ("n", "n"),
    "S": ("n", "n"),
    "x": ("n",),
    "X": ("m", "n"),
    "w": ("n",),
    "y": ("m",),
    "T": ("m", "p"),
    "U": ("m", "k"),
    "V": ("p", "k"),
    "Q": ("n", "m"),
}


def _values(f, dims):
    """Random arrays for every matrix symbol of f (SPD for S, ±1 labels for y)."""
    out = {}
    for s in mx.value_nodes([f]):
        if isinstance(s, sp.MatrixSymbol):
            shape = tuple(
                int(d.subs({sp.Symbol(k, integer=True, positive=True): v for k, v in dims.items()}))
                for d in s.shape
            )
            if s.name == "S":
                out[s] = _spd(shape[0])
            elif s.name == "y":
                out[s] = RNG.choice([-1.0, 1.0], size=shape)
            else:
                out[s] = RNG.normal(size=shape)
    return out


def _fd_grad(ref, vals, w):
    """Finite-difference gradient of the NumPy reference with respect to w (its shape)."""
    names = {s.name: v for s, v in vals.items()}
    shape = vals[w].shape

    def f(flat):
        local = dict(names)
        local[w.name] = flat.reshape(shape)
        return ref(**local)

    return numerical.gradient(f, vals[w].ravel(), method="richardson").reshape(shape)


# (formula, wrt, textbook text, textbook LaTeX, NumPy reference of f)
GRADIENTS = [
    (
        "x'*A*x",
        "x",
        "(A + A')*x",
        r"\left(A + A^{T}\right) x",
        lambda x, A, **_: (x.T @ A @ x).item(),
    ),
    (
        "norm2(X*w - y)^2",
        "w",
        "2*X'*(X*w - y)",
        r"2 X^{T} \left(X w - y\right)",
        lambda X, w, y, **_: float(np.sum((X @ w - y) ** 2)),
    ),
    (
        "sum(log(exp(-y.*(X*w)) + vector(1)))",
        "w",
        "-X'*(y .* exp(-(y .* (X*w))) ./ (exp(-(y .* (X*w))) + vector(1)))",
        r"- X^{T} \left(y \odot e^{\left(- y \odot \left(X w\right)\right)} \oslash "
        r"\left(e^{\left(- y \odot \left(X w\right)\right)} + \mathbf{1}\right)\right)",
        lambda X, w, y, **_: float(np.sum(np.log1p(np.exp(-y * (X @ w))))),
    ),
    (
        "tr(X*A*X')",
        "X",
        "X*(A + A')",
        r"X \left(A + A^{T}\right)",
        lambda X, A, **_: float(np.trace(X @ A @ X.T)),
    ),
    (
        "logdet(S)",
        "S",
        "inv(S)'",
        r"S^{-T}",
        lambda S, **_: float(np.linalg.slogdet(S)[1]),
    ),
    (
        "det(S)",
        "S",
        "det(S)*inv(S)'",
        r"\left|{S}\right| S^{-T}",
        lambda S, **_: float(np.linalg.det(S)),
    ),
    (
        "tr(inv(S)*A)",
        "S",
        "-inv(S)'*A'*inv(S)'",
        r"- S^{-T} A^{T} S^{-T}",
        lambda S, A, **_: float(np.trace(np.linalg.inv(S) @ A)),
    ),
    (
        "norm2(T - U*V')^2",
        "U",
        "-2*(T - U*V')*V",
        r"- 2 \left(T - U V^{T}\right) V",
        lambda T, U, V, **_: float(np.sum((T - U @ V.T) ** 2)),
    ),
    (
        "norm2(T - U*V')^2",
        "V",
        "-2*(T - U*V')'*U",
        r"- 2 \left(T - U V^{T}\right)^{T} U",
        lambda T, U, V, **_: float(np.sum((T - U @ V.T) ** 2)),
    ),
    (
        "sum(exp(X*w))",
        "w",
        "X'*exp(X*w)",
        r"X^{T} e^{X w}",
        lambda X, w, **_: float(np.sum(np.exp(X @ w))),
    ),
    (
        "x'*Q*y",
        "Q",
        "x*y'",
        r"x y^{T}",
        lambda x, Q, y, **_: (x.T @ Q @ y).item(),
    ),
]


@pytest.mark.parametrize(("formula", "wrt", "want_text", "want_latex", "ref"), GRADIENTS)
def test_golden_gradient(formula, wrt, want_text, want_latex, ref):
    f = parse(formula, SHAPES)
    (w,) = [s for s in mx.value_nodes([f]) if isinstance(s, sp.MatrixSymbol) and s.name == wrt]
    g = grad(f, w)
    assert text(g) == want_text
    assert latex(g) == want_latex
    # the printed text reads back as the same function (numerically)
    again = parse(text(g), SHAPES)
    for _ in range(2):
        dims = _dims()
        vals = _values(f, dims)
        args = list(vals)
        got = compile_matrix(g, args)(*vals.values())
        want = _fd_grad(ref, vals, w)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)
        vals_again = {s: vals[s] for s in args}
        np.testing.assert_allclose(
            compile_matrix(again, args)(*vals_again.values()), got, rtol=1e-12
        )


def _fd_hessian(ref, vals, w):
    names = {s.name: v for s, v in vals.items()}
    shape = vals[w].shape

    def f(flat):
        local = dict(names)
        local[w.name] = flat.reshape(shape)
        return ref(**local)

    return numerical.hessian(f, vals[w].ravel(), method="richardson")


HESSIANS = [
    ("x'*A*x", "x", "A + A'", r"A + A^{T}", lambda x, A, **_: (x.T @ A @ x).item()),
    (
        "norm2(X*w - y)^2",
        "w",
        "2*X'*X",
        r"2 X^{T} X",
        lambda X, w, y, **_: float(np.sum((X @ w - y) ** 2)),
    ),
    (
        "norm2(T - U*V')^2",
        "U",
        "2*kron(I, V'*V)",
        r"2 I \otimes \left(V^{T} V\right)",
        lambda T, U, V, **_: float(np.sum((T - U @ V.T) ** 2)),
    ),
    ("sum(relu(w))", "w", "matrix(0)", "0", lambda w, **_: float(np.sum(np.maximum(w, 0)))),
]


@pytest.mark.parametrize(("formula", "wrt", "want_text", "want_latex", "ref"), HESSIANS)
def test_golden_hessian(formula, wrt, want_text, want_latex, ref):
    f = parse(formula, SHAPES)
    (w,) = [s for s in mx.value_nodes([f]) if isinstance(s, sp.MatrixSymbol) and s.name == wrt]
    H = hessian(f, w)
    assert text(H) == want_text
    assert latex(H) == want_latex
    dims = _dims()
    vals = _values(f, dims)
    if formula == "sum(relu(w))":
        vals[w] = vals[w] + np.sign(vals[w])  # keep away from the kink at 0
    got = compile_matrix(H, list(vals))(*vals.values())
    np.testing.assert_allclose(got, _fd_hessian(ref, vals, w), rtol=1e-5, atol=1e-6)


def test_logistic_regression_hessian_is_x_transpose_diag_x():
    f = parse("sum(log(exp(-y.*(X*w)) + vector(1)))", SHAPES)
    w = next(s for s in mx.value_nodes([f]) if isinstance(s, sp.MatrixSymbol) and s.name == "w")
    H = hessian(f, w)
    # y^2 e^{yz} / (1 + e^{yz})^2 = y^2 s (1 - s) with s = sigmoid(-yz): the textbook weights
    assert text(H) == (
        "X'*diag(y .* y .* 1 ./ (exp(y .* (X*w)) + vector(1)).^2 .* exp(y .* (X*w)))*X"
    )
    assert latex(H).startswith(r"X^{T} \operatorname{diag}\left(")
    vals = _values(f, _dims())
    fn = compile_matrix(H, list(vals))
    assert "diagflat" not in fn.source  # X^T diag(d) X is X.T @ (d * X): no dense diagonal
    names = {s.name: v for s, v in vals.items()}
    X, y, w0 = names["X"], names["y"], names["w"]
    s = 1 / (1 + np.exp(-y * (X @ w0)))
    textbook = X.T @ (s * (1 - s) * X)  # y^2 = 1: X^T diag(s (1 - s)) X
    np.testing.assert_allclose(fn(*vals.values()), textbook, rtol=1e-10)


def test_factorisation_hessian_in_u_and_v_blocks():
    f = parse("norm2(T - U*V')^2", SHAPES)
    syms = {s.name: s for s in mx.value_nodes([f]) if isinstance(s, sp.MatrixSymbol)}
    U, V = syms["U"], syms["V"]
    H = hessian(f, [U, V])
    vals = _values(f, _dims())
    got = compile_matrix(H, list(vals))(*vals.values())
    names = {s.name: v for s, v in vals.items()}
    T0, U0, V0 = names["T"], names["U"], names["V"]

    def ref(flat):
        u = flat[: U0.size].reshape(U0.shape)
        v = flat[U0.size :].reshape(V0.shape)
        return float(np.sum((T0 - u @ v.T) ** 2))

    want = numerical.hessian(ref, np.concatenate([U0.ravel(), V0.ravel()]), method="richardson")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_jacobians_of_inverse_and_tanh_layer():
    n = sp.Symbol("n", integer=True, positive=True)
    S = sp.MatrixSymbol("S", n, n)
    J = jacobian(mx.inverse(S), S)
    assert latex(J) == r"- S^{-1} \otimes S^{-T}"  # d vec(S^-1) = -(S^-1 ⊗ S^-T) d vec(S)
    S0 = _spd(3)
    want = numerical.jacobian(lambda s: np.linalg.inv(s.reshape(3, 3)).ravel(), S0.ravel())
    np.testing.assert_allclose(compile_matrix(J, [S])(S0), want, rtol=1e-6, atol=1e-8)
    W, x = sp.MatrixSymbol("W", 4, 3), sp.MatrixSymbol("x", 3, 1)
    h = mx.tanh(mx.matmul(W, x))
    J = jacobian(h, x)
    assert latex(J, {h: sp.MatrixSymbol("h", 4, 1)}) == (
        r"\operatorname{diag}\left(\mathbf{1} - h \odot h\right) W"
    )
    W0, x0 = RNG.normal(size=(4, 3)), RNG.normal(size=(3, 1))
    want = numerical.jacobian(lambda v: np.tanh(W0 @ v), x0.ravel())
    np.testing.assert_allclose(compile_matrix(J, [W, x])(W0, x0), want, rtol=1e-6, atol=1e-8)


def test_mlp_backprop_equations_are_the_textbook_ones():
    B = sp.Symbol("B", integer=True, positive=True)
    W1, b1, W2, b2 = (
        sp.MatrixSymbol(n, *s)
        for n, s in [("W_1", (5, 3)), ("b_1", (5, 1)), ("W_2", (2, 5)), ("b_2", (2, 1))]
    )
    Xs, Y = sp.MatrixSymbol("X", 3, B), sp.MatrixSymbol("Y", 2, B)
    z1 = mx.add(mx.matmul(W1, Xs), mx.broadcast(b1, (5, B)))
    h = mx.tanh(z1)
    z2 = mx.add(mx.matmul(W2, h), mx.broadcast(b2, (2, B)))
    L = mx.sumsq(mx.sub(z2, Y)) / 2
    d1, d2 = sp.MatrixSymbol("delta_1", 5, B), sp.MatrixSymbol("delta_2", 2, B)
    deltas, grads = backprop_equations(L, [W1, b1, W2, b2], {z1: d1, z2: d2})
    names = {h: sp.MatrixSymbol("h", 5, B)}
    got = [text(e.rhs.xreplace(names)) for e in deltas + grads]
    assert got == [
        "W_2*h + b_2*vector(1)' - Y",  # delta_2 = z_2 - Y
        "(matrix(1) - h .* h) .* (W_2'*delta_2)",  # delta_1 = (1 - h ⊙ h) ⊙ (W_2^T delta_2)
        "delta_1*X'",  # dL/dW_1
        "delta_1*vector(1)",  # dL/db_1 = delta_1 1
        "delta_2*h'",  # dL/dW_2
        "delta_2*vector(1)",  # dL/db_2
    ]
    rng = np.random.default_rng(1)
    vals = {
        W1: rng.normal(size=(5, 3)),
        b1: rng.normal(size=(5, 1)),
        W2: rng.normal(size=(2, 5)),
        b2: rng.normal(size=(2, 1)),
        Xs: rng.normal(size=(3, 7)),
        Y: rng.normal(size=(2, 7)),
    }
    full = grad(L, [W1, b1, W2, b2])
    got_vals = compile_matrix(full, list(vals))(*vals.values())

    def ref(w1, bb1, w2, bb2):
        hh = np.tanh(w1 @ vals[Xs] + bb1)
        return 0.5 * np.sum((w2 @ hh + bb2 - vals[Y]) ** 2)

    for i, p in enumerate([W1, b1, W2, b2]):

        def fi(flat, i=i, p=p):
            args = [vals[W1], vals[b1], vals[W2], vals[b2]]
            args[i] = flat.reshape(vals[p].shape)
            return ref(*args)

        want = numerical.gradient(fi, vals[p].ravel(), method="richardson").reshape(vals[p].shape)
        np.testing.assert_allclose(got_vals[i], want, rtol=1e-6, atol=1e-8)
