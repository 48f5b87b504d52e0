"""symgrad.matrix.nn: compiled training steps against hand-written NumPy backprop; the example."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symgrad.errors import InputTypeError, OptionError, ShapeError
from symgrad.matrix.nn import MLP, SGD, Adam, Trainer, hinge, mse, softmax_cross_entropy

ROOT = Path(__file__).resolve().parent.parent


def _manual(values, params, X, Y, loss):
    """Hand-written backprop of a tanh MLP (an independent reference)."""
    Ws = [values[p] for p in params[0::2]]
    bs = [values[p] for p in params[1::2]]
    hs, h = [X], X
    for i, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        z = W @ h + b
        h = np.tanh(z) if i < len(Ws) - 1 else z
        hs.append(h)
    B = X.shape[1]
    if loss == "mse":
        value = np.sum((h - Y) ** 2) / B
        d = 2 * (h - Y) / B
    else:
        e = np.exp(h - h.max(axis=0))
        s = e / e.sum(axis=0)
        value = -np.sum(Y * np.log(s)) / B
        d = (s - Y) / B
    grads = []
    for i in reversed(range(len(Ws))):
        grads[:0] = [d @ hs[i].T, d.sum(axis=1, keepdims=True)]
        if i:
            d = (1 - hs[i] ** 2) * (Ws[i].T @ d)
    return value, grads


@pytest.mark.parametrize(
    ("loss", "fn", "nout"), [("mse", mse, 1), ("ce", softmax_cross_entropy, 4)]
)
def test_compiled_gradients_match_manual_backprop(loss, fn, nout):
    rng = np.random.default_rng(3)
    net = MLP(3, [5, 6, nout], seed=1)
    t = Trainer(net, fn, SGD(0.1))
    X = rng.normal(size=(3, 9))
    Y = rng.normal(size=(1, 9)) if loss == "mse" else np.eye(nout)[rng.integers(0, nout, 9)].T
    value, grads = t.fn(*[net.values[p] for p in t.params], X, Y)
    ref_value, ref_grads = _manual(net.values, t.params, X, Y, loss)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for g, r in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-14)


def test_training_reduces_loss_with_each_optimizer_and_loss():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 40))
    labels = np.where(X[0] * X[1] > 0, 1.0, -1.0)[None, :]
    for loss, opt in ((hinge, SGD(0.1, momentum=0.9)), (mse, Adam(0.02))):
        net = MLP(2, [8, 1], seed=0)
        step = Trainer(net, loss, opt)
        first = step(X, labels)
        for _ in range(100):
            last = step(X, labels)
        assert last < 0.7 * first


def test_bad_input():
    with pytest.raises(OptionError):
        MLP(2, [3, 1], activation="swish")
    with pytest.raises(InputTypeError):
        MLP(2, [])
    with pytest.raises(OptionError):
        SGD(-1)
    t = Trainer(MLP(2, [3, 1], seed=0), mse, SGD(0.1))
    with pytest.raises(ShapeError):
        t(np.zeros((2, 4)), np.zeros((1, 5)))
    with pytest.raises(ShapeError, match="X"):
        t(np.zeros((3, 4)), np.zeros((1, 4)))


def test_digits_example_quick():
    pytest.importorskip("sklearn")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "examples/digits.py", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    acc = float(out.split("test accuracy:")[1].split()[0])
    assert acc >= 0.9


def test_deep_network_builds_and_trains_without_recursion_errors():
    net = MLP(4, [8] * 300 + [1], seed=0)  # SymPy's shapes are recursive: must stay shallow
    step = Trainer(net, mse, SGD(0.01))
    assert np.isfinite(step(np.ones((4, 5)), np.ones((1, 5))))
