"""Networks compiled by layers (codegen/lift.py) against the scalar program and references."""

from __future__ import annotations

import importlib.util
import pickle
import random
import threading

import numpy as np
import pytest
import sympy as sp

from symgrad.codegen import lambdify, value_and_grad
from symgrad.codegen import lift as lift_module
from symgrad.errors import ArgumentError, ShapeError
from symgrad.nn import MLP, hinge, l2, logistic, softmax_cross_entropy, squared_error
from tests.threads import run_threads

LOSSES = {
    "hinge": hinge,
    "squared_error": squared_error,
    "logistic": logistic,
    "softmax_cross_entropy": softmax_cross_entropy,
}


@pytest.fixture(autouse=True)
def _small_networks_lift(monkeypatch):
    monkeypatch.setattr(lift_module, "LIFT_MIN", 0)  # small networks keep the tests fast
    monkeypatch.setattr(lift_module, "FLOATS_BY_SCALAR", 0)  # and answer floats by layers


def _network(seed, activation="relu", loss="hinge", alpha=1e-3, widths=None, nin=None):
    rng = random.Random(seed)
    nin = nin or rng.randint(1, 4)
    widths = widths or [rng.randint(2, 7) for _ in range(rng.randint(1, 3))]
    nout = 1 if loss in ("hinge", "logistic") else rng.randint(2, 4)
    model = MLP(nin, [*widths, nout], activation=activation, rng=rng)
    theta = model.parameter_symbols()
    xs = list(sp.symbols(f"x0:{nin}"))
    ts = list(sp.symbols(f"t0:{nout}"))
    expr = LOSSES[loss](model.symbolic(xs), ts)
    if alpha:
        expr = expr + l2(theta, alpha)
    return expr, theta, xs, ts, model


def _batch(seed, nin, nout, size, loss):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(nin, size))
    if loss == "hinge":
        t = np.sign(rng.normal(size=(nout, size)))
    elif loss == "logistic":
        t = (rng.random((nout, size)) < 0.5).astype(float)
    else:
        t = np.eye(nout)[rng.integers(0, nout, size)].T.copy()
    return x, t


def _scalar(f):
    return f.func.general.get()


CASES = [
    (seed, act, loss)
    for seed, (act, loss) in enumerate(
        (a, b)
        for a in ("relu", "tanh", "sigmoid")
        for b in ("hinge", "squared_error", "logistic", "softmax_cross_entropy")
    )
]


@pytest.mark.parametrize(("seed", "activation", "loss"), CASES)
def test_layers_agree_with_the_scalar_program_and_finite_differences(seed, activation, loss):
    expr, theta, xs, ts, _ = _network(seed, activation, loss, alpha=1e-2 * (seed % 2))
    f = value_and_grad(expr, theta, [*xs, *ts, theta], reduce="mean")
    assert type(f).__name__ == "LiftedFunction"
    x, t = _batch(seed, len(xs), len(ts), 37, loss)
    p = np.random.default_rng(seed + 100).normal(scale=0.7, size=len(theta))
    value, grad = f(*x, *t, p)
    want_value, want_grad = _scalar(f)(*x, *t, p)
    assert value == pytest.approx(float(want_value), rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-11, atol=1e-13)
    # an independent reference: central differences of the value alone (lambdify, no gradient)
    loss_of = lambdify(expr, [*xs, *ts, theta], reduce="mean")
    h = 1e-6
    for k in np.random.default_rng(seed).choice(
        len(theta), size=min(12, len(theta)), replace=False
    ):
        e = np.zeros(len(theta))
        e[k] = h
        fd = (loss_of(*x, *t, p + e) - loss_of(*x, *t, p - e)) / (2 * h)
        assert grad[k] == pytest.approx(fd, rel=1e-5, abs=1e-7)


def test_sympy_diff_reference_and_a_shuffled_parameter_order():
    expr, theta, xs, ts, _ = _network(3, "tanh", "squared_error", alpha=0.05, widths=[3, 2])
    order = list(theta)
    random.Random(1).shuffle(order)  # the layers' weights are gathered, not sliced
    f = value_and_grad(expr, order, [*xs, *ts, order], reduce="mean")
    assert type(f).__name__ == "LiftedFunction" and "gathered positions" in f.source
    x, t = _batch(3, len(xs), len(ts), 5, "squared_error")
    p = np.random.default_rng(3).normal(size=len(order))
    value, grad = f(*x, *t, p)
    grads = sp.lambdify([*xs, *ts, order], [sp.diff(expr, s) for s in order])
    want = np.mean([grads(*x[:, b], *t[:, b], p) for b in range(5)], axis=0)
    np.testing.assert_allclose(grad, want, rtol=1e-11, atol=1e-14)
    values = sp.lambdify([*xs, *ts, order], expr)
    assert value == pytest.approx(np.mean([values(*x[:, b], *t[:, b], p) for b in range(5)]))


def test_kinks_take_the_scalar_programs_conventions():
    # all-zero parameters: every ReLU sits at 0 and the hinge margin at exactly 1 - 0; integer
    # inputs put sums exactly on kinks
    expr, theta, xs, ts, _ = _network(5, "relu", "hinge", alpha=0, widths=[4, 4], nin=2)
    f = value_and_grad(expr, theta, [*xs, *ts, theta], reduce="mean")
    for p in (np.zeros(len(theta)), np.ones(len(theta)), -np.ones(len(theta))):
        for x in (np.array([[0.0, 1.0, -1.0], [0.0, -1.0, 1.0]]),):
            t = np.array([[1.0, -1.0, 1.0]])
            got = f(*x, *t, p)
            want = _scalar(f)(*x, *t, p)
            # the same subgradients: a different one at a kink would differ by O(1), not by
            # the rounding of a different summation order
            assert float(got[0]) == pytest.approx(float(want[0]), rel=1e-14)
            np.testing.assert_allclose(got[1], want[1], rtol=1e-13, atol=1e-15)


def test_calls_the_layers_do_not_answer_go_to_the_scalar_program():
    expr, theta, xs, ts, _ = _network(7, "tanh", "hinge", widths=[3], nin=2)
    f = value_and_grad(expr, theta, [*xs, *ts, theta], reduce="mean")
    scalar = _scalar(f)
    p = np.random.default_rng(0).normal(size=len(theta))
    x, t = _batch(7, 2, 1, 4, "hinge")
    # per-sample parameters
    ps = np.repeat(p[:, None], 4, axis=1) + 0.01 * np.arange(4)
    got, want = f(*x, *t, ps), scalar(*x, *t, ps)
    assert float(got[0]) == float(want[0]) and got[1].tolist() == want[1].tolist()
    # float32 inputs keep the scalar program's dtypes
    for cast in (np.float32,):
        got, want = f(*x.astype(cast), *t, p), scalar(*x.astype(cast), *t, p)
        assert np.asarray(got[1]).dtype == np.asarray(want[1]).dtype
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
    # an empty batch, and shapes that do not broadcast: the scalar program's errors
    with pytest.raises(ShapeError, match="empty batch"):
        f(np.zeros(0), np.zeros(0), np.zeros(0), p)
    with pytest.raises(ShapeError):
        f(np.zeros(3), np.zeros(4), np.zeros(3), p)


def test_bad_arguments_fail_before_the_scalar_program_is_built():
    expr, theta, xs, ts, _ = _network(8, "relu", "hinge", widths=[3], nin=2)
    f = value_and_grad(expr, theta, [*xs, *ts, theta], reduce="mean")
    lazy = f.func.general
    with pytest.raises(ArgumentError, match="missing"):
        f(1.0, 2.0)
    with pytest.raises(ArgumentError):
        f(1.0, 2.0, 1.0, np.zeros(len(theta)), 5.0)
    with pytest.raises(ShapeError, match=str(len(theta))):
        f(1.0, 2.0, 1.0, np.zeros(len(theta) + 1))
    with pytest.raises(ArgumentError):
        f("1", 2.0, 1.0, np.zeros(len(theta)))
    assert lazy._fn is None


@pytest.mark.parametrize("float_outputs", ["array", "tuple"])
def test_result_types_are_the_scalar_programs(float_outputs):
    expr, theta, xs, ts, _ = _network(9, "sigmoid", "logistic", widths=[3], nin=2)
    f = value_and_grad(expr, theta, [*xs, *ts, theta], reduce="mean", float_outputs=float_outputs)
    scalar = _scalar(f)
    p = list(np.random.default_rng(1).normal(size=len(theta)))
    calls = [
        (0.5, -1.0, 1.0, p),
        (0.5, -1.0, 1.0, np.array(p)),
        (np.float64(0.5), -1.0, 1.0, p),
        (np.array([0.5, 1.0]), -1.0, np.array([1.0, 0.0]), p),
        (np.ones((3, 1)), np.ones((1, 5)), 0.0, p),
    ]
    for call in calls:
        got, want = f(*call), scalar(*call)
        assert type(got[0]) is type(want[0]), call
        assert type(got[1]) is type(want[1]), call
        assert float(got[0]) == pytest.approx(float(want[0]), rel=1e-13)
        np.testing.assert_allclose(np.asarray(got[1]), np.asarray(want[1]), rtol=1e-12)


def test_nan_and_inf_propagate_as_in_the_scalar_program():
    expr, theta, xs, ts, _ = _network(10, "tanh", "squared_error", widths=[3], nin=2)
    f = value_and_grad(expr, theta, [*xs, *ts, theta], reduce="mean")
    p = np.random.default_rng(2).normal(size=len(theta))
    x = np.array([[np.nan, 1.0], [0.5, np.inf]])
    t = np.zeros((len(ts), 2))
    with np.errstate(all="ignore"):
        got, want = f(*x, *t, p), _scalar(f)(*x, *t, p)
    assert np.isnan(got[0]) == np.isnan(want[0])
    assert np.isnan(got[1]).tolist() == np.isnan(want[1]).tolist()


def test_what_is_not_a_chain_of_dense_layers_compiles_as_one_scalar_program():
    expr, theta, xs, ts, model = _network(11, "relu", "hinge", alpha=0, widths=[3], nin=2)
    a = sp.Symbol("alpha")
    w0 = theta[0]
    others = {
        "a hidden unit read by the head": expr + model.layers[0].symbolic(xs)[0] ** 2,
        "a parameter outside the layers": expr + w0**3,
        "a symbolic L2 strength": expr + a * sum(s**2 for s in theta),
        "a weight used twice": expr.xreplace({theta[1]: w0}),
    }
    for what, e in others.items():
        syms = sorted(e.free_symbols - set(xs) - set(ts) - {a}, key=str)
        args = [*xs, *ts, syms] + ([a] if a in e.free_symbols else [])
        f = value_and_grad(e, syms, args, reduce="mean")
        assert type(f).__name__ == "CompiledFunction", what
    # without reduce="mean" (per-sample gradients) the scalar program answers
    f = value_and_grad(expr, theta, [*xs, *ts, theta])
    assert type(f).__name__ == "CompiledFunction"
    # an input read by the head is an input of the head: still a network
    f = value_and_grad(expr + xs[0] ** 2, theta, [*xs, *ts, theta], reduce="mean")
    assert type(f).__name__ == "LiftedFunction"
    x, t = _batch(11, 2, 1, 5, "hinge")
    p = np.random.default_rng(4).normal(size=len(theta))
    np.testing.assert_allclose(f(*x, *t, p)[1], _scalar(f)(*x, *t, p)[1], rtol=1e-12)


def test_pickle_export_and_formulas_go_through_the_scalar_program(tmp_path):
    expr, theta, xs, ts, _ = _network(12, "relu", "hinge", widths=[4], nin=2)
    f = value_and_grad(expr, theta, [*xs, *ts, theta], reduce="mean")
    g = pickle.loads(pickle.dumps(f))
    assert type(g).__name__ == "LiftedFunction"
    p = np.random.default_rng(3).normal(size=len(theta))
    x, t = _batch(12, 2, 1, 6, "hinge")
    assert g(*x, *t, p)[1].tolist() == f(*x, *t, p)[1].tolist()
    f.export(tmp_path / "m.py")
    spec = importlib.util.spec_from_file_location("exported_lift", tmp_path / "m.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exported = module.symgrad_fn(*x, *t, p)
    np.testing.assert_allclose(exported[1], f(*x, *t, p)[1], rtol=1e-12, atol=1e-15)
    value, gradient = f.outputs
    assert len(gradient) == len(theta) and value == expr


def test_threads_build_the_scalar_program_once():
    expr, theta, xs, ts, _ = _network(13, "relu", "hinge", widths=[3], nin=2)
    f = value_and_grad(expr, theta, [*xs, *ts, theta], reduce="mean")
    lazy = f.func.general
    built = []
    real = lazy._build
    lazy._build = lambda: built.append(1) or real()
    ps = np.zeros((len(theta), 2))  # per-sample parameters: the scalar program answers
    barrier = threading.Barrier(4)
    out = [None] * 4

    def call(k):
        barrier.wait()
        out[k] = f(np.ones(2), np.ones(2), np.ones(2), ps)

    run_threads(call, 4)
    assert built == [1] and all(o is not None for o in out)


def test_small_networks_answer_python_floats_with_the_scalar_program(monkeypatch):
    monkeypatch.setattr(lift_module, "LIFT_MIN", 2)
    monkeypatch.setattr(lift_module, "FLOATS_BY_SCALAR", 256)
    for widths, by_scalar in (([4, 4], True), ([16, 16], False)):
        expr, theta, xs, ts, _ = _network(14, "relu", "hinge", widths=widths, nin=2)
        f = value_and_grad(expr, theta, [*xs, *ts, theta], reduce="mean")
        assert type(f).__name__ == "LiftedFunction"
        p = np.linspace(-1, 1, len(theta))
        f(np.ones(3), np.ones(3), np.ones(3), p)  # arrays: by layers, whatever the size
        assert f.func.general._fn is None
        got = f(0.5, -1.0, 1.0, p.tolist())
        assert (f.func.general._fn is not None) is by_scalar
        want = _scalar(f)(0.5, -1.0, 1.0, p.tolist())
        assert type(got[0]) is float and got[0] == pytest.approx(want[0], rel=1e-13)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-15)


def _mutations(expr, theta, xs, ts, model, rng):
    # near-networks: each either still a chain of dense layers or not one; the compiled
    # function must agree with the scalar program in both cases
    hidden = model.layers[0].symbolic(xs)
    w, v = theta[0], theta[-1]
    return [
        expr,
        expr.xreplace({theta[1]: w}),  # a weight shared by two products
        expr + hidden[0],  # a hidden unit read by the head
        expr + w**3,  # a parameter outside the layers
        expr + xs[0] * ts[0],  # an input read by the head
        expr.xreplace({w: 2 * w}),  # a product with a number in it
        expr.xreplace({xs[0]: xs[0] ** 2}),  # a unit that is not an input
        expr.xreplace({v: v + 1}),  # a constant in the last sum
        expr + 0.5 * sum(p**2 for p in theta[:3]) + v**2,  # L2 over some parameters, twice
        expr * 2,  # the loss scaled
        sp.tanh(expr),  # a head around everything
        expr.xreplace({xs[-1]: xs[0]}),  # one input read twice per neuron
        expr + sum(rng.uniform(-1, 1) * p**2 for p in theta),  # distributed L2 coefficients
    ]


@pytest.mark.parametrize("seed", range(6))
def test_near_networks_agree_with_the_scalar_program(seed, monkeypatch):
    rng = random.Random(seed)
    act = ("relu", "tanh", "sigmoid")[seed % 3]
    loss = ("hinge", "squared_error", "softmax_cross_entropy")[seed % 3]
    expr, theta, xs, ts, model = _network(seed + 40, act, loss, alpha=1e-2, widths=[3, 3], nin=2)
    x, t = _batch(seed, len(xs), len(ts), 9, loss)
    p = np.random.default_rng(seed).normal(scale=0.8, size=len(theta))
    lifted = 0
    for k, e in enumerate(_mutations(expr, theta, xs, ts, model, rng)):
        monkeypatch.setattr(lift_module, "LIFT_MIN", 0)
        f = value_and_grad(e, theta, [*xs, *ts, theta], reduce="mean")
        lifted += type(f).__name__ == "LiftedFunction"
        monkeypatch.setattr(lift_module, "LIFT_MIN", float("inf"))
        g = value_and_grad(e, theta, [*xs, *ts, theta], reduce="mean")
        assert type(g).__name__ == "CompiledFunction"
        got, want = f(*x, *t, p), g(*x, *t, p)
        assert float(got[0]) == pytest.approx(float(want[0]), rel=1e-12, abs=1e-14), k
        np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-13, err_msg=str(k))
    assert lifted >= 3  # the network itself, the input in the head, the scaled L2 terms
