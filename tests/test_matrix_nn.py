"""Dense networks (symgrad.nn.Dense) on the one training stack: compiled matrix gradients against
hand-written NumPy backprop, the same loss names meaning the same numbers as for scalar models,
the shared Trainer/History/monitor/persistence, and the digits example."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from symgrad.errors import BackendUnavailableError, InputTypeError, OptionError, ShapeError
from symgrad.nn import (
    MLP,
    SGD,
    Adam,
    Dense,
    History,
    Trainer,
    TrainingWarning,
    load_parameters,
    save_parameters,
)
from symgrad.nn.dense import DENSE_LOSSES
from symgrad.nn.losses import LOSSES

ROOT = Path(__file__).resolve().parent.parent


def _manual(Ws, bs, X, y, loss, activation="tanh"):
    """Hand-written backprop of a dense network, samples as rows (an independent reference).

    Returns the mean loss over the batch and the gradients of every W (out, in) and b (out,).
    """
    act = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0)}[activation]
    dact = {"tanh": lambda h, z: 1 - h * h, "relu": lambda h, z: (z > 0).astype(float)}[activation]
    hs, zs, h = [X], [], X
    for i, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        z = h @ W.T + b
        h = act(z) if i < len(Ws) - 1 else z
        zs.append(z)
        hs.append(h)
    n = X.shape[0]
    if loss == "mse":
        Y = y.reshape(h.shape)
        value, d = np.sum((h - Y) ** 2) / n, 2 * (h - Y) / n
    elif loss == "softmax_cross_entropy":
        Y = np.eye(h.shape[1])[y]
        e = np.exp(h - h.max(axis=1, keepdims=True))
        s = e / e.sum(axis=1, keepdims=True)
        value, d = -np.sum(Y * np.log(s)) / n, (s - Y) / n
    elif loss == "hinge":
        Y = y.reshape(h.shape)
        margin = 1 - Y * h
        value, d = np.sum(np.maximum(margin, 0)) / n, np.where(margin > 0, -Y, 0.0) / n
    else:  # logistic, labels 0/1
        Y = y.reshape(h.shape)
        p = 1 / (1 + np.exp(-h))
        value = -np.sum(Y * np.log(p) + (1 - Y) * np.log(1 - p)) / n
        d = (p - Y) / n
    gW, gb = [None] * len(Ws), [None] * len(Ws)
    for i in reversed(range(len(Ws))):
        gW[i], gb[i] = d.T @ hs[i], d.sum(axis=0)
        if i:
            d = (d @ Ws[i]) * dact(hs[i], zs[i - 1])
    return value, [g for pair in zip(gW, gb, strict=True) for g in pair]


def _data(loss, n=9, nin=3, nout=4, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, nin))
    y = {
        "mse": rng.normal(size=(n, nout)),
        "softmax_cross_entropy": rng.integers(0, nout, n),
        "hinge": rng.choice([-1.0, 1.0], size=(n, nout)),
        "logistic": rng.integers(0, 2, size=(n, nout)).astype(float),
    }[loss]
    return X, y


@pytest.mark.parametrize("loss", ["mse", "softmax_cross_entropy", "hinge", "logistic"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_dense_gradients_match_manual_backprop(loss, activation):
    net = Dense(3, [5, 6, 4], activation=activation, seed=1)
    t = Trainer(net, loss)
    X, y = _data(loss)
    value, grad, scores = t.loss_and_grad(t.parameter_vector(), X, y)
    params = net.parameters()
    ref_value, ref_grads = _manual(params[0::2], params[1::2], X, y, loss, activation)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(grad, np.concatenate([g.ravel() for g in ref_grads]), atol=1e-13)
    assert scores.shape == (4, 9)


def _copy_weights(dense, scalar):
    """The scalar MLP's parameters (per neuron: weights, then bias) from the dense arrays."""
    theta = []
    params = dense.parameters()
    for W, b in zip(params[0::2], params[1::2], strict=True):
        for j in range(W.shape[0]):
            theta += [*W[j], b[j]]
    for p, v in zip(scalar.parameters(), theta, strict=True):
        p.data = float(v)


@pytest.mark.parametrize("loss", ["mse", "sse", "softmax_cross_entropy", "hinge", "logistic"])
def test_each_loss_name_means_the_same_for_scalar_and_dense_models(loss):
    # two independent derivations (SymPy per-sample sweep, matrix VJP rules) of the same network
    assert set(DENSE_LOSSES) == {fn.__name__ for fn, _ in LOSSES.values()}
    dense = Dense(3, [4, 3], seed=2, activation="tanh")
    scalar = MLP(3, [4, 3], activation="tanh", rng=random.Random(0))
    _copy_weights(dense, scalar)
    X, y = _data("mse" if loss == "sse" else loss, n=6, nout=3)
    td, ts = Trainer(dense, loss, l2=0.01), Trainer(scalar, loss, l2=0.01)
    ld, gd, sd = td.loss_and_grad(td.parameter_vector(), X, y)
    ls, gs, ss = ts.loss_and_grad(ts.parameter_vector(), X, y)
    np.testing.assert_allclose(ld, ls, rtol=1e-12)
    np.testing.assert_allclose(sd, ss, rtol=1e-12, atol=1e-14)
    # the scalar vector is per neuron (w..., b); the dense one is W row by row, then b
    order = []
    start = 0
    for W, b in zip(dense.parameters()[0::2], dense.parameters()[1::2], strict=True):
        for j in range(W.shape[0]):
            order += [start + j * W.shape[1] + k for k in range(W.shape[1])]
            order.append(start + W.size + j)
        start += W.size + b.size
    np.testing.assert_allclose(gd[order], gs, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(td.predict(X), ts.predict(X), rtol=1e-12, atol=1e-14)


def test_one_trainer_class_shares_history_monitor_and_optimisers():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    labels = np.where(X[:, 0] * X[:, 1] > 0, 1.0, -1.0)
    for opt in (SGD(lr=0.1, momentum=0.9), Adam(lr=0.02), SGD(lr=lambda k: 0.5 / (1 + k / 50))):
        net = Dense(2, [8, 1], seed=0)
        trainer = Trainer(net, "hinge", optimizer=opt)
        history = trainer.fit(X, labels, steps=150)
        assert isinstance(history, History)
        assert history.loss[-1] < 0.7 * history.loss[0]
        assert history.accuracy[-1] > 0.8
        assert [s.layer for s in history.health[0]] == ["layer 0", "layer 1"]
        # the model holds the trained parameters
        np.testing.assert_array_equal(trainer.parameter_vector(), net.parameter_vector())
        assert history.lr[3] == opt.rate(3)


def test_dense_monitor_and_divergence_stop_like_scalar_models():
    net = Dense(2, [4, 1], seed=0)
    trainer = Trainer(net, "mse", optimizer=SGD(lr=1e3))
    X = np.random.default_rng(0).normal(size=(20, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = trainer.fit(X, X[:, 0] * 100, steps=50)
    assert history.stopped is not None
    assert any(issubclass(w.category, TrainingWarning) for w in caught)
    assert np.all(np.isfinite(net.parameter_vector()))


def test_dense_persistence_roundtrip_and_architecture_check(tmp_path):
    net = Dense(3, [4, 2], seed=0)
    path = tmp_path / "dense.json"
    save_parameters(net, path)
    other = Dense(3, [4, 2], seed=1)
    assert not np.array_equal(other.parameter_vector(), net.parameter_vector())
    load_parameters(other, path)
    np.testing.assert_array_equal(other.parameter_vector(), net.parameter_vector())
    X = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_array_equal(other(X), net(X))
    with pytest.raises(ShapeError, match="shapes"):
        load_parameters(Dense(3, [5, 2]), path)
    with pytest.raises(ShapeError):
        load_parameters(MLP(3, [4, 2]), path)
    net.parameters()[0][0, 0] = np.nan
    with pytest.raises(Exception, match="non-finite"):
        save_parameters(net, path)
    load_parameters(other, path)  # the refused save left the file intact


def test_dense_forward_matches_numpy():
    net = Dense(3, [5, 2], activation="relu", seed=0)
    W1, b1, W2, b2 = net.parameters()
    X = np.random.default_rng(1).normal(size=(7, 3))
    want = np.maximum(X @ W1.T + b1, 0) @ W2.T + b2
    np.testing.assert_allclose(net(X), want, rtol=1e-13)
    np.testing.assert_allclose(Trainer(net, "mse").predict(X), want, rtol=1e-13)


def test_bad_input():
    with pytest.raises(OptionError):
        Dense(2, [3, 1], activation="swish")
    with pytest.raises(InputTypeError):
        Dense(2, [])
    with pytest.raises(InputTypeError):
        Dense(0, [1])
    with pytest.raises(InputTypeError):
        Dense(2, [3, 1.5])
    with pytest.raises(InputTypeError, match="seed"):
        Dense(2, [3], seed="abc")
    with pytest.raises(OptionError, match="memory"):
        Dense(10**6, [10**6, 10**6])
    with pytest.raises(InputTypeError, match="numbers"):
        Dense(2, [3])([["a", "b"]])
    with pytest.raises(InputTypeError, match="numbers"):
        Dense(2, [3])([[10**400, 1]])
    with pytest.raises(InputTypeError, match="linear_output"):
        Dense(2, [3], linear_output=np.array([1.0, 2.0]))
    with pytest.raises(OptionError, match="memory"):
        Dense(10**40, [1])
    with pytest.raises(ShapeError, match="theta"):
        Dense(2, [3]).matrices([0.0] * 9)
    net = Dense(2, [3, 1], seed=0)
    with pytest.raises(OptionError, match="by name"):
        Trainer(net, lambda s, t: s[0])
    with pytest.raises(OptionError):
        Trainer(net, "l1")
    with pytest.raises(OptionError, match="reduction"):
        Trainer(net, "mse", reduction=np.zeros(2))
    with pytest.raises(OptionError, match="backend"):
        Trainer(net, "mse", backend=np.zeros(2))
    with pytest.raises(BackendUnavailableError, match="numpy"):
        Trainer(net, "mse", backend="c")
    with pytest.raises(ShapeError, match="2 outputs"):
        Trainer(net, "softmax_cross_entropy")
    t = Trainer(net, "mse")
    with pytest.raises(ShapeError, match="samples"):
        t.fit(np.zeros((4, 2)), np.zeros(5), steps=1)
    with pytest.raises(ShapeError, match="X"):
        t.fit(np.zeros((4, 3)), np.zeros(4), steps=1)
    with pytest.raises(ShapeError, match="theta"):
        t.loss_and_grad(np.zeros(3), np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(InputTypeError, match="X"):
        t.fit([[10**400, 1.0]], [1.0], steps=1)
    with pytest.raises(OptionError, match="steps"):
        t.fit(np.zeros((4, 2)), np.zeros(4), steps=10**40)
    with pytest.raises(ShapeError):
        net(np.zeros((4, 3)))


@pytest.mark.parametrize(("args", "least"), [(["--quick"], 0.9), ([], 0.95)])
def test_digits_example(args, least):
    # the full run (40 epochs, about a second of training) is the documented >= 95% claim
    pytest.importorskip("sklearn")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "examples/digits.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    acc = float(out.split("test accuracy:")[1].split()[0])
    assert acc >= least


def test_deep_network_builds_and_trains_without_recursion_errors():
    net = Dense(4, [8] * 300 + [1], seed=0)  # SymPy's shapes are recursive: must stay shallow
    history = Trainer(net, "mse", optimizer=SGD(lr=0.01), monitor=False).fit(
        np.ones((5, 4)), np.ones(5), steps=1
    )
    assert np.isfinite(history.loss[0])


def test_monitor_statistics_of_sliced_and_gathered_layers_match_numpy():
    from symgrad.nn import HealthMonitor

    rng = np.random.default_rng(0)
    grad, before, after = rng.normal(size=(3, 10))
    groups = [("run", np.arange(0, 6)), ("scattered", np.array([6, 8, 7, 9]))]
    stats = HealthMonitor(groups).observe(0, grad, before, after)
    for s, (_, idx) in zip(stats, groups, strict=True):
        assert s.grad_norm == pytest.approx(np.sqrt(np.sum(grad[idx] ** 2)), rel=1e-14)
        assert s.weight_norm == pytest.approx(np.sqrt(np.sum(before[idx] ** 2)), rel=1e-14)
        moved = np.sqrt(np.sum((after[idx] - before[idx]) ** 2))
        assert s.update_ratio == pytest.approx(moved / s.weight_norm, rel=1e-14)
