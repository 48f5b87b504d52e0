"""symgrad.dask: compiled functions over chunked dask arrays, threaded and on a LocalCluster.

References are independent of the dask mapping: the lecture neuron's derivatives written by
hand in NumPy (o = tanh(w.x + b), do/dw = x (1 - o^2), do/db = 1 - o^2) on the same samples.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
sgd = pytest.importorskip("symgrad.dask")

from symgrad.errors import OptionError, ShapeError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
x1, w1, x2, w2, b = sp.symbols("x1 w1 x2 w2 b")
NEURON = sp.tanh(x1 * w1 + x2 * w2 + b)
ARGS = [[x1, x2], [w1, w2, b]]
P = np.array([-3.0, 1.0, 0.5])


def _hand(X: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    o = np.tanh(p[0] * X[0] + p[1] * X[1] + p[2])
    d = 1 - o * o
    return o, np.stack([X[0] * d, X[1] * d, d])


def _data(n: int, chunks: int | tuple) -> tuple:
    X = np.random.default_rng(0).normal(size=(2, n))
    return X, da.from_array(X, chunks=(1, chunks))  # the symbol axis is rechunked whole


@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_reductions_equal_numpy_on_the_whole_batch(reduce) -> None:
    X, Xd = _data(10_007, 1000)  # uneven last chunk
    f = sgd.value_and_grad(NEURON, [w1, w2, b], ARGS, reduce=reduce)
    v, g = dask.compute(*f(Xd, P))
    o, d = _hand(X, P)
    agg = np.mean if reduce == "mean" else np.sum
    np.testing.assert_allclose(v, agg(o), rtol=1e-12)
    np.testing.assert_allclose(g, agg(d, axis=1), rtol=1e-12)
    # a tree, not one task holding every chunk
    graph = dict(f(Xd, P)[1].__dask_graph__())
    assert sum(1 for k in graph if "add" in str(k)) >= 2


def test_per_sample_outputs_stay_lazy_and_chunked() -> None:
    X, Xd = _data(5000, (1200, 1800, 2000))
    v, g = sgd.value_and_grad(NEURON, [w1, w2, b], ARGS)(Xd, P)
    assert isinstance(v, da.Array) and isinstance(g, da.Array)
    assert v.chunks == ((1200, 1800, 2000),) and g.chunks == ((3,), (1200, 1800, 2000))
    o, d = _hand(X, P)
    np.testing.assert_allclose(v.compute(), o, rtol=1e-13)
    np.testing.assert_allclose(g.compute(), d, rtol=1e-13, atol=1e-16)


def test_lambdify_outputs_that_do_not_depend_on_the_batch() -> None:
    x, w = sp.symbols("x w")
    f = sgd.lambdify([x * w, [w, sp.Integer(1)], sp.Matrix([[x, w]])], [x, w])
    xd = da.arange(6.0, chunks=4)
    a, s, m = f(xd, 2.0)
    assert a.compute().tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert s.shape == (2, 6) and s.compute().tolist() == [[2.0] * 6, [1.0] * 6]
    assert m.shape == (1, 2, 6) and m[0, 1].compute().tolist() == [2.0] * 6
    mean = sgd.lambdify(x**2 + w, [x, w], reduce="mean")
    assert float(mean(xd, 1.0).compute()) == pytest.approx((0 + 1 + 4 + 9 + 16 + 25) / 6 + 1)


def test_pickles_as_a_recipe() -> None:
    f = sgd.value_and_grad(NEURON, [w1, w2, b], ARGS, reduce="mean")
    g = pickle.loads(pickle.dumps(f))
    X, Xd = _data(300, 100)
    np.testing.assert_allclose(g(Xd, P)[1].compute(), _hand(X, P)[1].mean(axis=1), rtol=1e-12)


def test_bad_input_gets_typed_errors() -> None:
    f = sgd.value_and_grad(NEURON, [w1, w2, b], ARGS, reduce="mean")
    with pytest.raises(ShapeError, match="no argument is a dask array"):
        f(np.ones((2, 4)), P)
    with pytest.raises(ShapeError, match="2 axis"):
        f(da.ones(4, chunks=2), P)
    g = sgd.lambdify(x1 * x2, [x1, x2])
    with pytest.raises(ShapeError, match="different batch sizes"):
        g(da.ones(4, chunks=2), da.ones(5, chunks=2))
    with pytest.raises(OptionError, match="reduce"):
        sgd.lambdify(x1, [x1], reduce="max")


def test_local_cluster_of_worker_processes() -> None:
    distributed = pytest.importorskip("distributed")
    # worker processes import symgrad from this checkout
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPATH", path)
    try:
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            X, Xd = _data(40_000, 5000)
            f = sgd.value_and_grad(NEURON, [w1, w2, b], ARGS, reduce="mean")
            v, g = client.compute(list(f(Xd, P)), sync=True)
            pids = set(client.run(os.getpid).values())
    finally:
        mp.undo()
    assert len(pids) == 2 and os.getpid() not in pids  # really other processes
    o, d = _hand(X, P)
    np.testing.assert_allclose(v, o.mean(), rtol=1e-12)
    np.testing.assert_allclose(g, d.mean(axis=1), rtol=1e-12)
