"""Fused products in generated NumPy code (``_dot``, ``_gather``, ``_gather_mean``, slices).

Every compiled result is checked against an independent reference: ``sympy.lambdify`` of the
same expressions (each output leaf on its own, broadcast together), or for the MLP gradient a
complex-step derivative of ``sympy.lambdify`` of the loss.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import sympy as sp

from symgrad.codegen import lambdify, lift, value_and_grad
from symgrad.codegen.c import c_available
from symgrad.codegen.fuse import FUSE_MIN
from symgrad.construct import add, apply, mul
from symgrad.errors import ShapeError

W = sp.symbols("w0:100")  # one vector argument: _a0 in the generated code
X = sp.symbols("x0:10")  # scalar arguments _a1 ... _a10
A = sp.Symbol("a")  # scalar argument _a11
ARGS = [list(W), *X, A]
INPUT_KINDS = "float numpy_scalar batch1d batch2d mixed params_batch params_batch_2d complex int"


def inputs(kind: str, seed: int = 0) -> list:
    """Values for ARGS: [vector W, x0..x9, a] of the given kind."""
    rng = np.random.default_rng(seed)
    r = lambda *shape: rng.uniform(-2, 2, shape)  # noqa: E731
    if kind == "float":
        return [r(100).tolist(), *r(10).tolist(), float(r())]
    if kind == "numpy_scalar":  # 0-d NumPy values take the vectorised path, not the float one
        return [r(100), *map(np.float64, r(10)), np.float64(r())]
    if kind == "batch1d":
        return [r(100), *r(10, 5), r(5)]
    if kind == "batch2d":
        return [r(100).tolist(), *r(10, 3, 4), r(3, 4)]
    if kind == "mixed":  # some factors without batch axes, others with (broadcasting)
        xs = [float(v[0, 0]) if k % 2 else v for k, v in enumerate(r(10, 3, 4))]
        return [r(100), *xs, r(4)]
    if kind == "params_batch":  # batched parameters: the vector has shape (n, batch)
        return [r(100, 5), *r(10).tolist(), r(5)]
    if kind == "params_batch_2d":
        return [r(100, 3, 4), *r(10, 4), float(r())]
    if kind == "complex":
        return [r(100) + 1j * r(100), *(r(10, 5) - 1j * r(10, 5)), complex(r(), r())]
    assert kind == "int"
    ints = lambda *shape: rng.integers(-5, 6, shape)  # noqa: E731
    return [ints(100).tolist(), *ints(10, 5), int(ints())]


def reference(leaves: list, values: list, args: list = ARGS) -> np.ndarray:
    """sympy.lambdify of each leaf, broadcast together and stacked: (len(leaves), *batch)."""
    with np.errstate(all="ignore"):
        outs = [np.asarray(sp.lambdify(args, leaf, "numpy")(*values)) for leaf in leaves]
    return np.stack(np.broadcast_arrays(*outs))


def check(got, want) -> None:
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def batch_mean(stacked: np.ndarray) -> np.ndarray:
    return stacked.mean(axis=tuple(range(1, stacked.ndim)))


def products(n: int, offset: int = 0) -> list:
    return [W[offset + k] * X[k] for k in range(n)]


def stacked_leaves(n_products: int) -> list:
    """Products interleaved with non-product leaves (a symbol, a constant, a sum, a function)."""
    others = iter([A, sp.Integer(3), sp.cos(A) + A**2, sp.Rational(1, 3)])
    prods = iter(products(n_products))
    return [next(others) if k % 3 == 2 else next(prods) for k in range(n_products + 4)]


@pytest.mark.parametrize("n", [FUSE_MIN - 1, FUSE_MIN, 10])
def test_fused_forms_appear_from_fuse_min_products_on(n: int) -> None:
    assert FUSE_MIN == 8
    fused = n >= FUSE_MIN
    values = inputs("batch1d")
    f = lambdify(sp.Add(*products(n)), ARGS)
    assert ("_dot(" in f.source) is fused
    assert (f"_a0[0:{n}]" in f.source) is fused
    check(f(*values), reference([sp.Add(*products(n))], values)[0])
    leaves = [*products(n), A]
    g = lambdify([leaves], ARGS)
    assert ("_gather(" in g.source) is fused
    check(g(*values)[0], reference(leaves, values))
    m = lambdify([leaves], ARGS, reduce="mean")
    assert ("_gather_mean(" in m.source) is fused
    check(m(*values)[0], reference(leaves, values).mean(axis=1))


@pytest.mark.parametrize("kind", INPUT_KINDS.split())
def test_dot_matches_reference_for_all_input_kinds(kind: str) -> None:
    expr = sp.Add(*products(10, offset=20), A)
    f = lambdify(expr, ARGS)
    assert "_dot(_a0[20:30], " in f.source
    values = inputs(kind)
    check(f(*values), reference([expr], values)[0])
    if kind == "batch1d":  # the same vector as a Python list and as an (n, 1) batch
        check(f(values[0].tolist(), *values[1:]), reference([expr], values)[0])
        check(f(values[0][:, None], *values[1:]), reference([expr], values)[0])


def test_python_floats_reach_the_fused_code_when_the_math_path_fails() -> None:
    # log(0.0) raises in the pure-Python fast path, so plain floats run the NumPy statements
    dot, leaves = sp.Add(*products(10, offset=20)), [*products(10), A]
    f = lambdify([dot, leaves, sp.log(A)], ARGS)
    calls = []
    fused = f._fn.__globals__  # the compiled function's own namespace, not the library's
    for helper in ("_dot", "_gather"):
        fused[helper] = lambda *a, _h=fused[helper], _n=helper: calls.append(_n) or _h(*a)
    values = [*inputs("float")[:-1], 0.0]
    with np.errstate(divide="ignore"):
        got_dot, got_leaves, log_a = f(*values)
    assert sorted(calls) == ["_dot", "_gather"] and log_a == -np.inf
    check(got_dot, reference([dot], values)[0])
    check(got_leaves, reference(leaves, values))


def _terms_literals():
    return [*products(5), 2 * X[5], 2 * X[6], -3 * X[7], sp.Rational(1, 3) * X[8], 0.25 * X[9]]


FACTOR_LISTS = {
    # name: (terms, a text the generated source must contain)
    "literals": (_terms_literals(), "_dot("),
    "repeated_scalar": ([A * x for x in X], "_dot("),
    "repeated_vector_entry": ([mul(W[7], x, small=False) for x in X], "_dot("),
    "squares": ([sp.Mul(w, w, evaluate=False) for w in W[:10]], "_dot(_a0[0:10], _a0[0:10])"),
    "stride_3": ([mul(W[3 + 3 * k], X[k], small=False) for k in range(10)], "_a0[3:33:3]"),
    "stride_minus_9": ([mul(W[90 - 9 * k], X[k], small=False) for k in range(9)], "_a0[90:9:-9]"),
    "past_zero": ([mul(W[81 - 9 * k], X[k], small=False) for k in range(10)], "_a0[81::-9]"),
    "reversed_past_zero": ([mul(W[9 - k], X[k], small=False) for k in range(10)], "_a0[9::-1]"),
    "nested_products": (
        [mul(mul(X[k], A, small=False), W[k], small=False) for k in range(10)],
        "_dot(",
    ),
}


@pytest.mark.parametrize("case", list(FACTOR_LISTS))
@pytest.mark.parametrize("kind", ["batch1d", "params_batch", "mixed"])
def test_dot_factor_lists(case: str, kind: str) -> None:
    terms, text = FACTOR_LISTS[case]
    expr = add([*terms, A], small=False)
    f = lambdify(expr, ARGS)
    assert text in f.source
    values = inputs(kind, seed=1)
    check(f(*values), reference([expr], values)[0])


SHAPES = [(12,), (3, 4), (2, 3, 2)]
STACK_KINDS = {
    # name: (x values, a value, W value)
    "no_batch": (list(np.arange(10.0) / 7), 0.5, np.linspace(-1, 1, 100)),
    "all_2d": (list(np.arange(120.0).reshape(10, 3, 4) / 50), np.ones((3, 4)), np.ones(100)),
    "products_only_batch": (list(np.arange(30.0).reshape(10, 3) - 9), 0.7, np.ones(100)),
    "others_only_batch": (list(np.arange(10.0)), np.linspace(0, 1, 12).reshape(3, 4), [0.5] * 100),
    "products_1d_others_2d": (list(np.arange(40.0).reshape(10, 4)), np.ones((3, 4)), np.ones(100)),
    "products_2d_others_1d": (list(np.ones((10, 3, 4))), np.arange(4.0), np.arange(100.0)),
    "outer": (list(np.arange(30.0).reshape(10, 3, 1)), np.arange(4.0).reshape(1, 4), np.ones(100)),
    "params_batch_2d": (list(np.arange(10.0)), np.arange(4.0), np.arange(1.2e3).reshape(100, 3, 4)),
}  # fmt: skip


def _nested(flat: list, shape: tuple):
    if len(shape) == 1:
        return list(flat)
    step = len(flat) // shape[0]
    return [_nested(flat[k * step : (k + 1) * step], shape[1:]) for k in range(shape[0])]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", list(STACK_KINDS))
def test_stacked_outputs_and_their_batch_means(shape: tuple, kind: str) -> None:
    leaves = stacked_leaves(8)
    out = sp.Matrix(*shape, leaves) if len(shape) == 2 else _nested(leaves, shape)
    xs, a, w = STACK_KINDS[kind]
    values = [w, *xs, a]
    f, m = lambdify([out], ARGS), lambdify([out], ARGS, reduce="mean")
    assert "_gather(" in f.source and "_gather_mean(" in m.source
    want = reference(leaves, values)
    full = f(*values)[0]
    check(full, want.reshape(shape + want.shape[1:]))
    mean = m(*values)[0]
    batch_axes = tuple(range(len(shape), full.ndim))
    check(mean, full.mean(axis=batch_axes))
    check(mean, want.mean(axis=tuple(range(1, want.ndim))).reshape(shape))


@pytest.mark.parametrize("kind", ["batch1d", "complex", "int", "mixed", "params_batch"])
def test_stacked_outputs_for_other_input_kinds(kind: str) -> None:
    leaves = [*products(9, offset=50), A, sp.Integer(0), X[0] + A]
    values = inputs(kind, seed=2)
    want = reference(leaves, values)
    check(lambdify([leaves], ARGS)(*values)[0], want)
    check(lambdify([leaves], ARGS, reduce="mean")(*values)[0], batch_mean(want))


def test_gather_mean_over_an_empty_batch_raises() -> None:
    leaves = stacked_leaves(8)
    m = lambdify([leaves], ARGS, reduce="mean")
    assert "_gather_mean(" in m.source
    empty = np.zeros(0)
    with pytest.raises(ShapeError):
        m(np.ones(100), *[empty] * 10, empty)
    with pytest.raises(ShapeError):  # batch only in the parameter vector
        m(np.ones((100, 0)), *[1.0] * 10, 1.0)
    assert lambdify([leaves], ARGS)(np.ones(100), *[empty] * 10, empty)[0].shape == (12, 0)


def test_nan_and_inf_propagate_like_the_reference() -> None:
    values = inputs("params_batch", seed=3)
    # sample 0: 0 * inf; 1: inf; 2: nan weight; 3: inf - inf; 4: a = -inf
    values[0][3, 0], values[0][4, 1], values[0][6, 2] = np.inf, np.inf, np.nan
    values[4] = 0.0  # x3 = 0
    values[11] = np.array([1.0, 2.0, 3.0, np.inf, -np.inf])
    values[0][5, 3] = -np.inf * np.sign(values[6])
    expr = sp.Add(*products(10), A)
    leaves = stacked_leaves(9)
    with np.errstate(invalid="ignore"):
        got_dot = lambdify(expr, ARGS)(*values)
        got = lambdify([leaves], ARGS)(*values)[0]
        got_mean = lambdify([leaves], ARGS, reduce="mean")(*values)[0]
        want_mean = reference(leaves, values).mean(axis=1)
    for g, w in [(got_dot, reference([expr], values)[0]), (got, reference(leaves, values))]:
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_array_equal(np.isposinf(g), np.isposinf(w))
        np.testing.assert_array_equal(np.isneginf(g), np.isneginf(w))
        check(g, w)
    assert np.isnan(got_dot[[0, 2, 3]]).all() and np.isinf(got_dot[[1, 4]]).all()
    check(got_mean, want_mean)


def mlp(sizes: list[int]):
    """Squared loss of a tanh MLP built with unevaluated shared nodes; params in neuron order."""
    params, xs, y = [], list(sp.symbols(f"u0:{sizes[0]}")), sp.Symbol("y")
    h = xs
    for layer, (nin, nout) in enumerate(itertools.pairwise(sizes)):
        new = []
        for j in range(nout):
            ws = sp.symbols(f"v{layer}_{j}_0:{nin}")
            b = sp.Symbol(f"c{layer}_{j}")
            params += [*ws, b]
            s = add([*(mul(w, v) for w, v in zip(ws, h, strict=True)), b])
            new.append(s if layer == len(sizes) - 2 else apply(sp.tanh, s))
        h = new
    return sp.Pow(add([h[0], -y]), 2, evaluate=False), params, [*xs, y]


def test_mlp_gradient_matches_complex_step_of_sympy_lambdify() -> None:
    loss, params, data = mlp([2, 8, 8, 1])
    args = [params, *data]
    f = value_and_grad(loss, params, args)
    # layers are packed (one matrix product per layer and sweep), the output neuron's sum and
    # the gradient vector are fused
    assert "_mm(" in f.source and "_dot(" in f.source and "_gather(" in f.source
    rng = np.random.default_rng(4)
    p, u0, u1, y = rng.uniform(-1, 1, len(params)), rng.normal(size=7), rng.normal(size=7), 0.3
    value, grad = f(p, u0, u1, y)
    ref = sp.lambdify(args, loss, "numpy")
    check(value, ref(p, u0, u1, y))
    h = 1e-30  # complex step: d/dp_k = Im(loss(p + i h e_k)) / h, exact to rounding
    stepped = p[:, None, None] + 1j * h * np.eye(len(params))[:, :, None]
    want = ref(stepped, u0, u1, y).imag / h
    np.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-13)
    with pytest.MonkeyPatch.context() as mp:  # the scalar program (not its layers, lift.py)
        mp.setattr(lift, "LIFT_MIN", math.inf)
        m = value_and_grad(loss, params, args, reduce="mean")
    assert "_gather_mean(" in m.source
    mean_value, mean_grad = m(p, u0, u1, y)
    check(mean_value, value.mean())
    check(mean_grad, grad.mean(axis=1))


def test_gather_whose_products_share_one_vector_entry() -> None:
    # every product has the factor w0, an entry of a vector argument (one unique left factor)
    leaves = [mul(W[0], x, small=False) for x in X]
    values = inputs("batch1d", seed=5)
    want = reference(leaves, values)
    check(lambdify([leaves], ARGS)(*values)[0], want)
    check(lambdify([leaves], ARGS, reduce="mean")(*values)[0], batch_mean(want))


def test_gradient_of_a_vector_entry_times_a_sum() -> None:
    # d(s * sum_k w_k x_k)/dw_k = s * x_k: the same shape of gather, from value_and_grad
    s, ws = sp.Symbol("s"), list(W[:8])
    expr = s * sp.Add(*products(8))
    g = value_and_grad(expr, [s, *ws], [[s, *ws], *X[:8]])
    values = [np.linspace(0.5, 2, 9), *np.arange(24.0).reshape(8, 3)]
    want = reference([expr] + [sp.diff(expr, v) for v in [s, *ws]], values, [[s, *ws], *X[:8]])
    value, grad = g(*values)
    check(value, want[0])
    check(grad, want[1:])


@pytest.mark.skipif(not c_available(), reason="no C compiler")
@pytest.mark.parametrize("reduce", [None, "mean"])
def test_c_backend_agrees_with_fused_numpy(reduce: str | None) -> None:
    out = [sp.Add(*products(10, offset=20), A), sp.Matrix(3, 4, stacked_leaves(8))]
    values = inputs("batch1d", seed=6)
    f = lambdify(out, ARGS, reduce=reduce)
    assert "_dot(" in f.source and "_gather" in f.source
    c = lambdify(out, ARGS, backend="c", reduce=reduce)
    for got, want in zip(c(*values), f(*values), strict=True):
        check(got, want)
