"""The C target's packed kernels (codegen/c_pack.py) give the NumPy target's numbers.

Random layered networks (``network`` of tests/test_pack.py: random widths, activations and
losses, an L2 term inside the loss), compiled for C and for NumPy, called on Python floats, 1-D
batches of every length around the kernel's block of samples, 2-D batches, broadcast batches,
and a parameter vector with batch axes of its own (the kernel then gathers per sample), with
``reduce=None`` and ``"mean"``. The NumPy target is the reference (itself checked against
``sympy.lambdify`` in tests/test_pack.py and by finite differences elsewhere).
"""

from __future__ import annotations

import os
import random
import shutil

import numpy as np
import pytest
import sympy as sp
from test_pack import network  # the random layered networks of the NumPy target's pack tests

from symgrad import grad, lambdify, value_and_grad
from symgrad.codegen import c as cbackend
from symgrad.codegen import c_build
from symgrad.codegen.c_pack import BLOCK, generate_packed
from symgrad.codegen.plan import plan

needs_cc = pytest.mark.skipif(not cbackend.c_available(), reason="no C compiler")


def _kernel(f):
    return f._fn.__globals__["_kernel"]


def _cases(rng, n_data, n_params):
    p = rng.uniform(-1, 1, n_params)
    yield "floats", [float(v) for v in rng.normal(size=n_data)], p
    for n in (1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5, 100):
        yield f"1-D batch of {n}", [rng.normal(size=n) for _ in range(n_data)], p
    yield "2-D batch", [rng.normal(size=(2, 3)) for _ in range(n_data)], p
    broadcast = [rng.normal(size=(3, 1)) if k % 2 else rng.normal(size=4) for k in range(n_data)]
    yield "broadcast batch", broadcast, p
    batched = rng.uniform(-1, 1, (n_params, 5))
    yield "batched parameters", [rng.normal(size=5) for _ in range(n_data)], batched


@needs_cc
@pytest.mark.parametrize("reduce", [None, "mean"])
@pytest.mark.parametrize("seed", range(12))
def test_packed_c_kernels_agree_with_the_numpy_target(seed, reduce):
    _agree(*network(seed), seed, reduce)


def _agree(loss, params, data, seed, reduce):
    # the C target's value and gradient against the NumPy target's on every kind of call
    args = [*data, params]
    f_c = value_and_grad(loss, params, args, backend="c", reduce=reduce)
    f_np = value_and_grad(loss, params, args, reduce=reduce)
    rng = np.random.default_rng(seed)
    for label, values, p in _cases(rng, len(data), len(params)):
        with np.errstate(all="ignore"):
            got, want = f_c(*values, p), f_np(*values, p)
        for k, (a, b) in enumerate(zip(got, want, strict=True)):
            assert np.shape(a) == np.shape(b), (label, k)
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13, err_msg=f"{label}: {k}")


def wide_network(seed: int):
    """A random MLP wider than ``network`` (4-12 units, two hidden layers; symgrad.nn's layers):
    its layers are matrix products (``sg_lin``), its weight gradients rank-1 updates."""
    from symgrad.nn import MLP, hinge, l2

    rng = random.Random(seed)
    xs, y = list(sp.symbols(f"x0:{rng.randint(2, 3)}")), sp.Symbol("y")
    act = rng.choice(["relu", "tanh", "sigmoid"])
    model = MLP(len(xs), [rng.randint(4, 12), rng.randint(4, 12), 1], activation=act, rng=rng)
    theta = model.parameter_symbols()
    score = model.symbolic(xs)
    loss = hinge(score, [y]) if rng.random() < 0.5 else (score[0] - y) ** 2
    if rng.random() < 0.5:
        loss = loss + l2(theta, 1e-3)
    return loss, theta, [*xs, y]


@needs_cc
@pytest.mark.parametrize("reduce", [None, "mean"])
@pytest.mark.parametrize("seed", range(6))
def test_wide_packed_c_kernels_agree_with_the_numpy_target(seed, reduce):
    _agree(*wide_network(seed), seed, reduce)


def test_wide_networks_use_the_matrix_kernels():
    # the test above exercises sg_lin and sg_outer, not only elementwise pack loops
    found = []
    for seed in range(6):
        loss, params, data = wide_network(seed)
        program = generate_packed(plan([loss, grad(loss, params)], [*data, params]), "k", True)
        source = program.units[0][0]
        found.append(("sg_lin(W" in source, "sg_outer(G" in source))
    assert sum(a for a, _ in found) >= 4 and sum(b for _, b in found) >= 4, found


@needs_cc
def test_most_random_networks_compile_to_packed_c_kernels():
    # the test above exercises the packed generator, not only the statement-by-statement one
    packed = 0
    for seed in range(12):
        loss, params, data = network(seed)
        f = value_and_grad(loss, params, [*data, params], backend="c", reduce="mean")
        packed += "P0[" in _kernel(f).source
    assert packed >= 6


@needs_cc
def test_members_of_a_pack_as_outputs():
    w, x = sp.symbols("w:6"), sp.Symbol("x")
    outs = [sp.exp(w[k] * x) * sp.sin(w[k] * x) for k in range(6)]
    f = lambdify(outs, [list(w), x], backend="c")
    assert "P0[" in _kernel(f).source
    wv = np.linspace(0.1, 0.6, 6)
    xv = np.linspace(-1, 1, 21)
    got = np.asarray(f(wv, xv))
    want = np.exp(np.outer(wv, xv)) * np.sin(np.outer(wv, xv))
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


def _demo(width: int):
    from symgrad.nn import MLP, hinge, l2

    model = MLP(2, [width, width, 1], rng=random.Random(0))
    theta = model.parameter_symbols()
    xs, y = list(sp.symbols("x0:2")), sp.Symbol("y")
    return hinge(model.symbolic(xs), [y]) + l2(theta, 1e-4), theta, [*xs, y, theta]


def test_a_wide_network_is_a_small_c_kernel():
    # 2-64-64-1 ReLU/hinge with the L2 term: 4,417 parameters, 26,000 statements printed one by
    # one; packed, two blocked matrix products (forward, backward) and a loop per layer
    loss, theta, args = _demo(64)
    prog = plan([loss, grad(loss, theta)], args)
    program = generate_packed(prog, "k", mean=True)
    assert program is not None
    source = program.units[0][0]
    assert len(source.splitlines()) < 1000, len(source.splitlines())
    assert source.count("sg_lin(W") == 2 and source.count("sg_outer(G") >= 1


@needs_cc
def test_a_wide_network_gives_the_numpy_targets_step():
    loss, theta, args = _demo(24)
    f_c = value_and_grad(loss, theta, args, backend="c", reduce="mean")
    f_np = value_and_grad(loss, theta, args, reduce="mean")
    assert "sg_lin(W" in _kernel(f_c).source
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(2, 100)), rng.choice([-1.0, 1.0], 100)
    p = rng.normal(size=len(theta)) * 0.3
    got, want = f_c(*X, Y, p), f_np(*X, Y, p)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-11, atol=1e-15)


@needs_cc
def test_auto_builds_c_for_packed_networks_beyond_the_statement_budget(monkeypatch):
    # printed statement by statement, a program over the compile budget is left to NumPy; a
    # network's packed layers are loops, small at any width: auto still builds C for them
    monkeypatch.setattr(cbackend, "BUDGET", 1e-9)
    loss, theta, args = _demo(8)
    f = value_and_grad(loss, theta, args, backend="auto", reduce="mean")
    assert f.backend == "c" and "sg_lin(W" in _kernel(f).source
    x = sp.Symbol("x")
    assert lambdify(sp.exp(x) + sp.sin(x), [x], backend="auto").backend == "numpy"


@needs_cc
@pytest.mark.parametrize("seed", [0, 1])
def test_the_plain_c99_matrix_kernels_agree_too(monkeypatch, seed):
    # compilers without GCC's vector extensions get plain loops (forced here by SG_PORTABLE),
    # and libm's scalar functions where glibc's vector math library is missing
    monkeypatch.setitem(cbackend.EXTRA, "packed", (*cbackend.EXTRA["packed"], "-DSG_PORTABLE"))
    probed = cbackend.c_build.target
    monkeypatch.setattr(cbackend.c_build, "target", lambda cc: probed(cc)._replace(mvec=False))
    loss, params, data = wide_network(seed)
    args = [*data, params]
    f_c = value_and_grad(loss, params, args, backend="c", reduce="mean")
    f_np = value_and_grad(loss, params, args, reduce="mean")
    source = _kernel(f_c).source
    assert "sg_lin(W" in source and "sg_outer(G" in source and "simd(" not in source
    rng = np.random.default_rng(seed)
    values, p = [rng.normal(size=37) for _ in data], rng.uniform(-1, 1, len(params))
    for a, b in zip(f_c(*values, p), f_np(*values, p), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


CLANG = shutil.which("clang")


@pytest.mark.skipif(
    CLANG is None and not os.environ.get("SYMGRAD_REQUIRE_CLANG"), reason="clang is not installed"
)
def test_clang_builds_the_packed_kernels_and_the_float_entry(monkeypatch):
    # GCC is the compiler found first on most machines; Clang takes other flags (it has no
    # -fvect-cost-model and no libmvec calls): the same kernels must build and agree with it
    monkeypatch.setenv("CC", "clang")
    c_build.compiler.cache_clear()
    try:
        assert c_build.compiler()[0].endswith("clang")
        for seed in (0, 3):
            _agree(*wide_network(seed), seed, "mean")
        x, y = sp.symbols("x y")
        f = value_and_grad(sp.tanh(x * y), [x, y], [x, y], backend="c")
        assert type(f.func).__name__ == "builtin_function_or_method"  # codegen/c_float.py
        value, g = f(0.5, 2.0)
        assert value == pytest.approx(np.tanh(1.0), rel=1e-15)
        assert g.tolist() == pytest.approx([2.0 / np.cosh(1.0) ** 2, 0.5 / np.cosh(1.0) ** 2])
    finally:
        c_build.compiler.cache_clear()


@needs_cc
def test_the_portable_tanh_of_member_loops_is_numpys_to_3_ulp(monkeypatch):
    # without glibc's vector math library (Clang, other libcs) member loops use c_pack's
    # sg_tanh, so they vectorise; it must give NumPy's tanh everywhere, special values included
    probed = cbackend.c_build.target
    monkeypatch.setattr(cbackend.c_build, "target", lambda cc: probed(cc)._replace(mvec=False))
    x = sp.Symbol("x")
    ws = list(sp.symbols("w0:8"))
    # the products are outputs too: shared, they are a pack, and so are the tanh of them
    f = lambdify([*[sp.tanh(w * x) for w in ws], *[w * x for w in ws]], [ws, x], backend="c")
    source = _kernel(f).source
    assert "sg_tanh(double x)" in source and "simd(" not in source
    rng = np.random.default_rng(5)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300, -5e-324, 0.34657, 0.34658, 19.99, 20.0]
    xs = np.concatenate([special, rng.normal(size=3000), rng.normal(size=500) * 1e-4,
                         rng.uniform(-30, 30, 500)])  # fmt: skip
    scales = np.array([1.0, -1.0, 0.5, 2.0, 1e-3, 7.0, -0.25, 3.0])
    got = np.array([np.asarray(row) for row in f(scales, xs)[:8]])
    want = np.tanh(scales[:, None] * xs[None, :])
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.array_equal(np.signbit(got[ok]), np.signbit(want[ok]))  # -0.0 stays -0.0
    finite = ok & (want != 0)
    ulps = np.abs(got[finite] - want[finite]) / np.spacing(np.abs(want[finite]))
    assert ulps.max() <= 3, ulps.max()
