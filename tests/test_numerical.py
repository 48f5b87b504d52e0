"""Tests of symgrad.numerical against independent references: hand-written analytic derivatives
and published numbers (Karpathy's micrograd lecture), never the module against itself."""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symgrad.errors import (
    DomainError,
    InputTypeError,
    OptionError,
    ShapeError,
    SymgradError,
)
from symgrad.numerical import METHODS, derivative, gradient, hessian, jacobian, step_size

EPS = np.finfo(np.float64).eps


# ----------------------------------------------------------------------------- micrograd lecture
def micro(x):
    return 3 * x**2 - 4 * x + 5  # f'(x) = 6x - 4


def test_micrograd_forward_difference_at_3():
    # (f(x+h) - f(x)) / h = 6x - 4 + 3h exactly for this quadratic: 14.003 at x = 3, h = 0.001.
    d = derivative(micro, 3.0, method="forward", h=0.001)
    assert abs(d - 14.003) < 1e-9


def test_micrograd_forward_difference_at_stationary_point():
    # f'(2/3) = 0; the forward difference gives 3h = 3e-6 (plus rounding ~eps*|f|/h ~ 8e-10).
    d = derivative(micro, 2 / 3, method="forward", h=1e-6)
    assert abs(d - 3e-6) < 2e-9


def test_micrograd_central_default_step():
    assert abs(derivative(micro, 3.0) - 14.0) < 1e-8


# ----------------------------------------------------------------------------- accuracy table
def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# name: (f, hand-written f', points)
TABLE = {
    "sin": (np.sin, np.cos, [-2.0, -0.3, 0.5, 1.0, math.pi / 2, 3.0, 10.0]),
    "exp": (np.exp, np.exp, [-3.0, 0.0, 1.0, 5.0]),
    "log": (np.log, lambda x: 1 / x, [0.5, 1.0, 2.5, 100.0]),
    "tanh": (np.tanh, lambda x: 1 / np.cosh(x) ** 2, [-2.0, 0.0, 0.7, 1.5]),
    "poly": (
        lambda x: x**5 - 3 * x**3 + 2 * x - 7,
        lambda x: 5 * x**4 - 9 * x**2 + 2,
        [-2.0, -0.5, 0.0, 1.3, 4.0],
    ),
    "x_exp_minus_x2": (
        lambda x: x * np.exp(-(x**2)),
        lambda x: (1 - 2 * x**2) * np.exp(-(x**2)),
        [-1.5, 0.0, 0.3, 1 / math.sqrt(2), 1.2, 2.5],  # 1/sqrt(2): f' = 0
    ),
    "atan": (np.arctan, lambda x: 1 / (1 + x**2), [-3.0, 0.0, 0.4, 50.0]),
    "sqrt": (np.sqrt, lambda x: 0.5 / np.sqrt(x), [0.2, 1.0, 9.0]),
    "sigmoid": (sigmoid, lambda x: sigmoid(x) * (1 - sigmoid(x)), [-4.0, 0.0, 2.0]),
}

# Relative tolerance on |error| / max(|f'|, FLOOR). Theory: forward ~ h|f''|/2 with h = sqrt(eps)
# (poly at 1.3 has f''/f' ~ 20); central ~ eps^(2/3); five-point ~ eps^(4/5), but sin at x = 10
# uses h = 10*eps^(1/5) (the step scales with max(1, |x|)), so there it is ~1e-10.
RTOL = {
    "forward": 1e-6,
    "backward": 1e-6,
    "central": 1e-9,
    "five-point": 2e-10,
    "richardson": 1e-11,
    "complex": 1e-13,
}
FLOOR = 0.1  # absolute floor for points where f' ~ 0

CASES = [(name, x) for name, (_, _, points) in TABLE.items() for x in points]


def rel_err(approx, exact):
    return np.max(np.abs(approx - exact) / np.maximum(np.abs(exact), FLOOR))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("name", "x"), CASES)
def test_derivative_accuracy_scalar(method, name, x):
    f, df, _ = TABLE[name]
    d = derivative(f, x, method=method)
    assert isinstance(d, np.float64)
    assert rel_err(d, df(x)) < RTOL[method]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", TABLE)
def test_derivative_accuracy_vectorised(method, name):
    f, df, points = TABLE[name]
    x = np.array(points)
    d = derivative(f, x, method=method)
    assert d.shape == x.shape and d.dtype == np.float64
    assert rel_err(d, df(x)) < RTOL[method]


def test_vectorised_derivative_calls_f_with_arrays():
    seen = []

    def f(x):
        seen.append(np.shape(x))
        return np.sin(x)

    derivative(f, np.linspace(0, 1, 5), method="richardson")
    assert seen and all(s == (5,) for s in seen)


def test_user_step_broadcasts():
    x = np.array([0.5, 1.0, 2.0])
    d = derivative(np.exp, x, method="central", h=np.array([1e-5, 1e-6, 1e-5]))
    assert np.allclose(d, np.exp(x), rtol=1e-9)


@pytest.mark.parametrize(
    ("f", "df", "x"),
    [
        (np.sqrt, lambda x: 0.5 / np.sqrt(x), 0.01),  # x - h0 < 0: sqrt gives nan
        (np.log, lambda x: 1 / x, 0.02),  # x - h0 = 0: log gives -inf
        (np.log, lambda x: 1 / x, 0.005),
    ],
)
def test_richardson_near_domain_boundary(f, df, x):
    # the large start step leaves f's domain; those entries lose to the finer levels, silently
    assert derivative(f, x, method="richardson") == pytest.approx(df(x), rel=1e-9)


# ----------------------------------------------------------------------------- step sizes
def test_default_steps():
    assert step_size("forward", 0.0) == math.sqrt(EPS)
    assert step_size("central", 0.0) == pytest.approx(EPS ** (1 / 3), rel=1e-15)
    assert step_size("five-point", -0.5) == pytest.approx(EPS ** (1 / 5), rel=1e-15)
    assert step_size("complex", 0.0) == 1e-20
    assert step_size("richardson", 0.0) == 0.02
    assert step_size("central", 0.0, order=2) == pytest.approx(EPS ** (1 / 4), rel=1e-15)
    # scaled by max(1, |x|), and rounded so that x + h is exactly representable
    x = np.array([-1e3, 3.0, 0.1])
    for method in ("forward", "backward", "central", "five-point", "richardson"):
        h = step_size(method, x)
        assert np.array_equal((x + h) - x, h)
        assert np.allclose(h / np.maximum(1, np.abs(x)), step_size(method, 0.0), rtol=1e-6)


def test_step_size_errors():
    with pytest.raises(OptionError, match="central"):
        step_size("centre", 1.0)
    with pytest.raises(OptionError, match="order"):
        step_size("central", 1.0, order=3)


# ----------------------------------------------------------------------------- multivariate
def rosen(v):
    x, y = v
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def rosen_grad(v):
    x, y = v
    return np.array([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)])


def rosen_hess(v):
    x, y = v
    return np.array([[2 - 400 * y + 1200 * x**2, -400 * x], [-400 * x, 200.0]])


def trig(v):  # f(a, b, c) = sin(a) e^b + a log(1 + c^2)
    a, b, c = v
    return np.sin(a) * np.exp(b) + a * np.log(1 + c**2)


def trig_grad(v):
    a, b, c = v
    return np.array(
        [np.cos(a) * np.exp(b) + np.log(1 + c**2), np.sin(a) * np.exp(b), 2 * a * c / (1 + c**2)]
    )


def trig_hess(v):
    a, b, c = v
    s, co, e, q = np.sin(a), np.cos(a), np.exp(b), 1 + c**2
    return np.array(
        [
            [-s * e, co * e, 2 * c / q],
            [co * e, s * e, 0.0],
            [2 * c / q, 0.0, 2 * a * (1 - c**2) / q**2],
        ]
    )


MULTI = [
    (rosen, rosen_grad, rosen_hess, [-1.2, 1.0]),
    (rosen, rosen_grad, rosen_hess, [1.0, 1.0]),  # the minimum: gradient 0
    (rosen, rosen_grad, rosen_hess, [0.3, -2.0]),
    (trig, trig_grad, trig_hess, [0.7, -0.4, 1.3]),
    (trig, trig_grad, trig_hess, [-3.0, 0.2, 5.0]),
]
# Second differences lose more: central ~ sqrt(eps), forward ~ eps^(1/3)*|f'''|.
HESS_RTOL = {
    "forward": 1e-4,
    "backward": 1e-4,
    "central": 1e-7,
    "five-point": 1e-9,
    "richardson": 1e-9,
    "complex": 1e-9,
}


def scaled_err(approx, exact):  # error relative to the largest entry
    return np.max(np.abs(approx - exact)) / max(np.max(np.abs(exact)), 1.0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("f", "df", "d2f", "x"), MULTI)
def test_gradient(method, f, df, d2f, x):
    g = gradient(f, x, method=method)
    assert g.shape == (len(x),) and g.dtype == np.float64
    # Scale: the size of first and second derivatives (at Rosenbrock's minimum the gradient is 0
    # but the central error h^2/6 * f_xxx = h^2 * 400 is not).
    exact = df(np.array(x))
    scale = max(1.0, np.max(np.abs(exact)), np.max(np.abs(d2f(np.array(x)))))
    assert np.max(np.abs(g - exact)) / scale < RTOL[method]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("f", "df", "d2f", "x"), MULTI)
def test_hessian(method, f, df, d2f, x):
    H = hessian(f, x, method=method)
    assert H.shape == (len(x), len(x)) and H.dtype == np.float64
    assert np.array_equal(H, H.T)
    assert scaled_err(H, d2f(np.array(x))) < HESS_RTOL[method]


def polar(v):  # (r, t) -> (r cos t, r sin t, r^2 t)
    r, t = v
    return np.array([r * np.cos(t), r * np.sin(t), r**2 * t])


def polar_jac(v):
    r, t = v
    return np.array([[np.cos(t), -r * np.sin(t)], [np.sin(t), r * np.cos(t)], [2 * r * t, r**2]])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("x", [[2.0, 0.3], [0.5, -2.5], [0.0, 1.0]])
def test_jacobian(method, x):
    J = jacobian(polar, x, method=method)
    assert J.shape == (3, 2) and J.dtype == np.float64
    assert scaled_err(J, polar_jac(np.array(x))) < RTOL[method]


def test_jacobian_of_scalar_function_is_one_row():
    J = jacobian(rosen, [-1.2, 1.0], method="complex")
    assert J.shape == (1, 2)
    assert np.allclose(J[0], rosen_grad([-1.2, 1.0]), rtol=1e-14)


def test_scalar_x_counts_as_vector_of_length_one():
    assert gradient(lambda v: np.sin(v[0]), 0.5).shape == (1,)
    assert np.allclose(gradient(lambda v: np.sin(v[0]), 0.5), np.cos(0.5), rtol=1e-9)
    assert hessian(lambda v: v[0] ** 3, 2.0, method="richardson") == pytest.approx(12.0)


def test_gradient_gets_float_vectors_and_integer_x_is_accepted():
    seen = []

    def f(v):
        seen.append((v.dtype, v.shape))
        return float(np.sum(v**2))

    assert np.allclose(gradient(f, [1, 2, 3]), [2, 4, 6], rtol=1e-9)
    assert set(seen) == {(np.dtype(np.float64), (3,))}


# ----------------------------------------------------------------------------- errors
def test_non_callable_f():
    for fn in (derivative, gradient, jacobian, hessian):
        with pytest.raises(InputTypeError, match="callable"):
            fn(3.0, 1.0)


@pytest.mark.parametrize("bad", ["1.0", b"1", True, None, 1 + 2j, [1.0, "a"], {"x": 1}])
def test_non_numeric_x(bad):
    with pytest.raises(InputTypeError, match=r"x must be (a )?real"):
        derivative(np.sin, bad)
    with pytest.raises(InputTypeError, match=r"x must be (a )?real"):
        gradient(lambda v: 0.0, bad)


def test_non_finite_x():
    with pytest.raises(DomainError, match="finite"):
        derivative(np.sin, [0.0, np.nan])


def test_unknown_method_lists_valid_names():
    for fn in (derivative, gradient, jacobian, hessian):
        with pytest.raises(OptionError) as info:
            fn(np.sin, [1.0], method="centre")
        assert all(name in str(info.value) for name in METHODS)
        assert isinstance(info.value, ValueError)


def test_bad_step():
    with pytest.raises(OptionError, match="positive"):
        derivative(np.sin, 1.0, h=0.0)
    with pytest.raises(OptionError, match="positive"):
        gradient(rosen, [1.0, 2.0], h=[1e-6, -1e-6])
    with pytest.raises(ShapeError):
        gradient(rosen, [1.0, 2.0], h=[1e-6, 1e-6, 1e-6])
    with pytest.raises(InputTypeError):
        derivative(np.sin, 1.0, h="small")


def test_wrong_output_shapes():
    with pytest.raises(ShapeError, match="jacobian"):
        gradient(lambda v: v * 2, [1.0, 2.0])
    with pytest.raises(ShapeError, match="scalar"):
        hessian(lambda v: v * 2, [1.0, 2.0])
    with pytest.raises(ShapeError, match="elementwise"):
        derivative(lambda x: np.sum(x), np.array([1.0, 2.0]))
    with pytest.raises(ShapeError, match="1-D"):
        jacobian(lambda v: np.outer(v, v), [1.0, 2.0])
    with pytest.raises(ShapeError, match="expected"):  # output length changes between calls
        jacobian(lambda v: np.ones(2 if v[0] == 1.0 else 3), [1.0, 2.0])


def test_non_numeric_output():
    with pytest.raises(InputTypeError, match="real numbers"):
        derivative(lambda x: "oops", 1.0)


def test_x_not_one_dimensional():
    for fn in (gradient, jacobian, hessian):
        with pytest.raises(ShapeError, match="1-D"):
            fn(lambda v: 0.0, np.ones((2, 2)))


@pytest.mark.parametrize(
    ("f", "exact"),
    [
        (math.sin, math.cos(1.0)),  # math.* rejects complex numbers
        (np.abs, 1.0),  # real result: drops the imaginary part
        (lambda x: float(x) ** 2, 2.0),  # casts to float
        (lambda x: 5.0, 0.0),  # constant Python float: cannot tell it from a dropped part
    ],
)
def test_complex_step_on_real_only_function(f, exact):
    with pytest.raises(OptionError, match="richardson"):
        derivative(f, 1.0, method="complex")
    # the suggested alternative works on the same f
    assert derivative(f, 1.0, method="richardson") == pytest.approx(exact, abs=1e-10)


def test_complex_step_real_only_in_gradient_and_hessian():
    with pytest.raises(OptionError, match="imaginary"):
        gradient(lambda v: np.sum(np.abs(v)), [1.0, 2.0], method="complex")
    with pytest.raises(OptionError, match="complex"):
        hessian(lambda v: math.exp(v[0]) * v[1], [1.0, 2.0], method="complex")


def test_errors_are_symgrad_errors():
    assert issubclass(OptionError, SymgradError) and issubclass(OptionError, ValueError)


@pytest.mark.parametrize("method", METHODS)
def test_input_arrays_not_mutated(method):
    x = np.array([0.3, -1.2, 2.0])
    keep = x.copy()

    def f(v):
        out = np.sum(np.sin(v) * v)
        v[0] = 123.0  # a careless f that scribbles on its argument must not affect us
        return out

    def f_vec(v):
        return np.sin(v) * v

    g = gradient(f, x, method=method)
    jacobian(f_vec, x, method=method)
    hessian(lambda v: np.sum(np.sin(v) * v), x, method=method)
    derivative(np.sin, x, method=method)
    assert np.array_equal(x, keep)
    assert np.allclose(g, np.cos(x) * x + np.sin(x), rtol=1e-5)


# ----------------------------------------------------------------------------- properties
@settings(max_examples=50, deadline=None)
@given(
    coeffs=st.lists(st.floats(-3, 3), min_size=1, max_size=7),
    x=st.floats(-2, 2),
)
def test_random_polynomials(coeffs, x):
    # f(x) = sum c_k x^k, f'(x) = sum k c_k x^(k-1) (power rule, by hand)
    def f(t):
        return sum(c * t**k for k, c in enumerate(coeffs))

    exact = sum(k * c * x ** (k - 1) for k, c in enumerate(coeffs) if k)
    # Rounding scales with the size of the terms; truncation with the higher derivatives.
    scale = sum(k**3 * abs(c) * max(1.0, abs(x)) ** k for k, c in enumerate(coeffs)) + 1.0
    assert abs(derivative(f, x, method="central") - exact) <= 1e-9 * scale
    assert abs(derivative(f, x, method="richardson") - exact) <= 1e-12 * scale
    assert abs(derivative(f, x, method="complex") - exact) <= 1e-14 * scale


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 4),
    data=st.data(),
)
def test_random_quadratic_forms(n, data):
    # f(x) = x.A.x / 2 + b.x with A symmetric: gradient A x + b, Hessian A (by hand).
    entries = st.floats(-5, 5)
    M = np.array(data.draw(st.lists(entries, min_size=n * n, max_size=n * n))).reshape(n, n)
    A = (M + M.T) / 2
    b = np.array(data.draw(st.lists(entries, min_size=n, max_size=n)))
    x = np.array(data.draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n)))

    def f(v):
        return v @ A @ v / 2 + b @ v

    scale = 1.0 + np.max(np.abs(A)) * (1 + np.max(np.abs(x))) ** 2 + np.max(np.abs(b))
    assert np.max(np.abs(gradient(f, x) - (A @ x + b))) <= 1e-9 * scale
    H = hessian(f, x)
    assert np.array_equal(H, H.T)
    assert np.max(np.abs(H - A)) <= 1e-6 * scale


# ----------------------------------------------------------------------------- layering
def test_imports_only_numpy_stdlib_and_errors():
    source = Path(__file__).resolve().parents[1] / "symgrad" / "numerical.py"
    tree = ast.parse(source.read_text())
    allowed = set(sys.stdlib_module_names) | {"numpy"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] in allowed, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert (node.level, node.module) == (1, "errors"), ast.unparse(node)
            else:
                assert node.module.split(".")[0] in allowed, node.module
