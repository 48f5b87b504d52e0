"""The JAX target: differential tests against the NumPy target, JAX's own transforms, sharding.

References are independent of the JAX emitter: the NumPy target (its own printer and runtime),
JAX's ``jax.grad`` of the compiled value (JAX's autodiff, not symgrad's sweep), and plain loops.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from test_property import X, dags  # noqa: E402  (the random expression DAGs of the suite)

from symgrad import check_grad, lambdify, sigmoid, value_and_grad  # noqa: E402
from symgrad.errors import (  # noqa: E402
    ArgumentError,
    DtypeError,
    ShapeError,
    UnsupportedFunctionError,
)

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BATCH = st.integers(0, 2**32 - 1).map(
    lambda seed: np.random.default_rng(seed).uniform(-1.5, 1.5, (3, 6))
)
x1, w1, x2, w2, b = sp.symbols("x1 w1 x2 w2 b")
NEURON = sp.tanh(x1 * w1 + x2 * w2 + b)


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _close(got, want, tol) -> None:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape
    ok = np.isfinite(want)
    np.testing.assert_array_less(np.abs(got - want)[ok], tol * np.maximum(1.0, np.abs(want[ok])))


@SETTINGS
@given(dags(), BATCH)
def test_jax_matches_numpy_in_float64(expr, batch) -> None:
    with jax.enable_x64(True):
        f = value_and_grad(expr, list(X), [list(X)], backend="jax")
        v, g = f(batch)
        assert v.dtype == np.float64 and g.dtype == np.float64
    rv, rg = value_and_grad(expr, list(X), [list(X)])(batch)
    _close(v, rv, 1e-12)
    _close(g, np.broadcast_to(rg, g.shape), 1e-12)


@SETTINGS
@given(dags(), BATCH)
def test_jax_matches_numpy_in_float32(expr, batch) -> None:
    f = value_and_grad(expr, list(X), [list(X)], backend="jax")
    v, g = f(batch.astype(np.float32))
    assert v.dtype == np.float32 and g.dtype == np.float32
    # the reference: float64 NumPy on the same (float32-rounded) inputs
    rv, rg = value_and_grad(expr, list(X), [list(X)])(batch.astype(np.float32).astype(float))
    _close(v, rv, 1e-5)
    _close(g, np.broadcast_to(rg, g.shape), 1e-5)


@SETTINGS
@given(dags())
def test_jax_grad_of_the_compiled_value_equals_the_compiled_gradient(expr) -> None:
    point = np.array([0.3, -0.7, 1.1])
    with jax.enable_x64(True):
        value = lambdify(expr, [list(X)], backend="jax")
        _, g = value_and_grad(expr, list(X), [list(X)], backend="jax")(point)
        auto = jax.grad(value)(jnp.asarray(point))
    _close(auto, g, 1e-12)


def test_inside_the_users_jit_and_vmap(x64) -> None:
    f = value_and_grad(NEURON, [w1, w2, b], [x1, x2, [w1, w2, b]], backend="jax")
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(2, 8))
    ps = rng.normal(size=(5, 3))

    @jax.jit
    def users_step(p):
        v, g = f(xs[0], xs[1], p)
        return v.sum(), p - 0.1 * g.sum(axis=1)

    ref = value_and_grad(NEURON, [w1, w2, b], [x1, x2, [w1, w2, b]])
    for p in ps:
        total, new = users_step(p)
        rv, rg = ref(xs[0], xs[1], p)
        _close(total, rv.sum(), 1e-12)
        _close(new, p - 0.1 * rg.sum(axis=1), 1e-12)
    # vmap over parameter vectors equals a loop of calls
    mapped_v, mapped_g = jax.vmap(lambda p: f(xs[0], xs[1], p))(jnp.asarray(ps))
    for k, p in enumerate(ps):
        rv, rg = ref(xs[0], xs[1], p)
        _close(mapped_v[k], rv, 1e-12)
        _close(mapped_g[k], rg, 1e-12)


def test_lecture_neuron_and_mean_reduction(x64) -> None:
    f = value_and_grad(NEURON, [x1, w1, x2, w2, b], [x1, w1, x2, w2, b], backend="jax")
    v, g = f(2.0, -3.0, 0.0, 1.0, 6.8813735870195432)
    # the lecture's published numbers
    _close(v, 0.7071067811865476, 1e-12)
    _close(g, [-1.5, 1.0, 0.5, 0.0, 0.5], 1e-12)
    mean = value_and_grad(NEURON, [w1, w2, b], [x1, x2, [w1, w2, b]], backend="jax", reduce="mean")
    xs = np.random.default_rng(1).normal(size=(2, 50))
    p = np.array([-3.0, 1.0, 0.5])
    v, g = mean(xs[0], xs[1], p)
    rv, rg = value_and_grad(NEURON, [w1, w2, b], [x1, x2, [w1, w2, b]])(xs[0], xs[1], p)
    _close(v, rv.mean(), 1e-12)
    _close(g, rg.mean(axis=1), 1e-12)


def test_functions_with_their_own_printing(x64) -> None:
    x, y = sp.symbols("x y")
    exprs = [
        sigmoid(x * y),
        sp.Max(0, x - y),
        sp.Min(x, y, 0.5),
        sp.Piecewise((x**2, x > 0), (y, True)),
        sp.Heaviside(x) * y,
        sp.erf(x) + sp.erfc(y),
        sp.loggamma(2 + x**2) + sp.gamma(2 + y**2),
        sp.Abs(x) * sp.sign(y) + sp.atan2(x, y),
        (1 + x**2) ** sp.Rational(1, 3) * sp.Float("0.1000000000000000055511151231257827") + sp.pi,
    ]
    xs = np.array([-1.2, -0.3, 0.0, 0.4, 1.7])
    ys = np.array([0.5, -2.0, 1.5, 0.0, 0.9])
    for e in exprs:
        got = lambdify(e, [x, y], backend="jax")(xs, ys)
        want = lambdify(e, [x, y])(xs, ys)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=str(e))


EDGES = np.array([-np.inf, -2.5, -2.0, -0.5, -0.0, 0.0, 1e-300, 0.5, 3.0, 171.7, np.inf, np.nan])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns at the poles and overflows
def test_special_functions_at_poles_and_off_their_domain_match_numpy(x64) -> None:
    # gamma's sign left of 0, its poles, loggamma's nan off its real domain: the NumPy answers
    x = sp.Symbol("x")
    for e in (sp.gamma(x), sp.loggamma(x), sp.erf(x), sp.erfc(x)):
        got = np.asarray(lambdify(e, [x], backend="jax")(EDGES))
        want = lambdify(e, [x])(EDGES)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=str(e))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_matrix_path_special_functions_on_jax_match_numpy(x64) -> None:
    from symgrad.matrix import expr as mx
    from symgrad.matrix.codegen import compile_matrix

    X = sp.MatrixSymbol("X", 3, 4)
    values = EDGES.reshape(3, 4)
    for f in (sp.erf, sp.erfc, sp.gamma, sp.loggamma):
        e = mx.elementwise(f, X)
        got = np.asarray(compile_matrix(e, [X], backend="jax")(values))
        want = compile_matrix(e, [X])(values)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=str(f))


def test_dtypes_are_kept(x64) -> None:
    x = sp.Symbol("x")
    f = lambdify([x**2, [x, 1]], [x], backend="jax")
    v, s = f(np.arange(3, dtype=np.float32))
    assert v.dtype == np.float32 and s.dtype == np.float32 and s.shape == (2, 3)
    v, s = f(np.arange(3))  # integers compute in the default float
    assert v.dtype == np.float64 and s.tolist() == [[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]]
    assert lambdify(sp.Integer(2), [x], backend="jax")(np.float32(1.0)).dtype == np.float32


def test_float64_without_x64_is_refused_with_the_fix() -> None:
    x = sp.Symbol("x")
    f = lambdify(x**2, [x], backend="jax")
    with pytest.raises(DtypeError, match="jax_enable_x64"):
        f(np.ones(3))
    assert f(np.ones(3, np.float32)).dtype == np.float32
    assert float(f(3.0)) == 9.0  # a Python float is weakly typed: no request for float64


def test_bad_input_gets_typed_errors() -> None:
    x, y = sp.symbols("x y")
    f = lambdify(x * y, [x, [x, y]][1:], backend="jax")
    with pytest.raises(ShapeError, match="2 entries"):
        f(np.ones(3, np.float32))
    g = lambdify(x * y, [x, y], backend="jax")
    with pytest.raises(ShapeError, match="broadcast"):
        g(np.ones(3, np.float32), np.ones(4, np.float32))
    with pytest.raises(ArgumentError, match="must be a number"):
        g("1", 2.0)
    with pytest.raises(UnsupportedFunctionError):
        lambdify(sp.besselj(0, x), [x], backend="jax")


def test_check_grad_accepts_the_jax_target(x64) -> None:
    at = {x1: 2.0, w1: -3.0, x2: 0.5, w2: 1.0, b: 0.2}
    report = check_grad(NEURON, [x1, w1, x2, w2, b], at, backend="jax")
    assert report.ok and report.rows[0].symbolic == pytest.approx(-3 * (1 - np.tanh(-5.3) ** 2))
    ref = check_grad(NEURON, [x1, w1, x2, w2, b], at)
    for mine, theirs in zip(report.rows, ref.rows, strict=True):
        assert mine.symbolic == pytest.approx(theirs.symbolic, rel=1e-12)
        # finite differences amplify the last-bit differences of XLA's tanh and NumPy's
        assert mine.numerical == pytest.approx(theirs.numerical, rel=1e-6)


SHARDED = """
import os, sys
import numpy as np, sympy as sp, jax
jax.config.update("jax_enable_x64", True)
sys.path.insert(0, os.environ["SYMGRAD_ROOT"])
from symgrad import lambdify, value_and_grad
from symgrad.jax import shard
x1, w1, x2, w2, b = sp.symbols("x1 w1 x2 w2 b")
e = sp.tanh(x1 * w1 + x2 * w2 + b)
args = [[x1, x2], [w1, w2, b]]
assert len(jax.devices()) == 4, jax.devices()
X = np.random.default_rng(0).normal(size=(2, 4000))
p = np.array([-3.0, 1.0, 0.5])
Xs = shard(X)
assert len(Xs.sharding.device_set) == 4
per_sample = lambdify([e, [x1 * e, w1]], args, backend="jax")
v, s = per_sample(Xs, p)
uv, us = per_sample(X, p)  # the same function, unsharded
np.testing.assert_array_equal(np.asarray(v), np.asarray(uv))
np.testing.assert_array_equal(np.asarray(s), np.asarray(us))
rv, rs = lambdify([e, [x1 * e, w1]], args)(X, p)  # and the NumPy target
np.testing.assert_allclose(np.asarray(v), rv, rtol=1e-12, atol=1e-15)
np.testing.assert_allclose(np.asarray(s), np.broadcast_to(rs, s.shape), rtol=1e-12, atol=1e-15)
# the outputs are sharded along the batch: each device holds a quarter of the samples
for out, batch_shape in ((v, (1000,)), (s, (2, 1000))):
    shapes = {sh.data.shape for sh in out.addressable_shards}
    assert shapes == {batch_shape}, shapes
    assert len({sh.device for sh in out.addressable_shards}) == 4
    assert not out.sharding.is_fully_replicated
mean = value_and_grad(e, [w1, w2, b], args, backend="jax", reduce="mean")
mv, mg = mean(Xs, p)
uv, ug = mean(X, p)
rv, rg = value_and_grad(e, [w1, w2, b], args, reduce="mean")(X, p)
np.testing.assert_allclose([float(mv)], [float(uv)], rtol=1e-13)
np.testing.assert_allclose(np.asarray(mg), np.asarray(ug), rtol=1e-13)
np.testing.assert_allclose(np.asarray(mg), rg, rtol=1e-12)
print("sharded ok", mv.sharding)
"""


def test_sharded_over_four_host_devices_equals_unsharded() -> None:
    # XLA reads the device count when JAX starts: a fresh interpreter with the flag set
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    env["SYMGRAD_ROOT"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SHARDED)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sharded ok" in done.stdout


def _matrix_mlp(sizes, loss_name):
    from symgrad.nn.dense import Dense, loss_expression

    net = Dense(sizes[0], list(sizes[1:]), seed=0)
    loss, X, Y = loss_expression(net, {"ce": "softmax_cross_entropy", "mse": "mse"}[loss_name])
    params = net.parameter_symbols()
    return loss, params, [*params, X, Y], net.matrices(net.parameter_vector())


@pytest.mark.parametrize("loss_name", ["ce", "mse"])
def test_matrix_path_on_jax_equals_numpy_and_jax_grad(x64, loss_name) -> None:
    from symgrad.matrix.codegen import compile_matrix
    from symgrad.matrix.codegen import value_and_grad as matrix_value_and_grad

    sizes = (5, 7, 3)
    loss, params, args, values = _matrix_mlp(sizes, loss_name)
    rng = np.random.default_rng(0)
    Xv = rng.normal(size=(5, 11))
    Yv = np.eye(3)[rng.integers(0, 3, 11)].T.copy()
    v, grads = matrix_value_and_grad(loss, params, args, backend="jax")(*values, Xv, Yv)
    rv, rgrads = matrix_value_and_grad(loss, params, args)(*values, Xv, Yv)
    _close(v, rv, 1e-12)
    for g, r in zip(grads, rgrads, strict=True):
        _close(g, r, 1e-12)
    # JAX's own autodiff of the compiled value agrees with the compiled gradients
    value = compile_matrix(loss, args, backend="jax")
    auto = jax.grad(lambda ps: value(*ps, Xv, Yv))([jnp.asarray(a) for a in values])
    for g, r in zip(auto, rgrads, strict=True):
        _close(g, r, 1e-12)


def test_matrix_path_keeps_float32_and_refuses_float64_without_x64() -> None:
    from symgrad.matrix.codegen import value_and_grad as matrix_value_and_grad

    loss, params, args, values = _matrix_mlp((4, 6, 2), "mse")
    f = matrix_value_and_grad(loss, params, args, backend="jax")
    values32 = [v.astype(np.float32) for v in values]
    X = np.ones((4, 3), np.float32)
    v, grads = f(*values32, X, np.zeros((2, 3), np.float32))
    assert v.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    rv, _ = matrix_value_and_grad(loss, params, args)(*values32, X, np.zeros((2, 3)))
    _close(v, rv, 1e-5)
    with pytest.raises(DtypeError, match="jax_enable_x64"):
        f(*values, X, np.zeros((2, 3)))
    with pytest.raises(ShapeError, match="expected"):
        f(*values32, np.ones((5, 3), np.float32), np.zeros((2, 3), np.float32))


def test_trainers_run_on_jax(x64) -> None:
    import random

    from symgrad.nn import MLP, SGD, Dense, Trainer

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(12, 2)), rng.choice([-1.0, 1.0], 12)
    mine = Trainer(MLP(2, [4, 1], rng=random.Random(0)), "hinge", l2=1e-3, backend="jax")
    ref = Trainer(MLP(2, [4, 1], rng=random.Random(0)), "hinge", l2=1e-3)
    theta = ref.parameter_vector()
    (lj, gj, sj), (ln, gn, sn) = mine.loss_and_grad(theta, X, y), ref.loss_and_grad(theta, X, y)
    _close(lj, ln, 1e-12)
    _close(gj, gn, 1e-12)
    _close(sj, sn, 1e-12)
    # a dense network: one step on JAX equals one step on NumPy
    steps = []
    Xm, Ym = rng.normal(size=(7, 3)), rng.normal(size=(7, 2))
    for backend in ("jax", "numpy"):
        net = Dense(3, [5, 2], seed=0)
        trainer = Trainer(net, "mse", optimizer=SGD(lr=0.1), backend=backend)
        history = trainer.fit(Xm, Ym, steps=1)
        steps.append((history.loss[0], net.parameter_vector()))
    _close(steps[0][0], steps[1][0], 1e-12)
    _close(steps[0][1], steps[1][1], 1e-12)


def test_jax_functions_pickle(x64) -> None:
    import pickle

    f = value_and_grad(NEURON, [w1, w2, b], [x1, x2, [w1, w2, b]], backend="jax")
    g = pickle.loads(pickle.dumps(f))
    xs, p = np.array([0.5, -1.0]), np.array([-3.0, 1.0, 0.5])
    for a, r in zip(g(xs, xs, p), f(xs, xs, p), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(r))
    assert g.backend == "jax"


def test_jax_is_a_registered_source_target() -> None:
    from symgrad.codegen.targets import source

    text = source(NEURON, [[x1, x2], [w1, w2, b]], "jax", "neuron")
    assert text == lambdify(NEURON, [[x1, x2], [w1, w2, b]], backend="jax", name="neuron").source
    assert "jax.numpy.tanh" in text
